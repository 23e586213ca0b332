import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { type AttemptLogLevel, Sequent } from "../src/index.js"
import { type LogEntry, recordingLogger } from "./support.js"

class HttpError extends Data.TaggedError("HttpError")<{ readonly message: string }> {}
class Unavailable extends Data.TaggedError("Unavailable")<{ readonly status: number; readonly retryAfter: string }> {}
class Overdrawn extends Data.TaggedError("Overdrawn")<{ readonly cents: bigint; readonly payload: unknown }> {}

/** A task that fails once with `failure`, then succeeds. */
const failsOnce = <E>(failure: Effect.Effect<never, E>) => {
  let attempts = 0
  return Effect.suspend(() => ++attempts === 1 ? failure : Effect.void)
}

const at = (level: LogEntry["level"], entries: ReadonlyArray<LogEntry>) =>
  entries.filter((entry) => entry.level === level)

/** Runs `body` with a recording logger that sees every level, and returns what it recorded. */
const recording = <E>(body: Effect.Effect<void, E, Scope.Scope>) =>
  Effect.suspend(() => {
    const logger = recordingLogger()
    return Effect.as(
      body.pipe(Effect.scoped, Effect.provide(logger.layer), Logger.withMinimumLogLevel(LogLevel.All)),
      logger.entries
    )
  })

describe("logging of failed attempts", () => {
  it.effect("each is one Warning line by default: the attempt and the failure's tag and message, no cause attached", () =>
    Effect.gen(function*() {
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
        let attempt = 0
        const task = Effect.suspend(() =>
          ++attempt <= 2 ? Effect.fail(new HttpError({ message: `503 from backend (${attempt})` })) : Effect.void
        )
        const fiber = yield* Effect.fork(sequent.submit(task, { key: "backend" }))
        yield* TestClock.adjust("2 seconds")
        yield* Fiber.join(fiber)
      }))
      assert.deepStrictEqual(
        entries,
        [1, 2].map((attempt) => ({
          level: "WARN",
          message: `Sequent: attempt ${attempt} failed: HttpError: 503 from backend (${attempt})`,
          cause: "",
          annotations: { attempt, key: "backend", retryIn: "1000ms" }
        }))
      )
    }))

  it.effect("attemptLogLevel sets their level: Debug and Info log at that level, None logs nothing", () =>
    Effect.gen(function*() {
      const levels: Array<readonly [AttemptLogLevel, ReadonlyArray<string>]> = [
        ["Debug", ["DEBUG"]],
        ["Info", ["INFO"]],
        ["Error", ["ERROR"]],
        ["None", []]
      ]
      for (const [attemptLogLevel, expected] of levels) {
        const entries = yield* recording(Effect.gen(function*() {
          const sequent = yield* Sequent.make({ retry: Schedule.recurs(1), attemptLogLevel })
          yield* sequent.submit(failsOnce(Effect.fail("down")))
        }))
        assert.deepStrictEqual(entries.map((entry) => entry.level), expected, attemptLogLevel)
        assert.deepStrictEqual(
          entries.map((entry) => entry.message),
          expected.map(() => "Sequent: attempt 1 failed: down")
        )
      }
    }))

  it.effect("attemptLogLevel None leaves the give-up log at Error", () =>
    Effect.gen(function*() {
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(2), attemptLogLevel: "None" })
        yield* Effect.exit(sequent.submit(Effect.fail("gone")))
      }))
      assert.deepStrictEqual(entries.map(({ level, message }) => ({ level, message })), [
        { level: "ERROR", message: "Sequent: task gave up after 3 attempt(s): gone" }
      ])
    }))

  it.effect("a failure is shown compactly whatever it is: a string, a tagged error, its fields (bounded), a defect, false, a timeout, one that throws", () =>
    Effect.gen(function*() {
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
        yield* sequent.submit(failsOnce(Effect.fail("plain text")))
        yield* sequent.submit(failsOnce(Effect.fail(new HttpError({ message: "503 from backend\n  retry later" }))))
        yield* sequent.submit(failsOnce(Effect.fail(new Unavailable({ status: 503, retryAfter: "5s" }))))
        yield* sequent.submit(failsOnce(Effect.fail({ code: 7 })))
        const cyclic: Record<string, unknown> = { id: 1 }
        cyclic.self = cyclic
        yield* sequent.submit(failsOnce(Effect.fail(new Overdrawn({ cents: 5n, payload: cyclic }))))
        yield* sequent.submit(failsOnce(Effect.fail(new Unavailable({ status: 503, retryAfter: "x".repeat(300) }))))
        const unreadable = Object.defineProperty({}, "message", {
          get: () => {
            throw new Error("no message today")
          }
        })
        yield* sequent.submit(failsOnce(Effect.fail(unreadable)))
        yield* sequent.submit(failsOnce(Effect.die(new Error("boom"))))
        yield* sequent.submit(failsOnce(Effect.sync((): never => {
          throw new TypeError("x is not a function")
        })))
        yield* sequent.submit(failsOnce(Effect.interrupt))
        let returned = 0
        yield* sequent.submit(Effect.sync(() => ++returned > 1))
        let timedOut = 0
        const slowOnce = Effect.suspend(() => ++timedOut === 1 ? Effect.never : Effect.void)
        const fiber = yield* Effect.fork(sequent.submit(slowOnce, { timeout: "1 second" }))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(fiber)
      }))
      assert.deepStrictEqual(
        at("WARN", entries).map((entry) => entry.message.replace("Sequent: attempt 1 failed: ", "")),
        [
          "plain text",
          "HttpError: 503 from backend retry later",
          "Unavailable {\"status\":503,\"retryAfter\":\"5s\"}",
          "{\"code\":7}",
          "Overdrawn {\"cents\":\"5n\",\"payload\":{\"id\":1}}",
          // fields past the first 200 characters are cut
          `Unavailable ${`{"status":503,"retryAfter":"${"x".repeat(300)}"}`.slice(0, 200)}...`,
          "(a failure that cannot be shown)",
          "Error: boom (defect)",
          "TypeError: x is not a function (defect)",
          "interrupted",
          "SequentFalseError: the task returned false",
          "SequentTimeoutError: the attempt did not finish within 1s"
        ]
      )
      assert.isTrue(entries.every((entry) => entry.cause === ""), "no failed attempt carries its cause, nor a stack")
    }))
})

