/**
 * Random tasks (random failure counts) under random interleavings of schedule,
 * clock ticks, yields, flush and stop; then the same across random keys, with
 * random pauses and resumes and a random concurrency.
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
  {
    weight: 6,
    arbitrary: FastCheck.record({ _tag: FastCheck.constant("schedule" as const), failures: FastCheck.nat(3) })
  },
  { weight: 3, arbitrary: FastCheck.record({ _tag: FastCheck.constant("tick" as const), millis: FastCheck.nat(40) }) },
  { weight: 3, arbitrary: FastCheck.constant({ _tag: "yield" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "flush" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "stop" as const }) }
)

type Key = "a" | "b" | "c" | undefined

/** `key` of a schedule is its lane (undefined: the default lane); of a pause or resume, its target (undefined: every lane). */
type LaneOp =
  | { readonly _tag: "schedule"; readonly key: Key; readonly failures: number; readonly yields: number }
  | { readonly _tag: "tick"; readonly millis: number }
  | { readonly _tag: "yield" }
  | { readonly _tag: "pause"; readonly key: Key }
  | { readonly _tag: "resume"; readonly key: Key }
  | { readonly _tag: "flush" }
  | { readonly _tag: "stop" }

const key: FastCheck.Arbitrary<Key> = FastCheck.constantFrom<Key>("a", "b", "c", undefined)

const laneOp: FastCheck.Arbitrary<LaneOp> = FastCheck.oneof(
  {
    weight: 8,
    arbitrary: FastCheck.record({
      _tag: FastCheck.constant("schedule" as const),
      key,
      failures: FastCheck.nat(3),
      // how many times each attempt yields: attempts still running when the next ops come
      yields: FastCheck.nat(3)
    })
  },
  { weight: 3, arbitrary: FastCheck.record({ _tag: FastCheck.constant("tick" as const), millis: FastCheck.nat(40) }) },
  { weight: 3, arbitrary: FastCheck.constant({ _tag: "yield" as const }) },
  { weight: 2, arbitrary: FastCheck.record({ _tag: FastCheck.constant("pause" as const), key }) },
  { weight: 2, arbitrary: FastCheck.record({ _tag: FastCheck.constant("resume" as const), key }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "flush" as const }) },
  { weight: 1, arbitrary: FastCheck.constant({ _tag: "stop" as const }) }
)

