/**
 * The journal-backed store: every step of a durable task is written to the
 * journal before the executor goes on. Appends and completions are group
 * committed; the journal's `seq` of each task travels on its `Job`.
 *
 * A write whose reply is lost may still have committed. So a failed append is
 * checked against the journal before its callers get an answer, and before
 * any later append: what committed is queued (in its order), what did not is
 * refused. The same check adopts any pending record the executor does not
 * hold (a redrive whose reply was lost), so nothing stays pending behind the
 * executor's back.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import {
  type AppendResult,
  type Journal,
  type JournalEntry,
  JournalError,
  type JournalNotFoundError,
  type JournalRecord
} from "../Journal.js"
import { SequentDuplicateTaskError } from "../SequentError.js"
import { makeBatcher } from "./batcher.js"
import type { Job } from "./lane.js"
import type { OutcomeCodec } from "./outcome.js"
import { type Intake, nothing, type Store } from "./store.js"

/** The first and the longest delay between two tries of a journal write the executor waits on. */
const firstRetryDelay = 10
const longestRetryDelay = 1_000

/**
 * Runs a journal call until it succeeds (or is interrupted), logging each
 * failure: 10 ms after the first, then twice as long each time, at most a
 * second apart. Whatever the call fails or dies with is retried: a journal
 * that throws must not kill the worker waiting on it. A call that succeeds
 * (nearly every one) costs one `catchAllCause`.
 */
export const persist = <A>(what: string, write: Effect.Effect<A, unknown>): Effect.Effect<A> => {
  const retry = (cause: Cause.Cause<unknown>, delay: number): Effect.Effect<A> =>
    Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.logWarning(
      `Sequent: journal ${what} failed, retrying`,
      cause
    ).pipe(
      Effect.zipRight(Effect.sleep(Duration.millis(delay))),
      Effect.zipRight(Effect.catchAllCause(write, (next) => retry(next, Math.min(2 * delay, longestRetryDelay))))
    )
  return Effect.catchAllCause(write, (cause) => retry(cause, firstRetryDelay))
}

/** The lane of a key in the journal: `""` is the default lane. */
export const laneOf = (key: string | undefined): string => key ?? ""
const keyOf = (lane: string): string | undefined => lane === "" ? undefined : lane

/** What the durable executor knows of its tasks, to run a stored one. */
export interface Tasks {
  /** The task a stored record runs, or why it cannot run. */
  readonly decode: (record: JournalRecord) => Effect.Effect<Effect.Effect<unknown, unknown>, string>
  /** The services every stored task runs with. */
  readonly context: Context.Context<unknown>
  /** Outcomes as text, for a `submit` on one instance whose task runs on another. */
  readonly outcomes: OutcomeCodec
}

/**
 * Whether `effect` is an `Either`: its value or its error is there at once,
 * with no effect to run (a synchronous decode gives one).
 */
export const isEither = <A, E>(effect: Effect.Effect<A, E>): effect is Either.Either<A, E> => Either.isEither(effect)

/**
 * What a `schedule` whose append is still unanswered gets when the executor's
 * scope closes: a typed error, not an interruption of the caller. The append
 * may have committed; the task then runs on the next start (or, on a shared
 * journal, on whichever instance owns its lane).
 */
export const appendUnanswered = Effect.fail(
  new JournalError({
    reason: "The executor shut down before the journal answered the append: the task may be stored, and run later"
  })
)

/** What the waiter of a task gets when its id was already pending or dead-lettered, so nothing was stored. */
const duplicate = (entry: JournalEntry): Exit.Exit<never, SequentDuplicateTaskError> =>
  Exit.fail(new SequentDuplicateTaskError({ tag: entry.tag, id: entry.id }))

/** An offered task on its way into the journal. */
interface Appending {
  readonly key: string | undefined
  readonly entry: JournalEntry
  readonly job: Job
}

/**
 * The store, and what durable mode does beside the executor's steps.
 *
 * @internal
 */
export interface JournalStore extends Store<JournalEntry, JournalError> {
  /** Queues what the journal holds: halted lanes first, then the pending records in order. */
  readonly restore: Effect.Effect<void, JournalError>
  /** Moves a dead letter back to the end of its lane. */
  readonly redrive: (id: string) => Effect.Effect<void, JournalError | JournalNotFoundError>
  /** Forgets the halt of a lane (every lane with `undefined`), once the journal has it. */
  readonly unhalt: (key: string | undefined) => Effect.Effect<void>
  /**
   * Pauses a lane (every lane with `undefined`): here, for a journal with one
   * owner; wherever the lane runs, kept until a resume, for a shared one.
   */
  readonly pause: (key: string | undefined) => Effect.Effect<void>
}

/**
 * The records the executor holds (queued or running), and how a stored
 * record becomes a queued job.
 */
class Holdings {
  intake: Intake = undefined as unknown as Intake
  /** The seqs of the records the executor holds. */
  readonly live = new Set<number>()

  constructor(
    private readonly journal: Journal.Service,
    private readonly tasks: Tasks,
    private readonly clock: Clock.Clock
  ) {}

  hold(key: string | undefined, job: Job, seq: number, admit: boolean): void {
    job.seq = seq
    this.live.add(seq)
    if (admit) this.intake.admit(key, job)
    else this.intake.restore(key, job)
  }

  /** Queues a stored record, or dead-letters one that cannot run. */
  restore(record: JournalRecord): Effect.Effect<void, JournalError> {
    return Effect.matchEffect(this.tasks.decode(record), {
      onFailure: (reason) =>
        Effect.zipRight(
          Effect.logError(`Sequent: stored task ${record.id} is dead-lettered: ${reason}`),
          this.journal.deadLetter(record.seq, reason, this.clock.unsafeCurrentTimeMillis())
        ),
      onSuccess: (task) =>
        Effect.sync(() => {
          const job = this.intake.job(task, this.tasks.context, this.intake.config.policy, undefined)
          job.attempts = record.attempts
          this.hold(keyOf(record.lane), job, record.seq, false)
        })
    })
  }

