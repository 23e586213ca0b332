import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { Sequent, type SequentOptions } from "../src/index.js"

const BACKLOG = 100_000

/**
 * Two lanes wait on timers of the live clock (a task's own `Effect.sleep`, a
 * retry's backoff) while the default lane drains a backlog of trivial tasks;
 * answers how many of the backlog's tasks had run when each timer's lane went on.
 */
const timersDuringDrain = (options: SequentOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const sequent = yield* Sequent.make({ concurrency: 2, ...options })
    let ran = 0
    let slept = -1
    let retried = -1
    let attempts = 0
    yield* sequent.schedule(Effect.zipRight(Effect.sleep("1 millis"), Effect.sync(() => (slept = ran))), { key: "a" })
    yield* sequent.schedule(
      Effect.suspend(() => ++attempts === 1 ? Effect.fail("once") : Effect.sync(() => (retried = ran))),
      { key: "b", retry: Schedule.spaced("1 millis") }
    )
    for (let i = 0; i < BACKLOG; i++) yield* sequent.schedule(Effect.sync(() => ran++))
    yield* sequent.flush
    return { ran, slept, retried }
  }))

describe("the event loop while a backlog drains", () => {
  // the live clock and the real event loop are the point here
  it.live("timers fire meanwhile: a task's sleep and a lane's backoff end before the backlog is gone", () =>
    Effect.gen(function*() {
      const { ran, retried, slept } = yield* timersDuringDrain({})
      assert.strictEqual(ran, BACKLOG)
      assert.isAtLeast(slept, 0, "the sleeping task went on")
      assert.isBelow(slept, BACKLOG, "its timer fired while the backlog drained")
      assert.isAtLeast(retried, 0, "the failed task was retried")
      assert.isBelow(retried, BACKLOG, "its backoff ended while the backlog drained")
    }))

  it.live("with yieldToEventLoop off, the fibers let only each other run: the timers fire once the backlog is gone", () =>
    Effect.gen(function*() {
      const { ran, retried, slept } = yield* timersDuringDrain({ yieldToEventLoop: false })
      assert.deepStrictEqual({ ran, slept, retried }, { ran: BACKLOG, slept: BACKLOG, retried: BACKLOG })
    }))

  /** The longest backlog a producer saw while it scheduled `n` tasks that each await a resolved promise. */
  const peakOfPromiseTasks = (options: SequentOptions, n: number) =>
    Effect.scoped(Effect.gen(function*() {
      const sequent = yield* Sequent.make(options)
      const resolved = Promise.resolve()
      let ran = 0
      let peak = 0
      for (let i = 0; i < n; i++) {
        yield* sequent.schedule(Effect.zipRight(Effect.promise(() => resolved), Effect.sync(() => ran++)))
        if (i % 256 === 0) peak = Math.max(peak, yield* sequent.size)
      }
      yield* sequent.flush
      return { ran, peak }
    }))

  it.effect("past 2,048 waiting tasks, a producer in a tight loop goes at the workers' pace: the backlog stays short", () =>
    Effect.gen(function*() {
      const paced = yield* peakOfPromiseTasks({}, 20_000)
      assert.strictEqual(paced.ran, 20_000)
      // until a worker has finished a first task, the producer goes on for at most its fiber's turn
      assert.isAtMost(paced.peak, 4_096, "the backlog stayed near 2,048 tasks")
      const unpaced = yield* peakOfPromiseTasks({ yieldToEventLoop: false }, 20_000)
      assert.strictEqual(unpaced.ran, 20_000)
      assert.isAtLeast(unpaced.peak, 10_000, "without the pace, the producer outran the worker")
    }))
})
