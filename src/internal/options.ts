/**
 * Decoding an executor's options and a task's options into what the executor
 * runs on; each rule is written once, for `Sequent` and `Durable` alike.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type { SequentOptions, TaskOptions } from "../Sequent.js"
import { SequentOptionError } from "../SequentError.js"
import type { GiveUp } from "./executor.js"
import type { Policy } from "./lane.js"

/** @internal */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("10 millis", 2).pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(30)))
)

/** An executor's options, decoded. */
export interface Config {
  readonly name: string
  readonly policy: Policy
  readonly concurrency: number
  readonly capacity: number
  readonly onFull: "wait" | "fail"
  readonly onGiveUp: "continue" | "halt"
  readonly deadLetter: ((giveUp: GiveUp) => Effect.Effect<void>) | undefined
  readonly grace: Duration.Duration
  readonly eventBuffer: number
  readonly yieldToEventLoop: boolean
}

const invalid = (option: string, reason: string) => Either.left(new SequentOptionError({ option, reason }))

const decodeConcurrency = (concurrency: SequentOptions["concurrency"]): Either.Either<number, SequentOptionError> => {
  if (concurrency === undefined) return Either.right(1)
  if (concurrency === "unbounded") return Either.right(Infinity)
  return Number.isInteger(concurrency) && concurrency >= 1
    ? Either.right(concurrency)
    : invalid("concurrency", `expected a whole number >= 1 or "unbounded", got ${concurrency}`)
}

const decodeCapacity = (capacity: SequentOptions["capacity"]): Either.Either<number, SequentOptionError> => {
  if (capacity === undefined) return Either.right(Infinity)
  return Number.isInteger(capacity) && capacity >= 1
    ? Either.right(capacity)
    : invalid("capacity", `expected a whole number >= 1, got ${capacity}`)
}

const decodeEventBuffer = (eventBuffer: SequentOptions["eventBuffer"]): Either.Either<number, SequentOptionError> => {
  if (eventBuffer === undefined) return Either.right(4096)
  return Number.isInteger(eventBuffer) && eventBuffer >= 1
    ? Either.right(eventBuffer)
    : invalid("eventBuffer", `expected a whole number >= 1, got ${eventBuffer}`)
}

/** Decodes an executor's options; an invalid one is a `SequentOptionError` naming it. */
export const decodeConfig = (options: SequentOptions): Either.Either<Config, SequentOptionError> =>
  Either.gen(function*() {
    const concurrency = yield* decodeConcurrency(options.concurrency)
    const capacity = yield* decodeCapacity(options.capacity)
    const eventBuffer = yield* decodeEventBuffer(options.eventBuffer)
    return {
      name: options.name ?? "default",
      policy: { retry: options.retry ?? defaultRetry, timeout: undefined, isRetryable: undefined },
      concurrency,
      capacity,
      onFull: options.onFull ?? "wait",
      onGiveUp: options.onGiveUp ?? "continue",
      deadLetter: options.deadLetter,
      grace: Duration.decode(options.closeGracePeriod ?? Duration.seconds(30)),
      eventBuffer,
      yieldToEventLoop: options.yieldToEventLoop ?? true
    }
  })

const decodeTimeout = (
  timeout: Duration.DurationInput | undefined
): Either.Either<Duration.Duration | undefined, SequentOptionError> => {
  if (timeout === undefined) return Either.right(undefined)
  const duration = Duration.decodeUnknown(timeout)
  return Option.isSome(duration) && Duration.greaterThan(duration.value, Duration.zero)
    ? Either.right(duration.value)
    : invalid("timeout", `expected a positive duration, got ${String(timeout)}`)
}

/** The policy of a task with `options`: the executor's own when they change none of it. */
export const policyFor = (
  policy: Policy,
  task: TaskOptions<any> | undefined
): Either.Either<Policy, SequentOptionError> => {
  if (task === undefined || (task.retry === undefined && task.timeout === undefined && task.isRetryable === undefined)) {
    return Either.right(policy)
  }
  return Either.map(decodeTimeout(task.timeout), (timeout) => ({
    retry: task.retry ?? policy.retry,
    timeout,
    isRetryable: task.isRetryable
  }))
}
