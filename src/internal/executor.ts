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
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import type * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as Intervals from "effect/ScheduleIntervals"
import * as Tracer from "effect/Tracer"
import type { LaneStatus, SequentStatus } from "../Observability.js"
import {
  SequentClosedError,
  SequentFalseError,
  SequentFullError,
  SequentStoppedError,
  SequentTimeoutError
} from "../SequentError.js"
import { BACKOFF, IDLE, Job, Lane, NO_RETRY_STATE, type Policy, READY, RUNNING, WAITING } from "./lane.js"
import type { Observer } from "./observer.js"
import { logAttemptFailed, logGaveUp } from "./render.js"

/** @internal */
export interface GiveUp {
  readonly key: string | undefined
  readonly attempts: number
  readonly cause: Cause.Cause<unknown>
}

/**
 * What a durable executor does at each step of a job, before the step takes
 * effect: each returns once the journal has it.
 *
 * @internal
 */
export interface JobHooks {
  readonly completed: (job: Job) => Effect.Effect<void>
  readonly attemptFailed: (job: Job) => Effect.Effect<void>
  readonly gaveUp: (job: Job, cause: Cause.Cause<unknown>) => Effect.Effect<void>
}

/** @internal */
export interface ExecutorConfig {
  readonly hooks: JobHooks | undefined
  readonly name: string
  readonly policy: Policy
  readonly concurrency: number
  readonly capacity: number
  readonly onFull: "wait" | "fail"
  readonly onGiveUp: "continue" | "halt"
  /** Runs with the services it needs already provided; its failures are logged and ignored. */
  readonly deadLetter: ((giveUp: GiveUp) => Effect.Effect<unknown, unknown>) | undefined
  /** The level failed attempts are logged at; `LogLevel.None` for no log. */
  readonly attemptLogLevel: LogLevel.LogLevel
}

type Run = (
  effect: Effect.Effect<void>,
  options?: { readonly immediate?: boolean }
) => Fiber.RuntimeFiber<void, never>

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

const withoutParentSpan = (context: Context.Context<unknown>): Context.Context<never> =>
  (Option.isSome(Context.getOption(context as Context.Context<never>, Tracer.ParentSpan))
    ? Context.omit(Tracer.ParentSpan)(context)
    : context) as Context.Context<never>

/** Workers kept parked at most, so a burst across many lanes does not leave many idle fibers behind. */
const MAX_PARKED = 64

/**
 * Run-loop steps a worker takes per turn before it lets other fibers run
 * (Effect's default is 2048). A worker needs about as many steps per task as a
 * producer that schedules in a tight loop; with equal turns such a burst
 * outgrows the worker, and the backlog ages into the old generation, where
 * collecting it costs more than running it. With four times the turn the
 * worker drains a burst as fast as it is filled. A turn of trivial tasks lasts
 * about a millisecond.
 */
const WORKER_TURN = 8192

/**
 * Above this many accepted tasks, every 32nd `schedule` (`YIELD_EVERY` + 1)
 * lets the other fibers take a turn before it takes its task. Each of many
 * producers gets a turn for every one the worker gets; without this, a hundred
 * of them in tight loops outrun it until the backlog is as long as the burst.
 * The task is taken after the turn, so `schedule` still returns before its
 * task can run.
 */
const YIELD_ABOVE = 8192
const YIELD_EVERY = 31

/**
 * A worker fiber's state. Its effects and handlers are built once; an attempt
 * costs one effect of the executor's own.
 */
class Worker {
  lane: Lane = undefined as any
  job: Job = undefined as any
  /** The caller context the worker's context was last taken from. */
  private adoptedFrom: Context.Context<unknown> | undefined = undefined
  private readonly outcome: {
    readonly onSuccess: (value: unknown) => Effect.Effect<void>
    readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
  }
  readonly loop: Effect.Effect<void>
  readonly park: Effect.Effect<void>

