/**
 * The shared demo: two instances on one PostgreSQL journal deliver ordered
 * writes to an HTTP backend that goes down, and one of them is killed with
 * `kill -9` in the middle of the outage.
 *
 * This process runs the backend, a small HTTP service on 127.0.0.1 that
 * stands for a webhook receiver. It records each write `{ id, customer, seq }`
 * once per id: like a real idempotent receiver, it answers a write it already
 * holds with 204 and only counts the repeat. Two instance processes, a and b,
 * run `Durable.layer` on the journal in shared mode. They start paused; a
 * schedules the writes, 10 for each of 8 customers, one lane per customer;
 * once the journal shows the lanes spread over both (this process reads
 * `PgJournal.lanes`, and runs no executor itself), both resume.
 *
 * Right after it records write 24 the backend answers 503. Once both instances
 * are retrying against it, the demo kills a with SIGKILL: no finalizer runs,
 * its session locks die with its connections, and b takes its lanes. Once b is
 * retrying a's lanes too, the backend comes back, and b delivers the rest.
 * Each step waits for something it can see (a line from an instance, the
 * journal's lanes, requests at the backend), not for a timer. At the end the
 * demo checks the backend's record: every write recorded once, each
 * customer's in order, and a write sent again only where its lane moved with
 * it in flight. It prints PASS or FAIL, and exits non-zero on FAIL.
 *
 *   npm run demo:shared      (PostgreSQL at SEQUENT_PG_URL, default postgres://root@127.0.0.1:5432/test)
 *
 * The same file is an instance: `shared-demo.ts instance <url> <tablePrefix> <name> <backend>`.
 *
 * @since 0.2.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type ChildProcess, spawn } from "node:child_process"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Durable, DurableSequent, TaskKind } from "../src/index.js"
import * as PgJournal from "../src/PgJournal.js"

const CUSTOMERS = Array.from({ length: 8 }, (_, i) => `customer-${i + 1}`)
const WRITES = 10
/** The backend goes down right after it records this many writes. */
const OUTAGE_AFTER = 24
/**
 * The eight customers' lanes hash onto the eight shards, one each (the demo
 * checks): the journal's lanes show the owner of every shard, and two
 * instances that share them fairly run four lanes each.
 */
const SHARDS = 8

class DemoError extends Data.TaggedError("DemoError")<{ readonly reason: string }> {
  override get message(): string {
    return `the shared demo failed: ${this.reason}`
  }
}

// -----------------------------------------------------------------------------
// An instance: a durable executor on the shared journal, and the writes it delivers
// -----------------------------------------------------------------------------

class Write extends Schema.TaggedClass<Write>()("Write", { customer: Schema.String, seq: Schema.Int }) {}
const Tasks = TaskKind.make(Write)

/** A write's id: its durable task id, and the idempotency key the backend records it by. */
const writeId = (customer: string, seq: number) => `${customer}/${seq}`

/**
 * One attempt: POST the write, saying which instance sends it (for the demo's
 * record). Any answer but 2xx fails it, and so does a refused connection.
 */
const post = (backend: string, name: string) => (write: Write) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    HttpClient.filterStatusOk(client).execute(
      HttpClientRequest.post(backend).pipe(
        HttpClientRequest.setHeader("x-instance", name),
        HttpClientRequest.bodyUnsafeJson({
          id: writeId(write.customer, write.seq),
          customer: write.customer,
          seq: write.seq
        })
      )
    )).pipe(Effect.scoped)

/** Exponential from 20 ms, jittered, at most 200 ms apart: the lanes resume soon after the backend does. */
const retry = Schedule.exponential("20 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(200)))
)

const InstanceLive = (url: Redacted.Redacted, tablePrefix: string, name: string, backend: string) =>
  // the demo narrates the outage from the backend's side, so the executor's log of each failed attempt is off
  Durable.layer({ concurrency: CUSTOMERS.length, retry, attemptLogLevel: "None" }).pipe(
    Layer.provide(Tasks.handlers({ Write: post(backend, name) }).pipe(Layer.provide(FetchHttpClient.layer))),
    Layer.provide(PgJournal.layer({ url, tablePrefix, sharing: { shards: SHARDS } }))
  )

