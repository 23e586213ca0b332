/**
 * Reports what the executor does to its metrics, its event subscribers and its
 * tracer. Every hook is synchronous and cheap when nobody listens: metrics are
 * cached hook calls, events are built only while someone subscribes, spans only
 * when tracing is on.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as MetricLabel from "effect/MetricLabel"
import * as MutableQueue from "effect/MutableQueue"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { SequentEvent, type SequentMetrics } from "../Observability.js"
import { SequentFalseError } from "../SequentError.js"
import type { Job, Lane } from "./lane.js"

/**
 * How a task ended.
 *
 * @internal
 */
export type End = "succeeded" | "gaveUp" | "dropped"

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** Where the observer's metric updates go: the executor's metrics, or nowhere. */
export type MetricSink = {
  readonly [K in keyof SequentMetrics]: {
    readonly unsafeUpdate: (value: number, tags: ReadonlyArray<MetricLabel.MetricLabel>) => void
  }
}

const discard = { unsafeUpdate: () => {} }

/** The sink of an executor whose `metrics` option is off. */
export const noMetrics: MetricSink = {
  scheduled: discard,
  succeeded: discard,
  attemptsFailed: discard,
  gaveUp: discard,
  dropped: discard,
  queueSize: discard,
  taskDuration: discard,
  attemptDuration: discard
}

/**
 * One subscriber's buffer of events. Full, it drops its oldest event to take the
 * new one, so the publisher never waits and never fails, and a subscriber that
 * falls behind loses only its own oldest unread events.
 *
 * (A `PubSub.sliding` does not do this when published to synchronously: its
 * `unsafeOffer` drops the new event, for every subscriber, once the slowest one
 * is full.)
 */
class SlidingBuffer<A> implements Queue.BackingQueue<A> {
  readonly [Queue.BackingQueueTypeId] = { _A: (_: A) => _ } as Queue.BackingQueue<A>[Queue.BackingQueueTypeId]
  private readonly queue: MutableQueue.MutableQueue<A>

  constructor(private readonly size: number) {
    this.queue = MutableQueue.bounded(size)
  }

  poll<Def>(def: Def): A | Def {
    return MutableQueue.poll(this.queue, def)
  }

  pollUpTo(limit: number): Chunk.Chunk<A> {
    return MutableQueue.pollUpTo(this.queue, limit)
  }

  offer(element: A): boolean {
    if (MutableQueue.length(this.queue) >= this.size) MutableQueue.poll(this.queue, undefined)
    return MutableQueue.offer(this.queue, element)
  }

  offerAll(elements: Iterable<A>): Chunk.Chunk<A> {
    for (const element of elements) this.offer(element)
    return Chunk.empty()
  }

  capacity(): number {
    return this.size
  }

  length(): number {
    return MutableQueue.length(this.queue)
  }
}

/** @internal */
export class Observer {
  /** The open event subscriptions; events are built only while there is one. */
  private readonly queues = new Set<Queue.Queue<SequentEvent>>()

  /** Whether anyone subscribes: events are built only then. */
  private get listened(): boolean {
    return this.queues.size > 0
  }

  /**
   * A subscription, open from now until the scope closes, holding at most
   * `eventBuffer` unread events: the newest ones.
   */
  readonly subscribe: Effect.Effect<Queue.Dequeue<SequentEvent>, never, Scope.Scope>

  /**
   * The clock time the executor started at. Jobs keep their schedule time
   * relative to it: a small whole number of milliseconds is stored inline,
   * where an absolute one would be a boxed double in every queued job.
   */
  readonly epoch: number

  constructor(
    private readonly metrics: MetricSink,
    private readonly laneMetrics: boolean,
    eventBuffer: number,
    private readonly clock: Clock.Clock,
    private readonly tracer: Tracer.Tracer | undefined
  ) {
    this.epoch = clock.unsafeCurrentTimeMillis()
    this.subscribe = Effect.acquireRelease(
      Effect.suspend(() => Queue.make(new SlidingBuffer<SequentEvent>(eventBuffer), Queue.slidingStrategy())).pipe(
        Effect.tap((queue) => {
          this.queues.add(queue)
        })
      ),
      (queue) =>
        Effect.suspend(() => {
          this.queues.delete(queue)
          return Queue.shutdown(queue)
        })
    )
  }

  private tags(lane: Lane): ReadonlyArray<MetricLabel.MetricLabel> {
    if (!this.laneMetrics || lane.key === undefined) return NO_TAGS
    return lane.tags ??= [MetricLabel.make("key", lane.key)]
  }

  private publish(event: SequentEvent): void {
    for (const queue of this.queues) queue.unsafeOffer(event)
  }

  size(size: number): void {
    this.metrics.queueSize.unsafeUpdate(size, NO_TAGS)
  }

  scheduled(id: number, scheduledAt: number, lane: Lane, size: number): void {
    this.metrics.scheduled.unsafeUpdate(1, this.tags(lane))
    this.size(size)
    if (this.listened) {
      this.publish(SequentEvent.Scheduled({ task: id, key: lane.key, at: this.epoch + scheduledAt }))
    }
  }

  started(job: Job, lane: Lane, now: number): void {
    lane.attemptStartedAt = now
    if (this.tracer !== undefined && lane.span === undefined) lane.span = this.taskSpan(job, lane)
    if (this.listened) {
      this.publish(SequentEvent.Started({ task: job.id, key: lane.key, attempt: job.attempts, at: now }))
    }
  }

  private attemptEnded(lane: Lane, now: number): void {
    this.metrics.attemptDuration.unsafeUpdate((now - lane.attemptStartedAt) / 1000, this.tags(lane))
  }