  constructor(private readonly executor: Executor) {
    this.outcome = {
      onSuccess: (value) => value === false ? executor.failed(this, falseCause) : executor.succeeded(this, value),
      onFailure: (cause) => executor.failed(this, cause)
    }
    this.loop = Effect.suspend(() => executor.idle(this))
    this.park = Effect.zipRight(
      Effect.async<void>((resume) => executor.parkOrResume(resume)),
      this.loop
    )
  }

  /**
   * The attempt of the current job, its outcome handled. Built as the attempt
   * starts, so that the run loop goes straight into the task: each step a
   * worker takes per task is one the producer does not wait for.
   */
  attempt(): Effect.Effect<void> {
    const job = this.job
    const task = this.executor.observer.wrap(job, this.lane, this.executor.timed(job))
    if (job.context === this.adoptedFrom) return Effect.matchCauseEffect(task, this.outcome)
    // The task runs with its caller's services. The worker needs none of its own,
    // so it adopts the caller's context, and only when it changes: `Effect.provide`
    // per attempt would copy the fiber's refs twice for every task. The caller's
    // current span is left out, so a background task never becomes part of the
    // trace of whoever scheduled it (its own span links to it instead).
    this.adoptedFrom = job.context
    return Effect.matchCauseEffect(
      Effect.zipRight(FiberRef.set(FiberRef.currentContext, withoutParentSpan(job.context)), task),
      this.outcome
    )
  }
}

/** @internal */
export class Executor {
  private phase = OPEN
  private count = 0
  private ids = 0
  /** Offers counted while the backlog is long (see `YIELD_ABOVE`). */
  private offers = 0
  private readonly lanes = new Map<string, Lane>()
  private readonly defaultLane: Lane
  private readyHead: Lane | undefined = undefined
  private readyTail: Lane | undefined = undefined
  private workers = 0
  private readonly parked: Array<(effect: Effect.Effect<void>) => void> = []
  private readonly parkLimit: number
  private paused = false
  private readonly roomWaiters: Array<RoomWaiter> = []
  /** The worker fibers alive: a task runs on one of them. */
  private readonly workerFibers = new Set<Fiber.RuntimeFiber<void, never>>()
  private readonly drained: Deferred.Deferred<void>
  private readonly stopped: Deferred.Deferred<number>

  constructor(
    readonly config: ExecutorConfig,
    readonly observer: Observer,
    private readonly run: Run,
    private readonly clock: Clock.Clock,
    private readonly interruptAll: Effect.Effect<void>,
    fiberId: FiberId.FiberId
  ) {
    this.defaultLane = new Lane(undefined, config.policy)
    this.parkLimit = Math.min(config.concurrency, MAX_PARKED)
    this.drained = Deferred.unsafeMake(fiberId)
    this.stopped = Deferred.unsafeMake(fiberId)
  }

  // ---------------------------------------------------------------------------
  // intake
  // ---------------------------------------------------------------------------

  /** Builds a job for `task`, run later with `context`, scheduled now. */
  job(
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    deferred: Deferred.Deferred<unknown, unknown> | undefined
  ): Job {
    return new Job(task, context, policy, deferred, ++this.ids, this.sinceEpoch())
  }

  /** Now, as a job's schedule time: a small whole number, stored inline. */
  private sinceEpoch(): number {
    return this.clock.unsafeCurrentTimeMillis() - this.observer.epoch
  }

