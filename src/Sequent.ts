/**
 * `Sequent` runs background tasks strictly one at a time, in the order they were
 * scheduled. A task that fails is retried in place, with jittered exponential
 * backoff, until it succeeds; the next task waits for it.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as LogLevel from "effect/LogLevel"
import type * as Queue from "effect/Queue"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as executor from "./internal/executor.js"
import * as options from "./internal/options.js"
import * as internal from "./internal/sequent.js"
import type { SequentEvent, SequentMetrics, SequentStatus } from "./Observability.js"
import type {
  SequentClosedError,
  SequentFalseError,
  SequentFullError,
  SequentOptionError,
  SequentStoppedError,
  SequentTimeoutError
} from "./SequentError.js"

/**
 * The default retry policy: exponential from 10 ms with factor 2, each delay
 * jittered (x0.8 to x1.2), then capped so that no delay exceeds 30 seconds. It
 * never gives up.
 *
 * @since 0.1.0
 * @category retry
 */
export const defaultRetry: Schedule.Schedule<unknown, unknown> = options.defaultRetry

/**
 * How a task that gave up (its retry schedule ran out, or it failed with an
 * error its `isRetryable` rejects) is reported to the `deadLetter` handler:
 * its lane's `key` (undefined for the default lane), the `attempts` it made,
 * and the `cause` of its last failure.
 *
 * @since 0.1.0
 * @category models
 */
export interface GiveUp extends executor.GiveUp {}

/**
 * The argument of the `deadLetter` handler: the same as {@link GiveUp}, under
 * the name it first had (not the journal's `DeadLetter` record).
 *
 * @since 0.1.0
 * @category models
 */
export type DeadLetter = GiveUp

/**
 * The level at which an executor logs each failed attempt: one of Effect's
 * `LogLevel` literals, or `"None"` for no log. (`"All"` is left out: a message
 * at that level is below every minimum level, so no logger would show it.)
 *
 * @since 0.1.0
 * @category models
 */
export type AttemptLogLevel = Exclude<LogLevel.Literal, "All">

/**
 * Options of an executor, given to {@link Sequent.layer} or {@link Sequent.make}.
 * `R` is what the `deadLetter` handler requires: the layer requires it in turn.
 *
 * A value out of range or of the wrong kind is a programming error: building
 * the executor dies with a `SequentOptionError` that names the option.
 *
 * @since 0.1.0
 * @category models
 */
export interface SequentOptions<R = never> {
  /** The retry schedule of every task that has none of its own. Default: {@link defaultRetry}. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /**
   * When the executor's scope closes, how long it flushes before it stops and
   * drops what is left. Default: 30 seconds.
   */
  readonly closeGracePeriod?: Duration.DurationInput | undefined
  /**
   * How many lanes (keys) may run a task at the same time. Tasks of one lane
   * always run one at a time. Default: 1.
   */
  readonly concurrency?: number | "unbounded" | undefined
  /** The most tasks accepted and not yet finished. Default: unbounded. */
  readonly capacity?: number | undefined
  /** When `capacity` is reached: wait for room (default) or fail with `SequentFullError`. */
  readonly onFull?: "wait" | "fail" | undefined
  /**
   * When a task gives up: the lane moves on to its next task (`"continue"`, the
   * default), or halts until `resume(key)` (`"halt"`).
   */
  readonly onGiveUp?: "continue" | "halt" | undefined
  /**
   * Receives every task that gave up, before its lane moves on. It runs with
   * the services of the context the executor is built in (`R`, which the
   * layer requires). Its failures, defects included, are logged at Error and
   * ignored.
   */
  readonly deadLetter?: ((giveUp: GiveUp) => Effect.Effect<unknown, unknown, R>) | undefined
  /**
   * The level each failed attempt that will be retried is logged at, in one
   * line without a stack (`Sequent: attempt 3 failed: HttpError: 503 from
   * backend`); `"None"` logs nothing. Default: `"Warning"`. A task that gives up
   * is always logged at Error, with its whole cause.
   */
  readonly attemptLogLevel?: AttemptLogLevel | undefined
  /** The executor's name: the `executor` tag of its metrics, and the `name` of its status. Default: `"default"`. */
  readonly name?: string | undefined
  /**
   * Update the executor's metrics (on by default). Off, the metrics stay at
   * zero; events, status and spans are unaffected.
   */
  readonly metrics?: boolean | undefined
  /** Tag every metric with the lane's `key` too. Off by default: one series per key can be many. */
  readonly laneMetrics?: boolean | undefined
  /**
   * Trace every task (a `Sequent.task` span, with a `Sequent.attempt` child per
   * attempt). `"auto"` (the default) traces when a tracer other than Effect's
   * built-in one is installed where the executor is built, such as an
   * OpenTelemetry tracer.
   */
  readonly spans?: boolean | "auto" | undefined
  /**
   * How many events each subscriber to `events` may fall behind before it
   * loses the oldest ones. Default: 4096.
   */
  readonly eventBuffer?: number | undefined
  /**
   * Let the event loop turn while a backlog drains (on by default): about once
   * a millisecond of work, a worker that has more to do, and a `schedule` call
   * while tasks wait, first wait for the event loop's next turn, so that
   * timers, I/O and other callbacks (a server's requests, a task's own
   * `Effect.sleep` or backoff) run meanwhile. Off, they let only other fibers
   * run: a little more throughput for a process that does nothing else.
   */
  readonly yieldToEventLoop?: boolean | undefined
}

