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
import * as MetricLabel from "effect/MetricLabel"

/**
 * One thing that happened to a task, or to a lane.
 *
 * - `Scheduled`: the task was accepted.
 * - `Started`: an attempt began (`attempt` counts from 1).
 * - `AttemptFailed`: an attempt failed and the task will be retried after `retryIn`.
 * - `Succeeded`: the task succeeded; `duration` runs from schedule to success.
 * - `GaveUp`: the task's retry schedule ran out, or its failure was not
 *   retryable; `cause` is its last failure, which has no `AttemptFailed` of its own.
 * - `Dropped`: `stop` (or the close of the executor's scope) dropped the task,
 *   running (`attempts` > 0) or queued.
 * - `Paused` / `Resumed`: a lane (`key`), or every lane (`key` undefined), was paused or resumed.
 *
 * `task` is the task's number in this executor, from 1 in schedule order; `at`
 * is the `Clock` time in milliseconds.
 *
 * A subscriber holds at most the executor's `eventBuffer` unread events: when it
 * falls further behind it loses its oldest unread ones, and nothing marks the gap.
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
  /**
   * `"open"`: accepting tasks. `"flushing"`: intake is closed (by `flush`, or
   * the close of the executor's scope) and accepted tasks are still running or
   * queued. `"closed"`: intake is closed and every accepted task has finished.
   * `"stopped"`: `stop` ran (or the grace period of the scope's close ran out).
   */
  readonly state: "open" | "flushing" | "closed" | "stopped"
  /** Tasks accepted and not finished, in every lane. */
  readonly size: number
  /** Whether every lane is paused. */
  readonly paused: boolean
  /** The lanes that have tasks, or are paused or halted; the default lane first. */
  readonly lanes: ReadonlyArray<LaneStatus>
}

/**
 * The metric names. Every series is tagged `executor` with the executor's
 * `name`. With the executor's `laneMetrics` option on, the counters and
 * histograms of keyed lanes are tagged `key` with the lane's key too (the
 * default lane's series have no `key`); the queue-size gauge never is.
 *
 * - `sequent_tasks_scheduled`, `sequent_tasks_succeeded`,
 *   `sequent_tasks_gave_up`, `sequent_tasks_dropped`: counters of tasks.
 * - `sequent_attempts_failed`: a counter of failed attempts, the last one of a
 *   task that gave up included (an attempt interrupted by `stop` is not one).
 * - `sequent_queue_size`: a gauge of the tasks accepted and not finished.
 * - `sequent_task_duration`: a histogram of seconds from schedule to success.
 * - `sequent_attempt_duration`: a histogram of the seconds each finished
 *   attempt ran.
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
 * The bucket boundaries of both duration histograms, in seconds: 23 buckets
 * from 1 ms, each twice the one before, up to 4194.304 s (about 70 minutes),
 * and one for anything longer.
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
  const executor = MetricLabel.make("executor", name)
  // incremental: they only grow, so exporters see monotonic counters (an OpenTelemetry Counter, not an UpDownCounter)
  const counter = (key: string, description: string): Metric.Metric.Counter<number> =>
    Metric.fromMetricKey(
      MetricKey.taggedWithLabels(MetricKey.counter(key, { description, incremental: true }), [executor])
    )
  const histogram = (key: string, description: string): Metric.Metric.Histogram<number> =>
    Metric.fromMetricKey(
      MetricKey.taggedWithLabels(MetricKey.histogram(key, durationBoundaries, description), [executor])
    )
  return {
    scheduled: counter(MetricNames.scheduled, "tasks accepted"),
    succeeded: counter(MetricNames.succeeded, "tasks that succeeded"),
    attemptsFailed: counter(
      MetricNames.attemptsFailed,
      "attempts that failed, the last one of a task that gave up included"
    ),
    gaveUp: counter(MetricNames.gaveUp, "tasks that gave up"),
    dropped: counter(MetricNames.dropped, "tasks dropped by stop or close"),
    queueSize: Metric.fromMetricKey(MetricKey.taggedWithLabels(
      MetricKey.gauge(MetricNames.queueSize, { description: "tasks accepted and not finished" }),
      [executor]
    )),
    taskDuration: histogram(MetricNames.taskDuration, "seconds from schedule to success"),
    attemptDuration: histogram(MetricNames.attemptDuration, "seconds an attempt ran")
  }
}
