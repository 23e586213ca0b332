/**
 * Random interleavings at the edges the other property tests leave out: a
 * small capacity with callers waiting for room, callers interrupted while they
 * wait, `submit` waiters, `stop` and `flush` called from outside and from
 * inside tasks, attempts that die or time out at the instant they would have
 * succeeded, give-ups whose dead-letter handler dies or throws, beside random
 * pauses, ticks and concurrency.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import {
  Sequent,
  SequentClosedError,
  SequentFalseError,
  SequentStoppedError,
  SequentTimeoutError
} from "../src/index.js"

type Key = "a" | "b" | undefined

/** What a task does besides failing `failures` times: nothing, or call `stop` or `flush`, itself or from a fiber it forks and joins. */
type Inside = "none" | "stop" | "flush" | "forkedStop" | "forkedFlush"

type Op =
  | {
    readonly _tag: "submit"
    readonly key: Key
    readonly failures: number
    readonly yields: number
    readonly inside: Inside
    /** How long each attempt sleeps; a task with a timeout has one of 10 ms. */
    readonly sleep: number
    readonly timeout: boolean
  }
  | { readonly _tag: "interrupt"; readonly which: number }
  | { readonly _tag: "tick"; readonly millis: number }
  | { readonly _tag: "yield" }
  | { readonly _tag: "pause"; readonly key: Key }
  | { readonly _tag: "resume"; readonly key: Key }
  | { readonly _tag: "flush" }
  | { readonly _tag: "stop" }

const key: FastCheck.Arbitrary<Key> = FastCheck.constantFrom<Key>("a", "b", undefined)

const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
  {
    weight: 10,
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("submit" as const),
      key,
      // three failures give up (see the retry schedule)
      failures: FastCheck.nat(3),
      yields: FastCheck.nat(2),
      sleep: FastCheck.constantFrom(0, 0, 5, 10),
      timeout: FastCheck.boolean(),
      inside: FastCheck.constantFrom<Inside>(
        ...Array.from({ length: 8 }, () => "none" as const),
        "stop",
        "flush",
        "forkedStop",
        "forkedFlush"
      )
    })
  },
  {
    weight: 2,
    arbitrary: FastCheck.record({ _tag: FastCheck.constant("interrupt" as const), which: FastCheck.nat() })
  },
  { weight: 3, arbitrary: FastCheck.record({ _tag: FastCheck.constant("tick" as const), millis: FastCheck.nat(30) }) },
  { weight: 3, arbitrary: FastCheck.constant({ _tag: "yield" as const }) },
  { weight: 1, arbitrary: FastCheck.record({ _tag: FastCheck.constant("pause" as const), key }) },
  { weight: 1, arbitrary: FastCheck.record({ _tag: FastCheck.constant("resume" as const), key }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "flush" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "stop" as const }) }
)

let runs = 0

