/**
 * The executor behind `Sequent`: lanes, the ready list, the workers, and the
 * retry driver. Plain mutable state, touched only from inside effects; JavaScript
 * runs one effect step at a time, so every synchronous block below is atomic.
 *
 * Data flows one way: `offer` counts the task and hands it to the store, which
 * keeps it (or not) and puts it on its lane through the executor's `Intake`; a
 * worker takes a ready lane, runs the head job's attempt, has the store write
 * the outcome, and finishes the job (its waiter, the count, the observer)
 * before it looks for the next lane. The executor calls the store; nothing
 * calls back up.
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
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type { LaneStatus, SequentStatus } from "../Observability.js"
import {
  SequentClosedError,
  SequentFalseError,
  SequentFullError,
  SequentStoppedError,
  SequentTimeoutError
} from "../SequentError.js"
import { Turns } from "./eventLoop.js"
import { BACKOFF, IDLE, Job, Lane, type Policy, READY, RUNNING, WAITING } from "./lane.js"
import type { End, Observer } from "./observer.js"
import type { Config } from "./options.js"
import { logAttemptFailed, logGaveUp } from "./render.js"
import { decide, type Decision } from "./retry.js"
import { type Intake, nothing, type Offered, type Store } from "./store.js"
import type { Waiter } from "./waiter.js"

/** @internal */
export interface GiveUp {
  readonly key: string | undefined
  readonly attempts: number
  readonly cause: Cause.Cause<unknown>
}

/** Forks a fiber in the executor's scope. */
export type Run = (
  effect: Effect.Effect<void>,
  options?: { readonly immediate?: boolean }
) => Fiber.RuntimeFiber<void, never>

/** A `schedule` waiting for room, with what it offered. */
interface RoomWaiter<Entry, E> {
  readonly offer: (executor: Executor<Entry, E>) => Effect.Effect<void, E>
  readonly resume: (effect: Effect.Effect<void, SequentClosedError | E>) => void
}

/**
 * The executor's phase. Open, it accepts tasks; flushing, it accepts none and
 * runs what it has; stopped, it holds no lanes, so a task that arrives late
 * (from a store write still in flight) can only fail.
 */
const OPEN = 0
const FLUSHING = 1
const STOPPED = 2

/** How a task ended, for the observer. */
const SUCCEEDED: End = "succeeded"
const GAVE_UP: End = "gaveUp"
const DROPPED: End = "dropped"

/**
 * The cause a caller gets for a task that ended with `cause`. An attempt that
 * interrupted itself is a failed attempt, not an interruption of the caller:
 * handed on as it is, it would interrupt the caller's fiber, past its
 * error handlers and through its finalizers.
 */
const forCaller = (cause: Cause.Cause<unknown>): Cause.Cause<unknown> =>
  Cause.isInterruptedOnly(cause)
    ? Cause.die(new Cause.InterruptedException("Sequent: the task's last attempt was interrupted"))
    : cause

/** The cause a `false` result stands for. */
const falseCause = Cause.fail(new SequentFalseError())

const withoutParentSpan = (context: Context.Context<unknown>): Context.Context<never> =>
  (Option.isSome(Context.getOption(context as Context.Context<never>, Tracer.ParentSpan))
    ? Context.omit(Tracer.ParentSpan)(context)
    : context) as Context.Context<never>

/**
 * The executor whose tasks a fiber runs: set on the workers, and inherited by
 * every fiber a task forks. A worker waits for the fibers its task forked
 * before it ends, so `stop` or `flush` called from one of them must not wait
 * for the workers either. (A fiber a task forks as a daemon inherits it too,
 * and is treated the same, though nothing waits for it.)
 */
const runsTasksOf = FiberRef.unsafeMake<unknown>(undefined)

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
 * task can run. (A `schedule` that lets the event loop turn first, see
 * `Turns`, gives the other fibers theirs too.)
 */
const YIELD_ABOVE = 8192
const YIELD_EVERY = 31

/**
 * A worker fiber's state. Its effects and handlers are built once; an attempt
 * costs one effect of the executor's own.
 */
