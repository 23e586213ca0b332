/**
 * A lane: the queue of tasks that share one key, run one at a time in order.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as MetricLabel from "effect/MetricLabel"
import type * as Schedule from "effect/Schedule"
import type * as Tracer from "effect/Tracer"
import type { LaneStatus } from "../Observability.js"
import type { Waiter } from "./waiter.js"

/** @internal */
export interface Policy {
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly timeout: Duration.Duration | undefined
  readonly isRetryable: ((error: unknown) => boolean) | undefined
}

/**
 * One accepted task, as the worker runs it. A queued task is stored more
 * compactly (see `Lane`) unless it needs a `Job` from the start (its own
 * policy, a waiter, a journal record); a compact task borrows its lane's
 * `Job` while it is the lane's head.
 *
 * @internal
 */
export class Job {
  attempts = 0
  /** The store's record of the task (a journal's `seq`); 0 for a task the store keeps nowhere. */
  seq = 0
  constructor(
    public task: Effect.Effect<unknown, unknown, unknown>,
    public context: Context.Context<unknown>,
    readonly policy: Policy,
    /** Who waits for the outcome; a shared store hands it on when the job's lane moves to another instance. */
    public waiter: Waiter | undefined,
    public id: number,
    /** Milliseconds after the executor's epoch (see `Observer.epoch`). */
    public scheduledAt: number
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

/**
 * Array slots per queued task: the task (or its whole `Job`), the caller's
 * context, the id and the schedule time. Four references in a shared array
 * cost 32 bytes a task; a `Job` object costs 80 and is one more object for the
 * garbage collector to trace while the task waits.
 */
const STRIDE = 4
/** Tasks in a lane's first block; each next block holds twice as many, up to `MAX_BLOCK`. */
const FIRST_BLOCK = 4
const MAX_BLOCK = 1024

/** A segment of a lane's queue. Blocks are chained, so a long queue never copies itself to grow. */
class Block {
  readonly slots: Array<unknown>
  next: Block | undefined = undefined
  constructor(readonly capacity: number) {
    this.slots = new Array(capacity * STRIDE).fill(undefined)
  }
}

/** @internal */
export class Lane {
  /** The block holding the head task, and the head's index in it. */
  private first: Block
  private head = 0
  /** The block taking new tasks, and the next free index in it. */
  private last: Block
  private tail = 0
  private count = 0
  /** The head task's `Job`, once looked at. */
  private headJob: Job | undefined = undefined
  /**
   * The `Job` a compactly stored head task borrows, refilled for each one: one
   * object per lane instead of one per task. A task's `Job` is read until its
   * outcome is reported, before the next head is looked at; `drain` gives each
   * dropped task a `Job` of its own.
   */
  private lent: Job | undefined = undefined
  state = IDLE
  paused = false
  halted = false
  /**
   * The lane now runs on another instance (a shared journal moved its shard):
   * the executor no longer holds it, and drops what it still has as soon as
   * no worker is on it.
   */
  evicted = false
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

  constructor(
    readonly key: string | undefined,
    /** The policy of a task stored without a `Job`. */
    private readonly policy: Policy
  ) {
    this.first = this.last = new Block(FIRST_BLOCK)
  }

  get size(): number {
    return this.count
  }

  get blocked(): boolean {
    return this.paused || this.halted
  }

  /** The head task. */
  peek(): Job {
    if (this.headJob !== undefined) return this.headJob
    const slots = this.first.slots
    const at = this.head * STRIDE
    const stored = slots[at]
    if (stored instanceof Job) return this.headJob = stored
    const task = stored as Effect.Effect<unknown, unknown, unknown>
    const context = slots[at + 1] as Context.Context<unknown>
    const id = slots[at + 2] as number
    const scheduledAt = slots[at + 3] as number
    const job = this.lent
    if (job === undefined) {
      return this.headJob = this.lent = new Job(task, context, this.policy, undefined, id, scheduledAt)
    }
    job.task = task
    job.context = context
    job.id = id
    job.scheduledAt = scheduledAt
    job.attempts = 0
    return this.headJob = job
  }

  /**
   * Queues a task. One with the lane's policy and nobody waiting on it is
   * stored as four slots; any other gets its `Job` now.
   */
  push(
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined,
    id: number,
    scheduledAt: number
  ): void {
    if (policy !== this.policy || waiter !== undefined) {
      return this.pushJob(new Job(task, context, policy, waiter, id, scheduledAt))
    }
    const at = this.reserve()
    const slots = this.last.slots
    slots[at] = task
    slots[at + 1] = context
    slots[at + 2] = id
    slots[at + 3] = scheduledAt
  }

  /** Queues a task that already has its `Job` (restored from a journal, or waiting for room). */
  pushJob(job: Job): void {
    const at = this.reserve()
    this.last.slots[at] = job
  }

  /** Takes the next free place, in a new block when the last one is full; returns its first slot. */
  private reserve(): number {
    if (this.tail === this.last.capacity) {
      this.last = this.last.next = new Block(Math.min(this.last.capacity * 2, MAX_BLOCK))
      this.tail = 0
    }
    this.count++
    return this.tail++ * STRIDE
  }

  /** Removes the head task, and with it the head's retry state. */
  shift(): Job {
    const job = this.peek()
    const slots = this.first.slots
    const at = this.head * STRIDE
    slots[at] = slots[at + 1] = undefined
    this.headJob = undefined
    this.count--
    this.head++
    this.forgetHead()
    if (this.count === 0) {
      // empty, so `first` is `last`: start over at its top, or in a small block
      // if a burst left a big one (a lane is mostly empty or short)
      if (this.first.capacity > FIRST_BLOCK * 16) this.first = this.last = new Block(FIRST_BLOCK)
      this.head = this.tail = 0
    } else if (this.head === this.first.capacity) {
      this.first = this.first.next!
      this.head = 0
    }
    return job
  }

  /** Empties the lane, returning what it held, each task with a `Job` of its own. */
  drain(): Array<Job> {
    const jobs: Array<Job> = []
    while (this.count > 0) {
      const job = this.shift()
      if (job !== this.lent) jobs.push(job)
      else {
        const own = new Job(job.task, job.context, job.policy, undefined, job.id, job.scheduledAt)
        own.attempts = job.attempts
        jobs.push(own)
      }
    }
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
