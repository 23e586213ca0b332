/**
 * The options of an executor and of its tasks, checked and given their
 * defaults. Each rule is written once, as what it expects and how it reads a
 * value; a value it refuses is a `SequentOptionError` naming the option. The
 * values are `unknown` here: a JavaScript caller (or a cast) can pass anything.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { SequentOptionError } from "../SequentError.js"
import type { GiveUp } from "./executor.js"
import type { Policy } from "./lane.js"

/** What a rule accepts, in words, and the value it reads from an input it accepts (undefined: refused). */
interface Rule<A> {
  readonly expected: string
  readonly read: (value: unknown) => A | undefined
}

const rule = <A>(expected: string, read: (value: unknown) => A | undefined): Rule<A> => ({ expected, read })

const is = <A>(expected: string, test: (value: unknown) => value is A): Rule<A> =>
  rule(expected, (value) => test(value) ? value : undefined)

const oneOf = <const L extends string>(...choices: ReadonlyArray<L>): Rule<L> => {
  const quoted = choices.map((choice) => JSON.stringify(choice))
  const expected = quoted.length === 2 ? quoted.join(" or ") : `one of ${quoted.join(", ")}`
  return is(expected, (value): value is L => choices.includes(value as L))
}

const isWhole = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 1

/** The duration an input stands for; undefined for a negative or NaN one, which `Duration.decode` reads as zero. */
const durationOf = (value: unknown): Duration.Duration | undefined => {
  const negative = typeof value === "number"
    ? !(value >= 0)
    : typeof value === "bigint"
    ? value < 0n
    : typeof value === "string"
    ? value.startsWith("-")
    : Array.isArray(value) && !value.every((part) => typeof part === "number" && part >= 0)
  return negative ? undefined : Option.getOrUndefined(Duration.decodeUnknown(value))
}

const wholeNumber = is("a whole number >= 1", isWhole)
const concurrency = rule(
  `a whole number >= 1 or "unbounded"`,
  (value) => value === "unbounded" ? Infinity : isWhole(value) ? value : undefined
)
const nonNegativeDuration = rule("a non-negative duration", durationOf)
const positiveDuration = rule("a positive duration", (value) => {
  const duration = durationOf(value)
  return duration !== undefined && Duration.greaterThan(duration, Duration.zero) ? duration : undefined
})
const schedule = is("a Schedule", (value): value is Schedule.Schedule<unknown, unknown> => Schedule.isSchedule(value))
/** A function; what it takes and returns is the caller's contract, as the types state it, and is not checked. */
const fn = <F>(): Rule<F> => is("a function", (value): value is F => typeof value === "function")
const text = is("a string", (value): value is string => typeof value === "string")
const flag = is("a boolean", (value): value is boolean => typeof value === "boolean")
const spans = is(
  `a boolean or "auto"`,
  (value): value is boolean | "auto" => typeof value === "boolean" || value === "auto"
)
const onFull = oneOf("wait", "fail")
const onGiveUp = oneOf("continue", "halt")
/** Effect's log levels but `"All"`, which is below every minimum level; `"None"` turns the log off. */
const levels = oneOf("Fatal", "Error", "Warning", "Info", "Debug", "Trace", "None")
const logLevel = rule(levels.expected, (value) => {
  const level = levels.read(value)
  return level === undefined ? undefined : LogLevel.fromLiteral(level)
})

/** A value as a reason shows it: strings quoted, so that `"1"` and `1` read apart. */
const show = (value: unknown): string =>
  typeof value === "string"
    ? JSON.stringify(value)
    : typeof value === "function"
    ? "a function"
    : Array.isArray(value)
    ? `[${value.map(show).join(", ")}]`
    : typeof value === "object" && value !== null
    ? "an object"
    : String(value)

const refused = (option: string, value: unknown, expected: string): SequentOptionError =>
  new SequentOptionError({ option, reason: `expected ${expected}, got ${show(value)}` })

/** Reads an option: its default when it is absent, its value when the rule accepts it. */
const read = <A>(option: string, value: unknown, rule: Rule<A>, fallback: A): Either.Either<A, SequentOptionError> => {
  if (value === undefined) return Either.right(fallback)
  const decoded = rule.read(value)
  return decoded === undefined ? Either.left(refused(option, value, rule.expected)) : Either.right(decoded)
}

const readOptional = <A>(
  option: string,
  value: unknown,
  rule: Rule<A>
): Either.Either<A | undefined, SequentOptionError> => read<A | undefined>(option, value, rule, undefined)

type DeadLetterHandler<R> = (giveUp: GiveUp) => Effect.Effect<unknown, unknown, R>

/** The executor options as a caller may pass them. */
export interface ExecutorOptionsInput<R> {
  readonly retry?: unknown
  readonly closeGracePeriod?: unknown
  readonly concurrency?: unknown
  readonly capacity?: unknown
  readonly onFull?: unknown
  readonly onGiveUp?: unknown
  readonly deadLetter?: DeadLetterHandler<R> | undefined
  readonly attemptLogLevel?: unknown
  readonly name?: unknown
  readonly metrics?: unknown
  readonly laneMetrics?: unknown
  readonly spans?: unknown
  readonly eventBuffer?: unknown
  readonly yieldToEventLoop?: unknown
}