  /** Accepts `task` for the lane of `key`, or fails when closed or full. */
  offer(
    key: string | undefined,
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    deferred: Deferred.Deferred<unknown, unknown> | undefined
  ): Effect.Effect<void, SequentClosedError | SequentFullError> {
    if (this.phase !== OPEN) return Effect.fail(this.closedError())
    if (this.count >= this.config.capacity || this.roomWaiters.length > 0) {
      return this.config.onFull === "fail"
        ? Effect.fail(new SequentFullError({ capacity: this.config.capacity }))
        : this.waitForRoom(key, this.job(task, context, policy, deferred))
    }
    if (this.count > YIELD_ABOVE && (++this.offers & YIELD_EVERY) === 0) {
      return Effect.zipRight(Effect.yieldNow(), Effect.suspend(() => this.offer(key, task, context, policy, deferred)))
    }
    const lane = this.laneFor(key)
    const id = ++this.ids
    const scheduledAt = this.sinceEpoch()
    lane.push(task, context, policy, deferred, id, scheduledAt)
    this.accepted(lane, id, scheduledAt)
    return Effect.void
  }

  /**
   * Takes a job that is already durably written, whatever the capacity: it is
   * accepted. A stopped executor leaves it to the journal, for the next start.
   */
  admit(key: string | undefined, job: Job): void {
    if (this.phase !== STOPPED) this.enqueue(key, job)
  }

  /** The error `schedule` fails with once intake is closed; undefined while the executor is open. */
  get closed(): SequentClosedError | undefined {
    return this.phase === OPEN ? undefined : this.closedError()
  }

  private closedError(): SequentClosedError {
    return new SequentClosedError({ state: this.phase === FLUSHING ? "flushing" : "stopped" })
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
    if (this.roomWaiters.length === 0) return
    const error = this.closedError()
    for (const waiter of this.roomWaiters.splice(0)) waiter.resume(Effect.fail(error))
  }

  private enqueue(key: string | undefined, job: Job): void {
    const lane = this.laneFor(key)
    lane.pushJob(job)
    this.accepted(lane, job.id, job.scheduledAt)
  }

  /** Counts a task just queued on `lane`, and gets the lane a worker if it needs one. */
  private accepted(lane: Lane, id: number, scheduledAt: number): void {
    this.count++
    this.observer.scheduled(id, scheduledAt, lane, this.count)
    if (lane.state === IDLE) {
      if (lane.blocked) lane.state = WAITING
      else this.makeReady(lane)
    }
  }

  private laneFor(key: string | undefined): Lane {
    if (key === undefined) return this.defaultLane
    let lane = this.lanes.get(key)
    if (lane === undefined) {
      lane = new Lane(key, this.config.policy)
      this.lanes.set(key, lane)
    }
    return lane
  }

  /** Forgets an empty keyed lane, so lanes live only while they have work or a pause. */
  private reclaim(lane: Lane): void {
    // the identity check: a worker run in the caller's stack (as `dispatch` once did) may
    // have drained this lane, forgotten it, and created a new one for the key since
    if (
      lane.key !== undefined && lane.size === 0 && !lane.blocked && lane.state === IDLE &&
      this.lanes.get(lane.key) === lane
    ) {
      this.lanes.delete(lane.key)
    }
  }

  // ---------------------------------------------------------------------------
  // ready list and workers
  // ---------------------------------------------------------------------------

  private makeReady(lane: Lane): void {
    this.requeue(lane)
    this.dispatch()
  }

  /**
   * Puts a lane at the back of the ready list without waking anyone: for the
   * worker that hands its lane back and takes the head of the list itself, so
   * the ready lanes do not outnumber the workers by one more.
   */
  private requeue(lane: Lane): void {
    lane.state = READY
    lane.next = undefined
    if (this.readyTail === undefined) this.readyHead = lane
    else this.readyTail.next = lane
    this.readyTail = lane
  }

