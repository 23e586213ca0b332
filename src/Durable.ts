/**
 * A durable executor: tasks are written to a journal before `schedule`
 * returns, survive a crash, and resume in order after a restart, per lane,
 * with their attempt counts kept.
 *
 * What is durable when `schedule` returns: the task's kind, payload, lane and
 * id are committed to the journal. A task runs at least once: a task that was
 * running when the process died runs again after the restart; a task whose
 * completion was committed never runs again. The next task of a lane starts
 * only once its predecessor's completion is committed, so after a crash only
 * the tasks in flight can run twice.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as internal from "./internal/durable.js"
import { type DeadLetter, Journal, type JournalError, type JournalNotFoundError } from "./Journal.js"
import type { SequentEvent, SequentStatus } from "./Observability.js"
import type { Sequent, SequentOptions } from "./Sequent.js"
import type { SequentClosedError, SequentInvalidTaskError } from "./SequentError.js"
import {
  type FailureOf,
  type OutcomeError,
  type SuccessOf,
  TaskHandlers,
  type TaskKinds,
  type TaskOf
} from "./TaskKind.js"

/**
 * A durable task: an instance of a registered task kind.
 *
 * @since 0.1.0
 * @category models
 */
export interface DurableTask {
  readonly _tag: string
}

/**
 * Options of a durable executor: those of {@link Sequent.layer} but `capacity`
 * and `onFull`. The journal holds every task it accepts, so there is no
 * capacity to reach; given anyway (by a caller the types do not reach), they
 * make the executor die with a `SequentOptionError`, like any invalid option.
 * `yieldToEventLoop` is off unless given: every `schedule` already waits for
 * its append to commit, and turns of the event loop split the journal's group
 * commits. `R` is what the `deadLetter` handler requires.
 *
 * @since 0.1.0
 * @category models
 */
export interface DurableOptions<R = never> extends Omit<SequentOptions<R>, "capacity" | "onFull"> {}

/**
 * Options of one durable task.
 *
 * An id or a key must be stored by every journal exactly as given, so
 * `schedule` and `submit` refuse with `SequentInvalidTaskError`, before
 * anything is written, one that contains a NUL character or a lone UTF-16
 * surrogate, or that is longer than 1024 bytes of UTF-8.
 *
 * @since 0.1.0
 * @category models
 */
export interface DurableTaskOptions {
  /**
   * The task's lane: tasks with the same key run one at a time, in order. Not
   * empty: a journal stores the lane of a task without a key as `""`.
   */
  readonly key?: string | undefined
  /**
   * An idempotency key: while a task with this id is pending or dead-lettered,
   * scheduling the same id again stores and runs nothing.
   */
  readonly id?: string | undefined
}

/**
 * What scheduling a durable task can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type DurableScheduleError = SequentClosedError | SequentInvalidTaskError | JournalError

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace DurableSequent {
  /**
   * What a `submit` of the task `T` can fail with besides its handler's
   * failure: the scheduling errors, `SequentStoppedError`, and the errors of
   * {@link OutcomeError}.
   *
   * @since 0.1.0
   * @category models
   */
  export type SubmitError<T> = DurableScheduleError | OutcomeError<T>

  /**
   * @since 0.1.0
   * @category models
   */
  export interface Service extends Omit<Sequent.Service, "schedule" | "submit"> {
    /** Encodes the task, writes it to the journal, and returns once it is committed. */
    readonly schedule: (task: DurableTask, options?: DurableTaskOptions) => Effect.Effect<void, DurableScheduleError>
    /**
     * Schedules the task and waits for its handler's outcome. For a
     * `Schema.TaggedRequest` kind that is the handler's success or typed
     * failure after a round trip through the kind's schemas (encoded, then
     * decoded), or `SequentOutcomeError` where it does not round-trip; for a
     * `Schema.TaggedClass` kind it is `void`, or the handler's failure. A
     * failure is reported once the task gives up. A task whose id is already
     * pending or dead-lettered is not stored or run again: `submit` then
     * returns at once, with `void` for a `Schema.TaggedClass` kind and
     * `SequentDuplicateTaskError` for a `Schema.TaggedRequest` kind.
     */
    readonly submit: <T extends DurableTask>(
      task: T,
      options?: DurableTaskOptions
    ) => Effect.Effect<SuccessOf<T>, FailureOf<T> | DurableSequent.SubmitError<T>>
    /** The tasks that gave up, or whose stored payload no longer decodes, with the reason. */
    readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError>
    /** Puts a dead letter back, at the end of its lane, with its attempts reset. */
    readonly redrive: (id: string) => Effect.Effect<void, JournalError | JournalNotFoundError>
    /** Deletes a dead letter for good, answering with it; its id may be scheduled again. */
    readonly discard: (id: string) => Effect.Effect<DeadLetter, JournalError | JournalNotFoundError>
  }
}

/**
 * The durable executor. Use the static accessors inside `Effect.gen`, or
 * {@link DurableSequent.typed} for `schedule` and `submit` that accept only
 * the registered kinds.
 *
 * @since 0.1.0
 * @category tags
 */
export class DurableSequent extends Context.Tag("effect-sequent/DurableSequent")<
  DurableSequent,
  DurableSequent.Service
