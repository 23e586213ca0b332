/**
 * effect-sequent: sequential background processing for Effect.
 *
 * @since 0.1.0
 */
export {
  type AttemptLogLevel,
  type DeadLetter,
  defaultRetry,
  type GiveUp,
  layer,
  make,
  type ScheduleError,
  Sequent,
  SequentLive,
  type SequentOptions,
  type SubmitError,
  type TaskOptions
} from "./Sequent.js"

export {
  SequentClosedError,
  SequentFalseError,
  SequentFullError,
  SequentOptionError,
  SequentStoppedError,
  SequentTimeoutError
} from "./SequentError.js"

export {
  type DurableOptions,
  type DurableScheduleError,
  DurableSequent,
  type DurableTask,
  type DurableTaskOptions
} from "./Durable.js"

export * as Durable from "./Durable.js"

export {
  type AppendResult,
  type DeadLetter as JournalDeadLetter,
  Journal,
  type JournalEntry,
  JournalError,
  JournalLockedError,
  JournalNotFoundError,
  type JournalRecord
} from "./Journal.js"

export * as Observability from "./Observability.js"

export { type LaneStatus, SequentEvent, type SequentStatus, type TaskStatus } from "./Observability.js"

export { SequentDuplicateTaskError, SequentInvalidTaskError, SequentOutcomeError } from "./SequentError.js"

export * as TaskKind from "./TaskKind.js"

export { TaskHandlers } from "./TaskKind.js"
