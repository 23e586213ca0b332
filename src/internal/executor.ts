/**
 * The executor behind `Sequent`: lanes, the ready list, the workers, and the
 * retry driver. Plain mutable state, touched only from inside effects; JavaScript
 * runs one effect step at a time, so every synchronous block below is atomic.
 *
 * Data flows one way: `offer` puts a job on its lane; a worker takes a ready
 * lane, runs the head job's attempt, and settles the job (its waiter, the
 * observer) before it looks for the next lane.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import {
  SequentClosedError,
  SequentFalseError,
  SequentFullError,
  SequentStoppedError,
  SequentTimeoutError
} from "../SequentError.js"
import { BACKOFF, IDLE, Job, Lane, NO_RETRY_STATE, type Policy, READY, RUNNING, WAITING } from "./lane.js"

/** @internal */
export interface GiveUp {
  readonly key: string | undefined
  readonly attempts: number
  readonly cause: Cause.Cause<unknown>
}

/** @internal */
export interface ExecutorConfig {
  readonly policy: Policy
  readonly concurrency: number
  readonly capacity: number
  readonly onFull: "wait" | "fail"
  readonly onGiveUp: "continue" | "halt"
  readonly deadLetter: ((giveUp: GiveUp) => Effect.Effect<void>) | undefined
}

