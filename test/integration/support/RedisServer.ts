/**
 * A private `redis-server` for integration tests.
 *
 * It runs on a free loopback port with an append-only file in a temporary
 * directory (`--appendonly yes --appendfsync always --save ""`), so a write
 * Redis acknowledged survives a stop, even a `SIGKILL`. `stop` and `start`
 * reuse the same port and directory: a client configured once reconnects to
 * the restarted server and finds its data.
 *
 * Test support code: Promises and child processes are fine here.
 * `RedisServer.make` wraps the server as an Effect scoped resource.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

/**
 * @since 0.1.0
 * @category models
 */
export interface RedisServerOptions {
  readonly port?: number | undefined
  readonly appendfsync?: "always" | "everysec" | "no" | undefined
  /** The `redis-server` executable; `REDIS_SERVER` or `redis-server` on PATH by default. */
  readonly executable?: string | undefined
  /** How long to wait for the server to answer PING after a start. */
  readonly startTimeoutMs?: number | undefined
}

/**
 * Find a free loopback port by binding port 0 and releasing it.
 *
 * @since 0.1.0
 * @category utils
 */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/**
 * Send PING over a fresh socket; resolves true on `+PONG`.
 *
 * @since 0.1.0
 * @category utils
 */
export const ping = (port: number, host = "127.0.0.1", timeoutMs = 500): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on("error", () => done(false))
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8")
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"))
    })
  })

// A test run that dies must not leave servers behind.
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

/**
 * The Promise-based server. Most tests use the Effect handle from `make`.
 *
 * @since 0.1.0
 * @category models
 */
export class RedisServerProcess {
  private child: ChildProcess | undefined
  private log: Array<string> = []
  starts = 0

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisServerOptions
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServerProcess> {
    const port = options.port ?? (await freePort())
    const dir = mkdtempSync(join(tmpdir(), "sequent-redis-"))
    const server = new RedisServerProcess(port, dir, options)
    await server.start()
    return server
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get isRunning(): boolean {
    return this.child !== undefined
  }

  /** The last lines the server printed, for failure messages. */
  get recentLog(): string {
    return this.log.slice(-20).join("\n")
  }

  /** Start (or restart) the server on the same port and directory; resolves once it answers PING. */
  async start(): Promise<void> {
    if (this.child !== undefined) return
    const executable = this.options.executable ?? process.env["REDIS_SERVER"] ?? "redis-server"
    const child = spawn(executable, [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--appendonly",
      "yes",
      "--appendfsync",
      this.options.appendfsync ?? "always",
      "--save",
      "",
      "--daemonize",
      "no",
      "--protected-mode",
      "yes"
    ], { stdio: ["ignore", "pipe", "pipe"] })
    this.child = child
    running.add(child)
    this.starts++
    const remember = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.length > 0) this.log.push(line)
      }
      if (this.log.length > 200) this.log = this.log.slice(-100)
    }
    child.stdout?.on("data", remember)
    child.stderr?.on("data", remember)
    let exited = false
    child.once("exit", () => {
      exited = true
      running.delete(child)
      if (this.child === child) this.child = undefined
    })
    // Wait (bounded) for the server to answer PING, failing early if it exits.
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 10_000)
    while (Date.now() < deadline) {
      if (exited) break
      if (await ping(this.port)) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    child.kill("SIGKILL")
    throw new Error(`redis-server on port ${this.port} did not start:\n${this.recentLog}`)
  }

  /**
   * Stop the server. `SIGTERM` is a graceful shutdown (Redis fsyncs its AOF);
   * `SIGKILL` is a crash. Resolves when the process has exited.
   */
  stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.child
    if (child === undefined) return Promise.resolve()
    return new Promise((resolve) => {
      child.once("exit", () => resolve())
      child.kill(signal)
    })
  }

  async restart(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    await this.stop(signal)
    await this.start()
  }

  /** Stop the server and delete its directory. */
  async dispose(): Promise<void> {
    await this.stop("SIGKILL")
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * The Effect handle on a private server.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  readonly start: Effect.Effect<void>
  readonly stop: (signal?: "SIGTERM" | "SIGKILL") => Effect.Effect<void>
  readonly restart: (signal?: "SIGTERM" | "SIGKILL") => Effect.Effect<void>
  readonly process: RedisServerProcess
}

/**
 * Start a private server for the lifetime of the current scope; its
 * directory is deleted when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: RedisServerOptions = {}): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(() => RedisServerProcess.start(options)),
      (server) => Effect.promise(() => server.dispose())
    ),
    (server): RedisServer => ({
      port: server.port,
      url: server.url,
      dir: server.dir,
      start: Effect.promise(() => server.start()),
      stop: (signal) => Effect.promise(() => server.stop(signal)),
      restart: (signal) => Effect.promise(() => server.restart(signal)),
      process: server
    })
  )
