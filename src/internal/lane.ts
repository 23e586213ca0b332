/**
 * A lane: the queue of tasks that share one key, run one at a time in order.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import type * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"

/** @internal */
export interface Policy {
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly timeout: Duration.Duration | undefined
  readonly isRetryable: ((error: unknown) => boolean) | undefined
}

/**
 * One accepted task. Kept small: a million of them may wait in a lane.
 *
 * @internal
 */
export class Job {
  attempts = 0
  constructor(
    readonly task: Effect.Effect<unknown, unknown, unknown>,
    readonly context: Context.Context<unknown>,
    readonly policy: Policy,
    readonly deferred: Deferred.Deferred<unknown, unknown> | undefined,
    readonly scheduledAt: number
  ) {}
}

/** No worker holds the lane and it has no task. */
export const IDLE = 0
/** The lane is in the ready list, waiting for a worker. */
export const READY = 1
/** A worker is running the lane's head task. */
export const RUNNING = 2
/** The head task failed and the lane waits out its backoff delay, holding no worker. */
export const BACKOFF = 3
/** The lane has tasks but is paused or halted. */
export const WAITING = 4

/** Marks a head task that has not failed yet, so its retry schedule has no state. */
export const NO_RETRY_STATE: unique symbol = Symbol.for("effect-sequent/NoRetryState")

/** @internal */
export class Lane {
  private jobs: Array<Job | undefined> = []
  private head = 0
  state = IDLE
  paused = false
  halted = false
  /** The next lane in the executor's ready list. */
  next: Lane | undefined = undefined
  /** The retry schedule's state for the head task, once it has failed. */
  retryState: unknown = NO_RETRY_STATE
  /** When the head task's next attempt is due, while the lane is in backoff. */
  dueAt = 0

  constructor(readonly key: string | undefined) {}

  get size(): number {
    return this.jobs.length - this.head
  }

  get blocked(): boolean {
    return this.paused || this.halted
  }

  peek(): Job {
    return this.jobs[this.head]!
  }

  push(job: Job): void {
    this.jobs.push(job)
  }

  /** Removes the head task, and with it the head's retry state. */
  shift(): Job {
    const job = this.jobs[this.head]!
    this.jobs[this.head] = undefined
    this.head++
    this.retryState = NO_RETRY_STATE
    if (this.head === this.jobs.length) {
      this.jobs.length = 0
      this.head = 0
    } else if (this.head >= 4096 && this.head * 2 >= this.jobs.length) {
      this.jobs = this.jobs.slice(this.head)
      this.head = 0
    }
    return job
  }

  /** Empties the lane, returning what it held. */
  drain(): Array<Job> {
    const jobs = this.jobs.slice(this.head) as Array<Job>
    this.jobs = []
    this.head = 0
    this.retryState = NO_RETRY_STATE
    return jobs
  }
}