class Worker<Entry, E> {
  lane: Lane = undefined as unknown as Lane
  job: Job = undefined as unknown as Job
  /** The outcome of the current job, kept while the store writes it. */
  value: unknown = undefined
  cause: Cause.Cause<unknown> = Cause.empty
  /** How long the current job waits before its next attempt, once it has failed. */
  delay = 0
  /** The caller context the worker's context was last taken from. */
  private adoptedFrom: Context.Context<unknown> | undefined = undefined
  private readonly outcome: {
    readonly onSuccess: (value: unknown) => Effect.Effect<void>
    readonly onFailure: (cause: Cause.Cause<unknown>) => Effect.Effect<void>
  }
  readonly loop: Effect.Effect<void>
  readonly park: Effect.Effect<void>
  /** The loop, once the event loop has turned. */
  readonly afterTurn: Effect.Effect<void>
  /** Resumes the parked worker with its loop: set while it is parked. */
  wake: (effect: Effect.Effect<void>) => void = () => {}

  constructor(private readonly executor: Executor<Entry, E>) {
    this.outcome = {
      onSuccess: (value) => value === false ? executor.failed(this, falseCause) : executor.succeeded(this, value),
      onFailure: (cause) => executor.failed(this, cause)
    }
    this.loop = Effect.suspend(() => executor.idle(this))
    this.afterTurn = Effect.zipRight(executor.turns.letTurn, this.loop)
    this.park = Effect.async<void>((resume) => executor.parkOrResume(this, resume))
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
export class Executor<Entry, E> implements Intake {
  private phase = OPEN
  private count = 0
  private ids = 0
  /** Offers counted while the backlog is long (see `YIELD_ABOVE`). */
  private offers = 0
  private readonly lanes = new Map<string, Lane>()
  private defaultLane: Lane
  private readyHead: Lane | undefined = undefined
  private readyTail: Lane | undefined = undefined
  private workers = 0
  private readonly parked: Array<Worker<Entry, E>> = []
  /** The workers' fibers, to tell one that runs a scope's finalizer (see `insideTask`). */
  private readonly workerFibers = new Set<Fiber.RuntimeFiber<void, never>>()
  private readonly parkLimit: number
  private paused = false
  private readonly roomWaiters: Array<RoomWaiter<Entry, E>> = []
  private readonly drained: Deferred.Deferred<void>
  /** While a flush waits for the store's `drain`: until it ends, no count of 0 is the end of the flush. */
  private storeDraining = false
  private readonly stopped: Deferred.Deferred<number>
  /** The store's `accept`, bound to this executor. */
  private readonly accept: Offered<Entry, Effect.Effect<void, E>>
  /** When the executor's fibers let the event loop turn. */
  readonly turns: Turns

  constructor(
    readonly config: Config,
    private readonly store: Store<Entry, E>,
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
    this.accept = store.accept(this)
    this.turns = new Turns(clock, config.yieldToEventLoop)
  }

  // ---------------------------------------------------------------------------
  // intake
  // ---------------------------------------------------------------------------

  /** Now, as a job's schedule time: a small whole number, stored inline. */
  private sinceEpoch(): number {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.turns.saw(now)
    return now - this.observer.epoch
  }

  /** Counts `task` as accepted and hands it to the store, or fails when closed or full. */
  offer(
    key: string | undefined,
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined,
    entry: Entry
  ): Effect.Effect<void, SequentClosedError | SequentFullError | E> {
    if (this.phase !== OPEN) return Effect.fail(this.closedError())
    if (this.count >= this.config.capacity || this.roomWaiters.length > 0) {
      return this.config.onFull === "fail"
        ? Effect.fail(new SequentFullError({ capacity: this.config.capacity }))
        : this.waitForRoom(key, task, context, policy, waiter, entry)
    }
    // while tasks wait, a producer in a tight loop would keep the event loop from turning
    if (this.turns.beforeOffer(this.count)) {
      return this.offerAfter(this.turns.letTurn, key, task, context, policy, waiter, entry)
    }
    if (this.count > YIELD_ABOVE && (++this.offers & YIELD_EVERY) === 0) {
      return this.offerAfter(Effect.yieldNow(), key, task, context, policy, waiter, entry)
    }
    this.count++
    return this.accept(key, task, context, policy, waiter, entry)
  }

  /**
   * Offers the task once `first` is done. A function of its own, like
   * `waitForRoom`: a closure over the task inside `offer` would cost every
   * call of `offer` a context object for what it captures.
   */
  private offerAfter(
    first: Effect.Effect<void>,
    key: string | undefined,
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined,
    entry: Entry
  ): Effect.Effect<void, SequentClosedError | SequentFullError | E> {
    return Effect.zipRight(first, Effect.suspend(() => this.offer(key, task, context, policy, waiter, entry)))
  }

  push(
    key: string | undefined,
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined
  ): void {
    const lane = this.laneFor(key)
    const id = ++this.ids
    const scheduledAt = this.sinceEpoch()
    lane.push(task, context, policy, waiter, id, scheduledAt)
    this.queued(lane, id, scheduledAt)
  }

  job(
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    waiter: Waiter | undefined
  ): Job {
    return new Job(task, context, policy, waiter, ++this.ids, this.sinceEpoch())
  }

  admit(key: string | undefined, job: Job): void {
    if (this.phase === STOPPED) {
      this.count--
      if (job.waiter !== undefined) {
        job.waiter.done(Exit.fail(new SequentStoppedError({ attempts: job.attempts })))
      }
      return
    }
    this.enqueue(key, job)
  }

  release(job: Job, exit: Exit.Exit<unknown, unknown>): void {
    if (job.waiter !== undefined) job.waiter.done(exit)
    this.finished()
  }

  restore(key: string | undefined, job: Job): void {
    if (this.phase === STOPPED) return
    this.count++
    this.enqueue(key, job)
  }

  halt(key: string | undefined): void {
    this.laneFor(key).halted = true
  }

  unhalt(key: string | undefined): void {
    const lane = key === undefined ? this.defaultLane : this.lanes.get(key)
    if (lane === undefined || !lane.halted) return
    lane.halted = false
    if (lane.state === WAITING && !lane.blocked) {
      if (lane.size > 0) this.makeReady(lane)
      else lane.state = IDLE
    }
    this.reclaim(lane)
  }

  get accepting(): boolean {
    return this.phase === OPEN
  }

  /**
   * Lets go of the lane of `key`, which another instance now runs (a shared
   * journal moved it). A new lane takes its key at once, so that tasks the
   * store hands over later never join the old one; the old lane's jobs are
   * dropped now, or, while a worker runs its head, as soon as that attempt
   * ends. Its waiters
   * get `SequentStoppedError`: the task stays in the journal.
   */
  evict(key: string | undefined): void {
    const lane = key === undefined ? this.defaultLane : this.lanes.get(key)
    if (lane === undefined) return
    if (key === undefined) {
      this.defaultLane = new Lane(undefined, this.config.policy)
      this.defaultLane.paused = lane.paused
    } else this.lanes.delete(key)
    lane.evicted = true
    if (lane.state === RUNNING) return
    if (lane.state === READY) this.unlinkReady(lane)
    this.dropLane(lane)
  }

  /** Takes a lane out of the ready list (a walk of the list: evictions are rare). */
  private unlinkReady(lane: Lane): void {
    let previous: Lane | undefined = undefined
    for (let at = this.readyHead; at !== undefined; previous = at, at = at.next) {
      if (at !== lane) continue
      if (previous === undefined) this.readyHead = lane.next
      else previous.next = lane.next
      if (this.readyTail === lane) this.readyTail = previous
      lane.next = undefined
      return
    }
  }

  /** Drops every job of an evicted lane: each finishes with `SequentStoppedError`. */
  private dropLane(lane: Lane): void {
    lane.state = IDLE
    const span = lane.span
    lane.drain().forEach((job, index) => {
      const cause = Cause.fail(new SequentStoppedError({ attempts: job.attempts }))
      this.finish(job, lane, index === 0 ? span : undefined, DROPPED, cause)
    })
  }

  /** The worker's lane was evicted while it ran: drop the lane, and look for another. */
  private dropEvicted(worker: Worker<Entry, E>, lane: Lane): Effect.Effect<void> {
    this.dropLane(lane)
    worker.cause = Cause.empty
    worker.value = undefined
    return worker.loop
  }

  private closedError(): SequentClosedError {
    return new SequentClosedError({ state: this.phase === FLUSHING ? "flushing" : "stopped" })
  }

  /** Waits in line for room; whoever frees the room counts and offers the task, so arrival order is kept. */
  private waitForRoom(
    key: string | undefined,
    task: Effect.Effect<unknown, unknown, unknown>,
    context: Context.Context<unknown>,
    policy: Policy,
    job: Waiter | undefined,
    entry: Entry
  ): Effect.Effect<void, SequentClosedError | E> {
    const offer = (executor: Executor<Entry, E>) => executor.accept(key, task, context, policy, job, entry)
    return Effect.async<void, SequentClosedError | E>((resume) => {
      const waiter: RoomWaiter<Entry, E> = { offer, resume }
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
      this.count++
      waiter.resume(waiter.offer(this))
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
    this.queued(lane, job.id, job.scheduledAt)
  }

  /** Reports a counted task just queued on `lane`, and gets the lane a worker if it needs one. */
  private queued(lane: Lane, id: number, scheduledAt: number): void {
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
    if (this.parked.length > 0) {
      // resumed straight into its loop: two run-loop steps fewer per wake-up than resuming, then looping
      const worker = this.parked.pop()!
      worker.wake(worker.loop)
    } else if (this.workers < this.config.concurrency) {
      this.workers++
      // not started in the caller's stack: `schedule` returns before any task runs
      const loop = Effect.withMaxOpsBeforeYield(new Worker<Entry, E>(this).loop, WORKER_TURN)
      const fiber = this.run(Effect.locally(loop, runsTasksOf, this), { immediate: false })
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
      if (lane.evicted) {
        this.dropLane(lane)
        lane = this.readyHead
        continue
      }
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
  idle(worker: Worker<Entry, E>): Effect.Effect<void> {
    const lane = this.takeReady()
    if (lane !== undefined) return this.start(worker, lane)
    if (this.phase === STOPPED || this.parked.length >= this.parkLimit) {
      this.workers--
      return Effect.void
    }
    return worker.park
  }

  /** Parks a worker, unless work arrived since it looked (the check and the park are one step). */
  parkOrResume(worker: Worker<Entry, E>, resume: (effect: Effect.Effect<void>) => void): void {
    if (!this.paused && this.readyHead !== undefined) return resume(worker.loop)
    worker.wake = resume
    this.parked.push(worker)
  }

  // ---------------------------------------------------------------------------
  // attempts
  // ---------------------------------------------------------------------------

  /**
   * Starts the next attempt of the head job of `lane`. `now` is passed on by a
   * worker that has just read the clock to settle the previous task: the
   * same instant, one clock read fewer per task.
   */
  private start(worker: Worker<Entry, E>, lane: Lane, now = this.clock.unsafeCurrentTimeMillis()): Effect.Effect<void> {
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

  /** Goes on with `next` once the store's `write` is done: at once when it has nothing to write. */
  private afterWrite(
    write: Effect.Effect<void>,
    worker: Worker<Entry, E>,
    next: (worker: Worker<Entry, E>) => Effect.Effect<void>
  ): Effect.Effect<void> {
    return write === nothing ? next(worker) : Effect.zipRight(write, Effect.suspend(() => next(worker)))
  }

  succeeded(worker: Worker<Entry, E>, value: unknown): Effect.Effect<void> {
    worker.value = value
    return this.afterWrite(this.store.complete(worker.job, value), worker, this.settle)
  }

  private readonly settle = (worker: Worker<Entry, E>): Effect.Effect<void> => {
    const { job, lane } = worker
    const span = lane.span
    lane.shift()
    const now = this.finish(job, lane, span, SUCCEEDED, worker.value)
    worker.value = undefined
    return this.next(worker, lane, now)
  }

  /**
   * Ends a job that has left its lane: settles its waiter, counts it out, and
   * reports it. `outcome` is the value a job that succeeded returned, else the
   * cause it ended with; the `Exit` is built only for a waiter, since most
   * tasks have none. Returns the time the observer read.
   */
  private finish(job: Job, lane: Lane, span: Tracer.Span | undefined, end: End, outcome: unknown): number {
    if (job.waiter !== undefined) {
      job.waiter.done(
        end === SUCCEEDED ? Exit.succeed(outcome) : Exit.failCause(forCaller(outcome as Cause.Cause<unknown>))
      )
    }
    this.finished()
    return this.observer.ended(end, job, lane, outcome, this.count, span)
  }

  /**
   * After the head job of `lane` finished: go on with the lane, or hand it
   * back and pick the next one; first let the event loop turn, if the
   * executor has kept it long enough (see `Turns`) and there is more to do.
   */
  private next(worker: Worker<Entry, E>, lane: Lane, now?: number): Effect.Effect<void> {
    if (lane.evicted) return this.dropEvicted(worker, lane)
    const overdue = now !== undefined && this.turns.overdue(now)
    if (lane.size === 0) {
      lane.state = IDLE
      this.reclaim(lane)
      return overdue && this.readyHead !== undefined ? worker.afterTurn : worker.loop
    }
    if (overdue && !lane.blocked) {
      // the lane waits in line while the event loop turns
      this.requeue(lane)
      return worker.afterTurn
    }
    return this.proceed(worker, lane, now)
  }

  /** The lane's head is due again: run it at once if no other lane waits, else take turns. */
  private proceed(worker: Worker<Entry, E>, lane: Lane, now?: number): Effect.Effect<void> {
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
    this.turns.finished()
    if (this.roomWaiters.length > 0) this.admitWaiters()
    if (this.count === 0 && this.phase !== OPEN && !this.storeDraining) Deferred.unsafeDone(this.drained, Exit.void)
  }

  failed(worker: Worker<Entry, E>, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    const { job, lane } = worker
    if (lane.evicted) return this.dropEvicted(worker, lane)
    const now = this.clock.unsafeCurrentTimeMillis()
    lane.lastFailure = cause
    if (lane.failingSince === undefined) lane.failingSince = now
    return Effect.flatMap(decide(job.policy, lane.retryState, cause, now), (decision) => {
      worker.cause = decision._tag === "GiveUp" ? decision.cause : cause
      return decision._tag === "GiveUp" ? this.gaveUp(worker) : this.retry(worker, decision)
    })
  }

  private retry(worker: Worker<Entry, E>, decision: Extract<Decision, { _tag: "Retry" }>): Effect.Effect<void> {
    const { job, lane } = worker
    lane.retryState = decision.state
    worker.delay = decision.delay
    this.observer.attemptFailed(job, lane, worker.cause, decision.delay)
    return this.afterWrite(this.store.attemptFailed(job), worker, this.logAndWait)
  }

  private readonly logAndWait = (worker: Worker<Entry, E>): Effect.Effect<void> => {
    const { job, lane } = worker
    const delay = worker.delay
    return Effect.zipRight(
      logAttemptFailed(this.config.attemptLogLevel, job.attempts, lane.key, delay, worker.cause),
      Effect.suspend(() => this.retryAfter(worker, lane, delay))
    )
  }

  private retryAfter(worker: Worker<Entry, E>, lane: Lane, delay: number): Effect.Effect<void> {
    if (this.phase === STOPPED) return Effect.void
    if (lane.evicted) return this.dropEvicted(worker, lane)
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

  /** The head job gave up with `worker.cause`: report it, have the store write it, hand it to the dead-letter handler, finish it. */
  private gaveUp(worker: Worker<Entry, E>): Effect.Effect<void> {
    const { cause, job, lane } = worker
    this.observer.lastAttemptFailed(lane)
    return Effect.zipRight(
      logGaveUp(job.attempts, lane.key, cause),
      this.afterWrite(this.store.giveUp(job, cause, this.config.onGiveUp === "halt"), worker, this.deadLetter)
    )
  }

  private readonly deadLetter = (worker: Worker<Entry, E>): Effect.Effect<void> => {
    // the give-up was not written for a lane that moved: its new owner runs the task again
    if (worker.lane.evicted) return this.dropEvicted(worker, worker.lane)
    // halted before the handler runs, so that a resume from inside the handler lifts the halt
    if (this.config.onGiveUp === "halt") worker.lane.halted = true
    const handler = this.config.deadLetter
    if (handler === undefined) return this.dropGivenUp(worker)
    const { cause, job, lane } = worker
    // suspended, so a handler that throws instead of returning an effect is caught like one that dies
    return Effect.suspend(() => handler({ key: lane.key, attempts: job.attempts, cause })).pipe(
      Effect.catchAllCause((failure) => Effect.logError("Sequent: the dead-letter handler failed", failure)),
      Effect.zipRight(Effect.suspend(() => this.dropGivenUp(worker)))
    )
  }

  private dropGivenUp(worker: Worker<Entry, E>): Effect.Effect<void> {
    const { cause, job, lane } = worker
    const span = lane.span
    lane.shift()
    this.finish(job, lane, span, GAVE_UP, cause)
    worker.cause = Cause.empty
    return this.next(worker, lane)
  }

  // ---------------------------------------------------------------------------
  // pause and resume
  // ---------------------------------------------------------------------------

  pause(key: string | undefined): void {
    if (key === undefined) this.paused = true
    // a stopped executor holds no lanes: a pause does not make one that nothing would ever reclaim
    else if (this.phase !== STOPPED) this.laneFor(key).paused = true
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
        : this.count === 0 && !this.storeDraining
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
    if (this.phase === OPEN) this.closeIntake()
    // a task cannot wait for the queue it is part of: from inside one, flush only closes intake
    if (this.insideTask(fiber)) return Effect.void
    return Effect.zipRight(Deferred.await(this.drained), this.interruptAll)
  })

  /** Accepts nothing more; the store finishes what it must (its `drain`), in a fiber of the executor's. */
  private closeIntake(): void {
    this.phase = FLUSHING
    this.rejectWaiters()
    if (this.store.drain !== nothing) {
      this.storeDraining = true
      this.run(Effect.ensuring(
        this.store.drain,
        Effect.sync(() => {
          this.storeDraining = false
          if (this.count === 0) Deferred.unsafeDone(this.drained, Exit.void)
        })
      ))
    } else if (this.count === 0) Deferred.unsafeDone(this.drained, Exit.void)
  }

  /**
   * Closes intake, interrupts every worker and timer (awaiting their finalizers),
   * then fails every accepted task's waiter with `SequentStoppedError`.
   * Succeeds with the number of tasks this call dropped; a later call waits for
   * the first one to finish and drops nothing.
   */
  readonly stop: Effect.Effect<number> = Effect.withFiberRuntime((fiber) =>
    this.insideTask(fiber) ? this.stopFromTask : this.stopNow
  )

  /** Whether the caller is one of this executor's tasks (see `insideTask`). */
  readonly calledFromTask: Effect.Effect<boolean> = Effect.withFiberRuntime((fiber) =>
    Effect.succeed(this.insideTask(fiber))
  )

  /**
   * Whether `fiber` is a worker of this executor, or was forked by one of its
   * tasks. A worker running a finalizer (a task that closes the executor's
   * scope) has the refs of whoever added the finalizer, so it is known by
   * its identity too.
   */
  private insideTask(fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean {
    return fiber.getFiberRef(runsTasksOf) === this || this.workerFibers.has(fiber as Fiber.RuntimeFiber<void, never>)
  }

  private readonly stopNow: Effect.Effect<number> = Effect.uninterruptible(Effect.suspend(() => {
    if (this.phase === STOPPED) return Effect.as(Deferred.await(this.stopped), 0)
    this.closeForStop()
    return this.dropEverything
  }))

  /**
   * From inside a task, stop cannot wait for its own interruption: it closes
   * the executor now, in the task's own step, and drops the rest in a fiber of
   * its own, which interrupts the calling task with the others. Closed at
   * once, since the task may go on (and finish) before that fiber runs: no
   * task behind it starts meanwhile, and none is accepted.
   */
  private readonly stopFromTask: Effect.Effect<number> = Effect.suspend(() => {
    if (this.phase === STOPPED) return Effect.succeed(0)
    this.closeForStop()
    return Effect.as(Effect.forkDaemon(Effect.uninterruptible(this.dropEverything)), 0)
  })

  private closeForStop(): void {
    this.phase = STOPPED
    this.rejectWaiters()
  }

  /** Interrupts every fiber, then drops what is left. Suspended: `interruptAll` is set after the fields. */
  private readonly dropEverything: Effect.Effect<number> = Effect.suspend(() =>
    Effect.zipRight(this.interruptAll, Effect.sync(() => this.dropAll()))
  )

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
        const cause = Cause.fail(new SequentStoppedError({ attempts: job.attempts }))
        this.finish(job, lane, index === 0 ? span : undefined, DROPPED, cause)
      })
    }
    // what is still counted is in a store write, and fails when it arrives
    this.observer.size(this.count)
    Deferred.unsafeDone(this.drained, Exit.void)
    Deferred.unsafeDone(this.stopped, Exit.succeed(dropped))
    return dropped
  }
}

export { Job, Lane }
export type { Worker }
