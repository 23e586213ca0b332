/**
 * The retry decision: given a task's policy, its retry state, the cause of its
 * failed attempt and the time, whether to try again after a delay or to give up.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import { SequentFalseError, SequentTimeoutError } from "../SequentError.js"
import { NO_RETRY_STATE, type Policy } from "./lane.js"

/** @internal */
export type Decision =
  | { readonly _tag: "Retry"; readonly delay: number; readonly state: unknown }
  | { readonly _tag: "GiveUp"; readonly cause: Cause.Cause<unknown> }

const giveUp = (cause: Cause.Cause<unknown>): Decision => ({ _tag: "GiveUp", cause })

/**
 * `isRetryable` judges typed failures only: not timeouts, and not `false`,
 * which are the executor's own errors.
 */
const rejected = (policy: Policy, cause: Cause.Cause<unknown>): boolean => {
  if (policy.isRetryable === undefined) return false
  const error = Cause.failureOption(cause)
  return Option.isSome(error) && !(error.value instanceof SequentTimeoutError) &&
    !(error.value instanceof SequentFalseError) && !policy.isRetryable(error.value)
}

/**
 * Decides what follows a failed attempt. `state` is the policy's retry state
 * after the task's previous failure, or `NO_RETRY_STATE` after its first.
 *
 * `isRetryable` and the retry schedule are the user's code: when one throws
 * or dies, the task gives up with that defect added to its cause. The
 * decision never fails.
 */
export const decide = (
  policy: Policy,
  state: unknown,
  cause: Cause.Cause<unknown>,
  now: number
): Effect.Effect<Decision> =>
  Effect.suspend(() => {
    if (rejected(policy, cause)) return Effect.succeed(giveUp(cause))
    const from = state === NO_RETRY_STATE ? policy.retry.initial : state
    return Effect.map(policy.retry.step(now, Cause.squash(cause), from), ([next, _, decision]): Decision =>
      ScheduleDecision.isDone(decision)
        ? giveUp(cause)
        : { _tag: "Retry", delay: Math.max(0, Intervals.start(decision.intervals) - now), state: next })
  }).pipe(Effect.catchAllCause((defect) =>
    Effect.succeed(giveUp(Cause.sequential(cause, defect)))
  ))
