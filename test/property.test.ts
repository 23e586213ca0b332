/**
 * Random tasks (random failure counts) under random interleavings of schedule,
 * clock ticks, yields, flush and stop.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Sequent } from "../src/index.js"

type Op =
  | { readonly _tag: "schedule"; readonly failures: number }
  | { readonly _tag: "tick"; readonly millis: number }
  | { readonly _tag: "yield" }
  | { readonly _tag: "flush" }
  | { readonly _tag: "stop" }

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  { weight: 6, arbitrary: FastCheck.record({ _tag: FastCheck.constant("schedule" as const), failures: FastCheck.nat(3) }) },
  { weight: 3, arbitrary: FastCheck.record({ _tag: FastCheck.constant("tick" as const), millis: FastCheck.nat(40) }) },
  { weight: 3, arbitrary: FastCheck.constant({ _tag: "yield" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "flush" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "stop" as const }) }
)

describe("property", () => {
  it.scoped.prop(
    "accepted tasks succeed exactly once, in schedule order; nothing runs after stop; size ends at 0",
    { ops: FastCheck.array(op, { maxLength: 60 }) },
    ({ ops }) =>
      Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.spaced("10 millis") })
        const accepted: Array<number> = []
        const succeeded: Array<number> = []
        const events: Array<number> = []
        let stopReturned = false
        let ranAfterStop = false
        const flushes: Array<Fiber.RuntimeFiber<void>> = []
        let next = 0

        const task = (id: number, failures: number) => {
          let attempts = 0
          return Effect.sync(() => {
            if (stopReturned) ranAfterStop = true
            attempts++
            events.push(id)
            if (attempts <= failures) return false
            succeeded.push(id)
            return true
          })
        }

        for (const step of ops) {
          switch (step._tag) {
            case "schedule": {
              const id = next++
              const exit = yield* Effect.exit(sequent.schedule(task(id, step.failures)))
              if (Exit.isSuccess(exit)) accepted.push(id)
              break
            }
            case "tick":
              yield* TestClock.adjust(step.millis)
              break
            case "yield":
              yield* Effect.yieldNow()
              break
            case "flush":
              flushes.push(yield* Effect.fork(sequent.flush))
              break
            case "stop":
              yield* sequent.stop
              stopReturned = true
              break
          }
        }
        if (!stopReturned) {
          const flushing = yield* Effect.fork(sequent.flush)
          yield* TestClock.adjust("10 seconds")
          yield* Fiber.join(flushing)
        }
        yield* Fiber.joinAll(flushes)

        // exactly once, in order: the successes are the accepted tasks, in order, cut where stop dropped the rest
        assert.deepStrictEqual(succeeded, accepted.slice(0, succeeded.length))
        if (!stopReturned) assert.deepStrictEqual(succeeded, accepted)
        // a task's attempts form one unbroken run, and the next task's run starts only after it succeeded
        const runs = events.reduce<Array<number>>((acc, id) => acc.at(-1) === id ? acc : [...acc, id], [])
        assert.deepStrictEqual(runs, accepted.slice(0, runs.length))
        runs.slice(0, -1).forEach((id) => assert.include(succeeded, id))
        assert.isFalse(ranAfterStop, "nothing runs after stop returns")
        assert.strictEqual(yield* sequent.size, 0)
      }),
    { fastCheck: { numRuns: 200 } }
  )
})