/** Every customer's writes, one producer per customer, each in order; a `schedule` returns once it is committed. */
const scheduleAll = Effect.forEach(
  CUSTOMERS,
  (customer) =>
    Effect.forEach(
      Array.from({ length: WRITES }, (_, i) => i + 1),
      (seq) => DurableSequent.schedule(new Write({ customer, seq }), { key: customer, id: writeId(customer, seq) }),
      { discard: true }
    ),
  { concurrency: "unbounded", discard: true }
)

/**
 * The demo's commands, one a line on stdin: `schedule`, and `resume`. When
 * stdin closes (the demo is gone) the instance shuts down.
 */
const commands = (name: string) =>
  Stream.fromAsyncIterable(
    createInterface({ input: process.stdin }),
    (cause) => new DemoError({ reason: `instance ${name} could not read its stdin: ${cause}` })
  ).pipe(Stream.runForEach((command) =>
    command === "schedule"
      ? Effect.zipRight(scheduleAll, Console.log(`scheduled ${CUSTOMERS.length * WRITES} writes: all in the journal`))
      : command === "resume"
      ? DurableSequent.resume()
      : Effect.void
  ))

/**
 * An instance starts paused: no write goes out before the demo has seen the
 * lanes spread over both instances. A lane that moves with a write in flight
 * (as it does when an instance joins and takes its share) sends that write
 * again, and the demo wants the kill to be the only move.
 */
const instance = (url: Redacted.Redacted, tablePrefix: string, name: string, backend: string) =>
  Effect.gen(function*() {
    yield* DurableSequent.pause()
    yield* Console.log("ready")
    yield* commands(name)
  }).pipe(Effect.provide(InstanceLive(url, tablePrefix, name, backend)))

// -----------------------------------------------------------------------------
// The backend: an idempotent receiver that records what arrives, and goes down on cue
// -----------------------------------------------------------------------------

/** One POST, and what the backend made of it. */
interface Arrival {
  readonly at: number
  readonly instance: string
  readonly id: string
  readonly customer: string
  readonly seq: number
  /** Recorded (its id's first arrival), a repeat of a recorded id (answered 204), or refused with 503. */
  readonly outcome: "recorded" | "repeat" | "refused"
}

interface Backend {
  readonly url: string
  /** Every POST, in the order it arrived. */
  readonly arrivals: ReadonlyArray<Arrival>
  /** Whether it answers 503, and from when to when. */
  readonly outage: { readonly down: boolean; readonly since: number; readonly until: number }
  /** Ends the outage. */
  readonly up: Effect.Effect<void>
}

class BackendError extends Data.TaggedError("BackendError")<{ readonly cause: unknown }> {
  override get message(): string {
    return `the backend could not listen: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

const listen = (server: http.Server): Effect.Effect<number, BackendError> =>
  Effect.async((resume) => {
    server.once("error", (cause) => resume(Effect.fail(new BackendError({ cause }))))
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
  })

const close = (server: http.Server): Effect.Effect<void> =>
  Effect.async((resume) => {
    server.close(() => resume(Effect.void))
    server.closeAllConnections()
  })

const decodeWrite = Schema.decodeUnknownOption(
  Schema.parseJson(Schema.Struct({ id: Schema.String, customer: Schema.String, seq: Schema.Int }))
)

/** `POST /writes`; it goes down (503) right after it records write `OUTAGE_AFTER`, before it replies. */
const makeBackend: Effect.Effect<Backend, BackendError, Scope.Scope> = Effect.gen(function*() {
  const clock = yield* Effect.clock
  const arrivals: Array<Arrival> = []
  const outage = { down: false, since: 0, until: 0 }
  const recorded = new Set<string>()
  const server = http.createServer((req, res) => {
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (chunk: string) => (body += chunk))
    req.on("end", () => {
      const write = decodeWrite(body)
      if (Option.isNone(write)) return void res.writeHead(400).end()
      const { id } = write.value
      const outcome = outage.down ? "refused" : recorded.has(id) ? "repeat" : "recorded"
      const at = clock.unsafeCurrentTimeMillis()
      arrivals.push({ ...write.value, at, instance: String(req.headers["x-instance"]), outcome })
      if (outcome === "recorded") recorded.add(id)
      if (outcome === "recorded" && recorded.size === OUTAGE_AFTER) {
        outage.down = true
        outage.since = at
      }
      res.writeHead(outcome === "refused" ? 503 : 204).end()
    })
  })
  const port = yield* Effect.acquireRelease(listen(server), () => close(server))
  const up = Effect.sync(() => {
    outage.down = false
    outage.until = clock.unsafeCurrentTimeMillis()
  })
  return { url: `http://127.0.0.1:${port}/writes`, arrivals, outage, up }
})

