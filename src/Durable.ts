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
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import { makeBatcher } from "./internal/batcher.js"
import { make as makeCodec } from "./internal/codec.js"
import type { JobHooks } from "./internal/executor.js"
import type { Job } from "./internal/lane.js"
import { invalidIdOrKey } from "./internal/taskInput.js"
import {
  type AppendResult,
  type DeadLetter,
  Journal,
  type JournalEntry,
  type JournalError,
  type JournalNotFoundError,
  type JournalRecord
} from "./Journal.js"
import { makeCore, type Sequent, type SequentOptions } from "./Sequent.js"
import { type SequentClosedError, SequentInvalidTaskError, type SequentStoppedError } from "./SequentError.js"
import { type AnyTaskKind, TaskHandlers, type TaskKinds, type TaskOf } from "./TaskKind.js"

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
  /** The task's lane: tasks with the same key run one at a time, in order. */
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
   * @since 0.1.0
   * @category models
   */
  export interface Service extends Omit<Sequent.Service, "schedule" | "submit"> {
    /** Encodes the task, writes it to the journal, and returns once it is committed. */
    readonly schedule: (task: DurableTask, options?: DurableTaskOptions) => Effect.Effect<void, DurableScheduleError>
    /**
     * Schedules the task and waits for its handler's outcome. A task whose id
     * was already pending is not run again: `submit` then returns at once.
     */
    readonly submit: (
      task: DurableTask,
      options?: DurableTaskOptions
    ) => Effect.Effect<unknown, unknown | DurableScheduleError | SequentStoppedError>
    /** The tasks that gave up, or whose stored payload no longer decodes, with the reason. */
    readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError>
    /** Puts a dead letter back, at the end of its lane, with its attempts reset. */
    readonly redrive: (id: string) => Effect.Effect<void, JournalError | JournalNotFoundError>
    /** Deletes a dead letter for good, answering with it; its id may be scheduled again. */
    readonly discard: (id: string) => Effect.Effect<DeadLetter, JournalError | JournalNotFoundError>
  }
}

/**
 * The durable executor.
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
   * of them is a compile-time error.
   *
   * @since 0.1.0
   */
  static readonly typed = <K extends TaskKinds<any>>(_kinds: K) => ({
    schedule: (task: TaskOf<K>, options?: DurableTaskOptions): Effect.Effect<void, DurableScheduleError, DurableSequent> =>
      Effect.flatMap(DurableSequent, (sequent) => sequent.schedule(task as DurableTask, options)),
    submit: (
      task: TaskOf<K>,
      options?: DurableTaskOptions
    ): Effect.Effect<unknown, unknown, DurableSequent> =>
      Effect.flatMap(DurableSequent, (sequent) => sequent.submit(task as DurableTask, options))
  })

  /** @since 0.1.0 */
  static readonly schedule = (
    task: DurableTask,
    options?: DurableTaskOptions
  ): Effect.Effect<void, DurableScheduleError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.schedule(task, options))

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
  static readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError, DurableSequent> = Effect
    .flatMap(DurableSequent, (sequent) => sequent.deadLetters)

  /** @since 0.1.0 */
  static readonly redrive = (id: string): Effect.Effect<void, JournalError | JournalNotFoundError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.redrive(id))

  /** @since 0.1.0 */
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
  static readonly discard = (id: string): Effect.Effect<DeadLetter, JournalError | JournalNotFoundError, DurableSequent> =>
    Effect.flatMap(DurableSequent, (sequent) => sequent.discard(id))
}

/** The first and the longest delay between two tries of a journal write the worker waits on. */
const firstRetryDelay = 10
const longestRetryDelay = 1_000

/**
 * Runs a journal write until it succeeds (or `stop` interrupts it), logging
 * each failure: 10 ms after the first failure, then twice as long each time,
 * at most a second apart. Whatever the write fails with is retried, a defect
 * as much as a `JournalError`: a worker that let one through would end, and
 * its lane would never run again. An interruption is not a failure of the
 * write, and ends it. A write that succeeds (nearly every one, on the path of
 * every task) costs one `catchAllCause`: a schedule driven by `Effect.retry`
 * would be built, and a service provided, for every write.
 */
