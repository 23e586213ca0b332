/**
 * The outcome a durable `submit` caller sees: a `Schema.TaggedRequest`
 * kind's success and typed failures after a round trip through its schemas,
 * `void` for a `Schema.TaggedClass` kind.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  SequentDuplicateTaskError,
  SequentFalseError,
  SequentOutcomeError,
  SequentStoppedError,
  SequentTimeoutError
} from "../SequentError.js"
import type { AnyTaskKind, FailureOf, OutcomeError, ResultSchema, SuccessOf } from "../TaskKind.js"

interface RequestKind extends AnyTaskKind {
  readonly success: ResultSchema
  readonly failure: ResultSchema
}

const isRequestKind = (kind: AnyTaskKind): kind is RequestKind =>
  Schema.isSchema(kind.success) && Schema.isSchema(kind.failure)

/**
 * Errors of the executor's own, which a waiter receives as they are: they are
 * no outcome of the handler (a `SequentOutcomeError` comes from an outcome
 * that could not travel between instances, or never came).
 */
const isExecutorError = (error: unknown): boolean =>
  error instanceof SequentStoppedError || error instanceof SequentFalseError ||
  error instanceof SequentDuplicateTaskError || error instanceof SequentOutcomeError

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

/** An attempt's timeout, the one error of the executor's own a give-up's cause can hold. */
const TimeoutSchema = Schema.transform(
  Schema.Struct({ _tag: Schema.Literal("SequentTimeoutError"), millis: Schema.Number }),
  Schema.instanceOf(SequentTimeoutError),
  {
    strict: true,
    decode: ({ millis }) => new SequentTimeoutError({ timeout: Duration.millis(millis) }),
    encode: (error) => ({ _tag: "SequentTimeoutError" as const, millis: Duration.toMillis(error.timeout) })
  }
)

/** A failed round trip of an outcome, which travels as itself. */
const OutcomeErrorSchema = Schema.transform(
  Schema.Struct({
    _tag: Schema.Literal("SequentOutcomeError"),
    tag: Schema.String,
    outcome: Schema.Literal("success", "failure"),
    reason: Schema.String
  }),
  Schema.instanceOf(SequentOutcomeError),
  {
    strict: true,
    decode: ({ outcome, reason, tag }) => new SequentOutcomeError({ tag, outcome, reason }),
    encode: ({ outcome, reason, tag }) => ({ _tag: "SequentOutcomeError" as const, tag, outcome, reason })
  }
)

/**
 * How an outcome travels between instances, as JSON: a request kind's
 * success and typed failures through its schemas; anything else a handler
 * fails or dies with as `Schema.Defect` has it (an `Error` keeps its name
 * and message). A plain kind's success travels as `null`: its `submit`
 * answers `void`.
 */
const exitSchema = (kind: AnyTaskKind | undefined): Schema.Schema<Exit.Exit<unknown, unknown>, string> => {
  const request = kind !== undefined && isRequestKind(kind)
  const success = request ? kind.success as Schema.Schema<unknown, unknown> : Schema.Null
  const failure = request
    ? Schema.Union(kind.failure as Schema.Schema<unknown, unknown>, TimeoutSchema, OutcomeErrorSchema, Schema.Defect)
    : Schema.Union(TimeoutSchema, OutcomeErrorSchema, Schema.Defect)
  return Schema.parseJson(Schema.Exit({ success, failure, defect: Schema.Defect })) as Schema.Schema<
    Exit.Exit<unknown, unknown>,
    string
  >
}

/**
 * Outcomes of tasks as text, for a `submit` whose task runs on another
 * instance: the instance that runs it encodes, the one that waits decodes. An
 * outcome that does not encode travels as its `SequentOutcomeError`.
 *
 * @internal
 */
export const makeCodec = (kinds: ReadonlyMap<string, AnyTaskKind>) => {
  const schemas = new Map<string, Schema.Schema<Exit.Exit<unknown, unknown>, string>>()
  const schemaOf = (tag: string) => {
    let schema = schemas.get(tag)
    if (schema === undefined) schemas.set(tag, schema = exitSchema(kinds.get(tag)))
    return schema
  }
  const plain = (tag: string, exit: Exit.Exit<unknown, unknown>) => {
    const kind = kinds.get(tag)
    return Exit.isSuccess(exit) && (kind === undefined || !isRequestKind(kind)) ? Exit.succeed(null) : exit
  }
  return {
    encode: (tag: string, exit: Exit.Exit<unknown, unknown>): Effect.Effect<string> =>
      Schema.encode(schemaOf(tag))(plain(tag, exit)).pipe(
        Effect.catchAll((error) => {
          const failed = new SequentOutcomeError({
            tag,
            outcome: Exit.isSuccess(exit) ? "success" : "failure",
            reason: error.message
          })
          return Effect.orDie(Schema.encode(schemaOf(tag))(Exit.fail(failed)))
        })
      ),
    decode: (tag: string, text: string): Effect.Effect<Exit.Exit<unknown, unknown>> =>
      Schema.decode(schemaOf(tag))(text).pipe(
        Effect.catchAll((error) =>
          Effect.succeed(Exit.fail(new SequentOutcomeError({ tag, outcome: "failure", reason: error.message })))
        )
      )
  }
}

/** @internal */
export type OutcomeCodec = ReturnType<typeof makeCodec>
