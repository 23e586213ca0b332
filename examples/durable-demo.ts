/**
 * The durable demo: writes that survive `kill -9`.
 *
 * A worker process runs a durable executor on a SQLite journal (in a temp
 * directory). It schedules 20 writes, each a POST of `{ seq }` to a small HTTP
 * backend on 127.0.0.1 that this process runs. Every `schedule` returns once
 * the write is committed to the journal, and the writes go out one at a time,
 * in order.
 *
 * Right after it records write 8, the backend goes down: it answers 503. The
 * worker retries write 9 with backoff, and at its third failed attempt this
 * process kills it with SIGKILL: no finalizer runs, nothing is flushed. Then it
 * starts a new worker on the same journal. The new worker schedules nothing: it
 * finds writes 9..20 in the journal, write 9 with its failed attempts, and goes
 * on retrying (attempt 4, ...). The backend stays down a little longer (it
 * closes, so connections are refused), then comes back, and the new worker
 * delivers writes 9..20 in order.
 *
 * Each step of the outage waits for a line from the worker, not for a timer, so
 * the story is the same on a slow machine. At the end the demo checks the
 * backend's record: writes 1..20, each once, in order. It prints PASS or FAIL,
 * and exits non-zero on FAIL.
 *
 *   npx tsx examples/durable-demo.ts
 *
 * The same file is the worker: `durable-demo.ts worker <journal> <url> <writes> [schedule]`.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Durable, Journal, TaskKind } from "../src/index.js"
import * as SqliteJournal from "../src/SqliteJournal.js"

const WRITES = 20
const OUTAGE_AFTER = 8
/** The worker is killed when it reports this many failed attempts. */
const KILL_AFTER_FAILURES = 3

// -----------------------------------------------------------------------------
// The worker: a durable executor, and the one task kind it runs
// -----------------------------------------------------------------------------

/** A durable task is data: the kind's schema is how it is stored in the journal. */
class Write extends Schema.TaggedClass<Write>()("Write", { seq: Schema.Int }) {}
const Tasks = TaskKind.make(Write)

class WriteFailedError extends Data.TaggedError("WriteFailedError")<{
  readonly seq: number
  readonly reason: string
}> {}

/** One delivery attempt: POST `{ seq }`, succeed on a 2xx. */
const post = (url: string, write: Write) =>
  Effect.gen(function*() {
    const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    yield* client.execute(HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(url), { seq: write.seq }))
  }).pipe(
    Effect.scoped,
    Effect.mapError((error) =>
      new WriteFailedError({
        seq: write.seq,
        reason: error._tag === "ResponseError" ? `HTTP ${error.response.status}` : "no connection (refused or dropped)"
      })
    )
  )

/** Exponential from 100 ms, jittered, at most 500 ms apart; never gives up. */
const retry = Schedule.exponential("100 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(500)))
)

const worker = (filename: string, url: string, writes: number, schedule: boolean) =>
  Effect.gen(function*() {
    const say = (line: string) => Console.log(line)

    // What the journal holds before this executor starts: nothing on a first
    // run; after a kill, every write that had not completed.
    const pending = yield* Effect.flatMap(Journal, (journal) => journal.pending)
    if (pending.length > 0) {
      const [head] = pending
      yield* say(
        `found ${pending.length} writes in the journal (${pending.map((record) => record.id).join(", ")});` +
          ` ${head!.id} has ${head!.attempts} failed attempt(s) on record`
      )
    }

    const sequent = yield* Durable.make({ retry })
    yield* sequent.events.pipe(
      Stream.runForEach((event) => {
        if (event._tag !== "AttemptFailed") return Effect.void
        const error = Cause.failureOption(event.cause)
        const what = Option.match(error, {
          onNone: () => Cause.pretty(event.cause),
          onSome: (error) => error instanceof WriteFailedError ? `write-${error.seq}: ${error.reason}` : String(error)
        })
        const retryIn = Math.round(Duration.toMillis(event.retryIn))
        return say(`${what}, attempt ${event.attempt} failed, retry in ${retryIn} ms`)
      }),
      Effect.forkScoped
    )

    if (schedule) {
      for (let seq = 1; seq <= writes; seq++) {
        // returns once the write is committed to the journal
        yield* sequent.schedule(new Write({ seq }), { id: `write-${seq}` })
      }
      yield* say(`scheduled write-1..write-${writes}: all in the journal`)
    }
    yield* sequent.flush
    const left = yield* Effect.flatMap(Journal, (journal) => journal.pending)
    yield* say(`all delivered; the journal holds ${left.length} pending writes`)
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mergeAll(
        Tasks.handlers({
          Write: (write) => Effect.zipRight(post(url, write), Console.log(`write-${write.seq} delivered`))
        }).pipe(Layer.provide(FetchHttpClient.layer)),
        SqliteJournal.layer({ filename })
      )
    ),
    // each failed attempt is logged as a warning; the events above narrate them instead
    Logger.withMinimumLogLevel(LogLevel.Error)
  )

