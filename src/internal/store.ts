/**
 * The store port: what the executor asks of whatever keeps its tasks, at each
 * step of a task's life. The in-memory store keeps nothing; the journal-backed
 * one (`durableStore.ts`) writes each step before the executor goes on.
 *
 * The executor calls the store, never the other way round: a store that
 * accepts a task hands it back through the `Intake` it is given.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type { Job, Policy } from "./lane.js"
import type { Config } from "./options.js"
import type { Waiter } from "./waiter.js"

/**
 * A task as `schedule` offers it, passed as separate arguments: an object per
 * task would be one more allocation on the path of every `schedule`.
 */
export type Offered<Entry, R> = (
  key: string | undefined,
  task: Effect.Effect<unknown, unknown, unknown>,
  context: Context.Context<unknown>,
  policy: Policy,
  waiter: Waiter | undefined,
  entry: Entry
) => R

/**
 * What the executor lets a store do with a task it has counted as accepted.
 *
 * @internal
 */
export interface Intake {
  /** Queues a task that the store keeps nowhere (stored compactly when it can be). */
  readonly push: Offered<unknown, void>
  /** A job for a task the store keeps: its record travels with it (`Job.seq`). */
  readonly job: (
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined
  ) => Job
  /**
   * Queues a kept job that `offer` counted. Once the executor has stopped, the
   * job can only fail: its waiter gets `SequentStoppedError`, and the task
   * stays in the store for the next start.
   */
  readonly admit: (key: string | undefined, job: Job) => void
  /**
   * Un-counts an offered job that the store did not keep (its `schedule`
   * fails, or it was already kept); its waiter, if any, gets `exit`.
   */
  readonly release: (job: Job, exit: Exit.Exit<unknown, unknown>) => void
  /** Counts and queues a job the store already held (restored at start, or redriven). */
  readonly restore: (key: string | undefined, job: Job) => void
  /** Halts a lane, as a give-up with `onGiveUp: "halt"` would: for a halt the store remembers. */
  readonly halt: (key: string | undefined) => void
  /** Lifts a lane's halt (not its pause): for a halt the store no longer has. */
  readonly unhalt: (key: string | undefined) => void
  /** Pauses a lane (every lane with `undefined`), as `pause` does: for a pause the store keeps. */
  readonly pause: (key: string | undefined) => void
  /** Lifts a pause and a halt, as `resume` does: for a pause the store no longer has. */
  readonly resume: (key: string | undefined) => void
  /**
   * Lets go of a lane that another instance now runs: its jobs are dropped
   * (the running one once its attempt ends), and no longer counted.
   */
  readonly evict: (key: string | undefined) => void
  /** Whether the executor still accepts tasks (it is neither flushing nor stopped). */
  readonly accepting: boolean
  /** The executor's own policy, for the tasks the store restores. */
  readonly config: Config
}

/**
 * Every method answers with the write to wait for before the step takes
 * effect; `nothing` when there is none, which the executor skips at no cost.
 *
 * @internal
 */
export interface Store<Entry, E> {
  /**
   * Binds the store to its executor, once, as the executor is built; answers
   * with the function that keeps an offered task, then hands it to `intake`
   * (`push` or `admit`), or releases it (`release`) and fails. `entry` is what
   * the store needs to keep the task (nothing for the in-memory store).
   */
  readonly accept: (intake: Intake) => Offered<Entry, Effect.Effect<void, E>>
  /** The job's attempt failed and it will be retried. */
  readonly attemptFailed: (job: Job) => Effect.Effect<void>
  /** The job succeeded with `value` (for a store that answers a waiter elsewhere). */
  readonly complete: (job: Job, value: unknown) => Effect.Effect<void>
  /** The job gave up with `cause`; `halt` when its lane halts after it. */
  readonly giveUp: (job: Job, cause: Cause.Cause<unknown>, halt: boolean) => Effect.Effect<void>
  /**
   * What a flush waits for besides the executor's own tasks, once intake is
   * closed: a shared store's tasks that run on other instances. Until it
   * ends, the store may still hand the executor tasks (`restore`).
   */
  readonly drain: Effect.Effect<void>
}

/** The write of a step that has nothing to write. */
export const nothing: Effect.Effect<void> = Effect.void

/**
 * The in-memory store: keeps nothing, writes nothing.
 *
 * @internal
 */
export const memory: Store<void, never> = {
  accept: (intake) => (key, task, context, policy, waiter) => {
    intake.push(key, task, context, policy, waiter, undefined)
    return nothing
  },
  attemptFailed: () => nothing,
  complete: () => nothing,
  giveUp: () => nothing,
  drain: nothing
}