  /** Queues the jobs of an append that answered; an id that was already kept is not kept again. */
  appended(batch: ReadonlyArray<Appending>, results: ReadonlyArray<AppendResult>): void {
    results.forEach((result, index) => {
      const { entry, job, key } = batch[index]!
      if (result.inserted) this.hold(key, job, result.seq, true)
      else this.intake.release(job, duplicate(entry))
    })
  }

  /**
   * Queues the pending records of `batch` that the executor does not hold,
   * with their callers' jobs, and releases the rest of `batch`. Answers with
   * the ids of every pending record the executor does not hold, and those
   * records that are not of `batch` (strays, for `restore`). Synchronous, so
   * that it acts on one reading of the journal as a whole.
   */
  adoptFrom(pending: ReadonlyArray<JournalRecord>, batch: ReadonlyArray<Appending>) {
    const ours = new Map(batch.map((appending) => [appending.entry.id, appending]))
    const adopted = new Set<string>()
    const strays: Array<JournalRecord> = []
    for (const record of pending) {
      if (this.live.has(record.seq)) continue
      adopted.add(record.id)
      const appending = ours.get(record.id)
      if (appending === undefined) strays.push(record)
      else {
        ours.delete(record.id)
        this.hold(appending.key, appending.job, record.seq, true)
      }
    }
    // not stored now: already kept (the batch then counts as stored), or not stored at all (it fails)
    for (const { entry, job } of ours.values()) this.intake.release(job, duplicate(entry))
    return { adopted, strays }
  }

  /** Reads the journal (until it answers) and adopts what it holds that the executor does not. */
  adopt(what: string, batch: ReadonlyArray<Appending>): Effect.Effect<ReadonlySet<string>> {
    return Effect.flatMap(persist(what, this.journal.pending), (pending) => {
      const { adopted, strays } = this.adoptFrom(pending, batch)
      return Effect.as(
        Effect.forEach(strays, (record) => persist("restore", this.restore(record)), { discard: true }),
        adopted
      )
    })
  }

  readonly finished = (job: Job): Effect.Effect<void> =>
    Effect.sync(() => {
      this.live.delete(job.seq)
    })
}

/**
 * Appends a batch in one write; when the write fails, the journal says what
 * it holds, and the batch succeeds if it was stored all the same.
 */
const appendBatch = (journal: Journal.Service, holdings: Holdings) => (batch: ReadonlyArray<Appending>) =>
  journal.append(batch.map((appending) => appending.entry)).pipe(
    Effect.map((results) => holdings.appended(batch, results)),
    Effect.catchAll((error) =>
      Effect.flatMap(
        holdings.adopt("append check", batch),
        (adopted) => batch.some((appending) => adopted.has(appending.entry.id)) ? Effect.void : Effect.fail(error)
      )
    ),
    Effect.map(() => batch.map(() => undefined))
  )

/** A redrive, checked against the journal when its write fails, as an append is. */
const redrive = (journal: Journal.Service, holdings: Holdings) => (id: string) =>
  journal.redrive(id).pipe(
    Effect.flatMap((record) => persist("restore", holdings.restore(record))),
    Effect.catchTag("JournalError", (error) =>
      Effect.flatMap(holdings.adopt("redrive check", []), (adopted) =>
        adopted.has(id) ? Effect.void : Effect.fail(error)))
  )

/** @internal */
export const make = (
  journal: Journal.Service,
  tasks: Tasks,
  clock: Clock.Clock
): Effect.Effect<JournalStore, never, Scope.Scope> =>
  Effect.gen(function*() {
    const holdings = new Holdings(journal, tasks, clock)
    // appends and redrives take turns, so that a record is never queued twice
    const exclusive = (yield* Effect.makeSemaphore(1)).withPermits(1)
    const append = yield* makeBatcher(
      (batch: ReadonlyArray<Appending>) => exclusive(appendBatch(journal, holdings)(batch)),
      { closed: appendUnanswered }
    )
    const complete = yield* makeBatcher((seqs: ReadonlyArray<number>) =>
      Effect.as(journal.complete(seqs), seqs.map(() => undefined))
    )
    return {
      accept: (intake) => {
        holdings.intake = intake
        return (key, task, context, policy, waiter, entry) =>
          append({ key, entry, job: intake.job(task, context, policy, waiter) })
      },
      attemptFailed: (job) => persist("attempt", journal.attemptFailed(job.seq, job.attempts)),
      complete: (job) => Effect.zipRight(persist("complete", complete(job.seq)), holdings.finished(job)),
      giveUp: (job, cause, halt) =>
        persist(
          "dead letter",
          Effect.zipRight(
            journal.attemptFailed(job.seq, job.attempts),
            journal.deadLetter(job.seq, Cause.pretty(cause), clock.unsafeCurrentTimeMillis(), halt)
          )
        ).pipe(Effect.zipRight(holdings.finished(job))),
      restore: Effect.gen(function*() {
        for (const lane of yield* journal.haltedLanes) holdings.intake.halt(keyOf(lane))
        yield* Effect.forEach(yield* journal.pending, (record) => holdings.restore(record), { discard: true })
      }),
      redrive: (id) => exclusive(redrive(journal, holdings)(id)),
      unhalt: (key) => persist("resume", journal.unhalt(key === undefined ? undefined : laneOf(key))),
      pause: (key) => Effect.sync(() => holdings.intake.pause(key)),
      drain: nothing
    }
  })