/**
 * Options of one task, given to `schedule` or `submit`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskOptions<E = unknown> {
  /** The task's lane: tasks with the same key run one at a time, in order. Default: the shared default lane. */
  readonly key?: string | undefined
  /** This task's retry schedule, in place of the executor's. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** A limit on each attempt: a longer attempt is interrupted and counts as failed. Must be positive. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Whether a typed failure is worth retrying; a failure it rejects gives up at once. */
  readonly isRetryable?: ((error: E) => boolean) | undefined
}

/**
 * `true` when options of type `O` may carry a `timeout`: they have the key, and
 * its type is not only `undefined`. Distributes over a union of options.
 */
type MayTimeOut<O> = O extends unknown
  ? "timeout" extends keyof O ? [O["timeout" & keyof O]] extends [undefined] ? never : true : never
  : never

/**
 * What `schedule` can fail with, given the task's options: `SequentOptionError`
 * whenever a `timeout` may be given (a timeout that is not positive is refused
 * at run time, so a `DurationInput | undefined` keeps the error in the type).
 *
 * @since 0.1.0
 * @category models
 */
export type ScheduleError<O> =
  | SequentClosedError
  | SequentFullError
  | ([MayTimeOut<O>] extends [never] ? never : SequentOptionError)

/**
 * What `submit` can fail with beyond the task's own errors: the `schedule`
 * errors, `SequentStoppedError`, and, where they can happen,
 * `SequentFalseError` (the task's result type admits `false`) and
 * `SequentTimeoutError` (the task has a `timeout`).
 *
 * @since 0.1.0
 * @category models
 */
export type SubmitError<A, O> =
  | ScheduleError<O>
  | SequentStoppedError
  | (false extends A ? SequentFalseError : never)
  | ([MayTimeOut<O>] extends [never] ? never : SequentTimeoutError)

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Sequent {
  /**
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /**
     * Puts the task at the end of its lane and returns at once. The task runs
     * later with the caller's services (`R` is taken from the caller's context
     * now). Fails with `SequentClosedError` once `flush` or `stop` has begun.
     */
    readonly schedule: <A, E, R, const O extends TaskOptions<any> = {}>(
      task: Effect.Effect<A, E, R>,
      options?: O & TaskOptions<E>
    ) => Effect.Effect<void, ScheduleError<O>, R>
    /** Schedules the task, then waits for how it ends. */
    readonly submit: <A, E, R, const O extends TaskOptions<any> = {}>(
      task: Effect.Effect<A, E, R>,
      options?: O & TaskOptions<E>
    ) => Effect.Effect<A, E | SubmitError<A, O>, R>
    /** Graceful shutdown: closes intake and waits until every accepted task has finished. */
    readonly flush: Effect.Effect<void>
    /** Immediate shutdown: closes intake, interrupts the running tasks, drops the queued ones. */
    readonly stop: Effect.Effect<void>
    /** Tasks accepted and not yet finished (queued plus running). */
    readonly size: Effect.Effect<number>
    /** Tasks accepted and not yet finished in the lane of `key`. */
    readonly sizeOf: (key: string) => Effect.Effect<number>
    /** Starts no new attempt in the lane of `key`, or in every lane when no key is given. */
    readonly pause: (key?: string) => Effect.Effect<void>
    /** Undoes `pause` (and a halt after a give-up) for `key`, or for every lane when no key is given. */
    readonly resume: (key?: string) => Effect.Effect<void>
    /**
     * How many keyed lanes are alive: a lane lives while it has tasks, or is
     * paused or halted, and is forgotten once it is empty and free again.
     */
    readonly laneCount: Effect.Effect<number>
    /** A snapshot: the size, and each busy lane with its head task's attempts, failure and next attempt. */
    readonly status: Effect.Effect<SequentStatus>
    /**
     * Every event from now on. The worker never waits for a subscriber: one that
     * falls more than `eventBuffer` events behind loses the oldest it has not read.
     */
    readonly events: Stream.Stream<SequentEvent>
    /** Subscribes now, for as long as the scope lives: what `events` is made of. */
    readonly subscribe: Effect.Effect<Queue.Dequeue<SequentEvent>, never, Scope.Scope>
    /** The executor's metrics. */
    readonly metrics: SequentMetrics
  }
}

