/**
 * Sequent's durable executor on SQLite: schedule N tasks that succeed at once,
 * then `flush`. Task i goes to lane `i % lanes` (`--lanes=1`, the default, is
 * the default lane, no key); every task must run exactly once, in order within
 * its lane (per producer, in `concurrent` mode), and at the end the journal must hold nothing pending (every
 * completion committed).
 *
 * Modes:
 * - `concurrent`: `--producers` fibers at once, producer p scheduling tasks
 *   p, p + producers, p + 2 * producers, ... one after the other, so that
 *   schedules that arrive together share a journal transaction (group
 *   commit). Order is checked per producer: tasks start in the order their
 *   `schedule` calls returned, and only one producer's calls are ordered (a
 *   producer that waits, say for the event loop to turn, is overtaken by
 *   others). `--lanes` must divide `--producers`, so each producer's tasks
 *   share a lane.
 * - `sequential`: one producer awaiting each `schedule` before the next, so
 *   every schedule is its own journal transaction.
 *
 * `--yield=on` turns the event-loop turns on (`yieldToEventLoop`, off by default in durable mode).
 *
 * Run: node --import tsx bench/durable/sequent.ts [--mode=concurrent|sequential] [--n=20000] [--producers=64] [--lanes=1] [--yield=on]
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Durable from "../../src/Durable.js"
import { DurableSequent, Journal, TaskKind } from "../../src/index.js"
import * as SqliteJournal from "../../src/SqliteJournal.js"
import { CheckError, freshDatabase, intArg, LaneCheck, main, parseArgs, result, stopwatch } from "./shared.js"

class Work extends Schema.TaggedClass<Work>()("Work", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Work)
const Typed = DurableSequent.typed(Tasks)

const args = parseArgs()
const mode = args["mode"] ?? "concurrent"
if (mode !== "concurrent" && mode !== "sequential") throw new Error(`--mode: concurrent or sequential, got ${mode}`)
const n = intArg(args, "n", 20_000)
const producers = intArg(args, "producers", 64)
const lanes = intArg(args, "lanes", 1)
const yielding = args["yield"] === "on"

if (mode === "concurrent" && producers % lanes !== 0) throw new Error("--lanes must divide --producers")
// task i belongs to producer i % producers, whose tasks share lane i % lanes
const check = new LaneCheck(mode === "concurrent" ? producers : lanes)

// One lane runs one task at a time; `concurrency` is how many lanes may run at once (default 1).
const layer = Durable.layer({ concurrency: lanes, yieldToEventLoop: yielding }).pipe(
  Layer.provide(Tasks.handlers({ Work: (task) => Effect.sync(() => check.see(task.n)) })),
  Layer.provideMerge(SqliteJournal.layer({ filename: freshDatabase("sequent") }))
)

const tasks = Array.from({ length: n }, (_, i) => new Work({ n: i }))
const keys = Array.from({ length: n }, (_, i) => lanes === 1 ? undefined : `lane-${i % lanes}`)
const schedule = (i: number) => Typed.schedule(tasks[i]!, { key: keys[i] })

const program = Effect.gen(function*() {
  const clock = stopwatch()
  if (mode === "concurrent") {
    yield* Effect.forEach(
      Array.from({ length: producers }, (_, p) => p),
      (p) =>
        Effect.gen(function*() {
          for (let i = p; i < n; i += producers) yield* schedule(i)
        }),
      { concurrency: "unbounded", discard: true }
    )
  } else {
    for (let i = 0; i < n; i++) yield* schedule(i)
  }
  const enqueueMs = clock.elapsed()
  yield* DurableSequent.flush
  const totalMs = clock.elapsed()
  const cpuMs = clock.cpuMs()

  check.verify(n)
  const pending = (yield* (yield* Journal).pending).length
  if (pending !== 0) yield* Effect.fail(new CheckError(`${pending} tasks still pending in the journal after flush`))
  return result({
    impl: "sequent",
    mode: `${mode === "concurrent" ? `${producers} producers` : "1 producer, awaited"}, ${lanes} lane${
      lanes === 1 ? "" : "s"
    }${yielding ? ", yieldToEventLoop on" : ""}`,
    n,
    totalMs,
    enqueueMs,
    cpuMs,
    check: `${mode === "concurrent" ? check.describe("producer") : check.describe()}; journal empty`
  })
}).pipe(Effect.provide(layer))

main(program)
