/**
 * A fault-injecting TCP proxy for integration tests.
 *
 * It listens on a free 127.0.0.1 port and forwards every connection to a
 * target `host:port`. On command it produces real socket failures, not mocks:
 *
 * - `refuse`: stop accepting. By default the listening socket is closed, so a
 *   client's `connect` fails with `ECONNREFUSED`; with `{ how: "reset" }` the
 *   proxy keeps listening and destroys each incoming socket at once.
 * - `cut`: destroy every open connection, both the client side and the
 *   upstream side, so bytes in flight are lost.
 * - `stall`: stop forwarding in both directions (sockets are paused, new
 *   connections are accepted but paused too); `resume` forwards again.
 *
 * Test support code: Promises and sockets are fine here. `FaultProxy.make`
 * wraps the proxy as an Effect scoped resource with Effect methods.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"

/**
 * @since 0.1.0
 * @category models
 */
export interface FaultProxyOptions {
  readonly targetPort: number
  readonly targetHost?: string | undefined
  /** The port to listen on; a free one is chosen when omitted. */
  readonly port?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FaultProxyStats {
  /** Connections accepted and forwarded. */
  readonly accepted: number
  /** Connections destroyed on arrival while refusing in `reset` mode. */
  readonly refused: number
  /** Connections destroyed by `cut`. */
  readonly cut: number
  /** Connections whose upstream connect failed. */
  readonly upstreamFailures: number
  readonly open: number
  readonly bytesUp: number
  readonly bytesDown: number
}

/**
 * @since 0.1.0
 * @category models
 */
export type RefuseMode = "close-listener" | "reset"

interface Pair {
  readonly client: net.Socket
  readonly upstream: net.Socket
}

/**
 * The Promise-based proxy. Most tests use the Effect handle from `make`.
 *
 * @since 0.1.0
 * @category models
 */
export class FaultProxyServer {
  readonly host = "127.0.0.1"
  private server: net.Server | undefined
  private readonly pairs = new Set<Pair>()
  private refusing: RefuseMode | undefined
  private stalled = false
  private closed = false
  private counters = { accepted: 0, refused: 0, cut: 0, upstreamFailures: 0, bytesUp: 0, bytesDown: 0 }

  private constructor(
    private listenPort: number,
    readonly targetHost: string,
    readonly targetPort: number
  ) {}

