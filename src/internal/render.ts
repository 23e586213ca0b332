/**
 * What the executor logs about failures. A failed attempt is one line: the
 * failure's tag (or error name) and message, no stack, so that a task retrying
 * for an hour does not fill the log with traces. A give-up is one line too,
 * with the full cause attached as the log's cause, where loggers and exporters
 * look for it.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Inspectable from "effect/Inspectable"
import * as LogLevel from "effect/LogLevel"
import * as Predicate from "effect/Predicate"

/** Fields of an error without a message are shown up to this many characters. */
const FIELDS_SHOWN = 200

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ")

/**
 * An error's fields, for one that has no message to say what went wrong, as
 * JSON (a bigint field as `5n`, which JSON has no form for); what JSON cannot
 * show falls back to `String`.
 */
const fieldsOf = (error: object): string => {
  const fields = Object.entries(error)
    .filter(([name]) => name !== "_tag" && name !== "stack" && name !== "message")
    .map(([name, value]) => [name, typeof value === "bigint" ? `${value}n` : value])
  if (fields.length === 0) return ""
  const shown = Inspectable.toStringUnknown(Object.fromEntries(fields), 0)
  return ` ${shown.length > FIELDS_SHOWN ? `${shown.slice(0, FIELDS_SHOWN)}...` : shown}`
}

/**
 * One failure value: a tagged or `Error` value as `Tag: message` (its fields
 * when it has no message), a string as itself, anything else as JSON.
 */
export const renderFailure = (failure: unknown): string => {
  if (typeof failure === "string") return oneLine(failure)
  if (Predicate.isObject(failure)) {
    const tag = Predicate.hasProperty(failure, "_tag") && typeof failure._tag === "string"
      ? failure._tag
      : failure instanceof Error
      ? failure.name
      : undefined
    const message = Predicate.hasProperty(failure, "message") && typeof failure.message === "string"
      ? oneLine(failure.message)
      : ""
    if (tag !== undefined) return message === "" ? `${tag}${fieldsOf(failure)}` : `${tag}: ${message}`
    if (message !== "") return message
  }
  return oneLine(Inspectable.toStringUnknown(failure, 0))
}

/**
 * A failure the task made up is the task's code: a getter that throws must not
 * take the worker down with the log line that reads it.
 */
const renderSafely = (failure: unknown): string =>
  Either.getOrElse(Either.try(() => renderFailure(failure)), () => "(a failure that cannot be shown)")

/** A cause in one line: its failures, its defects marked as such, and whether it was interrupted. */
export const renderCause = (cause: Cause.Cause<unknown>): string => {
  const parts = [
    ...Chunk.toReadonlyArray(Cause.failures(cause)).map(renderSafely),
    ...Chunk.toReadonlyArray(Cause.defects(cause)).map((defect) => `${renderSafely(defect)} (defect)`)
  ]
  if (Cause.isInterrupted(cause)) parts.push("interrupted")
  return parts.length === 0 ? "no failure" : parts.join("; ")
}

const laneName = (key: string | undefined): string => key ?? "(default)"

/** The log of an attempt that failed and will be retried after `delay` ms; nothing at `LogLevel.None`. */
export const logAttemptFailed = (
  level: LogLevel.LogLevel,
  attempt: number,
  key: string | undefined,
  delay: number,
  cause: Cause.Cause<unknown>
): Effect.Effect<void> =>
  level === LogLevel.None
    ? Effect.void
    : Effect.logWithLevel(level, `Sequent: attempt ${attempt} failed: ${renderCause(cause)}`).pipe(
      Effect.annotateLogs({ attempt, key: laneName(key), retryIn: `${Math.round(delay)}ms` })
    )

/** The log of a task that gave up: at Error, one line, with the whole cause as the log's cause. */
export const logGaveUp = (
  attempts: number,
  key: string | undefined,
  cause: Cause.Cause<unknown>
): Effect.Effect<void> =>
  Effect.logError(`Sequent: task gave up after ${attempts} attempt(s): ${renderCause(cause)}`, cause).pipe(
    Effect.annotateLogs({ attempts, key: laneName(key) })
  )