// What the backend has seen

const refused = (backend: Backend, instance: string, after = 0) =>
  backend.arrivals.filter((a) => a.outcome === "refused" && a.instance === instance && a.at >= after)

/** Whether `instance` has sent a write the outage refused, and then sent it again. */
const retrying = (backend: Backend, instance: string) => {
  const ids = refused(backend, instance).map((a) => a.id)
  return new Set(ids).size < ids.length
}

/** The customers whose latest refused attempt came from `instance`: the lanes it runs. */
const lanesOf = (backend: Backend, instance: string) => {
  const latest = new Map(backend.arrivals.filter((a) => a.outcome === "refused").map((a) => [a.customer, a.instance]))
  return CUSTOMERS.filter((customer) => latest.get(customer) === instance)
}

const recordedCount = (backend: Backend) => backend.arrivals.filter((a) => a.outcome === "recorded").length

/**
 * What went wrong in the record, if anything: per customer, every write
 * recorded, in order; and a repeat only where the lane moved with the write
 * in flight (the new owner sends it again), at most once per move.
 */
const check = (arrivals: ReadonlyArray<Arrival>): ReadonlyArray<string> =>
  CUSTOMERS.flatMap((customer) => {
    const mine = arrivals.filter((a) => a.customer === customer)
    const firsts = mine.filter((a) => a.outcome === "recorded")
    const repeats = mine.filter((a) => a.outcome === "repeat")
    const moves = firsts.filter((a, i) => i > 0 && a.instance !== firsts[i - 1]!.instance).length
    const problems: Array<string> = []
    if (firsts.length !== WRITES) problems.push(`${customer}: ${firsts.length} of ${WRITES} writes recorded`)
    if (firsts.some((a, i) => a.seq !== i + 1)) problems.push(`${customer}: recorded out of order`)
    const byOther = repeats.every((r) => firsts.find((a) => a.id === r.id)?.instance !== r.instance)
    if (repeats.length > moves || !byOther) problems.push(`${customer}: a write sent again where its lane did not move`)
    return problems
  })

// -----------------------------------------------------------------------------
// The demo: the backend, two instances, the outage and the kill
// -----------------------------------------------------------------------------

interface Instance {
  readonly name: string
  readonly child: ChildProcess
  /** stdout, line by line; `undefined` once it is closed. */
  readonly lines: Queue.Queue<string | undefined>
}

/** Runs this file as an instance, with this process's loader (tsx); killed with the scope if still alive. */
const start = (args: ReadonlyArray<string>, name: string): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const lines = yield* Queue.unbounded<string | undefined>()
      const child = spawn(
        process.execPath,
        [...process.execArgv, fileURLToPath(import.meta.url), "instance", ...args],
        {
          stdio: ["pipe", "pipe", "inherit"]
        }
      )
      const reader = createInterface({ input: child.stdout! })
      reader.on("line", (line) => Queue.unsafeOffer(lines, line))
      reader.on("close", () => Queue.unsafeOffer(lines, undefined))
      return { name, child, lines }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Waits for a line of the instance that starts with `prefix`, passing on any other it prints. */
const nextLine = (instance: Instance, prefix: string): Effect.Effect<string, DemoError> =>
  Effect.flatMap(Queue.take(instance.lines), (line) =>
    line === undefined
      ? Effect.fail(new DemoError({ reason: `instance ${instance.name} exited before it printed "${prefix}"` }))
      : line.startsWith(prefix)
      ? Effect.succeed(line)
      : Effect.zipRight(Console.log(`[${instance.name}] ${line}`), nextLine(instance, prefix)))

