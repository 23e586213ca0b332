import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import { Sequent, SequentClosedError, SequentFalseError, SequentStoppedError } from "../src/index.js"

describe("submit", () => {
  it.scoped("succeeds with the task's value", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      assert.strictEqual(yield* sequent.submit(Effect.succeed(42)), 42)
    }))

  it.scoped("fails with the task's last error when a finite schedule gives up", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(2) })
      let attempt = 0
      const exit = yield* Effect.exit(sequent.submit(Effect.suspend(() => Effect.fail(`error ${++attempt}`))))
      assert.deepStrictEqual(exit, Exit.fail("error 3"))
    }))

  it.scoped("dies with the task's last defect when it gave up after dying", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
      const boom = new Error("boom")
      const exit = yield* Effect.exit(sequent.submit(Effect.die(boom)))
      assert.deepStrictEqual(exit, Exit.die(boom))
    }))

  it.scoped("dies with an InterruptedException, and is not interrupted itself, when the task gave up after interrupting itself", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
      let callerInterrupted = false
      const exit = yield* Effect.exit(
        sequent.submit(Effect.interrupt).pipe(
          Effect.onInterrupt(() => Effect.sync(() => void (callerInterrupted = true)))
        )
      )
      assert.isFalse(callerInterrupted, "the caller's fiber was not interrupted")
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause) && !Cause.isInterrupted(exit.cause))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(defect, Cause.InterruptedException)
      assert.include((defect as Error).message, "the task's last attempt was interrupted")
      assert.strictEqual(yield* sequent.submit(Effect.succeed("next")), "next", "the executor goes on")
    }))

  it.scoped("fails with SequentFalseError when it gave up after returning false", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
      const exit = yield* Effect.exit(sequent.submit(Effect.succeed<boolean>(false)))
      assert.deepStrictEqual(exit, Exit.fail(new SequentFalseError()))
    }))

  it.scoped("fails with SequentStoppedError when stop dropped the task or interrupted it", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const started = yield* Deferred.make<void>()
      const running = yield* Effect.fork(
        sequent.submit(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      )
      const queued = yield* Effect.fork(sequent.submit(Effect.succeed(1)))
      yield* Deferred.await(started)
      yield* sequent.stop
      const runningExit = yield* Fiber.await(running)
      const queuedExit = yield* Fiber.await(queued)
      assert.deepStrictEqual(runningExit, Exit.fail(new SequentStoppedError({ attempts: 1 })))
      assert.deepStrictEqual(queuedExit, Exit.fail(new SequentStoppedError({ attempts: 0 })))
    }))

  it.scoped("fails with SequentClosedError after flush", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      yield* sequent.flush
      const exit = yield* Effect.exit(sequent.submit(Effect.succeed(1)))
      assert.deepStrictEqual(exit, Exit.fail(new SequentClosedError({ state: "flushing" })))
    }))

  it.scoped("a caller that stops waiting does not cancel the task", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      const done = yield* Deferred.make<number>()
      const waiter = yield* Effect.fork(
        sequent.submit(Effect.zipRight(Deferred.await(gate), Deferred.succeed(done, 7)))
      )
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiter)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Deferred.await(done), 7)
    }))

  it.scoped("an accessor keeps the task's types: Sequent.submit(task) is Effect<A, E | ..., R | Sequent>", () =>
    Effect.gen(function*() {
      const value: number = yield* Sequent.submit(Effect.succeed(1))
      const failed = yield* Effect.flip(
        Sequent.submit(Effect.fail({ _tag: "Mine" as const }), { retry: Schedule.recurs(0) })
      )
      assert.strictEqual(value, 1)
      assert.strictEqual(failed._tag, "Mine")
    }).pipe(Effect.provide(Sequent.layer())))
})

describe("types", () => {
  it.scoped("isRetryable's parameter is the task's error type, without an annotation", () =>
    Effect.gen(function*() {
      class Fatal extends Data.TaggedError("Fatal")<{}> {}
      class Flaky extends Data.TaggedError("Flaky")<{}> {}
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(3) })
      let attempts = 0
      const task = Effect.suspend((): Effect.Effect<never, Fatal | Flaky> =>
        ++attempts === 1 ? Effect.fail(new Flaky()) : Effect.fail(new Fatal())
      )
      const error = yield* Effect.flip(sequent.submit(task, { isRetryable: (error) => error._tag === "Flaky" }))
      assert.strictEqual(error._tag, "Fatal")
      assert.strictEqual(attempts, 2, "the Flaky failure was retried, the Fatal one was not")
    }))
})