/**
 * Builds an executor whose worker runs until the scope closes. Closing the scope
 * flushes for at most `closeGracePeriod`, then stops, logging a warning with the
 * number of tasks dropped, if any. It requires what the `deadLetter` handler
 * requires, and gives the handler those services.
 *
 * Invalid options (a `concurrency` below 1, a `retry` that is not a `Schedule`,
 * an `onFull` that is neither `"wait"` nor `"fail"`, ...) are a programming
 * error: the effect dies with a `SequentOptionError` naming the option.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <R = never>(
  options?: SequentOptions<R>
) => Effect.Effect<Sequent.Service, never, Scope.Scope | R> = internal.make

/**
 * The executor service. Use the static accessors inside `Effect.gen`:
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Sequent, SequentLive } from "effect-sequent"
 *
 * const program = Effect.gen(function*() {
 *   yield* Sequent.schedule(Effect.log("first"))
 *   yield* Sequent.schedule(Effect.log("second"))
 *   yield* Sequent.flush
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(SequentLive)))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Sequent extends Context.Tag("effect-sequent/Sequent")<Sequent, Sequent.Service>() {
  /**
   * A layer that builds an executor with the given options.
   *
   * @since 0.1.0
   */
  static readonly layer = <R = never>(options?: SequentOptions<R>): Layer.Layer<Sequent, never, R> => layer(options)

  /**
   * Builds an executor in a scope, without a layer.
   *
   * @since 0.1.0
   */
  static readonly make = <R = never>(
    options?: SequentOptions<R>
  ): Effect.Effect<Sequent.Service, never, Scope.Scope | R> => make(options)

  /** @since 0.1.0 */
  static readonly schedule = <A, E, R, const O extends TaskOptions<any> = {}>(
    task: Effect.Effect<A, E, R>,
    options?: O & TaskOptions<E>
  ): Effect.Effect<void, ScheduleError<O>, R | Sequent> =>
    internal.accessSchedule(Sequent, task, options) as Effect.Effect<void, ScheduleError<O>, R | Sequent>

  /** @since 0.1.0 */
  static readonly submit = <A, E, R, const O extends TaskOptions<any> = {}>(
    task: Effect.Effect<A, E, R>,
    options?: O & TaskOptions<E>
  ): Effect.Effect<A, E | SubmitError<A, O>, R | Sequent> =>
    internal.accessSubmit(Sequent, task, options) as Effect.Effect<A, E | SubmitError<A, O>, R | Sequent>

  /** @since 0.1.0 */
  static readonly flush: Effect.Effect<void, never, Sequent> = Effect.flatMap(Sequent, (sequent) => sequent.flush)

  /** @since 0.1.0 */
  static readonly stop: Effect.Effect<void, never, Sequent> = Effect.flatMap(Sequent, (sequent) => sequent.stop)

  /** @since 0.1.0 */
  static readonly size: Effect.Effect<number, never, Sequent> = Effect.flatMap(Sequent, (sequent) => sequent.size)

  /** @since 0.1.0 */
  static readonly sizeOf = (key: string): Effect.Effect<number, never, Sequent> =>
    Effect.flatMap(Sequent, (sequent) => sequent.sizeOf(key))

  /** @since 0.1.0 */
  static readonly pause = (key?: string): Effect.Effect<void, never, Sequent> =>
    Effect.flatMap(Sequent, (sequent) => sequent.pause(key))

  /** @since 0.1.0 */
  static readonly resume = (key?: string): Effect.Effect<void, never, Sequent> =>
    Effect.flatMap(Sequent, (sequent) => sequent.resume(key))

  /** @since 0.1.0 */
  static readonly laneCount: Effect.Effect<number, never, Sequent> = Effect.flatMap(
    Sequent,
    (sequent) => sequent.laneCount
  )

  /** @since 0.1.0 */
  static readonly status: Effect.Effect<SequentStatus, never, Sequent> = Effect.flatMap(
    Sequent,
    (sequent) => sequent.status
  )

  /** @since 0.1.0 */
  static readonly events: Stream.Stream<SequentEvent, never, Sequent> = Stream.unwrap(
    Effect.map(Sequent, (sequent) => sequent.events)
  )

  /** @since 0.1.0 */
  static readonly subscribe: Effect.Effect<Queue.Dequeue<SequentEvent>, never, Sequent | Scope.Scope> = Effect
    .flatMap(Sequent, (sequent) => sequent.subscribe)
}

/**
 * A layer that builds an executor with the given options.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R = never>(options?: SequentOptions<R>): Layer.Layer<Sequent, never, R> =>
  Layer.scoped(Sequent, make(options))

/**
 * The executor with the default policy: one lane at a time, retried with
 * {@link defaultRetry}, 30 seconds of grace when its scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const SequentLive: Layer.Layer<Sequent> = layer()
