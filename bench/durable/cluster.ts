/**
 * @effect/cluster on SQLite: a `SingleRunner` (SQL message storage and SQL
 * runner storage over one `SqliteClient`), an entity with one persisted RPC,
 * one message per task.
 *
 * Task i goes to entity `worker-${i % entities}`; one producer per entity sends
 * that entity's tasks in order, each send awaited with `discard: true` (it
 * returns once the message is stored, without waiting for the reply). An
 * entity handles its messages one at a time, so every task must run exactly
 * once and in order per entity; the run ends when every message is marked
 * processed in storage (its reply committed).
 *
 * Run: node --import tsx bench/durable/cluster.ts [--n=2000] [--entities=1]
 */
import * as ClusterSchema from "@effect/cluster/ClusterSchema"
import * as Entity from "@effect/cluster/Entity"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as Rpc from "@effect/rpc/Rpc"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schema from "effect/Schema"
import { freshDatabase, intArg, LaneCheck, main, parseArgs, result, sqliteLayer, stopwatch } from "./shared.js"

const Worker = Entity.make("Worker", [
  Rpc.make("Work", { payload: { n: Schema.Number } }),
  // answered before the clock starts, so that the runner holds its shards and
  // every entity is awake: start-up is not part of the measurement
  Rpc.make("Ping")
]).annotateRpcs(ClusterSchema.Persisted, true)

const args = parseArgs()
const n = intArg(args, "n", 2_000)
const entities = intArg(args, "entities", 1)

const check = new LaneCheck(entities)
const allRan = Deferred.unsafeMake<void>(FiberId.none)

const WorkerLive = Worker.toLayer({
  Work: (envelope) =>
    Effect.suspend(() => {
      check.see(envelope.payload.n)
      return check.count === n ? Deferred.succeed(allRan, undefined) : Effect.void
    }),
  Ping: () => Effect.void
})

const layer = WorkerLive.pipe(
  Layer.provideMerge(SingleRunner.layer({ runnerStorage: "sql" })),
  Layer.provideMerge(sqliteLayer(freshDatabase("cluster")))
)

const program = Effect.gen(function*() {
  const client = yield* Worker.client
  const sql = yield* SqlClient.SqlClient
  const processed = sql<{ readonly done: number }>`SELECT count(*) AS done FROM cluster_messages WHERE processed = 1`
    .pipe(Effect.map((rows) => rows[0]?.done ?? 0))

  const workers = Array.from({ length: entities }, (_, e) => client(`worker-${e}`))
  yield* Effect.forEach(workers, (worker) => worker.Ping(), { concurrency: "unbounded", discard: true })

  const clock = stopwatch()
  yield* Effect.forEach(
    workers,
    (worker, e) => {
      return Effect.gen(function*() {
        for (let i = e; i < n; i += entities) yield* worker.Work({ n: i }, { discard: true })
      })
    },
    { concurrency: "unbounded", discard: true }
  )
  const enqueueMs = clock.elapsed()
  yield* Deferred.await(allRan)
  // every handler has run; wait for the last replies to be committed
  while ((yield* processed) < n) yield* Effect.sleep("1 millis")
  const totalMs = clock.elapsed()
  const cpuMs = clock.cpuMs()

  check.verify(n)
  return result({
    impl: "cluster",
    mode: `${entities} producer${entities === 1 ? "" : "s"}, awaited, discard; ${entities} entit${
      entities === 1 ? "y" : "ies"
    }`,
    n,
    totalMs,
    enqueueMs,
    cpuMs,
    check: `${check.describe("entity", "entities")}; every message processed in storage`
  })
}).pipe(
  Effect.provide(layer),
  Logger.withMinimumLogLevel(LogLevel.Warning)
)

main(program)