// -----------------------------------------------------------------------------
// The backend: a small HTTP service that records writes, and goes down on cue
// -----------------------------------------------------------------------------

class BackendError extends Data.TaggedError("BackendError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `the backend could not listen: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

interface Backend {
  readonly url: string
  /** The writes recorded, in the order they arrived. */
  readonly record: ReadonlyArray<number>
  /** Writes that arrived again after they were recorded: answered 204, not recorded twice. */
  readonly duplicates: () => number
  /** Closes the server and drops its connections: connections are refused. */
  readonly refuse: Effect.Effect<void>
  /** Listens again on the same port, up and answering. */
  readonly restore: Effect.Effect<void, BackendError>
}

const listen = (server: http.Server, port: number): Effect.Effect<number, BackendError> =>
  Effect.async((resume) => {
    server.once("error", (cause) => resume(Effect.fail(new BackendError({ cause }))))
    server.listen(port, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
  })

const close = (server: http.Server): Effect.Effect<void> =>
  Effect.async((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

const decodeWrite = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ seq: Schema.Int })))

/**
 * `POST /writes` with `{ "seq": n }` records `n` and answers 204; a write it
 * already holds is answered 204 and not recorded again. Right after it records
 * write `downAfter`, before it replies, it starts answering 503.
 */
const makeBackend = (downAfter: number): Effect.Effect<Backend, BackendError, Scope.Scope> =>
  Effect.gen(function*() {
    const record: Array<number> = []
    let duplicates = 0
    let unavailable = false
    let current: http.Server | undefined
    const handle: http.RequestListener = (req, res) => {
      let body = ""
      req.setEncoding("utf8")
      req.on("data", (chunk: string) => {
        body += chunk
      })
      req.on("end", () => {
        if (unavailable) return void res.writeHead(503).end()
        const write = decodeWrite(body)
        if (Option.isNone(write)) return void res.writeHead(400).end()
        if (record.includes(write.value.seq)) duplicates++
        else record.push(write.value.seq)
        if (record.length === downAfter) unavailable = true
        res.writeHead(204).end()
      })
    }
    const serve = (port: number) =>
      Effect.suspend(() => {
        const server = http.createServer(handle)
        return Effect.tap(listen(server, port), () => {
          current = server
        })
      })
    const refuse = Effect.suspend(() => {
      const server = current
      current = undefined
      return server === undefined ? Effect.void : close(server)
    })
    const port = yield* Effect.acquireRelease(serve(0), () => refuse)
    return {
      url: `http://127.0.0.1:${port}/writes`,
      record,
      duplicates: () => duplicates,
      refuse,
      restore: Effect.suspend(() => {
        unavailable = false
        // the port was ours a moment ago; should something hold it briefly, try again
        return Effect.retry(serve(port), Schedule.intersect(Schedule.spaced("50 millis"), Schedule.recurs(20)))
      })
    }
  })

// -----------------------------------------------------------------------------
// The demo: the backend, and the worker processes
// -----------------------------------------------------------------------------

interface WorkerProcess {
  readonly child: ChildProcess
  /** stdout, line by line; `undefined` once it is closed. */
  readonly lines: Queue.Queue<string | undefined>
}

/** Runs this file as a worker, with this process's loader (tsx); killed with the scope if still alive. */
const startWorker = (args: ReadonlyArray<string>): Effect.Effect<WorkerProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const lines = yield* Queue.unbounded<string | undefined>()
      const child = spawn(
        process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url), "worker", ...args],
        { stdio: ["ignore", "pipe", "inherit"] }
      )
      const reader = createInterface({ input: child.stdout! })
      reader.on("line", (line) => Queue.unsafeOffer(lines, line))
      reader.on("close", () => Queue.unsafeOffer(lines, undefined))
      return { child, lines }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

