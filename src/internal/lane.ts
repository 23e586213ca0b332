/**
 * A lane: the queue of tasks that share one key, run one at a time in order.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import type * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as MetricLabel from "effect/MetricLabel"
import type * as Schedule from "effect/Schedule"
import type * as Tracer from "effect/Tracer"
import type { LaneStatus } from "../Observability.js"

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
    readonly id: number,
    /** Milliseconds after the executor's epoch (see `Observer.epoch`). */
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
  /** When the head task's first attempt failed, if one has. */
  failingSince: number | undefined = undefined
  /** The head task's last failure. */
  lastFailure: Cause.Cause<unknown> | undefined = undefined
  /** When the running attempt started. */
  attemptStartedAt = 0
  /** The head task's span, when the executor traces tasks. */
  span: Tracer.Span | undefined = undefined
  /** The lane's metric tags, when the executor tags metrics per lane. */
  tags: ReadonlyArray<MetricLabel.MetricLabel> | undefined = undefined

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
    this.forgetHead()
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
    this.forgetHead()
    return jobs
  }

  private forgetHead(): void {
    this.retryState = NO_RETRY_STATE
    this.failingSince = undefined
    this.lastFailure = undefined
    this.span = undefined
  }

  status(now: number, epoch: number): LaneStatus {
    const job = this.size > 0 ? this.peek() : undefined
    return {
      key: this.key,
      size: this.size,
      state: this.halted
        ? "halted"
        : this.paused
        ? "paused"
        : this.state === READY
        ? "ready"
        : this.state === RUNNING
        ? "running"
        : this.state === BACKOFF
        ? "backoff"
        : "idle",
      head: job === undefined ? undefined : {
        task: job.id,
        attempts: job.attempts,
        scheduledAt: epoch + job.scheduledAt,
        failingSince: this.failingSince,
        blockedFor: Duration.millis(this.failingSince === undefined ? 0 : now - this.failingSince),
        lastFailure: this.lastFailure,
        nextAttemptAt: this.state === BACKOFF ? this.dueAt : undefined
      }
    }
  }
}
