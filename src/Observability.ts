/**
 * What an executor tells the world: its metrics (Effect `Metric`s, so any
 * Effect metrics exporter picks them up), its events (a `Stream`), and its
 * status (a snapshot).
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"

/**
 * One thing that happened to a task, or to a lane.
 *
 * - `Scheduled`: the task was accepted.
 * - `Started`: an attempt began (`attempt` counts from 1).
 * - `AttemptFailed`: an attempt failed and the task will be retried after `retryIn`.
 * - `Succeeded`: the task succeeded; `duration` runs from schedule to success.
 * - `GaveUp`: the task's retry schedule ran out, or its failure was not retryable.
 * - `Dropped`: `stop` (or the close of the executor's scope) dropped the task.
 * - `Paused` / `Resumed`: a lane (`key`), or every lane (`key` undefined), was paused or resumed.
 *
 * `task` is the task's number in this executor, from 1 in schedule order; `at`
 * is the `Clock` time in milliseconds.
 *
 * @since 0.1.0
 * @category events
 */
export type SequentEvent = Data.TaggedEnum<{
  Scheduled: { readonly task: number; readonly key: string | undefined; readonly at: number }
  Started: { readonly task: number; readonly key: string | undefined; readonly attempt: number; readonly at: number }
  AttemptFailed: {
    readonly task: number
    readonly key: string | undefined
    readonly attempt: number
    readonly cause: Cause.Cause<unknown>
    readonly retryIn: Duration.Duration
    readonly at: number
  }
  Succeeded: {
    readonly task: number
    readonly key: string | undefined
    readonly attempts: number
    readonly duration: Duration.Duration
    readonly at: number
  }
  GaveUp: {
    readonly task: number
    readonly key: string | undefined
    readonly attempts: number
    readonly cause: Cause.Cause<unknown>
    readonly at: number
  }
  Dropped: { readonly task: number; readonly key: string | undefined; readonly attempts: number; readonly at: number }
  Paused: { readonly key: string | undefined; readonly at: number }
  Resumed: { readonly key: string | undefined; readonly at: number }
}>

/**
 * Constructors and matchers of {@link SequentEvent}.
 *
 * @since 0.1.0
 * @category events
 */
export const SequentEvent = Data.taggedEnum<SequentEvent>()

/**
 * The task at the head of a lane, as `status` sees it.
 *
 * @since 0.1.0
 * @category status
 */
export interface TaskStatus {
  readonly task: number
  /** Attempts started so far (0 while it waits for its first). */
  readonly attempts: number
  readonly scheduledAt: number
  /** When its first attempt failed, if one has. */
  readonly failingSince: number | undefined
  /** How long it has been failing: from `failingSince` to now (zero when it has not failed). */
  readonly blockedFor: Duration.Duration
  readonly lastFailure: Cause.Cause<unknown> | undefined
  /** When its next attempt is due, while it waits out a backoff delay. */
  readonly nextAttemptAt: number | undefined
}

/**
 * One lane, as `status` sees it.
 *
 * @since 0.1.0
 * @category status
 */
export interface LaneStatus {
  /** The lane's key; undefined for the default lane. */
  readonly key: string | undefined
  /** Tasks accepted and not finished in this lane. */
  readonly size: number
  readonly state: "idle" | "ready" | "running" | "backoff" | "paused" | "halted"
  readonly head: TaskStatus | undefined
}

/**
 * A snapshot of an executor.
 *
 * @since 0.1.0
 * @category status
 */
export interface SequentStatus {
  readonly name: string
  readonly state: "open" | "flushing" | "stopped"
  /** Tasks accepted and not finished, in every lane. */
  readonly size: number
  /** Whether every lane is paused. */
  readonly paused: boolean
  /** The lanes that have tasks, or are paused or halted; the default lane first. */
  readonly lanes: ReadonlyArray<LaneStatus>
}

/**
 * The metric names, each tagged `executor` with the executor's `name` (and
 * `key` with the lane's key, when the executor's `laneMetrics` option is on).
 *
 * @since 0.1.0
 * @category metrics
 */
export const MetricNames = {
  scheduled: "sequent_tasks_scheduled",
  succeeded: "sequent_tasks_succeeded",
  attemptsFailed: "sequent_attempts_failed",
  gaveUp: "sequent_tasks_gave_up",
  dropped: "sequent_tasks_dropped",
  queueSize: "sequent_queue_size",
  taskDuration: "sequent_task_duration",
  attemptDuration: "sequent_attempt_duration"
} as const

/**
 * The bucket boundaries of both duration histograms, in seconds: 1 ms doubling
 * up to about 2.3 hours.
 *
 * @since 0.1.0
 * @category metrics
 */
export const durationBoundaries = MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 24 })

/**
 * The metrics of one executor, keyed with its name so that updating them costs
 * a cached hook call and no key hashing.
 *
 * @since 0.1.0
 * @category metrics
 */
export interface SequentMetrics {
  readonly scheduled: Metric.Metric.Counter<number>
  readonly succeeded: Metric.Metric.Counter<number>
  readonly attemptsFailed: Metric.Metric.Counter<number>
  readonly gaveUp: Metric.Metric.Counter<number>
  readonly dropped: Metric.Metric.Counter<number>
  readonly queueSize: Metric.Metric.Gauge<number>
  readonly taskDuration: Metric.Metric.Histogram<number>
  readonly attemptDuration: Metric.Metric.Histogram<number>
}

/**
 * The metrics of the executor named `name`: read them with `Metric.value`, or
 * let an exporter collect them.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = (name: string): SequentMetrics => {
  const tag = <K extends MetricKey.MetricKey<any>>(key: K): K => MetricKey.tagged(key, "executor", name) as K
  return {
    scheduled: Metric.fromMetricKey(tag(MetricKey.counter(MetricNames.scheduled, { description: "tasks accepted" }))),
    succeeded: Metric.fromMetricKey(tag(MetricKey.counter(MetricNames.succeeded, { description: "tasks that succeeded" }))),
    attemptsFailed: Metric.fromMetricKey(
      tag(MetricKey.counter(MetricNames.attemptsFailed, { description: "attempts that failed" }))
    ),
    gaveUp: Metric.fromMetricKey(tag(MetricKey.counter(MetricNames.gaveUp, { description: "tasks that gave up" }))),
    dropped: Metric.fromMetricKey(
      tag(MetricKey.counter(MetricNames.dropped, { description: "tasks dropped by stop or close" }))
    ),
    queueSize: Metric.fromMetricKey(
      tag(MetricKey.gauge(MetricNames.queueSize, { description: "tasks accepted and not finished" }))
    ),
    taskDuration: Metric.fromMetricKey(tag(MetricKey.histogram(
      MetricNames.taskDuration,
      durationBoundaries,
      "seconds from schedule to success"
    ))),
    attemptDuration: Metric.fromMetricKey(tag(MetricKey.histogram(
      MetricNames.attemptDuration,
      durationBoundaries,
      "seconds an attempt ran"
    )))
  } as SequentMetrics
}
