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
import type { Journal, JournalEntry, JournalError, JournalNotFoundError, JournalRecord } from "../Journal.js"
import { makeBatcher } from "./batcher.js"
import type { Job } from "./lane.js"
import type { Intake, Offered, Store } from "./store.js"

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
  readonly decode: (record: JournalRecord) => Either.Either<Effect.Effect<unknown, unknown>, string>
  /** The services every stored task runs with. */
  readonly context: Context.Context<unknown>
}

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
}

/** @internal */
export const make = (
  journal: Journal.Service,
  tasks: Tasks,
  clock: Clock.Clock
): Effect.Effect<JournalStore, never, Scope.Scope> =>
  Effect.gen(function*() {
    let intake: Intake = undefined as unknown as Intake
    /** The seqs of the records the executor holds: queued or running. */
    const live = new Set<number>()
    /** Appends and the adoption of strays take turns, so a record is never queued twice. */
    const order = yield* Effect.makeSemaphore(1)

    const hold = (key: string | undefined, job: Job, seq: number, admit: boolean) => {
      job.seq = seq
      live.add(seq)
      if (admit) intake.admit(key, job)
      else intake.restore(key, job)
    }

    const deadLetterRecord = (record: JournalRecord, reason: string) =>
      Effect.zipRight(
        Effect.logError(`Sequent: stored task ${record.id} is dead-lettered: ${reason}`),
        journal.deadLetter(record.seq, reason, clock.unsafeCurrentTimeMillis())
      )

    const restoreRecord = (record: JournalRecord): Effect.Effect<void, JournalError> => {
      const task = tasks.decode(record)
      if (Either.isLeft(task)) return deadLetterRecord(record, task.left)
      const job = intake.job(task.right, tasks.context, intake.config.policy, undefined)
      job.attempts = record.attempts
      hold(keyOf(record.lane), job, record.seq, false)
      return Effect.void
    }

    /**
     * Queues every pending record the executor does not hold: those of `batch`
     * with their callers' jobs (the rest of `batch` is released), any other as
     * restored. Answers with the ids it queued. Synchronous, so that it acts
     * on one reading of the journal as a whole.
     */
    const adoptFrom = (pending: ReadonlyArray<JournalRecord>, batch: ReadonlyArray<Appending>) => {
      const ours = new Map(batch.map((appending) => [appending.entry.id, appending]))
      const adopted = new Set<string>()
      const deadLetters: Array<Effect.Effect<void, JournalError>> = []
      for (const record of pending) {
        if (live.has(record.seq)) continue
        adopted.add(record.id)
        const appending = ours.get(record.id)
        if (appending === undefined) deadLetters.push(restoreRecord(record))
        else {
          ours.delete(record.id)
          hold(appending.key, appending.job, record.seq, true)
        }
      }
      for (const appending of ours.values()) intake.release(appending.job, Exit.void)
      return { adopted, deadLetters }
    }

    /** Reads the journal (until it answers) and adopts what it holds that the executor does not. */
    const adopt = (what: string, batch: ReadonlyArray<Appending>) =>
      Effect.flatMap(persist(what, journal.pending), (pending) => {
        const { adopted, deadLetters } = adoptFrom(pending, batch)
        return Effect.as(
          Effect.forEach(deadLetters, (write) => persist("dead letter", write), { discard: true }),
          adopted
        )
      })

    const appendBatch = (batch: ReadonlyArray<Appending>) =>
      journal.append(batch.map((appending) => appending.entry)).pipe(
        Effect.map((results) =>
          results.map((result, index) => {
            const { job, key } = batch[index]!
            // an id already pending or dead-lettered is not kept again: its waiter returns at once
            if (result.inserted) hold(key, job, result.seq, true)
            else intake.release(job, Exit.void)
          })
        ),
        // the append may have committed all the same: the journal says what it holds
        Effect.catchAll((error) =>
          Effect.flatMap(
            adopt("append check", batch),
            (adopted) => batch.some((appending) => adopted.has(appending.entry.id))
              ? Effect.succeed(batch.map(() => undefined))
              : Effect.fail(error)
          )
        ),
        order.withPermits(1)
      )
    const append = yield* makeBatcher(appendBatch)

    const complete = yield* makeBatcher((seqs: ReadonlyArray<number>) =>
      Effect.as(journal.complete(seqs), seqs.map(() => undefined))
    )
    const finished = (job: Job) =>
      Effect.sync(() => {
        live.delete(job.seq)
      })

    const accept = (bound: Intake): Offered<JournalEntry, Effect.Effect<void, JournalError>> => {
      intake = bound
      return (key, task, context, policy, waiter, entry) =>
        append({ key, entry, job: intake.job(task, context, policy, waiter) })
    }

    return {
      accept,
      attemptFailed: (job) => persist("attempt", journal.attemptFailed(job.seq, job.attempts)),
      complete: (job) => Effect.zipRight(persist("complete", complete(job.seq)), finished(job)),
      giveUp: (job, cause, halt) =>
        persist(
          "dead letter",
          Effect.zipRight(
            journal.attemptFailed(job.seq, job.attempts),
            journal.deadLetter(job.seq, Cause.pretty(cause), clock.unsafeCurrentTimeMillis(), halt)
          )
        ).pipe(Effect.zipRight(finished(job))),
      restore: Effect.gen(function*() {
        for (const lane of yield* journal.haltedLanes) intake.halt(keyOf(lane))
        yield* Effect.forEach(yield* journal.pending, restoreRecord, { discard: true })
      }),
      redrive: (id) =>
        order.withPermits(1)(
          journal.redrive(id).pipe(
            Effect.flatMap((record) => persist("dead letter", restoreRecord(record))),
            // the redrive may have committed all the same: the journal says what it holds
            Effect.catchTag("JournalError", (error) =>
              Effect.flatMap(adopt("redrive check", []), (adopted) => adopted.has(id) ? Effect.void : Effect.fail(error)))
          )
        ),
      unhalt: (key) => persist("resume", journal.unhalt(key === undefined ? undefined : laneOf(key)))
    }
  })
