/**
 * Reports what the executor does to its metrics, its event subscribers and its
 * tracer. Every hook is synchronous and cheap when nobody listens: metrics are
 * cached hook calls, events are built only while someone subscribes, spans only
 * when tracing is on.
 *
 * @internal
 */
import type * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as PubSub from "effect/PubSub"
import * as Tracer from "effect/Tracer"
import { SequentEvent, type SequentMetrics } from "../Observability.js"
import type { Job, Lane } from "./lane.js"

const NO_TAGS: ReadonlyArray<MetricLabel.MetricLabel> = []

/** @internal */
export class Observer {
  /** How many event subscriptions are open; events are built only while there is one. */
  subscribers = 0

  constructor(
    private readonly metrics: SequentMetrics,
    private readonly laneMetrics: boolean,
    private readonly events: PubSub.PubSub<SequentEvent>,
    private readonly clock: Clock.Clock,
    private readonly tracer: Tracer.Tracer | undefined
  ) {}

  private tags(lane: Lane): ReadonlyArray<MetricLabel.MetricLabel> {
    if (!this.laneMetrics || lane.key === undefined) return NO_TAGS
    return lane.tags ??= [MetricLabel.make("key", lane.key)]
  }

  private publish(event: SequentEvent): void {
    this.events.unsafeOffer(event)
  }

  size(size: number): void {
    this.metrics.queueSize.unsafeUpdate(size, NO_TAGS)
  }

  scheduled(job: Job, lane: Lane, size: number): void {
    this.metrics.scheduled.unsafeUpdate(1, this.tags(lane))
    this.size(size)
    if (this.subscribers > 0) {
      this.publish(SequentEvent.Scheduled({ task: job.id, key: lane.key, at: job.scheduledAt }))
    }
  }

  started(job: Job, lane: Lane): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    lane.attemptStartedAt = now
    if (this.tracer !== undefined && lane.span === undefined) lane.span = this.taskSpan(job, lane)
    if (this.subscribers > 0) {
      this.publish(SequentEvent.Started({ task: job.id, key: lane.key, attempt: job.attempts, at: now }))
    }
  }

  private attemptEnded(lane: Lane, now: number): void {
    this.metrics.attemptDuration.unsafeUpdate((now - lane.attemptStartedAt) / 1000, this.tags(lane))
  }

  succeeded(job: Job, lane: Lane, size: number, span: Tracer.Span | undefined): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    const tags = this.tags(lane)
    this.attemptEnded(lane, now)
    this.metrics.succeeded.unsafeUpdate(1, tags)
    this.metrics.taskDuration.unsafeUpdate((now - job.scheduledAt) / 1000, tags)
    this.size(size)
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.void)
    if (this.subscribers > 0) {
      this.publish(SequentEvent.Succeeded({
        task: job.id,
        key: lane.key,
        attempts: job.attempts,
        duration: Duration.millis(now - job.scheduledAt),
        at: now
      }))
    }
  }

  attemptFailed(job: Job, lane: Lane, cause: Cause.Cause<unknown>, delay: number): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    this.attemptEnded(lane, now)
    this.metrics.attemptsFailed.unsafeUpdate(1, this.tags(lane))
    lane.span?.event("attempt failed", this.clock.unsafeCurrentTimeNanos(), {
      "sequent.attempt": job.attempts,
      "sequent.retry_in_ms": delay
    })
    if (this.subscribers > 0) {
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

  gaveUp(job: Job, lane: Lane, cause: Cause.Cause<unknown>, size: number, span: Tracer.Span | undefined): void {
    const now = this.clock.unsafeCurrentTimeMillis()
    const tags = this.tags(lane)
    this.attemptEnded(lane, now)
    this.metrics.attemptsFailed.unsafeUpdate(1, tags)
    this.metrics.gaveUp.unsafeUpdate(1, tags)
    this.size(size)
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.failCause(cause))
    if (this.subscribers > 0) {
      this.publish(SequentEvent.GaveUp({ task: job.id, key: lane.key, attempts: job.attempts, cause, at: now }))
    }
  }

  dropped(job: Job, lane: Lane, span: Tracer.Span | undefined): void {
    this.metrics.dropped.unsafeUpdate(1, this.tags(lane))
    if (span !== undefined) span.end(this.clock.unsafeCurrentTimeNanos(), Exit.interrupt(Option.none() as any))
    if (this.subscribers > 0) {
      this.publish(SequentEvent.Dropped({
        task: job.id,
        key: lane.key,
        attempts: job.attempts,
        at: this.clock.unsafeCurrentTimeMillis()
      }))
    }
  }

  paused(key: string | undefined): void {
    if (this.subscribers > 0) this.publish(SequentEvent.Paused({ key, at: this.clock.unsafeCurrentTimeMillis() }))
  }

  resumed(key: string | undefined): void {
    if (this.subscribers > 0) this.publish(SequentEvent.Resumed({ key, at: this.clock.unsafeCurrentTimeMillis() }))
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
    span.attribute("sequent.scheduled_at_ms", job.scheduledAt)
    if (lane.key !== undefined) span.attribute("sequent.key", lane.key)
    return span
  }

  /** The attempt, in a `Sequent.attempt` span under the task's span, when tracing is on. */
  wrap(job: Job, lane: Lane, task: Effect.Effect<unknown, unknown>): Effect.Effect<unknown, unknown> {
    const parent = lane.span
    if (parent === undefined) return task
    return Effect.withSpan(task, "Sequent.attempt", {
      parent,
      captureStackTrace: false,
      attributes: { "sequent.task": job.id, "sequent.attempt": job.attempts, ...(lane.key === undefined ? {} : { "sequent.key": lane.key }) }
    })
  }
}