const concurrency = FastCheck.constantFrom<1 | 2 | "unbounded">(1, 2, "unbounded")

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

  it.scoped.prop(
    "across random keys, pauses and concurrency: each key's accepted tasks succeed exactly once, in order, one attempt at a time, none started while paused",
    { ops: FastCheck.array(laneOp, { maxLength: 60 }), concurrency },
    ({ concurrency, ops }) =>
      Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.spaced("10 millis"), concurrency })
        const labels = ["a", "b", "c", "(default)"] as const
        const perLabel = () => Object.fromEntries(labels.map((label) => [label, [] as Array<number>]))
        const accepted = perLabel()
        const succeeded = perLabel()
        const attempts = perLabel()
        const running = new Map<string, number>()
        let overlaps = 0
        let inFlight = 0
        let most = 0
        let stopReturned = false
        let ranAfterStop = false
        const flushes: Array<Fiber.RuntimeFiber<void>> = []
        let next = 0
        // After a pause, a key starts no attempt, but one: when no attempt of the key was running at the
        // pause, a worker may have taken its lane just before and not yet started the attempt.
        const pausedKeys = new Set<string>()
        let pausedAll = false
        const allowedSinceKeyPause = new Map<string, number>()
        const allowedSinceGlobalPause = new Map<string, number>()
        const startedWhilePaused: Array<string> = []
        const allowance = (label: string) => (running.get(label) ?? 0) > 0 ? 0 : 1
        const countStart = (allowed: Map<string, number>, label: string, what: string) => {
          const left = allowed.get(label)!
          allowed.set(label, left - 1)
          if (left < 1) startedWhilePaused.push(`${label}: an attempt started after ${what}`)
        }

        const task = (id: number, label: string, failures: number, yields: number) => {
          let attempt = 0
          return Effect.suspend(() => {
            if (stopReturned) ranAfterStop = true
            if (pausedKeys.has(label)) countStart(allowedSinceKeyPause, label, "pause(key)")
            if (pausedAll) countStart(allowedSinceGlobalPause, label, "pause()")
            attempt++
            const here = (running.get(label) ?? 0) + 1
            running.set(label, here)
            if (here > 1) overlaps++
            most = Math.max(most, ++inFlight)
            attempts[label]!.push(id)
            return Effect.repeatN(Effect.yieldNow(), yields).pipe(
              Effect.map(() => {
                if (attempt <= failures) return false
                succeeded[label]!.push(id)
                return true
              }),
              Effect.ensuring(Effect.sync(() => {
                running.set(label, running.get(label)! - 1)
                inFlight--
              }))
            )
          })
        }

        for (const step of ops) {
          switch (step._tag) {
            case "schedule": {
              const id = next++
              const label = step.key ?? "(default)"
              const exit = yield* Effect.exit(
                sequent.schedule(task(id, label, step.failures, step.yields), { key: step.key })
              )
              if (Exit.isSuccess(exit)) accepted[label]!.push(id)
              break
            }
            case "tick":
              yield* TestClock.adjust(step.millis)
              break
            case "yield":
              yield* Effect.yieldNow()
              break
            case "pause":
              if (step.key === undefined && !pausedAll) {
                pausedAll = true
                for (const label of labels) allowedSinceGlobalPause.set(label, allowance(label))
              } else if (step.key !== undefined && !pausedKeys.has(step.key)) {
                pausedKeys.add(step.key)
                allowedSinceKeyPause.set(step.key, allowance(step.key))
              }
              yield* sequent.pause(step.key)
              break
            case "resume":
              if (step.key === undefined) {
                pausedAll = false
                pausedKeys.clear()
              } else {
                pausedKeys.delete(step.key)
              }
              yield* sequent.resume(step.key)
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
        // a paused lane never drains: lift every pause before the final flush
        pausedAll = false
        pausedKeys.clear()
        yield* sequent.resume()
        if (!stopReturned) {
          const flushing = yield* Effect.fork(sequent.flush)
          yield* TestClock.adjust("10 seconds")
          yield* Fiber.join(flushing)
        }
        yield* Fiber.joinAll(flushes)

        for (const label of labels) {
          const mine = accepted[label]!
          // exactly once, in order: the successes are the key's accepted tasks, cut where stop dropped the rest
          assert.deepStrictEqual(succeeded[label], mine.slice(0, succeeded[label]!.length), label)
          if (!stopReturned) assert.deepStrictEqual(succeeded[label], mine, label)
          // a task's attempts form one unbroken run, and the key's next task starts only after it succeeded
          const runs = attempts[label]!.reduce<Array<number>>((acc, id) => acc.at(-1) === id ? acc : [...acc, id], [])
          assert.deepStrictEqual(runs, mine.slice(0, runs.length), label)
          runs.slice(0, -1).forEach((id) => assert.include(succeeded[label], id, label))
        }
        assert.strictEqual(overlaps, 0, "never two attempts of one key at once")
        assert.deepStrictEqual(startedWhilePaused, [], "a paused key starts no attempt but the one it had taken")
        assert.isAtMost(
          most,
          concurrency === "unbounded" ? Infinity : concurrency,
          "never more lanes at once than allowed"
        )
        assert.isFalse(ranAfterStop, "nothing runs after stop returns")
        assert.strictEqual(yield* sequent.size, 0)
        assert.strictEqual(yield* sequent.laneCount, 0)
      }),
    { fastCheck: { numRuns: 200 } }
  )
})