describe("property: capacity, waiters and shutdown from anywhere", () => {
  it.scoped.prop(
    "every caller returns; each task succeeds at most once, a successful submit's exactly once, each key's in order and one at a time; every count ends at 0",
    {
      ops: FastCheck.array(op, { maxLength: 50 }),
      capacity: FastCheck.integer({ min: 1, max: 4 }),
      concurrency: FastCheck.constantFrom<1 | 2 | "unbounded">(1, 2, "unbounded")
    },
    ({ capacity, concurrency, ops }) =>
      Effect.gen(function*() {
        const name = `property-faults-${++runs}`
        const sequent = yield* Sequent.make({
          name,
          retry: Schedule.intersect(Schedule.spaced("10 millis"), Schedule.recurs(2)),
          // a handler that dies, or throws instead of returning an effect, is logged and ignored
          deadLetter: ({ attempts }) => {
            if (attempts % 2 === 0) throw new Error("dead-letter handler threw")
            return Effect.die("dead-letter handler died")
          },
          capacity,
          concurrency,
          onFull: "wait",
          yieldToEventLoop: false
        })
        const successes = new Map<number, number>()
        const started = new Map<string, Array<number>>()
        const running = new Map<string, number>()
        let overlaps = 0
        // once a task's own stop has returned, no attempt starts (one with a timeout is left out: its task
        // runs in a fiber of its own, which may first run after the stop though the attempt began before)
        let stoppedFromTask = false
        let startedAfterStop = 0
        const callers: Array<{ readonly id: number; readonly fiber: Fiber.RuntimeFiber<unknown, unknown> }> = []
        const background: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
        let next = 0

        const task = (id: number, label: string, step: Extract<Op, { _tag: "submit" }>) => {
          let attempt = 0
          const call = step.inside === "stop" || step.inside === "forkedStop"
            ? Effect.tap(sequent.stop, () => Effect.sync(() => stoppedFromTask = true))
            : step.inside === "flush" || step.inside === "forkedFlush"
            ? sequent.flush
            : Effect.void
          const shutdown = step.inside.startsWith("forked") ? Effect.flatMap(Effect.fork(call), Fiber.join) : call
          return Effect.suspend(() => {
            if (stoppedFromTask && !step.timeout) startedAfterStop++
            attempt++
            const here = (running.get(label) ?? 0) + 1
            running.set(label, here)
            if (here > 1) overlaps++
            started.set(label, [...(started.get(label) ?? []), id])
            return Effect.repeatN(Effect.yieldNow(), step.yields).pipe(
              Effect.zipRight(shutdown),
              Effect.zipRight(step.sleep > 0 ? Effect.sleep(step.sleep) : Effect.void),
              Effect.flatMap(() => {
                if (attempt <= step.failures) return attempt % 2 === 0 ? Effect.die("defect") : Effect.succeed(false)
                successes.set(id, (successes.get(id) ?? 0) + 1)
                return Effect.succeed(true)
              }),
              Effect.ensuring(Effect.sync(() => running.set(label, running.get(label)! - 1)))
            )
          })
        }

        for (const step of ops) {
          switch (step._tag) {
            case "submit": {
              const id = next++
              const fiber = yield* Effect.fork(
                sequent.submit(task(id, step.key ?? "(default)", step), {
                  key: step.key,
                  timeout: step.timeout ? "10 millis" : undefined
                })
              )
              callers.push({ id, fiber })
              break
            }
            case "interrupt":
              if (callers.length > 0) yield* Fiber.interrupt(callers[step.which % callers.length]!.fiber)
              break
            case "tick":
              yield* TestClock.adjust(step.millis)
              break
            case "yield":
              yield* Effect.yieldNow()
              break
            case "pause":
              yield* sequent.pause(step.key)
              break
            case "resume":
              yield* sequent.resume(step.key)
              break
            case "flush":
              background.push(yield* Effect.fork(sequent.flush))
              break
            case "stop":
              background.push(yield* Effect.fork(sequent.stop))
              break
          }
        }
        yield* sequent.resume()
        const flushing = yield* Effect.fork(sequent.flush)
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(flushing)
        yield* sequent.stop
        yield* Fiber.joinAll(background)

        for (const { fiber, id } of callers) {
          const exit = yield* Fiber.await(fiber)
          const succeeded = successes.get(id) ?? 0
          assert.isAtMost(succeeded, 1, `task ${id} succeeded at most once`)
          if (Exit.isSuccess(exit)) assert.strictEqual(succeeded, 1, `task ${id}: its submit succeeded`)
          else if (!Exit.isInterrupted(exit)) {
            const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
            const gaveUp = failure instanceof SequentFalseError || failure instanceof SequentTimeoutError ||
              Cause.isDie(exit.cause)
            assert.isTrue(
              gaveUp || failure instanceof SequentStoppedError || failure instanceof SequentClosedError,
              `task ${id}: a submit fails only with a give-up, SequentStoppedError or SequentClosedError`
            )
            if (!(failure instanceof SequentStoppedError)) {
              assert.strictEqual(succeeded, 0, `task ${id} never succeeded`)
            }
          }
        }
        for (const [label, ids] of started) {
          // a task's attempts form one unbroken run, and each key's tasks start in the order they were offered
          const order = ids.filter((id, index) => ids[index - 1] !== id)
          assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), label)
          assert.strictEqual(new Set(order).size, order.length, `${label}: no task runs again after another`)
        }
        assert.strictEqual(overlaps, 0, "never two attempts of one key at once")
        assert.strictEqual(startedAfterStop, 0, "no attempt starts once a task's stop has returned")
        assert.strictEqual(yield* sequent.size, 0)
        assert.strictEqual(yield* sequent.laneCount, 0)
        const metrics = sequent.metrics
        assert.strictEqual((yield* Metric.value(metrics.queueSize)).value, 0, "the queue-size gauge")
        const [scheduled, succeeded, gaveUp, dropped] = yield* Effect.all(
          [metrics.scheduled, metrics.succeeded, metrics.gaveUp, metrics.dropped].map((metric) =>
            Effect.map(Metric.value(metric), (state) => state.count)
          )
        )
        assert.strictEqual(succeeded! + gaveUp! + dropped!, scheduled!, "every accepted task ended once")
      }),
    { fastCheck: { numRuns: 300, seed: 20261201 } }
  )
})
