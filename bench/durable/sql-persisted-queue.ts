/**
 * @effect/sql's `SqlPersistedQueue` (the `PersistedQueueStore` behind
 * @effect/experimental's `PersistedQueue`) on SQLite, one consumer.
 *
 * The consumer fiber is started first and takes N elements, one `take` at a
 * time (each take claims one row with an `UPDATE ... RETURNING` and marks it
 * completed in another statement when the handler has succeeded); one producer
 * offers N elements, each `offer` awaited (one `INSERT`, its own transaction).
 * Elements are taken in `(updated_at, sequence)` order, so with one producer
 * and one consumer every task must run exactly once and in offer order; at the
 * end every row must be marked completed.
 *
 * `pollInterval` (how long the consumer sleeps when it finds the table empty)
 * is 10 ms here instead of the default 1 s, which only helps this queue.
 *
 * Run: node --import tsx bench/durable/sql-persisted-queue.ts [--n=2000]
 */
import * as PersistedQueue from "@effect/experimental/PersistedQueue"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlPersistedQueue from "@effect/sql/SqlPersistedQueue"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import {
  CheckError,
  freshDatabase,
  intArg,
  LaneCheck,
  main,
  parseArgs,
  result,
  sqliteLayer,
  stopwatch
} from "./shared.js"

class Work extends Schema.TaggedClass<Work>()("Work", { n: Schema.Number }) {}

const args = parseArgs()
const n = intArg(args, "n", 2_000)

const check = new LaneCheck(1)

const layer = PersistedQueue.layer.pipe(
  Layer.provide(SqlPersistedQueue.layerStore({ pollInterval: "10 millis" })),
  Layer.provideMerge(sqliteLayer(freshDatabase("sql-persisted-queue")))
)

const tasks = Array.from({ length: n }, (_, i) => new Work({ n: i }))

const program = Effect.gen(function*() {
  const queue = yield* PersistedQueue.make({ name: "bench", schema: Work })
  const sql = yield* SqlClient.SqlClient

  const clock = stopwatch()
  const consumer = yield* Effect.fork(
    Effect.repeatN(queue.take((work) => Effect.sync(() => check.see(work.n))), n - 1)
  )
  for (const task of tasks) yield* queue.offer(task)
  const enqueueMs = clock.elapsed()
  yield* Fiber.join(consumer)
  const totalMs = clock.elapsed()
  const cpuMs = clock.cpuMs()

  check.verify(n)
  const [row] = yield* sql<{ readonly done: number }>`SELECT count(*) AS done FROM effect_queue WHERE completed = 1`
  if (row?.done !== n) yield* Effect.fail(new CheckError(`${row?.done} of ${n} rows are marked completed`))
  return result({
    impl: "sql-persisted-queue",
    mode: "1 producer, awaited; 1 consumer",
    n,
    totalMs,
    enqueueMs,
    cpuMs,
    check: `${check.describe()}; every row completed`
  })
}).pipe(Effect.provide(layer))

main(program)