  /**
   * Reports a task that has ended, with how it ended; returns the time it read
   * (for the next attempt's start).
   */
  ended(
    end: End,
    job: Job,
    lane: Lane,
    /** The value of a task that succeeded, else the cause it ended with. */
    outcome: unknown,
    size: number,
    span: Tracer.Span | undefined
  ): number {
    if (end === "succeeded") return this.succeeded(job, lane, size, span)
    if (end === "dropped") return this.dropped(job, lane, span)
    return this.gaveUp(job, lane, outcome as Cause.Cause<unknown>, size, span)
  }

  private succeeded(job: Job, lane: Lane, size: number, span: Tracer.Span | undefined): number {
    const now = this.clock.unsafeCurrentTimeMillis()
    const tags = this.tags(lane)
    this.attemptEnded(lane, now)
    this.metrics.succeeded.unsafeUpdate(1, tags)
    this.metrics.taskDuration.unsafeUpdate((now - this.epoch - job.scheduledAt) / 1000, tags)
    this.size(size)
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.void)
    if (this.listened) {
      this.publish(SequentEvent.Succeeded({
        task: job.id,
        key: lane.key,
        attempts: job.attempts,
        duration: Duration.millis(now - this.epoch - job.scheduledAt),
        at: now
      }))
    }
    return now
  }

  attemptFailed(job: Job, lane: Lane, cause: Cause.Cause<unknown>, delay: number): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.attemptEnded(lane, now)
    this.metrics.attemptsFailed.unsafeUpdate(1, this.tags(lane))
    lane.span?.event("attempt failed", this.clock.unsafeCurrentTimeNanos(), {
      "sequent.attempt": job.attempts,
      "sequent.retry_in_ms": delay
    })
    if (this.listened) {
      this.publish(SequentEvent.AttemptFailed({
        task: job.id,
        key: lane.key,
        attempt: job.attempts,
        cause,
        retryIn: Duration.millis(delay),
        at: now
      }))
    }
  }

  /**
   * The last attempt of a task that gives up has failed. Called as soon as the
   * executor knows, before the dead-letter handler runs, so that the attempt's
   * duration does not include the handler's.
   */
  lastAttemptFailed(lane: Lane): void {
    this.attemptEnded(lane, this.clock.unsafeCurrentTimeMillis())
    this.metrics.attemptsFailed.unsafeUpdate(1, this.tags(lane))
  }

  /** The task gave up and left its lane (after its dead-letter handler, if any). */
  private gaveUp(
    job: Job,
    lane: Lane,
    cause: Cause.Cause<unknown>,
    size: number,
    span: Tracer.Span | undefined
  ): number {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.metrics.gaveUp.unsafeUpdate(1, this.tags(lane))
    this.size(size)
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.failCause(cause))
    if (this.listened) {
      this.publish(SequentEvent.GaveUp({ task: job.id, key: lane.key, attempts: job.attempts, cause, at: now }))
    }
    return now
  }

  private dropped(job: Job, lane: Lane, span: Tracer.Span | undefined): number {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.metrics.dropped.unsafeUpdate(1, this.tags(lane))
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.interrupt(FiberId.none))
    if (this.listened) {
      this.publish(SequentEvent.Dropped({ task: job.id, key: lane.key, attempts: job.attempts, at: now }))
    }
    return now
  }

  paused(key: string | undefined): void {
    if (this.listened) this.publish(SequentEvent.Paused({ key, at: this.clock.unsafeCurrentTimeMillis() }))
  }

  resumed(key: string | undefined): void {
    if (this.listened) this.publish(SequentEvent.Resumed({ key, at: this.clock.unsafeCurrentTimeMillis() }))
  }

  /**
   * The task's span: a root span that links to the span current when the task
   * was scheduled, so a background task never stretches its caller's trace.
   */
  private taskSpan(job: Job, lane: Lane): Tracer.Span {
    const scheduledBy = Context.getOption(job.context as Context.Context<never>, Tracer.ParentSpan)
    const links: Array<Tracer.SpanLink> = Option.isSome(scheduledBy)
      ? [{ _tag: "SpanLink", span: scheduledBy.value, attributes: { "sequent.link": "scheduled-by" } }]
      : []
    const span = this.tracer!.span(
      "Sequent.task",
      Option.none(),
      Context.empty(),
      links,
      this.clock.unsafeCurrentTimeNanos(),
      "internal",
      { attributes: {}, links, root: true, captureStackTrace: false }
    )
    span.attribute("sequent.task", job.id)
    span.attribute("sequent.scheduled_at_ms", this.epoch + job.scheduledAt)
    if (lane.key !== undefined) span.attribute("sequent.key", lane.key)
    return span
  }

  /**
   * The attempt, in a `Sequent.attempt` span under the task's span, when tracing
   * is on. A `false` result fails inside the span, as the executor counts it, so
   * that the span ends with an error too.
   */
  wrap(job: Job, lane: Lane, task: Effect.Effect<unknown, unknown>): Effect.Effect<unknown, unknown> {
    const parent = lane.span
    if (parent === undefined) return task
    const attempt = Effect.flatMap(
      task,
      (value) => value === false ? Effect.fail(new SequentFalseError()) : Effect.succeed(value)
    )
    return Effect.withSpan(attempt, "Sequent.attempt", {
      parent,
      captureStackTrace: false,
      attributes: {
        "sequent.task": job.id,
        "sequent.attempt": job.attempts,
        ...(lane.key === undefined ? {} : { "sequent.key": lane.key })
      }
    })
  }
}