type Run = (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void, never>

interface RoomWaiter {
  readonly key: string | undefined
  readonly job: Job
  readonly resume: (effect: Effect.Effect<void, SequentClosedError>) => void
}

const OPEN = 0
const FLUSHING = 1
const STOPPED = 2

/** The cause a `false` result stands for. */
const falseCause = Cause.fail(new SequentFalseError())

/** Workers kept parked at most, so a burst across many lanes does not leave many idle fibers behind. */
const MAX_PARKED = 64

/** @internal */
export class Executor {
  private phase = OPEN
  private count = 0
  private readonly lanes = new Map<string, Lane>()
  private readonly defaultLane = new Lane(undefined)
  private readyHead: Lane | undefined = undefined
  private readyTail: Lane | undefined = undefined
  private workers = 0
  private readonly parked: Array<(effect: Effect.Effect<void>) => void> = []
  private readonly parkLimit: number
  private paused = false
  private readonly roomWaiters: Array<RoomWaiter> = []
  private readonly drained: Deferred.Deferred<void>
  private readonly stopped: Deferred.Deferred<number>

  constructor(
    readonly config: ExecutorConfig,
    private readonly run: Run,
    private readonly clock: Clock.Clock,
    private readonly interruptAll: Effect.Effect<void>,
    fiberId: FiberId.FiberId
  ) {
    this.parkLimit = Math.min(config.concurrency, MAX_PARKED)
    this.drained = Deferred.unsafeMake(fiberId)
    this.stopped = Deferred.unsafeMake(fiberId)
  }

  // ---------------------------------------------------------------------------
  // intake
  // ---------------------------------------------------------------------------

  /** Accepts a job for the lane of `key`, or fails when closed or full. */
  offer(key: string | undefined, job: Job): Effect.Effect<void, SequentClosedError | SequentFullError> {
    if (this.phase !== OPEN) {
      return Effect.fail(new SequentClosedError({ state: this.phase === FLUSHING ? "flushing" : "stopped" }))
    }
    if (this.count >= this.config.capacity || this.roomWaiters.length > 0) {
      return this.config.onFull === "fail"
        ? Effect.fail(new SequentFullError({ capacity: this.config.capacity }))
        : this.waitForRoom(key, job)
    }
    this.enqueue(key, job)
    return Effect.void
  }

  /** Waits in line for room; the job is enqueued by whoever frees the room, so arrival order is kept. */
  private waitForRoom(key: string | undefined, job: Job): Effect.Effect<void, SequentClosedError> {
    return Effect.async<void, SequentClosedError>((resume) => {
      const waiter: RoomWaiter = { key, job, resume }
      this.roomWaiters.push(waiter)
      return Effect.sync(() => {
        const index = this.roomWaiters.indexOf(waiter)
        if (index >= 0) this.roomWaiters.splice(index, 1)
      })
    })
  }

  private admitWaiters(): void {
    while (this.roomWaiters.length > 0 && this.count < this.config.capacity) {
      const waiter = this.roomWaiters.shift()!
      this.enqueue(waiter.key, waiter.job)
      waiter.resume(Effect.void)
    }
  }

  private rejectWaiters(): void {
    const error = new SequentClosedError({ state: this.phase === FLUSHING ? "flushing" : "stopped" })
    for (const waiter of this.roomWaiters.splice(0)) waiter.resume(Effect.fail(error))
  }

  private enqueue(key: string | undefined, job: Job): void {
    const lane = this.laneFor(key)
    lane.push(job)
    this.count++
    if (lane.state === IDLE) {
      if (lane.blocked) lane.state = WAITING
      else this.makeReady(lane)
    }
  }

  private laneFor(key: string | undefined): Lane {
    if (key === undefined) return this.defaultLane
    let lane = this.lanes.get(key)
    if (lane === undefined) {
      lane = new Lane(key)
      this.lanes.set(key, lane)
    }
    return lane
  }

  /** Forgets an empty keyed lane, so lanes live only while they have work or a pause. */
  private reclaim(lane: Lane): void {
    if (lane.key !== undefined && lane.size === 0 && !lane.blocked && lane.state === IDLE) {
      this.lanes.delete(lane.key)
    }
  }

  // ---------------------------------------------------------------------------
  // ready list and workers
  // ---------------------------------------------------------------------------

  private makeReady(lane: Lane): void {
    lane.state = READY
    lane.next = undefined
    if (this.readyTail === undefined) this.readyHead = lane
    else this.readyTail.next = lane
    this.readyTail = lane
    this.dispatch()
  }

  /** Wakes a parked worker, or starts one while fewer than `concurrency` are alive. */
  private dispatch(): void {
    if (this.paused || this.phase === STOPPED) return
    if (this.parked.length > 0) this.parked.pop()!(Effect.void)
    else if (this.workers < this.config.concurrency) {
      this.workers++
      this.run(this.loop)
    }
  }

  private takeReady(): Lane | undefined {
    if (this.paused) return undefined
    let lane = this.readyHead
    while (lane !== undefined) {
      this.readyHead = lane.next
      if (this.readyHead === undefined) this.readyTail = undefined
      lane.next = undefined
      if (!lane.blocked) {
        lane.state = RUNNING
        return lane
      }
      lane.state = WAITING
      lane = this.readyHead
    }
    return undefined
  }

  private hasWork(): boolean {
    return !this.paused && this.readyHead !== undefined
  }

  /** A worker: takes ready lanes until there are none, then parks (or ends, when enough are parked). */
  private readonly loop: Effect.Effect<void> = Effect.suspend(() => {
    const lane = this.takeReady()
    if (lane !== undefined) return this.runLane(lane)
    if (this.phase === STOPPED || this.parked.length >= this.parkLimit) {
      this.workers--
      return Effect.void
    }
    return this.park
  })

  private readonly park: Effect.Effect<void> = Effect.zipRight(
    Effect.async<void>((resume) => {
      if (this.hasWork()) resume(Effect.void)
      else this.parked.push(resume)
    }),
    this.loop
  )

  // ---------------------------------------------------------------------------
  // attempts
  // ---------------------------------------------------------------------------

  private runLane(lane: Lane): Effect.Effect<void> {
    if (this.phase === STOPPED) return Effect.void
    const job = lane.peek()
    job.attempts++
    return Effect.matchCauseEffect(this.attempt(job), {
      onSuccess: (value) => value === false ? this.failed(lane, job, falseCause) : this.succeeded(lane, job, value),
      onFailure: (cause) => this.failed(lane, job, cause)
    })
  }

  private attempt(job: Job): Effect.Effect<unknown, unknown> {
    const timeout = job.policy.timeout
    const task = timeout === undefined ? job.task : Effect.timeoutFail(job.task, {
      duration: timeout,
      onTimeout: () => new SequentTimeoutError({ timeout })
    })
    // The task runs with its caller's services. The worker needs none of its own,
    // so it adopts the caller's context, and only when it changes: `Effect.provide`
    // per attempt would copy the fiber's refs twice for every task.
    return Effect.withFiberRuntime((fiber) =>
      fiber.getFiberRef(FiberRef.currentContext) === job.context
        ? task as Effect.Effect<unknown, unknown>
        : Effect.zipRight(
          FiberRef.set(FiberRef.currentContext, job.context as Context.Context<never>),
          task as Effect.Effect<unknown, unknown>
        )
    )
  }

  private succeeded(lane: Lane, job: Job, value: unknown): Effect.Effect<void> {
    lane.shift()
    if (job.deferred !== undefined) Deferred.unsafeDone(job.deferred, Exit.succeed(value))
    this.finished()
    return this.next(lane)
  }

  /** After the head job of `lane` finished: go on with the lane, or hand it back and pick the next one. */
  private next(lane: Lane): Effect.Effect<void> {
    if (lane.size === 0) {
      lane.state = IDLE
      this.reclaim(lane)
      return this.loop
    }
    if (lane.blocked) {
      lane.state = WAITING
      return this.loop
    }
    if (this.readyHead === undefined && !this.paused) return this.runLane(lane)
    this.makeReady(lane)
    return this.loop
  }

  private finished(): void {
    this.count--
    if (this.roomWaiters.length > 0) this.admitWaiters()
    if (this.count === 0 && this.phase !== OPEN) Deferred.unsafeDone(this.drained, Exit.void)
  }

  private failed(lane: Lane, job: Job, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const policy = job.policy
      if (policy.isRetryable !== undefined) {
        const error = Cause.failureOption(cause)
        if (Option.isSome(error) && !(error.value instanceof SequentTimeoutError) && !policy.isRetryable(error.value)) {
          return this.gaveUp(lane, job, cause)
        }
      }
      const state = lane.retryState === NO_RETRY_STATE ? policy.retry.initial : lane.retryState
      const now = this.clock.unsafeCurrentTimeMillis()
      return Effect.flatMap(policy.retry.step(now, Cause.squash(cause), state), ([nextState, _, decision]) => {
        if (ScheduleDecision.isDone(decision)) return this.gaveUp(lane, job, cause)
        lane.retryState = nextState
        const delay = Math.max(0, Intervals.start(decision.intervals) - now)
        return Effect.zipRight(
          Effect.logWarning("Sequent: attempt failed, retrying", cause).pipe(
            Effect.annotateLogs({ attempt: job.attempts, key: lane.key ?? "(default)", retryIn: `${delay}ms` })
          ),
          Effect.suspend(() => this.retryAfter(lane, delay))
        )
      })
    })
  }

  private retryAfter(lane: Lane, delay: number): Effect.Effect<void> {
    if (this.phase === STOPPED) return Effect.void
    if (delay === 0) {
      if (lane.blocked) {
        lane.state = WAITING
        return this.loop
      }
      if (this.readyHead === undefined && !this.paused) return this.runLane(lane)
      this.makeReady(lane)
      return this.loop
    }
    lane.state = BACKOFF
    lane.dueAt = this.clock.unsafeCurrentTimeMillis() + delay
    this.run(Effect.zipRight(Effect.sleep(Duration.millis(delay)), Effect.sync(() => this.backoffOver(lane))))
    return this.loop
  }

  private backoffOver(lane: Lane): void {
    if (this.phase === STOPPED || lane.state !== BACKOFF) return
    if (lane.blocked) lane.state = WAITING
    else this.makeReady(lane)
  }

  private gaveUp(lane: Lane, job: Job, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const attempts = job.attempts
    const handler = this.config.deadLetter
    const report = Effect.logError("Sequent: task gave up", cause).pipe(
      Effect.annotateLogs({ attempts, key: lane.key ?? "(default)" })
    )
    const deliver = Effect.sync(() => {
      lane.shift()
      if (job.deferred !== undefined) Deferred.unsafeDone(job.deferred, Exit.failCause(cause))
      if (this.config.onGiveUp === "halt") lane.halted = true
      this.finished()
    })
    const deadLetter = handler === undefined ? Effect.void : handler({ key: lane.key, attempts, cause }).pipe(
      Effect.catchAllCause((failure) => Effect.logError("Sequent: the dead-letter handler failed", failure))
    )
    return report.pipe(
      Effect.zipRight(deadLetter),
      Effect.zipRight(deliver),
      Effect.zipRight(Effect.suspend(() => this.next(lane)))
    )
  }

  // ---------------------------------------------------------------------------
  // pause and resume
  // ---------------------------------------------------------------------------

  pause(key: string | undefined): void {
    if (key === undefined) {
      this.paused = true
      return
    }
    this.laneFor(key).paused = true
  }

  resume(key: string | undefined): void {
    if (key === undefined) {
      this.paused = false
      this.unblock(this.defaultLane)
      for (const lane of Array.from(this.lanes.values())) this.unblock(lane)
      let ready = this.readyHead
      while (ready !== undefined) {
        this.dispatch()
        ready = ready.next
      }
      return
    }
    const lane = this.lanes.get(key)
    if (lane !== undefined) this.unblock(lane)
  }

  private unblock(lane: Lane): void {
    lane.paused = false
    lane.halted = false
    if (lane.state === WAITING) {
      if (lane.size > 0) this.makeReady(lane)
      else lane.state = IDLE
    }
    this.reclaim(lane)
  }

  // ---------------------------------------------------------------------------
  // inspection
  // ---------------------------------------------------------------------------

  get size(): number {
    return this.count
  }

  sizeOf(key: string | undefined): number {
    if (key === undefined) return this.defaultLane.size
    return this.lanes.get(key)?.size ?? 0
  }

  get laneCount(): number {
    return this.lanes.size
  }

  // ---------------------------------------------------------------------------
  // shutdown
  // ---------------------------------------------------------------------------

  /** Closes intake and waits until every accepted task has finished (or `stop` ran), then ends the workers. */
  readonly flush: Effect.Effect<void> = Effect.suspend(() => {
    if (this.phase === STOPPED) return Effect.void
    if (this.phase === OPEN) {
      this.phase = FLUSHING
      this.rejectWaiters()
      if (this.count === 0) Deferred.unsafeDone(this.drained, Exit.void)
    }
    return Effect.zipRight(Deferred.await(this.drained), this.interruptAll)
  })

  /**
   * Closes intake, interrupts every worker and timer (awaiting their finalizers),
   * then fails every accepted task's waiter with `SequentStoppedError`.
   * Succeeds with the number of tasks dropped; a second call waits for the first.
   */
  readonly stop: Effect.Effect<number> = Effect.uninterruptible(Effect.suspend(() => {
    if (this.phase === STOPPED) return Deferred.await(this.stopped)
    this.phase = STOPPED
    this.rejectWaiters()
    return Effect.zipRight(
      this.interruptAll,
      Effect.sync(() => {
        let dropped = 0
        const lanes = [this.defaultLane, ...this.lanes.values()]
        this.lanes.clear()
        this.readyHead = this.readyTail = undefined
        for (const lane of lanes) {
          lane.state = IDLE
          for (const job of lane.drain()) {
            dropped++
            if (job.deferred !== undefined) {
              Deferred.unsafeDone(job.deferred, Exit.fail(new SequentStoppedError({ attempts: job.attempts })))
            }
          }
        }
        this.count = 0
        Deferred.unsafeDone(this.drained, Exit.void)
        Deferred.unsafeDone(this.stopped, Exit.succeed(dropped))
        return dropped
      })
    )
  }))
}

export { Job, Lane }