const awaitExit = (child: ChildProcess) =>
  Effect.async<string>((resume) => {
    const done = () => resume(Effect.succeed(child.signalCode ?? `exit code ${child.exitCode}`))
    if (child.exitCode !== null || child.signalCode !== null) return done()
    child.once("exit", done)
  })

const isFailure = (line: string) => line.includes("failed, retry in")
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

const demo = Effect.gen(function*() {
  const dir = mkdtempSync(join(tmpdir(), "sequent-durable-demo-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
  const journal = join(dir, "journal.db")
  const startedAt = yield* Clock.currentTimeMillis
  const at = (line: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Console.log(`${seconds(now - startedAt).padStart(7)}  ${line}`))

  const backend = yield* makeBackend(OUTAGE_AFTER)
  yield* Console.log(`effect-sequent durable demo: ${WRITES} writes to ${backend.url}`)
  yield* Console.log(`journal: ${journal}`)
  yield* Console.log(
    `the backend goes down after write ${OUTAGE_AFTER}; the worker is killed with SIGKILL while it retries\n`
  )

  /** Prints a worker's lines, and runs `react` on each, until `react` says stop or the worker's stdout closes. */
  const relay = (worker: WorkerProcess, react: (line: string) => Effect.Effect<boolean, BackendError>) =>
    Effect.gen(function*() {
      while (true) {
        const line = yield* Queue.take(worker.lines)
        if (line === undefined) return false
        yield* at(`[worker ${worker.child.pid}] ${line}`)
        if (yield* react(line)) return true
      }
    })

  // The first worker schedules the writes. It is killed at its third failed attempt.
  const killed = yield* Effect.scoped(Effect.gen(function*() {
    const first = yield* startWorker([journal, backend.url, String(WRITES), "schedule"])
    yield* at(`started worker ${first.child.pid}`)
    let failures = 0
    const reached = yield* relay(
      first,
      (line) => Effect.succeed(isFailure(line) && ++failures === KILL_AFTER_FAILURES)
    )
    if (!reached) return false
    first.child.kill("SIGKILL")
    yield* at(`killed worker ${first.child.pid}: ${yield* awaitExit(first.child)}`)
    return true
  }))

  // The second one schedules nothing: it finds the writes in the journal. At its
  // first failed attempt the backend closes; at its first refused connection
  // the backend comes back.
  const exit = yield* Effect.scoped(Effect.gen(function*() {
    const second = yield* startWorker([journal, backend.url, String(WRITES)])
    yield* at(`started worker ${second.child.pid} on the same journal`)
    let outage: "503" | "refusing" | "over" = "503"
    yield* relay(second, (line) => {
      if (!isFailure(line)) return Effect.succeed(false)
      if (outage === "503") {
        outage = "refusing"
        return Effect.as(Effect.zipRight(backend.refuse, at("backend: closed, refusing connections")), false)
      }
      if (outage === "refusing" && line.includes("no connection")) {
        outage = "over"
        return Effect.as(Effect.zipRight(backend.restore, at("backend: back up")), false)
      }
      return Effect.succeed(false)
    })
    return yield* awaitExit(second.child)
  }))

  const record = backend.record
  const inOrder = record.length === WRITES && record.every((seq, index) => seq === index + 1)
  const pass = killed && exit === "exit code 0" && inOrder
  yield* Console.log(
    [
      "",
      "summary",
      `  first worker    ${killed ? `killed with SIGKILL at its failed attempt ${KILL_AFTER_FAILURES}` : "not killed"}`,
      `  second worker   ${exit}`,
      `  backend record  ${inOrder ? `writes 1..${WRITES}, each once, in order` : JSON.stringify(record)}`,
      `  resent writes   ${backend.duplicates()} (the backend does not record a write twice)`,
      `  elapsed         ${seconds((yield* Clock.currentTimeMillis) - startedAt)}`,
      "",
      pass ? "PASS" : "FAIL"
    ].join("\n")
  )
  if (!pass) return yield* new DemoFailedError()
})

class DemoFailedError extends Data.TaggedError("DemoFailedError")<{}> {
  override get message(): string {
    return "the durable demo failed: see the summary"
  }
}

const [mode, filename, url, writes, schedule] = process.argv.slice(2)
if (mode === "worker") {
  NodeRuntime.runMain(worker(filename!, url!, Number(writes), schedule === "schedule"))
} else {
  NodeRuntime.runMain(Effect.scoped(demo))
}