const awaitLine = (instance: Instance, prefix: string) =>
  Effect.timeoutFail(nextLine(instance, prefix), {
    duration: "20 seconds",
    onTimeout: () => new DemoError({ reason: `no "${prefix}" from instance ${instance.name} in 20 s` })
  })

const awaitExit = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Polls `done` until it holds. */
const until = <E, R>(what: string, done: Effect.Effect<boolean, E, R>) =>
  done.pipe(
    Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (ok) => ok }),
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new DemoError({ reason: `no ${what} in 20 s` }) })
  )

/** Whether the journal's lanes are spread fairly: every one owned, half of them by each instance. */
const spread = Effect.map(PgJournal.lanes, (lanes) => {
  const owners = new Map<string, number>()
  for (const { owner } of lanes) if (owner !== undefined) owners.set(owner, (owners.get(owner) ?? 0) + 1)
  return [...owners.values()].join() === `${lanes.length / 2},${lanes.length / 2}`
})

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

/** Prints a line stamped with the time since the demo started: at `time`, or now. */
interface Say {
  readonly at: (time: number, line: string) => Effect.Effect<void>
  readonly now: (line: string) => Effect.Effect<void>
}

/** The instances start paused; a schedules every write; once the journal shows the lanes spread, both resume. */
const spreadLanes = (a: Instance, b: Instance, say: Say) =>
  Effect.gen(function*() {
    yield* Effect.all([awaitLine(a, "ready"), awaitLine(b, "ready")], { concurrency: "unbounded" })
    yield* say.now("instances a and b ready, paused")
    a.child.stdin!.write("schedule\n")
    yield* say.now(`[a] ${yield* awaitLine(a, "scheduled")}`)
    const shards = new Set((yield* PgJournal.lanes).map((lane) => lane.shard))
    if (shards.size < CUSTOMERS.length) return yield* new DemoError({ reason: "two customers share a shard" })
    yield* until("fair spread of the lanes", spread)
    for (const instance of [a, b]) instance.child.stdin!.write("resume\n")
    yield* say.now(`journal: ${CUSTOMERS.length / 2} lanes owned by each instance; both resume`)
  })

/**
 * Once the outage has begun and both instances are retrying, kills a; ends
 * the outage once b is retrying every lane a ran. Answers with the time from
 * the kill to then.
 */
const killMidOutage = (backend: Backend, a: Instance, say: Say) =>
  Effect.gen(function*() {
    yield* until("outage", Effect.sync(() => backend.outage.down))
    yield* say.at(backend.outage.since, `backend: down after ${OUTAGE_AFTER} writes, answering 503 Service Unavailable`)
    yield* until("retries from both instances", Effect.sync(() => retrying(backend, "a") && retrying(backend, "b")))
    const lanes = lanesOf(backend, "a")
    yield* say.now(`both retrying; a runs ${lanes.join(", ")}`)

    const killedAt = yield* Clock.currentTimeMillis
    a.child.kill("SIGKILL")
    yield* awaitExit(a.child)
    yield* say.at(killedAt, `kill -9 instance a`)
    const retriedByB = (customer: string) => refused(backend, "b", killedAt).some((r) => r.customer === customer)
    yield* until("retries of a's lanes from b", Effect.sync(() => lanes.every(retriedByB)))
    const takeover = (yield* Clock.currentTimeMillis) - killedAt
    yield* say.now(`b retries a's lanes too, ${Math.round(takeover)} ms after the kill`)
    yield* backend.up
    yield* say.now("backend: up again")
    return takeover
  })

const demoUrl = Redacted.make(process.env["SEQUENT_PG_URL"] ?? "postgres://root@127.0.0.1:5432/test")