  /** Wakes a parked worker, or starts one while fewer than `concurrency` are alive. */
  private dispatch(): void {
    if (this.paused || this.phase === STOPPED) return
    if (this.parked.length > 0) this.parked.pop()!(Effect.void)
    else if (this.workers < this.config.concurrency) {
      this.workers++
      // not started in the caller's stack: `schedule` returns before any task runs
      const fiber = this.run(Effect.withMaxOpsBeforeYield(new Worker(this).loop, WORKER_TURN), { immediate: false })
      this.workerFibers.add(fiber)
      fiber.addObserver(() => this.workerFibers.delete(fiber))
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

  /** A worker with no lane: takes a ready one, or parks (or ends, when enough are parked). */
  idle(worker: Worker): Effect.Effect<void> {
    const lane = this.takeReady()
    if (lane !== undefined) return this.start(worker, lane)
    if (this.phase === STOPPED || this.parked.length >= this.parkLimit) {
      this.workers--
      return Effect.void
    }
    return worker.park
  }

  /** Parks a worker, unless work arrived since it looked (the check and the park are one step). */
  parkOrResume(resume: (effect: Effect.Effect<void>) => void): void {
    if (!this.paused && this.readyHead !== undefined) resume(Effect.void)
    else this.parked.push(resume)
  }

  // ---------------------------------------------------------------------------
  // attempts
  // ---------------------------------------------------------------------------

  /**
   * Starts the next attempt of the head job of `lane`. `now` is passed on by a
   * worker that has just read the clock to settle the previous task: the
   * same instant, one clock read fewer per task.
   */
  private start(worker: Worker, lane: Lane, now = this.clock.unsafeCurrentTimeMillis()): Effect.Effect<void> {
    if (this.phase === STOPPED) return Effect.void
    const job = lane.peek()
    job.attempts++
    worker.lane = lane
    worker.job = job
    this.observer.started(job, lane, now)
    return worker.attempt()
  }

  /** The job's task, limited by its per-attempt timeout if it has one. */
  timed(job: Job): Effect.Effect<unknown, unknown> {
    const timeout = job.policy.timeout
    const task = job.task as Effect.Effect<unknown, unknown>
    return timeout === undefined ? task : Effect.timeoutFail(task, {
      duration: timeout,
      onTimeout: () => new SequentTimeoutError({ timeout })
    })
  }

  succeeded(worker: Worker, value: unknown): Effect.Effect<void> {
    const hooks = this.config.hooks
    return hooks === undefined
      ? this.settle(worker, value)
      : Effect.zipRight(hooks.completed(worker.job), Effect.suspend(() => this.settle(worker, value)))
  }

  private settle(worker: Worker, value: unknown): Effect.Effect<void> {
    const { job, lane } = worker
    const span = lane.span
    lane.shift()
    if (job.deferred !== undefined) Deferred.unsafeDone(job.deferred, Exit.succeed(value))
    this.finished()
    const now = this.observer.succeeded(job, lane, this.count, span)
    return this.next(worker, lane, now)
  }

  /** After the head job of `lane` finished: go on with the lane, or hand it back and pick the next one. */
  private next(worker: Worker, lane: Lane, now?: number): Effect.Effect<void> {
    if (lane.size === 0) {
      lane.state = IDLE
      this.reclaim(lane)
      return worker.loop
    }
    return this.proceed(worker, lane, now)
  }

  /** The lane's head is due again: run it at once if no other lane waits, else take turns. */
  private proceed(worker: Worker, lane: Lane, now?: number): Effect.Effect<void> {
    if (lane.blocked) {
      lane.state = WAITING
      return worker.loop
    }
    if (this.readyHead === undefined && !this.paused) return this.start(worker, lane, now)
    this.requeue(lane)
    return worker.loop
  }

  private finished(): void {
    this.count--
    if (this.roomWaiters.length > 0) this.admitWaiters()
    if (this.count === 0 && this.phase !== OPEN) Deferred.unsafeDone(this.drained, Exit.void)
  }

  failed(worker: Worker, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const { job, lane } = worker
    const now = this.clock.unsafeCurrentTimeMillis()
    lane.lastFailure = cause
    if (lane.failingSince === undefined) lane.failingSince = now
    const policy = job.policy
    // `isRetryable` and the retry schedule are the user's code: when one throws or
    // dies, the task gives up with that defect added, and the worker lives on.
    // `isRetryable` judges typed failures only: not timeouts, and not `false`.
    const decide = Effect.suspend(() => {
      if (policy.isRetryable !== undefined) {
        const error = Cause.failureOption(cause)
        if (
          Option.isSome(error) && !(error.value instanceof SequentTimeoutError) &&
          !(error.value instanceof SequentFalseError) && !policy.isRetryable(error.value)
        ) return Effect.succeed(undefined)
      }
      const state = lane.retryState === NO_RETRY_STATE ? policy.retry.initial : lane.retryState
      return policy.retry.step(now, Cause.squash(cause), state)
    })
    return Effect.matchCauseEffect(decide, { onFailure: (defect) => this.gaveUp(worker, Cause.sequential(cause, defect)), onSuccess: (step) => {
      if (step === undefined || ScheduleDecision.isDone(step[2])) return this.gaveUp(worker, cause)
      const [nextState, _, decision] = step
      lane.retryState = nextState
      const delay = Math.max(0, Intervals.start(decision.intervals) - now)
      this.observer.attemptFailed(job, lane, cause, delay)
      const hooks = this.config.hooks
      return Effect.zipRight(
        hooks === undefined ? Effect.void : hooks.attemptFailed(job),
        Effect.zipRight(
        logAttemptFailed(this.config.attemptLogLevel, job.attempts, lane.key, delay, cause),
        Effect.suspend(() => this.retryAfter(worker, lane, delay))
      ))
    } })
  }

  private retryAfter(worker: Worker, lane: Lane, delay: number): Effect.Effect<void> {
    if (this.phase === STOPPED) return Effect.void
    if (delay === 0) return this.proceed(worker, lane)
    lane.state = BACKOFF
    lane.dueAt = this.clock.unsafeCurrentTimeMillis() + delay
    this.run(Effect.zipRight(Effect.sleep(Duration.millis(delay)), Effect.sync(() => this.backoffOver(lane))))
    return worker.loop
  }

  private backoffOver(lane: Lane): void {
    if (this.phase === STOPPED || lane.state !== BACKOFF) return
    if (lane.blocked) lane.state = WAITING
    else this.makeReady(lane)
  }

  private gaveUp(worker: Worker, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const { job, lane } = worker
    this.observer.lastAttemptFailed(lane)
    const attempts = job.attempts
    const handler = this.config.deadLetter
    const report = logGaveUp(attempts, lane.key, cause)
    const deliver = Effect.sync(() => {
      const span = lane.span
      lane.shift()
      if (job.deferred !== undefined) Deferred.unsafeDone(job.deferred, Exit.failCause(cause))
      if (this.config.onGiveUp === "halt") lane.halted = true
      this.finished()
      this.observer.gaveUp(job, lane, cause, this.count, span)
    })
    // suspended, so a handler that throws instead of returning an effect is caught like one that dies
    const deadLetter = handler === undefined ? Effect.void : Effect.suspend(() => handler({ key: lane.key, attempts, cause })).pipe(
      Effect.catchAllCause((failure) => Effect.logError("Sequent: the dead-letter handler failed", failure))
    )
    const hooks = this.config.hooks
    return report.pipe(
      Effect.zipRight(hooks === undefined ? Effect.void : hooks.gaveUp(job, cause)),
      Effect.zipRight(deadLetter),
      Effect.zipRight(deliver),
      Effect.zipRight(Effect.suspend(() => this.next(worker, lane)))
    )
  }

  // ---------------------------------------------------------------------------
  // pause and resume
  // ---------------------------------------------------------------------------

  /** Halts the lane of `key` as a give-up with `onGiveUp: "halt"` would: for a halt restored from a journal. */
  halt(key: string | undefined): void {
    this.laneFor(key).halted = true
  }

  pause(key: string | undefined): void {
    if (key === undefined) this.paused = true
    else this.laneFor(key).paused = true
    this.observer.paused(key)
  }

  resume(key: string | undefined): void {
    // reported first: the lanes it frees may start (and report) attempts at once
    this.observer.resumed(key)
    if (key === undefined) {
      this.paused = false
      this.unblock(this.defaultLane)
      for (const lane of Array.from(this.lanes.values())) this.unblock(lane)
      // count first: a worker run in this stack (as `dispatch` once did) takes lanes off the list as it goes
      let ready = 0
      for (let lane = this.readyHead; lane !== undefined; lane = lane.next) ready++
      for (; ready > 0; ready--) this.dispatch()
    } else {
      const lane = this.lanes.get(key)
      if (lane !== undefined) this.unblock(lane)
    }
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

  status(): SequentStatus {
    const now = this.clock.unsafeCurrentTimeMillis()
    const lanes: Array<LaneStatus> = []
    for (const lane of [this.defaultLane, ...this.lanes.values()]) {
      if (lane.size === 0 && !lane.blocked) continue
      lanes.push(lane.status(now, this.observer.epoch))
    }
    return {
      name: this.config.name,
      state: this.phase === OPEN
        ? "open"
        : this.phase === STOPPED
        ? "stopped"
        : this.count === 0
        ? "closed"
        : "flushing",
      size: this.count,
      paused: this.paused,
      lanes
    }
  }

  // ---------------------------------------------------------------------------
  // shutdown
  // ---------------------------------------------------------------------------

  /** Closes intake and waits until every accepted task has finished (or `stop` ran), then ends the workers. */
  readonly flush: Effect.Effect<void> = Effect.withFiberRuntime((fiber) => {
    if (this.phase === STOPPED) return Effect.void
    if (this.phase === OPEN) {
      this.phase = FLUSHING
      this.rejectWaiters()
      if (this.count === 0) Deferred.unsafeDone(this.drained, Exit.void)
    }
    // a task cannot wait for the queue it is part of: from inside one, flush only closes intake
    if (this.workerFibers.has(fiber as Fiber.RuntimeFiber<void, never>)) return Effect.void
    return Effect.zipRight(Deferred.await(this.drained), this.interruptAll)
  })

  /**
   * Closes intake, interrupts every worker and timer (awaiting their finalizers),
   * then fails every accepted task's waiter with `SequentStoppedError`.
   * Succeeds with the number of tasks this call dropped; a later call waits for
   * the first one to finish and drops nothing.
   */
  readonly stop: Effect.Effect<number> = Effect.withFiberRuntime((fiber) =>
    this.workerFibers.has(fiber as Fiber.RuntimeFiber<void, never>)
      // from inside a task, stop cannot wait for its own interruption: it runs
      // in a fiber of its own, which interrupts the calling task with the rest
      ? Effect.as(Effect.forkDaemon(this.stopNow), 0)
      : this.stopNow
  )

  private readonly stopNow: Effect.Effect<number> = Effect.uninterruptible(Effect.suspend(() => {
    if (this.phase === STOPPED) return Effect.as(Deferred.await(this.stopped), 0)
    this.phase = STOPPED
    this.rejectWaiters()
    return Effect.zipRight(this.interruptAll, Effect.sync(() => this.dropAll()))
  }))

  private dropAll(): number {
    let dropped = 0
    const lanes = [this.defaultLane, ...this.lanes.values()]
    this.lanes.clear()
    this.readyHead = this.readyTail = undefined
    for (const lane of lanes) {
      lane.state = IDLE
      const span = lane.span
      lane.drain().forEach((job, index) => {
        dropped++
        if (job.deferred !== undefined) {
          Deferred.unsafeDone(job.deferred, Exit.fail(new SequentStoppedError({ attempts: job.attempts })))
        }
        this.observer.dropped(job, lane, index === 0 ? span : undefined)
      })
    }
    this.count = 0
    this.observer.size(0)
    Deferred.unsafeDone(this.drained, Exit.void)
    Deferred.unsafeDone(this.stopped, Exit.succeed(dropped))
    return dropped
  }
}

export { Job, Lane }
