/**
 * Sequent's durable executor on PostgreSQL: the shared journal (many
 * instances, `PgJournal.layer({ sharing })`) against a single owner, the same
 * load, every task a no-op that succeeds at once.
 *
 * Roles:
 * - `single`: this process owns the journal alone (no `sharing`) and runs
 *   `Durable.layer({ concurrency: 64 })`; `--producers` fibers schedule, then
 *   `flush` (as `sequent.ts` does on SQLite).
 * - `shared`: this process starts `--workers` worker processes (`--role=worker`,
 *   each `Durable.layer({ concurrency: 64 })` on the shared journal), waits
 *   until they hold the shards between them, then produces through its own
 *   shared journal, which owns no shard (as `test/integration/shared-pg.test.ts`
 *   does): `--producers` fibers, whose appends arriving together share a
 *   transaction (the same group commit as `schedule`). The clock stops when
 *   the pending table is empty, that is when the last completion is committed.
 * - `worker`: one instance; on `report` from its stdin prints what it ran.
 *
 * Task i belongs to producer i % producers, whose tasks all go to lane
 * (i % producers) % lanes, in order; every task must run exactly once, in order
 * per producer (and so per lane), and a producer's tasks on one worker only
 * (no lane moved during the run).
 *
 * The database is `SEQUENT_PG_URL` (default postgres://root@127.0.0.1:5432/test);
 * every run uses fresh tables `sequent_bench<random>_*`, dropped at the end.
 *
 * Run: node --import tsx bench/durable/pg.ts --role=shared|single [--n=20000] [--producers=64] [--lanes=64] [--workers=2]
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as Durable from "../../src/Durable.js"
import { DurableSequent, Journal, type JournalEntry, TaskKind } from "../../src/index.js"
import { makeBatcher } from "../../src/internal/batcher.js"
import * as PgJournal from "../../src/PgJournal.js"
import { CheckError, intArg, main, parseArgs, result, stopwatch } from "./shared.js"
import { pgUrl, type Report, Runs, serveReports, startWorker, verifyReports } from "./workers.js"

const url = Redacted.make(pgUrl)

class Work extends Schema.TaggedClass<Work>()("Work", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Work)
const Typed = DurableSequent.typed(Tasks)

const args = parseArgs()
const role = args["role"] ?? "shared"
const n = intArg(args, "n", 20_000)
const producers = intArg(args, "producers", 64)
const lanes = intArg(args, "lanes", 64)
const workers = intArg(args, "workers", 2)
const shards = intArg(args, "shards", 64)
if (producers % lanes !== 0) throw new Error("--lanes must divide --producers")

const laneOf = (i: number) => `lane-${(i % producers) % lanes}`

const dropTables = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const rows = yield* sql<{ table_name: string }>`SELECT table_name FROM information_schema.tables
      WHERE table_schema = current_schema() AND starts_with(table_name, ${prefix})`
    for (const row of rows) yield* sql`DROP TABLE IF EXISTS ${sql(row.table_name)} CASCADE`
  })

const freshPrefix = () => `sequent_bench${randomUUID().replaceAll("-", "").slice(0, 10)}_`

const instance = (prefix: string, ran: Runs, sharing: boolean) =>
  Durable.layer({ concurrency: 64, closeGracePeriod: Duration.seconds(10) }).pipe(
    Layer.provide(Tasks.handlers({ Work: (task) => Effect.sync(() => ran.see(task.n)) })),
    Layer.provideMerge(PgJournal.layer({ url, tablePrefix: prefix, sharing: sharing ? { shards } : undefined }))
  )

const describe = (what: string) => `${what}, ${producers} producers, ${lanes} lane${lanes === 1 ? "" : "s"}`

const check = `each ran once, in order per producer (${producers}); pending table empty`

// -----------------------------------------------------------------------------

const single = Effect.gen(function*() {
  const prefix = freshPrefix()
  const ran = new Runs(producers)
  const tasks = Array.from({ length: n }, (_, i) => new Work({ n: i }))
  const program = Effect.gen(function*() {
    const clock = stopwatch()
    yield* Effect.forEach(
      Array.from({ length: producers }, (_, p) => p),
      (p) =>
        Effect.gen(function*() {
          for (let i = p; i < n; i += producers) yield* Typed.schedule(tasks[i]!, { key: laneOf(i) })
        }),
      { concurrency: "unbounded", discard: true }
    )
    const enqueueMs = clock.elapsed()
    yield* DurableSequent.flush
    const totalMs = clock.elapsed()
    const cpuMs = clock.cpuMs()
    const pending = (yield* (yield* Journal).pending).length
    if (pending !== 0) return yield* Effect.fail(new CheckError(`${pending} tasks still pending after flush`))
    yield* verifyReports([ran.report()], producers, n, "producer")
    return result({ impl: "sequent-pg", mode: describe("single owner"), n, totalMs, enqueueMs, cpuMs, check })
  })
  return yield* Effect.ensuring(
    Effect.scoped(Effect.provide(program, instance(prefix, ran, false))),
    Effect.ignore(dropTables(prefix))
  )
}).pipe(Effect.provide(PgClient.layer({ url })))

// -----------------------------------------------------------------------------

const workerRuns = new Runs(producers)
const worker = Effect.zipRight(serveReports(workerRuns), Effect.sync(() => process.exit(0))).pipe(
  Effect.provide(instance(args["prefix"]!, workerRuns, true))
)

const argsFor = () => [`--n=${n}`, `--producers=${producers}`, `--lanes=${lanes}`, `--shards=${shards}`]

const shared = Effect.gen(function*() {
  const prefix = freshPrefix()
  const sql = yield* PgClient.PgClient
  const program = Effect.gen(function*() {
    const journal = yield* Journal
    const procs = yield* Effect.forEach(
      Array.from({ length: workers }),
      () => startWorker(["--role=worker", `--prefix=${prefix}`, ...argsFor()])
    )
    for (const w of procs) {
      const line = yield* w.nextLine
      if (line !== "ready") return yield* Effect.fail(new CheckError(`a worker said ${line} before ready`))
    }
    const owners = sql<{ readonly pid: number; readonly c: string }>`SELECT pid, count(*) AS c FROM pg_locks
      WHERE locktype = 'advisory' AND objsubid = 2 AND granted
      AND classid = (hashtext(current_schema() || '.' || ${prefix} || ':shards') & 2147483647)::int::oid
      GROUP BY pid`
    // every worker holds its fair share before the clock starts
    const fair = Math.ceil(shards / workers)
    while (true) {
      const rows = yield* owners
      const total = rows.reduce((sum, r) => sum + Number(r.c), 0)
      if (rows.length === workers && total === shards && rows.every((r) => Number(r.c) <= fair)) break
      yield* Effect.sleep("20 millis")
    }
    const appends = { count: 0, ms: 0 }
    const append = yield* makeBatcher((entries: ReadonlyArray<JournalEntry>) => {
      const t0 = performance.now()
      return Effect.ensuring(
        journal.append(entries),
        Effect.sync(() => {
          appends.count++
          appends.ms += performance.now() - t0
        })
      )
    })
    const entries = Array.from({ length: n }, (_, i): JournalEntry => ({
      id: `t${i}`,
      lane: laneOf(i),
      tag: "Work",
      payload: JSON.stringify({ _tag: "Work", n: i }),
      scheduledAt: 0
    }))
    const pending = sql.unsafe<{ readonly x: number }>(`SELECT 1 AS x FROM ${prefix}pending LIMIT 1`)
    for (const w of procs) w.send("start")
    const clock = stopwatch()
    yield* Effect.forEach(
      Array.from({ length: producers }, (_, p) => p),
      (p) =>
        Effect.gen(function*() {
          for (let i = p; i < n; i += producers) yield* append(entries[i]!)
        }),
      { concurrency: "unbounded", discard: true }
    )
    const enqueueMs = clock.elapsed()
    while ((yield* pending).length > 0) yield* Effect.sleep("2 millis")
    const totalMs = clock.elapsed()
    const cpuMs = clock.cpuMs()
    const reports: Array<Report> = []
    for (const w of procs) reports.push(yield* w.report)
    yield* verifyReports(reports, producers, n, "producer")
    process.stderr.write(
      `appends: ${appends.count}, ${(appends.ms / appends.count).toFixed(2)} ms each; CPU ms: producer ${
        Math.round(cpuMs)
      }, workers ${reports.map((r) => Math.round(r.cpuMs)).join(", ")}\n`
    )
    return result({
      impl: "sequent-pg",
      mode: describe(`shared, ${workers} workers + 1 producer process`),
      n,
      totalMs,
      enqueueMs,
      cpuMs: cpuMs + reports.reduce((sum, r) => sum + r.cpuMs, 0),
      check: `${check}; no lane moved`
    })
  })
  return yield* Effect.ensuring(
    Effect.scoped(Effect.provide(program, PgJournal.layer({ url, tablePrefix: prefix, sharing: { shards } }))),
    Effect.ignore(dropTables(prefix))
  )
}).pipe(Effect.provide(PgClient.layer({ url })))

/** Whether the database answers, within a few seconds: `run.ts` skips the PostgreSQL cases when it does not. */
const probe = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  yield* sql`SELECT 1`
}).pipe(Effect.provide(PgClient.layer({ url })), Effect.timeout("5 seconds"))

if (role === "worker") Effect.runFork(worker)
else if (role === "probe") Effect.runPromiseExit(probe).then((exit) => process.exit(exit._tag === "Success" ? 0 : 1))
else if (role === "single") main(single)
else if (role === "shared") main(shared)
else throw new Error(`--role: shared, single, worker or probe, got ${role}`)
