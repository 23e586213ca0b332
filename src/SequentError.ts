/**
 * The errors a `Sequent` executor reports to its callers.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * `schedule` or `submit` was called after `flush` or `stop` had begun: the task
 * was not accepted and never runs.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentClosedError extends Data.TaggedError("SequentClosedError")<{
  readonly state: "flushing" | "stopped"
}> {
  override get message(): string {
    return `Sequent is ${this.state}: it accepts no new tasks`
  }
}

/**
 * The task was accepted but never finished: `stop` (or the close of the
 * executor's scope after its grace period) dropped it from the queue or
 * interrupted its running attempt.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentStoppedError extends Data.TaggedError("SequentStoppedError")<{
  readonly attempts: number
}> {
  override get message(): string {
    return this.attempts === 0
      ? "Sequent was stopped before the task started"
      : `Sequent was stopped during the task, after ${this.attempts} attempt(s)`
  }
}

/**
 * The task's last attempt returned exactly `false` (the Go library's boolean
 * contract) and its retry schedule gave up.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentFalseError extends Data.TaggedError("SequentFalseError")<{}> {
  override get message(): string {
    return "the task returned false"
  }
}

/**
 * An attempt ran longer than the task's `timeout` and was interrupted. It counts
 * as a failed attempt; when the retry schedule gives up after it, `submit`
 * fails with this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentTimeoutError extends Data.TaggedError("SequentTimeoutError")<{
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `the attempt did not finish within ${Duration.format(this.timeout)}`
  }
}

/**
 * The executor was built with a `capacity` and `onFull: "fail"`, and its queue
 * was full: the task was not accepted.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentFullError extends Data.TaggedError("SequentFullError")<{
  readonly capacity: number
}> {
  override get message(): string {
    return `Sequent's queue is full (capacity ${this.capacity})`
  }
}

/**
 * An option given to `Sequent.make`, `Sequent.layer`, `schedule` or `submit` is
 * out of range (for example a negative `capacity`).
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentOptionError extends Data.TaggedError("SequentOptionError")<{
  readonly option: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid option ${this.option}: ${this.reason}`
  }
}

/**
 * A durable task could not be scheduled: it is not an instance of a task kind
 * registered with the executor, it does not encode with its kind's schema,
 * its encoded form is not one JSON gives back (a `bigint` or a cycle, `NaN`
 * or `Infinity`, a `Map` or a `Date` under `Schema.Unknown`), or its id or
 * key cannot be stored exactly (see `DurableTaskOptions`). `reason` says
 * which. Nothing was written.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentInvalidTaskError extends Data.TaggedError("SequentInvalidTaskError")<{
  readonly tag: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot schedule task ${this.tag}: ${this.reason}`
  }
}

/**
 * The handler of a `Schema.TaggedRequest` task finished, but its success or
 * its failure does not encode (or decode) with the kind's schema, so no
 * caller in another process could receive it. The task itself counts as the
 * handler decided: a success is completed, a failure that gave up is
 * dead-lettered. `reason` is the schema's message.
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentOutcomeError extends Data.TaggedError("SequentOutcomeError")<{
  readonly tag: string
  readonly outcome: "success" | "failure"
  readonly reason: string
}> {
  override get message(): string {
    return `the ${this.outcome} of a ${this.tag} task does not round-trip through its schema: ${this.reason}`
  }
}

/**
 * A `submit` of a `Schema.TaggedRequest` task whose id is already taken by a
 * pending or dead-lettered task: nothing was stored or run, and there is no
 * outcome to answer with (the first task's outcome goes to its own caller).
 *
 * @since 0.1.0
 * @category errors
 */
export class SequentDuplicateTaskError extends Data.TaggedError("SequentDuplicateTaskError")<{
  readonly tag: string
  readonly id: string
}> {
  override get message(): string {
    return `a ${this.tag} task with id ${this.id} is already pending or dead-lettered: nothing was stored or run`
  }
}
