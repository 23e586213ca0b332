/**
 * The durable executor's worker never dies of a journal write: whatever the
 * write raises, a JournalError or a defect (a journal whose driver throws),
 * is retried until it goes through, and the lane goes on.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import { Journal } from "../src/Journal.js"
import * as TaskKind from "../src/TaskKind.js"
import * as FaultJournal from "./support/FaultJournal.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
class Fail extends Schema.TaggedClass<Fail>()("Fail", {}) {}
const Tasks = TaskKind.make(Write, Fail)

describe("durable executor, when a journal write raises", () => {
  for (const kind of ["error", "defect"] as const) {
    for (const operation of ["complete", "attemptFailed", "deadLetter"] as const) {
      it.scoped(`${operation} failing with ${kind === "error" ? "a JournalError" : "a defect"} is retried, and the lane goes on`, () =>
        Effect.gen(function*() {
          const log: Array<number> = []
          const context = yield* Layer.build(
            Durable.layer({ retry: Schedule.recurs(1) }).pipe(
              Layer.provide(Tasks.handlers({
                Write: (task) => Effect.sync(() => log.push(task.n)),
                Fail: () => Effect.fail("no")
              })),
              Layer.provideMerge(FaultJournal.layer(Journal.layerMemory))
            )
          )
          const sequent = context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service
          const control = context.unsafeMap.get(FaultJournal.FaultControl.key) as FaultJournal.Control
          const journal = context.unsafeMap.get(Journal.key) as Journal.Service

          control.failNext(operation, "before", 3, kind)
          yield* sequent.schedule(new Write({ n: 1 }), { key: "a" })
          yield* sequent.schedule(new Fail(), { key: "a", id: "fail" }) // one failed attempt, then a dead letter
          yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
          yield* control.awaitInjected(operation, 1)
          const flushed = yield* Effect.fork(sequent.flush)
          yield* TestClock.adjust("10 seconds") // the retries of the write, and the task's own retry
          yield* Fiber.join(flushed)

          assert.strictEqual(control.injected(operation), 3, "the faults struck")
          assert.deepStrictEqual(log, [1, 2], "the lane ran on after the faults")
          assert.deepStrictEqual((yield* journal.deadLetters).map((letter) => letter.id), ["fail"])
          assert.deepStrictEqual(yield* journal.pending, [])
        }))
    }
  }
})
