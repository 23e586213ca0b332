/**
 * How an outcome travels from the instance that ran a task to the one whose
 * `submit` waits for it (shared mode): as text, a request kind's success and
 * typed failures through its schemas, the executor's own timeout and outcome
 * errors as themselves, anything else as `Schema.Defect` has it. The instances
 * and the database are covered by test/integration/shared-submit.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { makeCodec } from "../src/internal/outcome.js"
import { SequentOutcomeError, SequentTimeoutError } from "../src/SequentError.js"
import type { AnyTaskKind } from "../src/TaskKind.js"

class Declined extends Schema.TaggedError<Declined>()("Declined", { order: Schema.String }) {}
class Charge extends Schema.TaggedRequest<Charge>()("Charge", {
  payload: { order: Schema.String },
  success: Schema.Struct({ cents: Schema.NumberFromString, at: Schema.Date }),
  failure: Declined
}) {}
class Note extends Schema.TaggedClass<Note>()("Note", { text: Schema.String }) {}

const codec = makeCodec(new Map<string, AnyTaskKind>([["Charge", Charge], ["Note", Note]]))

/** The exit the waiting instance sees, and the text that carried it. */
const travel = (tag: string, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const text = yield* codec.encode(tag, exit)
    assert.isString(text)
    return yield* codec.decode(tag, text)
  })

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

describe("outcome codec", () => {
  it.effect("a request kind's success arrives through its success schema", () =>
    Effect.gen(function*() {
      const at = new Date("2026-12-01T10:00:00Z")
      const exit = yield* travel("Charge", Exit.succeed({ cents: 1250, at }))
      assert.isTrue(Exit.isSuccess(exit))
      const value = (exit as Exit.Success<{ cents: number; at: Date }, never>).value
      assert.strictEqual(value.cents, 1250)
      assert.instanceOf(value.at, Date)
      assert.strictEqual(value.at.getTime(), at.getTime())
    }))

  it.effect("a request kind's typed failure arrives as an instance of its class", () =>
    Effect.gen(function*() {
      const failure = failureOf(yield* travel("Charge", Exit.fail(new Declined({ order: "o-7" }))))
      assert.instanceOf(failure, Declined)
      assert.strictEqual((failure as Declined).order, "o-7")
    }))

  it.effect("a timeout and an outcome error arrive as themselves; a defect keeps its message", () =>
    Effect.gen(function*() {
      const timeout = failureOf(
        yield* travel("Charge", Exit.fail(new SequentTimeoutError({ timeout: Duration.seconds(3) })))
      )
      assert.instanceOf(timeout, SequentTimeoutError)
      assert.strictEqual(Duration.toMillis((timeout as SequentTimeoutError).timeout), 3000)
      const outcome = new SequentOutcomeError({ tag: "Charge", outcome: "success", reason: "no" })
      assert.deepStrictEqual(failureOf(yield* travel("Note", Exit.fail(outcome))), outcome)
      const died = yield* travel("Note", Exit.die(new Error("boom")))
      assert.isTrue(Exit.isFailure(died))
      const defect = Option.getOrUndefined(Cause.dieOption((died as Exit.Failure<unknown, unknown>).cause))
      assert.strictEqual((defect as Error).message, "boom")
    }))

  it.effect("a plain kind's success arrives as null, whatever its handler returned", () =>
    Effect.gen(function*() {
      const exit = yield* travel("Note", Exit.succeed({ big: 10n }))
      assert.deepStrictEqual(exit, Exit.succeed(null))
    }))

  it.effect("a success its schema cannot encode arrives as a SequentOutcomeError", () =>
    Effect.gen(function*() {
      const failure = failureOf(yield* travel("Charge", Exit.succeed({ cents: "not a number" })))
      assert.instanceOf(failure, SequentOutcomeError)
      assert.strictEqual((failure as SequentOutcomeError).outcome, "success")
    }))

  it.effect("text that does not decode is a SequentOutcomeError, not a defect", () =>
    Effect.gen(function*() {
      assert.instanceOf(failureOf(yield* codec.decode("Charge", "{not json")), SequentOutcomeError)
    }))
})
