import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { NO_RETRY_STATE, type Policy } from "../src/internal/lane.js"
import { decide } from "../src/internal/retry.js"
import { SequentFalseError, SequentTimeoutError } from "../src/SequentError.js"

const policy = (retry: Schedule.Schedule<unknown, unknown>, isRetryable?: (error: unknown) => boolean): Policy => ({
  retry,
  timeout: undefined,
  isRetryable
})

describe("retry decision", () => {
  it.effect("a failure under an exponential schedule is retried after its delay, the state carried to the next decision", () =>
    Effect.gen(function*() {
      const exponential = policy(Schedule.exponential("10 millis", 2))
      const first = yield* decide(exponential, NO_RETRY_STATE, Cause.fail("boom"), 1_000)
      assert.strictEqual(first._tag, "Retry")
      if (first._tag !== "Retry") return
      assert.strictEqual(first.delay, 10)
      const second = yield* decide(exponential, first.state, Cause.fail("boom"), 1_010)
      assert.strictEqual(second._tag === "Retry" ? second.delay : undefined, 20)
    }))

  it.effect("a schedule that is done gives up with the attempt's own cause", () =>
    Effect.gen(function*() {
      const cause = Cause.fail("boom")
      const once = policy(Schedule.recurs(0))
      const decision = yield* decide(once, NO_RETRY_STATE, cause, 0)
      assert.deepStrictEqual(decision, { _tag: "GiveUp", cause })
    }))

  it.effect("a failure isRetryable rejects gives up at once; timeouts and false are not judged by it", () =>
    Effect.gen(function*() {
      const never = policy(Schedule.spaced("1 second"), () => false)
      const rejected = yield* decide(never, NO_RETRY_STATE, Cause.fail("bad request"), 0)
      assert.strictEqual(rejected._tag, "GiveUp")
      const timeout = new SequentTimeoutError({ timeout: Duration.seconds(1) })
      assert.strictEqual((yield* decide(never, NO_RETRY_STATE, Cause.fail(timeout), 0))._tag, "Retry")
      assert.strictEqual((yield* decide(never, NO_RETRY_STATE, Cause.fail(new SequentFalseError()), 0))._tag, "Retry")
      // defects are not typed failures: isRetryable does not see them
      assert.strictEqual((yield* decide(never, NO_RETRY_STATE, Cause.die("bug"), 0))._tag, "Retry")
    }))

  it.effect("an isRetryable that throws, or a schedule that dies, gives up with that defect added to the cause", () =>
    Effect.gen(function*() {
      const throwing = policy(Schedule.spaced("1 second"), () => {
        throw new Error("isRetryable broke")
      })
      const first = yield* decide(throwing, NO_RETRY_STATE, Cause.fail("boom"), 0)
      assert.strictEqual(first._tag, "GiveUp")
      if (first._tag !== "GiveUp") return
      assert.deepStrictEqual(Cause.failures(first.cause).pipe((chunk) => Array.from(chunk)), ["boom"])
      assert.include(Cause.pretty(first.cause), "isRetryable broke")

      const dying = policy(Schedule.spaced("1 second").pipe(Schedule.tapOutput(() => Effect.die("schedule broke"))))
      const second = yield* decide(dying, NO_RETRY_STATE, Cause.fail("boom"), 0)
      assert.strictEqual(second._tag, "GiveUp")
      assert.include(second._tag === "GiveUp" ? Cause.pretty(second.cause) : "", "schedule broke")
    }))

  it.effect("the delay is never negative, even when the schedule's next interval starts before now", () =>
    Effect.gen(function*() {
      const immediate = policy(Schedule.forever)
      const decision = yield* decide(immediate, NO_RETRY_STATE, Cause.fail("boom"), 5_000)
      assert.strictEqual(decision._tag === "Retry" ? decision.delay : undefined, 0)
    }))
})
