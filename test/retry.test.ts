import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Sequent, SequentFalseError } from "../src/index.js"
import { failing } from "./support.js"

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

describe("retry", () => {
  it.scoped("the default policy retries at 0, 10, 30, 70, 150 ms when jitter is neutral", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const task = failing(4)
      const fiber = yield* Effect.fork(sequent.submit(task.task))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), 5)
      assert.deepStrictEqual(task.times, [0, 10, 30, 70, 150])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("with real jitter every gap stays within 0.8x to 1.2x of its exponential step", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const task = failing(12)
      const fiber = yield* Effect.fork(sequent.submit(task.task))
      yield* TestClock.adjust("1 hour")
      yield* Fiber.join(fiber)
      const observed = gaps(task.times)
      assert.strictEqual(observed.length, 12)
      observed.forEach((gap, n) => {
        const step = 10 * 2 ** n
        assert.isAtLeast(gap, 0.8 * step, `gap ${n}`)
        assert.isAtMost(gap, 1.2 * step, `gap ${n}`)
      })
      assert.isFalse(observed.every((gap, n) => gap === 10 * 2 ** n), "jitter moved at least one gap")
    }).pipe(Effect.withRandom(Random.make("sequent-jitter"))))

  it.scoped("no delay exceeds 30 seconds, however many attempts fail", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const task = failing(40)
      const fiber = yield* Effect.fork(sequent.submit(task.task))
      yield* TestClock.adjust("2 hours")
      yield* Fiber.join(fiber)
      const observed = gaps(task.times)
      assert.strictEqual(observed.length, 40)
      // the clock counts fractional milliseconds, so sums of jittered delays carry float noise
      assert.isAtMost(Math.max(...observed), 30_000 + 1e-6)
      assert.closeTo(observed.at(-1)!, 30_000, 1e-6, "the cap is reached")
    }).pipe(Effect.withRandomFixed([0.99])))

  it.scoped("defects, rejected promises and `false` are retried like failures", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      let attempts = 0
      const task = Effect.suspend(() => {
        attempts++
        switch (attempts) {
          case 1:
            return Effect.die(new Error("thrown"))
          case 2:
            return Effect.promise(() => Promise.reject(new Error("rejected")))
          case 3:
            return Effect.succeed(false)
          default:
            return Effect.succeed(true)
        }
      })
      const fiber = yield* Effect.fork(sequent.submit(task))
      yield* TestClock.adjust("3 seconds")
      assert.isTrue(yield* Fiber.join(fiber))
      assert.strictEqual(attempts, 4)
    }))

  it.scoped("a task that interrupts itself counts as a failed attempt and is retried", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      let attempts = 0
      const task = Effect.suspend(() => ++attempts < 3 ? Effect.interrupt : Effect.succeed(attempts))
      const fiber = yield* Effect.fork(sequent.submit(task))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), 3)
    }))

  it.scoped("the retry schedule starts afresh for every task", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const first = failing(3)
      const second = failing(2)
      const fibers = [
        yield* Effect.fork(sequent.submit(first.task)),
        yield* Effect.fork(sequent.submit(second.task))
      ]
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(first.times, [0, 10, 30, 70])
      // the second task starts when the first succeeds, at 70, then waits 10 and 20 again
      assert.deepStrictEqual(second.times, [70, 80, 100])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a custom retry schedule replaces the default, and a finite one gives up", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({
        retry: Schedule.spaced("5 seconds").pipe(Schedule.intersect(Schedule.recurs(2)))
      })
      const task = failing(10)
      const fiber = yield* Effect.fork(sequent.submit(task.task))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      assert.deepStrictEqual(task.times, [0, 5000, 10000])
      assert.deepStrictEqual(exit, Exit.fail("failure 3"))
    }))

  it.scoped("a task whose last attempt returned false gives up with SequentFalseError", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
      const exit = yield* Effect.exit(sequent.submit(Effect.succeed(false as boolean)))
      assert.deepStrictEqual(exit, Exit.fail(new SequentFalseError()))
    }))
})
