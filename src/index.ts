/**
 * effect-sequent: sequential background processing for Effect.
 *
 * @since 0.1.0
 */
export {
  type DeadLetter,
  defaultRetry,
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