>() {
  /**
   * Accessors typed by a set of task kinds: scheduling a value that is not one
   * of them is a compile-time error, and `submit` answers with the success
   * and failure types of the task's kind.
   *
   * @since 0.1.0
   */
  static readonly typed = <K extends TaskKinds<any>>(_kinds: K) => ({
    schedule: (
      task: TaskOf<K>,
      options?: DurableTaskOptions
    ): Effect.Effect<void, DurableScheduleError, DurableSequent> =>
      Effect.flatMap(DurableSequent, (sequent) => sequent.schedule(task, options)),
    submit: <T extends TaskOf<K>>(
      task: T,
      options?: DurableTaskOptions
    ): Effect.Effect<SuccessOf<T>, FailureOf<T> | DurableSequent.SubmitError<T>, DurableSequent> =>
      Effect.flatMap(DurableSequent, (sequent) => sequent.submit(task, options))
  })

  /** @since 0.1.0 */
  static readonly schedule = (
    task: DurableTask,
    options?: DurableTaskOptions
  ): Effect.Effect<void, DurableScheduleError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.schedule(task, options))

  /** @since 0.1.0 */
  static readonly submit = <T extends DurableTask>(
    task: T,
    options?: DurableTaskOptions
  ): Effect.Effect<SuccessOf<T>, FailureOf<T> | DurableSequent.SubmitError<T>, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.submit(task, options))

  /** @since 0.1.0 */
  static readonly flush: Effect.Effect<void, never, DurableSequent> = Effect.flatMap(
    DurableSequent,
    (sequent) => sequent.flush
  )

  /** @since 0.1.0 */
  static readonly stop: Effect.Effect<void, never, DurableSequent> = Effect.flatMap(
    DurableSequent,
    (sequent) => sequent.stop
  )

  /** @since 0.1.0 */
  static readonly size: Effect.Effect<number, never, DurableSequent> = Effect.flatMap(
    DurableSequent,
    (sequent) => sequent.size
  )

  /** @since 0.1.0 */
  static readonly sizeOf = (key: string): Effect.Effect<number, never, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.sizeOf(key))

  /**
   * Pauses a lane (every lane with no key). With one owner the pause lasts as
   * long as the process; on a shared PostgreSQL journal it is kept in the
   * journal, honoured by whichever instance runs the lane, until a `resume`
   * on any instance.
   *
   * @since 0.1.0
   */
  static readonly pause = (key?: string): Effect.Effect<void, never, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.pause(key))

  /**
   * Lifts a pause or a halt; the end of a halt is written to the journal first.
   *
   * @since 0.1.0
   */
  static readonly resume = (key?: string): Effect.Effect<void, never, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.resume(key))

  /** @since 0.1.0 */
  static readonly laneCount: Effect.Effect<number, never, DurableSequent> = Effect.flatMap(
    DurableSequent,
    (sequent) => sequent.laneCount
  )

  /** @since 0.1.0 */
  static readonly status: Effect.Effect<SequentStatus, never, DurableSequent> = Effect.flatMap(
    DurableSequent,
    (sequent) => sequent.status
  )

  /** @since 0.1.0 */
  static readonly events: Stream.Stream<SequentEvent, never, DurableSequent> = Stream.unwrap(
    Effect.map(DurableSequent, (sequent) => sequent.events)
  )

  /** @since 0.1.0 */
  static readonly subscribe: Effect.Effect<Queue.Dequeue<SequentEvent>, never, DurableSequent | Scope.Scope> = Effect
    .flatMap(DurableSequent, (sequent) => sequent.subscribe)

  /** @since 0.1.0 */
  static readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError, DurableSequent> = Effect
    .flatMap(DurableSequent, (sequent) => sequent.deadLetters)

  /** @since 0.1.0 */
  static readonly redrive = (id: string): Effect.Effect<void, JournalError | JournalNotFoundError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.redrive(id))

  /** @since 0.1.0 */
  static readonly discard = (
    id: string
  ): Effect.Effect<DeadLetter, JournalError | JournalNotFoundError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.discard(id))
}

/**
 * Builds a durable executor on the `Journal` and the `TaskHandlers` in
 * context. Pending tasks are loaded first and run before new ones, per lane in
 * their original order; a stored task whose kind is gone or whose payload no
 * longer decodes goes to the dead letters with the reason.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(
  options: DurableOptions<R> = {}
): Effect.Effect<DurableSequent.Service, JournalError, Journal | TaskHandlers | Scope.Scope | R> =>
  Effect.flatMap(
    Effect.all([Journal, TaskHandlers]),
    ([journal, handlers]) => internal.make(options, journal, handlers)
  )

/**
 * A layer of the durable executor, on the `Journal` and `TaskHandlers` layers
 * it is given.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Schema } from "effect"
 * import { Durable, DurableSequent, TaskKind } from "effect-sequent"
 * import * as SqliteJournal from "effect-sequent/SqliteJournal"
 *
 * class SendMail extends Schema.TaggedClass<SendMail>()("SendMail", { to: Schema.String }) {}
 * const Tasks = TaskKind.make(SendMail)
 *
 * const DurableLive = Durable.layer().pipe(
 *   Layer.provide(Tasks.handlers({ SendMail: (task) => Effect.log(`mail to ${task.to}`) })),
 *   Layer.provide(SqliteJournal.layer({ filename: "sequent.db" }))
 * )
 *
 * const program = DurableSequent.typed(Tasks).schedule(new SendMail({ to: "ada@example.com" }), { key: "ada" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <R = never>(
  options?: DurableOptions<R>
): Layer.Layer<DurableSequent, JournalError, Journal | TaskHandlers | R> => Layer.scoped(DurableSequent, make(options))
