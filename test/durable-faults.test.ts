/**
 * The durable executor under journal faults: every journal call it makes ends
 * in a retry, a typed error to its caller, or a documented give-up; never in
 * a dead worker, a waiter that never returns, or a task stored but not run.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import { Journal, makeMemory } from "../src/Journal.js"
import { SequentStoppedError } from "../src/SequentError.js"
import * as TaskKind from "../src/TaskKind.js"
import { settle } from "./support.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write)

const durable = (journal: Journal.Service, log: Array<number>) =>
  Layer.build(
    Durable.layer().pipe(
      Layer.provide(Tasks.handlers({ Write: (task) => Effect.sync(() => log.push(task.n)) })),
      Layer.provide(Layer.succeed(Journal, journal))
    )
  ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))

describe("durable, at the edges", () => {
  it.scoped("a submit whose append is in flight when stop runs fails with SequentStoppedError; the task runs after a restart", () =>
    Effect.gen(function*() {
      const inner = yield* makeMemory
      const appending = yield* Deferred.make<void>()
      const commit = yield* Deferred.make<void>()
      const held: Journal.Service = {
        ...inner,
        append: (entries) =>
          Deferred.succeed(appending, undefined).pipe(
            Effect.zipRight(Deferred.await(commit)),
            Effect.zipRight(inner.append(entries))
          )
      }
      const before = yield* durable(held, [])
      const submit = yield* Effect.fork(before.submit(new Write({ n: 1 })))
      yield* Deferred.await(appending)
      yield* before.stop
      yield* Deferred.succeed(commit, undefined)
      yield* settle()
      const exit = yield* Fiber.poll(submit)
      assert.isTrue(Option.isSome(exit), "submit returned")
      assert.deepStrictEqual(Option.getOrThrow(exit), Exit.fail(new SequentStoppedError({ attempts: 0 })))
      assert.strictEqual((yield* inner.pending).length, 1, "the task is in the journal")

      const log: Array<number> = []
      const after = yield* durable(inner, log)
      yield* after.flush
      assert.deepStrictEqual(log, [1])
    }))
})