const persist = <A>(what: string, write: Effect.Effect<A, JournalError>): Effect.Effect<A> => {
  const attempt = (delay: number): Effect.Effect<A> =>
    Effect.catchAllCause(write, (cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.interrupt
        : Effect.logWarning(`Sequent: journal ${what} failed, retrying`, cause).pipe(
          Effect.zipRight(Effect.sleep(Duration.millis(delay))),
          Effect.zipRight(Effect.suspend(() => attempt(Math.min(2 * delay, longestRetryDelay))))
        ))
  return attempt(firstRetryDelay)
}

const laneOf = (key: string | undefined): string => key ?? ""
const keyOf = (lane: string): string | undefined => lane === "" ? undefined : lane

/**
 * Builds a durable executor on the `Journal` and the `TaskHandlers` in
 * context. Pending tasks are loaded first and run before new ones, per lane in
 * their original order; a stored task whose kind is gone or whose payload no
 * longer decodes goes to the dead letters with the reason.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: SequentOptions = {}
): Effect.Effect<DurableSequent.Service, JournalError, Journal | TaskHandlers | Scope.Scope> =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const handlers = yield* TaskHandlers
    const clock = yield* Effect.clock
    const seqs = new WeakMap<Job, number>()
    const seqOf = (job: Job) => seqs.get(job)!

    const complete = yield* makeBatcher((batch: ReadonlyArray<number>) =>
      Effect.as(journal.complete(batch), batch.map(() => undefined))
    )
    const haltOnGiveUp = options.onGiveUp === "halt"
    const hooks: JobHooks = {
      completed: (job) => persist("complete", complete(seqOf(job))),
      attemptFailed: (job) => persist("attempt", journal.attemptFailed(seqOf(job), job.attempts)),
      gaveUp: (job, cause) =>
        persist(
          "dead letter",
          Effect.zipRight(
            journal.attemptFailed(seqOf(job), job.attempts),
            journal.deadLetter(seqOf(job), Cause.pretty(cause), clock.unsafeCurrentTimeMillis(), haltOnGiveUp)
          )
        )
    }
    const { executor, service } = yield* makeCore(options, hooks)

    // the payload codec, shared with `offer` (internal/codec.ts)
    const codec = makeCodec(handlers.kinds)
    const decode = (record: JournalRecord) => codec.decode(record.tag, record.payload)

    const jobFor = (task: DurableTask, deferred: Deferred.Deferred<unknown, unknown> | undefined): Job =>
      executor.job(handlers.handle(task), handlers.context, executor.config.policy, deferred)

    const restore = (record: JournalRecord) =>
      Effect.matchEffect(decode(record), {
        onFailure: (reason) =>
          Effect.zipRight(
            Effect.logError(`Sequent: stored task ${record.id} is dead-lettered: ${reason}`),
            journal.deadLetter(record.seq, reason, clock.unsafeCurrentTimeMillis())
          ),
        onSuccess: (task) =>
          Effect.sync(() => {
            const job = jobFor(task as DurableTask, undefined)
            job.attempts = record.attempts
            seqs.set(job, record.seq)
            executor.admit(keyOf(record.lane), job)
          })
      })

    // lanes halted by a give-up stay halted across a restart, until `resume`
    for (const lane of yield* journal.haltedLanes) executor.halt(keyOf(lane))
    yield* Effect.forEach(yield* journal.pending, restore, { discard: true })

    interface Pending {
      readonly entry: JournalEntry
      readonly job: Job
    }
    const append = yield* makeBatcher((batch: ReadonlyArray<Pending>) =>
      Effect.map(journal.append(batch.map((pending) => pending.entry)), (results) => {
        results.forEach((result, index) => {
          if (!result.inserted) return
          const { entry, job } = batch[index]!
          seqs.set(job, result.seq)
          executor.admit(keyOf(entry.lane), job)
        })
        return results
      })
    )

    const prefix = (yield* Random.nextInt).toString(36) + (yield* Random.nextInt).toString(36)
    let counter = 0

    const offer = (
      task: DurableTask,
      options: DurableTaskOptions | undefined,
      deferred: Deferred.Deferred<unknown, unknown> | undefined
    ): Effect.Effect<AppendResult, DurableScheduleError> =>
      Effect.suspend((): Effect.Effect<AppendResult, DurableScheduleError> => {
        const closed = executor.closed
        if (closed !== undefined) return Effect.fail(closed)
        const kind: AnyTaskKind | undefined = typeof task === "object" && task !== null
          ? handlers.kinds.get(task._tag)
          : undefined
        if (kind === undefined) {
          return Effect.fail(
            new SequentInvalidTaskError({ tag: String(task?._tag), reason: "it is not a registered task kind" })
          )
        }
        // ids and keys that every journal stores exactly (internal/taskInput.ts)
        const invalid = invalidIdOrKey(task._tag, options?.id, options?.key)
        if (invalid !== undefined) return Effect.fail(invalid)
        // the handler gets the task a restart would decode from its stored form (internal/codec.ts)
        return Effect.flatMap(codec.encode(kind, task), (stored) => store(stored.task, options, deferred, stored.payload))
      })

    /** Offers the encoded task to the journal; it is admitted once its transaction commits. */
    const store = (
      task: DurableTask,
      options: DurableTaskOptions | undefined,
      deferred: Deferred.Deferred<unknown, unknown> | undefined,
      payload: string
    ): Effect.Effect<AppendResult, JournalError> => {
      const entry: JournalEntry = {
        id: options?.id ?? `auto:${prefix}:${++counter}`,
        lane: laneOf(options?.key),
        tag: task._tag,
        payload,
        scheduledAt: clock.unsafeCurrentTimeMillis()
      }
      return append({ entry, job: jobFor(task, deferred) })
    }

    return {
      ...service,
      schedule: (task, options) => Effect.asVoid(offer(task, options, undefined)),
      submit: (task, options) =>
        Effect.flatMap(Deferred.make<unknown, unknown>(), (deferred) =>
          Effect.flatMap(offer(task, options, deferred), (result) =>
            result.inserted ? Deferred.await(deferred) : Effect.void)),
      deadLetters: journal.deadLetters,
      // the journal forgets the halt first, so that once resume returns a restart finds the lane resumed
      resume: (key) =>
        Effect.zipRight(persist("resume", journal.unhalt(key === undefined ? undefined : laneOf(key))), service.resume(key)),
      redrive: (id) => Effect.flatMap(journal.redrive(id), restore),
      discard: (id) => journal.discard(id)
    } satisfies DurableSequent.Service
  })

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
export const layer = (
  options?: SequentOptions
): Layer.Layer<DurableSequent, JournalError, Journal | TaskHandlers> => Layer.scoped(DurableSequent, make(options))

