/**
 * The demo's backend: a small HTTP service on 127.0.0.1 that records writes,
 * and goes down for a while on cue.
 *
 * `POST /writes` with a JSON body `{ "seq": n }` records `n` and answers
 * `204 No Content`. The service is idempotent by `seq`: a write it already
 * holds is answered `204` again and not recorded twice. Any client that retries
 * must count on that. When a connection drops after the service recorded a
 * write but before its reply arrived, the client cannot tell the write from a
 * lost one and sends it again.
 *
 * The outage starts right after the service records write `after`. The switch
 * happens inside the request handler, before the reply, so the next write
 * always meets it. For `unavailableFor`, and until it has turned away at least
 * one write, the service answers every write with `503 Service Unavailable`.
 * Then the server closes and drops its connections, so new connections are
 * refused, for `refusedFor`. Then it listens again on the same port.
 *
 * node:http lives at the edge: `listen` and `close` are its only callbacks
 * wrapped as Effects. The outage runs as a fiber in the service's scope.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/**
 * When and for how long the service goes down.
 *
 * @since 0.1.0
 * @category models
 */
export interface Outage {
  /** The outage starts right after the service records this many writes. */
  readonly after: number
  /** How long it answers every write with 503 (and at least until it has answered one). */
  readonly unavailableFor: Duration.DurationInput
  /** Then, how long it stays closed, so that connections are refused. */
  readonly refusedFor: Duration.DurationInput
}

/**
 * When the outage happened, in `Clock` milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutageReport {
  /** When the service started answering 503. */
  readonly startedAt: number
  /** When it closed, so that connections were refused. */
  readonly refusingAt: number
  /** When it was listening again. */
  readonly endedAt: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WriteServiceOptions {
  /** The outage to stage, if any. */
  readonly outage?: Outage | undefined
  /** Where the service reports what it does. Default: nowhere. */
  readonly log?: ((line: string) => Effect.Effect<void>) | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface WriteService {
  /** The URL to POST writes to. */
  readonly url: string
  readonly port: number
  /** The writes recorded so far, in the order they arrived. */
  readonly record: Effect.Effect<ReadonlyArray<number>>
  /** How many writes arrived again after they were recorded. They are answered 204 and not recorded twice. */
  readonly duplicates: Effect.Effect<number>
  /**
   * Waits for the end of the outage and reports its times, or succeeds with
   * `undefined` when no outage was asked for. Fails if the service cannot
   * listen again.
   */
  readonly outage: Effect.Effect<OutageReport | undefined, WriteServiceError>
}

/**
 * The service could not listen on its port.
 *
 * @since 0.1.0
 * @category errors
 */
export class WriteServiceError extends Data.TaggedError("WriteServiceError")<{
  readonly port: number
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `the write service could not listen on 127.0.0.1:${this.port}: ${reason}`
  }
}

// -----------------------------------------------------------------------------
// The edge: node:http callbacks, each wrapped once
// -----------------------------------------------------------------------------

const listen = (server: http.Server, port: number): Effect.Effect<number, WriteServiceError> =>
  Effect.async((resume) => {
    const onError = (cause: Error) => {
      server.off("listening", onListening)
      resume(Effect.fail(new WriteServiceError({ port, cause })))
    }
    const onListening = () => {
      server.off("error", onError)
      resume(Effect.succeed((server.address() as AddressInfo).port))
    }
    server.once("error", onError)
    server.once("listening", onListening)
    server.listen(port, "127.0.0.1")
    return Effect.sync(() => server.close())
  })

/** Stops listening and drops every open connection, idle or not. */
const close = (server: http.Server): Effect.Effect<void> =>
  Effect.async((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

interface State {
  mode: "up" | "unavailable"
  server: http.Server | undefined
  readonly record: Array<number>
  readonly seen: Set<number>
  duplicates: number
}

const decodeWrite = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ seq: Schema.Int })))

interface Hooks {
  /** Runs after each new write is recorded, before the reply. */
  readonly recorded: (count: number) => void
  /** Runs after each 503. */
  readonly answered503: () => void
}

const handler = (state: State, hooks: Hooks): http.RequestListener => (req, res) => {
  if (req.method !== "POST" || req.url !== "/writes") {
    res.writeHead(404).end()
    return
  }
  let body = ""
  req.setEncoding("utf8")
  req.on("data", (chunk: string) => {
    body += chunk
  })
  req.on("end", () => {
    if (state.mode === "unavailable") {
      res.writeHead(503).end()
      hooks.answered503()
      return
    }
    const write = decodeWrite(body)
    if (Option.isNone(write)) {
      res.writeHead(400).end()
      return
    }
    const seq = write.value.seq
    if (state.seen.has(seq)) {
      state.duplicates++
    } else {
      state.seen.add(seq)
      state.record.push(seq)
      hooks.recorded(state.record.length)
    }
    res.writeHead(204).end()
  })
}

// -----------------------------------------------------------------------------
// The service
// -----------------------------------------------------------------------------

/**
 * Starts the service on a free port of 127.0.0.1 for the lifetime of the
 * scope. If an outage is given, the service stages it too.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: WriteServiceOptions = {}): Effect.Effect<WriteService, WriteServiceError, Scope.Scope> =>
  Effect.gen(function*() {
    const log = options.log ?? (() => Effect.void)
    const clock = yield* Effect.clock
    const outageBegun = yield* Deferred.make<number>()
    const answered503 = yield* Deferred.make<void>()
    const outage = options.outage
    const state: State = {
      mode: "up",
      server: undefined,
      record: [],
      seen: new Set(),
      duplicates: 0
    }
    const handle = handler(state, {
      recorded: (count) => {
        if (outage !== undefined && count === outage.after) {
          state.mode = "unavailable"
          Deferred.unsafeDone(outageBegun, Exit.succeed(clock.unsafeCurrentTimeMillis()))
        }
      },
      answered503: () => Deferred.unsafeDone(answered503, Exit.void)
    })
    const serve = (port: number) =>
      Effect.suspend(() => {
        const server = http.createServer(handle)
        return Effect.map(listen(server, port), (port) => {
          state.server = server
          return port
        })
      })

    const closeServer = Effect.suspend(() => {
      const server = state.server
      state.server = undefined
      return server === undefined ? Effect.void : close(server)
    })
    const port = yield* Effect.acquireRelease(serve(0), () => closeServer)

    const stage = (outage: Outage) =>
      Effect.gen(function*() {
        const startedAt = yield* Deferred.await(outageBegun)
        yield* log(`backend: down, answering 503 Service Unavailable`)
        yield* Effect.sleep(outage.unavailableFor)
        yield* Deferred.await(answered503)
        yield* closeServer
        state.mode = "up"
        const refusingAt = yield* Clock.currentTimeMillis
        yield* log(`backend: closed, refusing connections`)
        yield* Effect.sleep(outage.refusedFor)
        // The port was ours a moment ago; should something hold it briefly, try again.
        yield* Effect.retry(serve(port), Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(20)))
        const endedAt = yield* Clock.currentTimeMillis
        yield* log(`backend: back up on port ${port}`)
        return { startedAt, refusingAt, endedAt } satisfies OutageReport
      })

    let outageReport: Effect.Effect<OutageReport | undefined, WriteServiceError> = Effect.succeed(undefined)
    if (outage !== undefined) outageReport = Fiber.join(yield* Effect.forkScoped(stage(outage)))

    return {
      url: `http://127.0.0.1:${port}/writes`,
      port,
      record: Effect.sync(() => [...state.record]),
      duplicates: Effect.sync(() => state.duplicates),
      outage: outageReport
    }
  })
