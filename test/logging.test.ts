import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { Sequent } from "../src/index.js"
import { recordingLogger } from "./support.js"

describe("logging", () => {
  it.effect("every failed attempt is logged at Warning with its attempt number and cause", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(5) })
        let attempt = 0
        yield* sequent.submit(Effect.suspend(() => ++attempt <= 2 ? Effect.fail(`down ${attempt}`) : Effect.void))
        const warnings = logger.entries.filter((entry) => entry.level === "WARN")
        assert.deepStrictEqual(warnings.map((entry) => entry.annotations.attempt), [1, 2])
        assert.include(warnings[0]!.cause, "down 1")
        assert.include(warnings[1]!.cause, "down 2")
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))

  it.effect("a task that gives up is logged at Error with its cause, and the queue moves on", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(1) })
        yield* sequent.schedule(Effect.fail("gone for good"))
        const after = yield* sequent.submit(Effect.succeed("next"))
        const errors = logger.entries.filter((entry) => entry.level === "ERROR")
        assert.strictEqual(errors.length, 1)
        assert.include(errors[0]!.cause, "gone for good")
        assert.strictEqual(errors[0]!.annotations.attempts, 2)
        assert.strictEqual(after, "next")
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))

  it.effect("nothing a task does kills the worker: defects and failures are followed by the next task", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({ retry: Schedule.recurs(0) })
        yield* sequent.schedule(Effect.die(new Error("defect")))
        yield* sequent.schedule(Effect.sync(() => {
          throw new Error("thrown")
        }))
        yield* sequent.schedule(Effect.interrupt)
        assert.strictEqual(yield* sequent.submit(Effect.succeed("still alive")), "still alive")
        assert.strictEqual(logger.entries.filter((entry) => entry.level === "ERROR").length, 3)
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))
})