describe("logging of give-ups", () => {
  it.effect("a task that gives up is one Error line with its attempts and failure, and the whole cause attached", () =>
    Effect.gen(function*() {
      const error = new HttpError({ message: "503 from backend" })
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(1), attemptLogLevel: "None" })
        yield* sequent.schedule(Effect.fail(error), { key: "backend" })
        assert.strictEqual(yield* sequent.submit(Effect.succeed("next"), { key: "backend" }), "next")
      }))
      assert.deepStrictEqual(entries, [{
        level: "ERROR",
        message: "Sequent: task gave up after 2 attempt(s): HttpError: 503 from backend",
        cause: Cause.pretty(Cause.fail(error)),
        annotations: { attempts: 2, key: "backend" }
      }])
    }))

  it.effect("a give-up after a broken policy names the failure and the defect", () =>
    Effect.gen(function*() {
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ attemptLogLevel: "None" })
        yield* Effect.exit(sequent.submit(Effect.fail("down"), {
          isRetryable: (): boolean => {
            throw new Error("predicate bug")
          }
        }))
      }))
      assert.deepStrictEqual(entries.map((entry) => entry.message), [
        "Sequent: task gave up after 1 attempt(s): down; Error: predicate bug (defect)"
      ])
      assert.include(entries[0]!.cause, "predicate bug")
    }))

  it.effect("nothing a task does kills the worker: defects and failures are followed by the next task", () =>
    Effect.gen(function*() {
      const entries = yield* recording(Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(0) })
        yield* sequent.schedule(Effect.die(new Error("defect")))
        yield* sequent.schedule(Effect.sync(() => {
          throw new Error("thrown")
        }))
        yield* sequent.schedule(Effect.interrupt)
        assert.strictEqual(yield* sequent.submit(Effect.succeed("still alive")), "still alive")
      }))
      assert.deepStrictEqual(at("ERROR", entries).map((entry) => entry.message), [
        "Sequent: task gave up after 1 attempt(s): Error: defect (defect)",
        "Sequent: task gave up after 1 attempt(s): Error: thrown (defect)",
        "Sequent: task gave up after 1 attempt(s): interrupted"
      ])
    }))
})