  /** The listening port; it stays the same across `refuse` and `accept`. */
  get port(): number {
    return this.listenPort
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxyServer> {
    const proxy = new FaultProxyServer(options.port ?? 0, options.targetHost ?? "127.0.0.1", options.targetPort)
    await proxy.listen()
    return proxy
  }

  get stats(): FaultProxyStats {
    return { ...this.counters, open: this.pairs.size }
  }

  get isRefusing(): boolean {
    return this.refusing !== undefined
  }

  get isStalled(): boolean {
    return this.stalled
  }

  /** Stop accepting new connections. Open connections are left alone. */
  async refuse(how: RefuseMode = "close-listener"): Promise<void> {
    if (this.closed || this.refusing !== undefined) return
    this.refusing = how
    if (how === "close-listener") await this.closeListener()
  }

  /** Accept new connections again (re-listening on the same port if needed). */
  async accept(): Promise<void> {
    if (this.closed || this.refusing === undefined) return
    const how = this.refusing
    this.refusing = undefined
    if (how === "close-listener") await this.listen()
  }

  /** Destroy every open connection on both sides; returns how many were cut. */
  cut(): number {
    const pairs = [...this.pairs]
    for (const pair of pairs) this.destroyPair(pair)
    this.counters.cut += pairs.length
    return pairs.length
  }

  /** Stop forwarding in both directions until `resume`. */
  stall(): void {
    if (this.stalled) return
    this.stalled = true
    for (const { client, upstream } of this.pairs) {
      client.pause()
      upstream.pause()
    }
  }

  resume(): void {
    if (!this.stalled) return
    this.stalled = false
    for (const { client, upstream } of this.pairs) {
      client.resume()
      upstream.resume()
    }
  }

  /** Undo every fault: accept connections and forward traffic. */
  async heal(): Promise<void> {
    this.resume()
    await this.accept()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.cut()
    await this.closeListener()
  }

  private listen(): Promise<void> {
    const server = net.createServer((socket) => this.onConnection(socket))
    return listenWithRetry(server, this.listenPort).then((port) => {
      this.listenPort = port
      this.server = server
    })
  }

  private closeListener(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return Promise.resolve()
    // `close` releases the port at once; its callback would wait for open
    // connections, which this proxy tracks (and cuts) itself.
    return new Promise((resolve) => {
      server.close()
      setImmediate(resolve)
    })
  }

  private onConnection(client: net.Socket): void {
    client.on("error", () => {})
    if (this.refusing !== undefined || this.closed) {
      this.counters.refused++
      client.destroy()
      return
    }
    this.counters.accepted++
    const upstream = net.connect({ host: this.targetHost, port: this.targetPort })
    upstream.on("error", () => {})
    const pair: Pair = { client, upstream }
    this.pairs.add(pair)
    if (this.stalled) {
      client.pause()
      upstream.pause()
    }
    let connected = false
    upstream.once("connect", () => {
      connected = true
      upstream.setNoDelay(true)
    })
    client.setNoDelay(true)
    this.forward(client, upstream, "bytesUp")
    this.forward(upstream, client, "bytesDown")
    client.once("close", () => this.destroyPair(pair))
    upstream.once("close", () => {
      if (!connected) this.counters.upstreamFailures++
      this.destroyPair(pair)
    })
  }

  private forward(from: net.Socket, to: net.Socket, counter: "bytesUp" | "bytesDown"): void {
    from.on("data", (chunk: Buffer) => {
      this.counters[counter] += chunk.length
      if (!to.write(chunk)) {
        from.pause()
        to.once("drain", () => {
          if (!this.stalled) from.resume()
        })
      }
    })
    from.once("end", () => {
      to.end()
    })
  }

  private destroyPair(pair: Pair): void {
    if (!this.pairs.delete(pair)) return
    pair.client.destroy()
    pair.upstream.destroy()
  }
}

const listenOnce = (server: net.Server, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off("listening", onListening)
      reject(error)
    }
    const onListening = () => {
      server.off("error", onError)
      const address = server.address()
      resolve(typeof address === "object" && address !== null ? address.port : port)
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen({ host: "127.0.0.1", port })
  })

// Re-listening right after a close can briefly see EADDRINUSE; a few bounded
// attempts cover it.
const listenWithRetry = async (server: net.Server, port: number): Promise<number> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await listenOnce(server, port)
    } catch (error) {
      if (attempt >= 50 || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}

/**
 * The Effect handle on a running proxy.
 *
 * @since 0.1.0
 * @category models
 */
export interface FaultProxy {
  readonly host: string
  readonly port: number
  readonly stats: Effect.Effect<FaultProxyStats>
  readonly refuse: (how?: RefuseMode) => Effect.Effect<void>
  readonly accept: Effect.Effect<void>
  readonly cut: Effect.Effect<number>
  readonly stall: Effect.Effect<void>
  readonly resume: Effect.Effect<void>
  readonly heal: Effect.Effect<void>
  readonly server: FaultProxyServer
}

/**
 * Start a proxy for the lifetime of the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: FaultProxyOptions): Effect.Effect<FaultProxy, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(() => FaultProxyServer.start(options)),
      (server) => Effect.promise(() => server.close())
    ),
    (server): FaultProxy => ({
      host: server.host,
      port: server.port,
      stats: Effect.sync(() => server.stats),
      refuse: (how) => Effect.promise(() => server.refuse(how)),
      accept: Effect.promise(() => server.accept()),
      cut: Effect.sync(() => server.cut()),
      stall: Effect.sync(() => server.stall()),
      resume: Effect.sync(() => server.resume()),
      heal: Effect.promise(() => server.heal()),
      server
    })
  )
