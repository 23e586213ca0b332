/**
 * @effect/cluster on PostgreSQL: two runner processes (`NodeClusterSocket`,
 * SQL message and runner storage over one `PgClient` each) and this process
 * as a client-only member, an entity with one persisted RPC, one message per
 * task.
 *
 * Task i goes to entity `worker-${i % entities}`; one producer per entity sends
 * that entity's tasks in order, each send awaited with `discard: true` (it
 * returns once the message is stored). Before the clock starts, every entity
 * answers a `Ping`, so that the runners hold their shards and the entities are
 * awake. The run ends when every message is marked processed in storage (its
 * reply committed). Each runner counts what it ran, per entity; every task
 * must run exactly once, in order per entity, and each entity on one runner.
 *
 * Fresh tables `cluster_bench<random>_*` each run, dropped at the end.
 *
 * Run: node --import tsx bench/durable/cluster-pg.ts [--n=2000] [--entities=64] [--runners=2]
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as Rpc from "@effect/rpc/Rpc"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import { CheckError, intArg, main, parseArgs, result, stopwatch } from "./shared.js"
import { pgUrl, type Report, Runs, serveReports, startWorker, verifyReports } from "./workers.js"

const Worker = Entity.make("Worker", [
  Rpc.make("Work", { payload: { n: Schema.Number } }),
  Rpc.make("Ping")
]).annotateRpcs(ClusterSchema.Persisted, true)

const args = parseArgs()
const role = args["role"] ?? "client"
const n = intArg(args, "n", 2_000)
const entities = intArg(args, "entities", 64)
const runners = intArg(args, "runners", 2)
const prefix = args["prefix"] ?? `cluster_bench${randomUUID().replaceAll("-", "").slice(0, 10)}`

const Pg = PgClient.layer({ url: Redacted.make(pgUrl) })

/** The storage of this run's tables, over the PostgreSQL client. */
const storage = Layer.mergeAll(SqlMessageStorage.layerWith({ prefix }), SqlRunnerStorage.layerWith({ prefix }))

const member = (clientOnly: boolean, port: number) => {
  const shardingConfig = { runnerAddress: Option.some(RunnerAddress.make("127.0.0.1", port)) }
  return NodeClusterSocket.layer({ clientOnly, storage: "byo", shardingConfig }).pipe(
    Layer.provide(storage),
    Layer.provide(ShardingConfig.layer(shardingConfig))
  )
}

// -----------------------------------------------------------------------------

const runner = Effect.gen(function*() {
  const runs = new Runs(entities)
  const WorkerLive = Worker.toLayer({
    Work: (envelope) => Effect.sync(() => runs.see(envelope.payload.n)),
    Ping: () => Effect.void
  })
  const live = WorkerLive.pipe(Layer.provideMerge(member(false, intArg(args, "port", 0))), Layer.provide(Pg))
  yield* Effect.provide(serveReports(runs), live)
  process.exit(0)
}).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))

const dropTables = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<{ table_name: string }>`SELECT table_name FROM information_schema.tables
    WHERE table_schema = current_schema() AND starts_with(table_name, ${`${prefix}_`})`
  for (const row of rows) yield* sql`DROP TABLE IF EXISTS ${sql(row.table_name)} CASCADE`
})

const client = Effect.gen(function*() {
  const base = 20_000 + Math.floor(Math.random() * 20_000)
  const procs = yield* Effect.forEach(
    Array.from({ length: runners }, (_, r) => r),
    (r) => startWorker([`--role=runner`, `--prefix=${prefix}`, `--port=${base + r}`, `--entities=${entities}`])
  )
  for (const w of procs) {
    const line = yield* w.nextLine
    if (line !== "ready") return yield* Effect.fail(new CheckError(`a runner said ${line} before ready`))
  }
  const program = Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const make = yield* Worker.client
    const processed = sql.unsafe<{ readonly done: string }>(
      `SELECT count(*) AS done FROM ${prefix}_messages WHERE processed AND kind = 0`
    ).pipe(Effect.map((rows) => Number(rows[0]?.done ?? 0)))
    const workers = Array.from({ length: entities }, (_, e) => make(`worker-${e}`))
    yield* Effect.forEach(workers, (worker) => worker.Ping(), { concurrency: "unbounded", discard: true })
    const pinged = yield* processed

    for (const w of procs) w.send("start")
    const clock = stopwatch()
    yield* Effect.forEach(
      workers,
      (worker, e) =>
        Effect.gen(function*() {
          for (let i = e; i < n; i += entities) yield* worker.Work({ n: i }, { discard: true })
        }),
      { concurrency: "unbounded", discard: true }
    )
    const enqueueMs = clock.elapsed()
    while ((yield* processed) < n + pinged) yield* Effect.sleep("2 millis")
    const totalMs = clock.elapsed()
    const cpuMs = clock.cpuMs()

    const reports: Array<Report> = []
    for (const w of procs) reports.push(yield* w.report)
    yield* verifyReports(reports, entities, n, "entity")
    return result({
      impl: "cluster-pg",
      mode:
        `${runners} runner processes + 1 client process, ${entities} producers, awaited, discard; ${entities} entities`,
      n,
      totalMs,
      enqueueMs,
      cpuMs: cpuMs + reports.reduce((sum, r) => sum + r.cpuMs, 0),
      check:
        `each ran once, in order per entity (${entities} entities), each entity on one runner; every message processed in storage`
    })
  })
  return yield* program.pipe(Effect.provide(member(true, base + runners)))
}).pipe(
  Effect.scoped,
  Effect.ensuring(Effect.ignore(dropTables)),
  Effect.provide(Pg),
  Logger.withMinimumLogLevel(LogLevel.Warning)
)

if (role === "runner") Effect.runFork(runner)
else main(client)