const demo = (tablePrefix: string) =>
  Effect.gen(function*() {
    const startedAt = yield* Clock.currentTimeMillis
    const at = (time: number, line: string) => Console.log(`${seconds(time - startedAt).padStart(7)}  ${line}`)
    const say: Say = { at, now: (line) => Effect.flatMap(Clock.currentTimeMillis, (time) => at(time, line)) }

    const backend = yield* makeBackend
    const total = CUSTOMERS.length * WRITES
    yield* Console.log(`effect-sequent shared demo: ${CUSTOMERS.length} customers x ${WRITES} writes to ${backend.url}`)
    yield* Console.log(`two instances, a and b, on the journal ${tablePrefix}* (${SHARDS} shards); a schedules`)
    yield* Console.log(`the backend goes down after write ${OUTAGE_AFTER}; a is killed with SIGKILL while it retries\n`)

    const args = (name: string) => [Redacted.value(demoUrl), tablePrefix, name, backend.url]
    const a = yield* start(args("a"), "a")
    const b = yield* start(args("b"), "b")
    yield* spreadLanes(a, b, say)
    const takeover = yield* killMidOutage(backend, a, say)
    yield* until("record of every write", Effect.sync(() => recordedCount(backend) === total))
    yield* say.now(`backend: all ${total} writes recorded`)

    const problems = check(backend.arrivals)
    yield* Console.log(summary(backend, takeover, (yield* Clock.currentTimeMillis) - startedAt, problems))
    // a clean shutdown: b has nothing left to run, and hands its shards back
    b.child.kill("SIGTERM")
    yield* awaitExit(b.child).pipe(Effect.timeout("10 seconds"), Effect.ignore)
    if (problems.length > 0) return yield* new DemoError({ reason: "the backend's record is wrong (see the summary)" })
  })

/** Who recorded a customer's writes, in turn: `a then b` for a lane that moved once. */
const turns = (arrivals: ReadonlyArray<Arrival>, customer: string) =>
  arrivals
    .filter((a) => a.customer === customer && a.outcome === "recorded")
    .map((a) => a.instance)
    .filter((instance, i, all) => i === 0 || instance !== all[i - 1])
    .join(" then ")

const summary = (backend: Backend, takeover: number, elapsed: number, problems: ReadonlyArray<string>) => {
  const delivered = CUSTOMERS.map((customer) => `  ${customer}  recorded from ${turns(backend.arrivals, customer)}`)
  const repeats = backend.arrivals.filter((a) => a.outcome === "repeat").length
  const { since, until } = backend.outage
  return [
    "",
    "summary",
    ...delivered,
    `  record      ${problems.length === 0 ? `writes 1..${WRITES} of each customer, each once, in order` : "wrong:"}`,
    `  outage      ${seconds(until - since)} of 503: ${refused(backend, "a").length} attempts refused from a,` +
    ` ${refused(backend, "b").length} from b`,
    `  takeover    b retried every lane of a ${Math.round(takeover)} ms after the kill`,
    `  repeats     ${repeats} (a write sent again after it was recorded: only a moved lane's write in flight may be)`,
    `  elapsed     ${seconds(elapsed)}`,
    ...problems.map((problem) => `  ${problem}`),
    "",
    problems.length === 0 ? "PASS" : "FAIL"
  ].join("\n")
}

const dropTables = (sql: PgClient.PgClient, tablePrefix: string) =>
  sql<{ readonly name: string }>`SELECT tablename AS name FROM pg_tables WHERE tablename LIKE ${`${tablePrefix}%`}`
    .pipe(
      Effect.flatMap((tables) => Effect.forEach(tables, ({ name }) => sql`DROP TABLE IF EXISTS ${sql(name)} CASCADE`)),
      Effect.ignore
    )

const main = Effect.gen(function*() {
  const tablePrefix = `sequent_demo_${process.pid}_`
  const sql = yield* PgClient.PgClient
  yield* Effect.addFinalizer(() => dropTables(sql, tablePrefix))
  // this process reads the journal's lanes; it runs no executor, so it owns no shard
  yield* demo(tablePrefix).pipe(
    Effect.provide(PgJournal.layer({ url: demoUrl, tablePrefix, sharing: { shards: SHARDS } }))
  )
})

const [role, url, tablePrefix, name, backend] = process.argv.slice(2)
if (role === "instance") {
  NodeRuntime.runMain(instance(Redacted.make(url!), tablePrefix!, name!, backend!))
} else {
  NodeRuntime.runMain(Effect.scoped(main).pipe(Effect.provide(PgClient.layer({ url: demoUrl }))))
}
