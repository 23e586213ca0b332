/**
 * The outcome a durable `submit` caller sees: a `Schema.TaggedRequest`
 * kind's success and typed failures after a round trip through its schemas,
 * `void` for a `Schema.TaggedClass` kind.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  SequentDuplicateTaskError,
  SequentFalseError,
  SequentOutcomeError,
  SequentStoppedError
} from "../SequentError.js"
import type { AnyTaskKind, FailureOf, OutcomeError, ResultSchema, SuccessOf } from "../TaskKind.js"

interface RequestKind extends AnyTaskKind {
  readonly success: ResultSchema
  readonly failure: ResultSchema
}

const isRequestKind = (kind: AnyTaskKind): kind is RequestKind =>
  Schema.isSchema(kind.success) && Schema.isSchema(kind.failure)

/** Errors of the executor's own, which a waiter receives as they are: they are no outcome of the handler. */
const isExecutorError = (error: unknown): boolean =>
  error instanceof SequentStoppedError || error instanceof SequentFalseError ||
  error instanceof SequentDuplicateTaskError

/** The exit of a task that was not stored, because a task with its id is pending or dead-lettered. */
const isDuplicate = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) &&
  Option.exists(Cause.failureOption(exit.cause), (error) => error instanceof SequentDuplicateTaskError)

const roundTrip = (
  kind: RequestKind,
  outcome: "success" | "failure",
  value: unknown
): Effect.Effect<unknown, SequentOutcomeError> => {
  // the kind's own types play no part here: a value of the handler goes in, the caller's value comes out
  const schema = (outcome === "success" ? kind.success : kind.failure) as Schema.Schema<unknown, unknown>
  return Schema.encodeUnknown(schema)(value).pipe(
    Effect.flatMap((encoded) => Schema.decodeUnknown(schema)(encoded)),
    Effect.mapError((error) => new SequentOutcomeError({ tag: kind._tag, outcome, reason: error.message }))
  )
}

/**
 * The cause with each of the handler's failures replaced by its round trip
 * through the failure schema, or by a `SequentOutcomeError` where it does not
 * encode. Defects and interruptions stay as they are.
 */
const roundTripCause = (kind: RequestKind, cause: Cause.Cause<unknown>): Effect.Effect<Cause.Cause<unknown>> => {
  const failures = Chunk.toReadonlyArray(Cause.failures(cause)).filter((error) => !isExecutorError(error))
  if (failures.length === 0) return Effect.succeed(cause)
  return Effect.map(
    Effect.forEach(failures, (error) => Effect.merge(roundTrip(kind, "failure", error))),
    (decoded) => {
      const byFailure = new Map(failures.map((error, index) => [error, decoded[index]]))
      return Cause.map(cause, (error) => byFailure.has(error) ? byFailure.get(error) : error)
    }
  )
}

/**
 * The outcome a `submit` caller sees, from the exit its task's waiter was
 * settled with, by the kind registered for the task's tag in `kinds`. For a
 * `Schema.TaggedClass` kind, a success is `void` and a failure is as the
 * handler failed. For a `Schema.TaggedRequest` kind, the success and each
 * typed failure make a round trip through the kind's schemas; one that does
 * not encode (or decode) is replaced by a `SequentOutcomeError`. The
 * executor's own errors, defects and interruptions are passed on as they are.
 *
 * @internal
 */
export const outcome = <T extends { readonly _tag: string }>(
  kinds: ReadonlyMap<string, AnyTaskKind>,
  task: T,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<SuccessOf<T>, FailureOf<T> | OutcomeError<T>> => {
  const kind = kinds.get(task._tag)
  let answer: Effect.Effect<unknown, unknown>
  if (kind === undefined || !isRequestKind(kind)) {
    answer = Exit.isSuccess(exit) || isDuplicate(exit)
      ? Effect.void
      : exit
  } else if (Exit.isSuccess(exit)) answer = roundTrip(kind, "success", exit.value)
  else answer = Effect.flatMap(roundTripCause(kind, exit.cause), (cause) => Effect.failCause(cause))
  return answer as Effect.Effect<SuccessOf<T>, FailureOf<T> | OutcomeError<T>>
}