/** The executor options, checked, with their defaults. */
export interface ExecutorSettings<R> {
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly closeGracePeriod: Duration.Duration
  readonly concurrency: number
  readonly capacity: number
  readonly onFull: "wait" | "fail"
  readonly onGiveUp: "continue" | "halt"
  readonly deadLetter: DeadLetterHandler<R> | undefined
  /** `LogLevel.None`: failed attempts are not logged. */
  readonly attemptLogLevel: LogLevel.LogLevel
  readonly name: string
  readonly metrics: boolean
  readonly laneMetrics: boolean
  readonly spans: boolean | "auto"
  readonly eventBuffer: number
  readonly yieldToEventLoop: boolean
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null

/** Checks every executor option, in a fixed order, and fails with the first that is refused. */
export const decodeExecutorOptions = <R>(
  options: ExecutorOptionsInput<R>,
  defaultRetry: Schedule.Schedule<unknown, unknown>
): Either.Either<ExecutorSettings<R>, SequentOptionError> =>
  isRecord(options) ?
    Either.gen(function*() {
      return {
        retry: yield* read("retry", options.retry, schedule, defaultRetry),
        closeGracePeriod: yield* read(
          "closeGracePeriod",
          options.closeGracePeriod,
          nonNegativeDuration,
          Duration.seconds(30)
        ),
        concurrency: yield* read("concurrency", options.concurrency, concurrency, 1),
        capacity: yield* read("capacity", options.capacity, wholeNumber, Infinity),
        onFull: yield* read("onFull", options.onFull, onFull, "wait"),
        onGiveUp: yield* read("onGiveUp", options.onGiveUp, onGiveUp, "continue"),
        deadLetter: yield* readOptional("deadLetter", options.deadLetter, fn<DeadLetterHandler<R>>()),
        attemptLogLevel: yield* read("attemptLogLevel", options.attemptLogLevel, logLevel, LogLevel.Warning),
        name: yield* read("name", options.name, text, "default"),
        metrics: yield* read("metrics", options.metrics, flag, true),
        laneMetrics: yield* read("laneMetrics", options.laneMetrics, flag, false),
        spans: yield* read("spans", options.spans, spans, "auto"),
        eventBuffer: yield* read("eventBuffer", options.eventBuffer, wholeNumber, 4096),
        yieldToEventLoop: yield* read("yieldToEventLoop", options.yieldToEventLoop, flag, true)
      }
    }) :
    Either.left(refused("options", options, "an object"))

/**
 * Refuses the options a durable executor has no use for: its journal holds
 * every task it accepts, so there is no capacity to fill. Their type leaves
 * them out; this stops a caller the types do not reach.
 */
export const refuseInDurableMode = (options: unknown): Either.Either<void, SequentOptionError> => {
  if (!isRecord(options)) return Either.void
  const option = ["capacity", "onFull"].find((name) => options[name] !== undefined)
  return option === undefined
    ? Either.void
    : Either.left(
      new SequentOptionError({ option, reason: "a durable executor has no capacity: its journal holds every task" })
    )
}

/** A task's options as a caller may pass them. */
export interface TaskOptionsInput {
  readonly key?: unknown
  readonly retry?: unknown
  readonly timeout?: unknown
  readonly isRetryable?: unknown
}

/**
 * A task's policy, or the error of its first refused option. Options that set
 * only a key, as every keyed task's do, cost a few checks and share
 * `fallback`, the executor's policy: no `Either` is built on that path.
 */
export const taskPolicy = (options: TaskOptionsInput, fallback: Policy): Policy | SequentOptionError => {
  if (!isRecord(options)) return refused("options", options, "an object")
  const { isRetryable, key, retry, timeout } = options
  if (key !== undefined && text.read(key) === undefined) return refused("key", key, text.expected)
  if (retry === undefined && timeout === undefined && isRetryable === undefined) return fallback
  const decoded = Either.all({
    retry: read("retry", retry, schedule, fallback.retry),
    timeout: readOptional("timeout", timeout, positiveDuration),
    isRetryable: readOptional("isRetryable", isRetryable, fn<NonNullable<Policy["isRetryable"]>>())
  })
  return Either.isLeft(decoded) ? decoded.left : decoded.right
}

/** @internal */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("10 millis", 2).pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(30)))
)

/**
 * What the executor runs on: its options, checked, with the `deadLetter`
 * handler's services already provided.
 *
 * @internal
 */
export interface Config {
  readonly name: string
  readonly policy: Policy
  readonly concurrency: number
  readonly capacity: number
  readonly onFull: "wait" | "fail"
  readonly onGiveUp: "continue" | "halt"
  /** Runs with the services it needs already provided; its failures are logged and ignored. */
  readonly deadLetter: ((giveUp: GiveUp) => Effect.Effect<unknown, unknown>) | undefined
  /** The level failed attempts are logged at; `LogLevel.None` for no log. */
  readonly attemptLogLevel: LogLevel.LogLevel
  readonly grace: Duration.Duration
  /** Let the event loop turn while a backlog drains. */
  readonly yieldToEventLoop: boolean
}
