/**
 * Observability: the executor's metrics, its events and its status, each read
 * after a scripted scenario under the TestClock, with neutral jitter.
 *
 * Metrics live in Effect's global registry, so every test names its executor
 * apart from the others'.
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { assert, describe, it } from "@effect/vitest"
import { DataPointType, MetricReader } from "@opentelemetry/sdk-metrics"
import { SequentEvent as RootSequentEvent } from "effect-sequent"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { Sequent, type SequentOptions } from "../src/index.js"
import { MetricNames, SequentEvent, type SequentMetrics } from "../src/Observability.js"
import { failing, settle } from "./support.js"

/**
 * An executor that is stopped when the test's scope closes: its own finalizer
 * would first flush for `closeGracePeriod`, which the TestClock never lets pass.
 */
const make = (options: SequentOptions) =>
  Effect.tap(Sequent.make(options), (sequent) => Effect.addFinalizer(() => sequent.stop))

/** The executor logs every failed attempt; these tests read its metrics and events instead. */
const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const histogram = (state: MetricState.MetricState.Histogram) => ({
  count: state.count,
  min: state.min,
  max: state.max,
  sum: state.sum
})

/** Every metric of an executor, as plain numbers. */
const read = (metrics: SequentMetrics) =>
  Effect.all({
    scheduled: Effect.map(Metric.value(metrics.scheduled), (state) => state.count),
    succeeded: Effect.map(Metric.value(metrics.succeeded), (state) => state.count),
    attemptsFailed: Effect.map(Metric.value(metrics.attemptsFailed), (state) => state.count),
    gaveUp: Effect.map(Metric.value(metrics.gaveUp), (state) => state.count),
    dropped: Effect.map(Metric.value(metrics.dropped), (state) => state.count),
    queueSize: Effect.map(Metric.value(metrics.queueSize), (state) => state.value),
    taskDuration: Effect.map(Metric.value(metrics.taskDuration), histogram),
    attemptDuration: Effect.map(Metric.value(metrics.attemptDuration), histogram)
  })

/** The series in the registry of the executor named `executor`: `name{tag=value,...}` to its count, value or histogram count. */
const series = (executor: string) =>
  Effect.map(Metric.snapshot, (pairs) =>
    Object.fromEntries(
      pairs
        .filter((pair) =>
          pair.metricKey.name.startsWith("sequent_") &&
          pair.metricKey.tags.some((tag) => tag.key === "executor" && tag.value === executor)
        )
        .map((pair) => {
          const tags = pair.metricKey.tags.map((tag) => `${tag.key}=${tag.value}`).sort().join(",")
          const state = pair.metricState
          const value = MetricState.isCounterState(state)
            ? state.count
            : MetricState.isGaugeState(state)
            ? state.value
            : MetricState.isHistogramState(state)
            ? state.count
            : NaN
          return [`${pair.metricKey.name}{${tags}}`, Number(value)] as const
        })
        .sort(([a], [b]) => a.localeCompare(b))
    ))

/** A task that takes `millis` on the clock, then fails its first `failures` attempts. */
const slow = (millis: number, failures: number) => {
  let attempts = 0
  return Effect.zipRight(
    Effect.sleep(Duration.millis(millis)),
    Effect.suspend(() => ++attempts <= failures ? Effect.fail(`failure ${attempts}`) : Effect.succeed(attempts))
  )
}

describe("metrics", () => {
  it.scoped("after failures, a give-up and a stop, every counter, the gauge and both histograms hold exactly what happened", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "metrics-scenario", retry: Schedule.spaced("1 second") })
      const started = yield* Deferred.make<void>()
      // 1: three attempts of 250 ms, the first two fail: 0-250, 1250-1500, 2500-2750, done after 2.75 s
      yield* sequent.schedule(slow(250, 2))
      // 2: fails at 2750 and 3750, then its one retry is spent: gives up
      yield* sequent.schedule(Effect.fail("down"), {
        retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(1)))
      })
      // 3: succeeds at once when it starts at 3750, 3.75 s after it was scheduled
      yield* sequent.schedule(Effect.void)
      // 4: runs until stopped; 5: never starts
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      yield* sequent.schedule(Effect.void)
      assert.strictEqual((yield* read(sequent.metrics)).queueSize, 5, "the gauge counts every accepted task")

      yield* TestClock.adjust("4 seconds")
      yield* Deferred.await(started)
      assert.strictEqual((yield* read(sequent.metrics)).queueSize, 2, "tasks 4 and 5 are left")
      yield* sequent.stop

      assert.deepStrictEqual(yield* read(sequent.metrics), {
        scheduled: 5,
        succeeded: 2,
        attemptsFailed: 4, // two of task 1, and both of task 2, the last one included
        gaveUp: 1,
        dropped: 2, // the running task 4 and the queued task 5
        queueSize: 0,
        taskDuration: { count: 2, min: 2.75, max: 3.75, sum: 6.5 },
        // the interrupted attempt of task 4 is not measured
        attemptDuration: { count: 6, min: 0, max: 0.25, sum: 0.75 }
      })
    }).pipe(quiet))

  it.scoped("with metrics: false the executor's metrics stay at zero while events still flow", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "metrics-off", metrics: false })
      const events = yield* sequent.subscribe
      yield* Effect.forEach([1, 2, 3], () => sequent.submit(Effect.void))
      assert.deepStrictEqual((yield* read(sequent.metrics)).scheduled, 0)
      assert.deepStrictEqual((yield* read(sequent.metrics)).succeeded, 0)
      const seen = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).map((event) => event._tag)
      assert.strictEqual(seen.filter((tag) => tag === "Succeeded").length, 3)
    }).pipe(quiet))

  it.scoped("two executors with different names count in separate series", () =>
    Effect.gen(function*() {
      const first = yield* make({ name: "apart-a" })
      const second = yield* make({ name: "apart-b", retry: Schedule.spaced("1 second") })
      yield* Effect.forEach([1, 2, 3], () => first.submit(Effect.void))
      const fiber = yield* Effect.fork(second.submit(failing(1).task))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)

      assert.deepStrictEqual(yield* series("apart-a"), {
        "sequent_attempt_duration{executor=apart-a}": 3,
        "sequent_queue_size{executor=apart-a}": 0,
        "sequent_task_duration{executor=apart-a}": 3,
        "sequent_tasks_scheduled{executor=apart-a}": 3,
        "sequent_tasks_succeeded{executor=apart-a}": 3
      })
      assert.deepStrictEqual(yield* series("apart-b"), {
        "sequent_attempt_duration{executor=apart-b}": 2,
        "sequent_attempts_failed{executor=apart-b}": 1,
        "sequent_queue_size{executor=apart-b}": 0,
        "sequent_task_duration{executor=apart-b}": 1,
        "sequent_tasks_scheduled{executor=apart-b}": 1,
        "sequent_tasks_succeeded{executor=apart-b}": 1
      })
      assert.deepStrictEqual(
        [(yield* read(first.metrics)).scheduled, (yield* read(second.metrics)).scheduled],
        [3, 1],
        "each executor's `metrics` reads its own series"
      )
    }).pipe(quiet))

  it.scoped("laneMetrics tags counters and histograms with the lane's key; the default lane's series and the gauge have none", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "lanes-tagged", laneMetrics: true, retry: Schedule.spaced("1 second") })
      const fibers: ReadonlyArray<Fiber.Fiber<unknown, unknown>> = yield* Effect.all([
        Effect.fork(sequent.submit(failing(1).task, { key: "a" })),
        Effect.fork(sequent.submit(Effect.void, { key: "a" })),
        Effect.fork(sequent.submit(Effect.void, { key: "b" })),
        Effect.fork(sequent.submit(Effect.void))
      ])
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll(fibers)

      assert.deepStrictEqual(yield* series("lanes-tagged"), {
        "sequent_attempt_duration{executor=lanes-tagged,key=a}": 3,
        "sequent_attempt_duration{executor=lanes-tagged,key=b}": 1,
        "sequent_attempt_duration{executor=lanes-tagged}": 1,
        "sequent_attempts_failed{executor=lanes-tagged,key=a}": 1,
        "sequent_queue_size{executor=lanes-tagged}": 0,
        "sequent_task_duration{executor=lanes-tagged,key=a}": 2,
        "sequent_task_duration{executor=lanes-tagged,key=b}": 1,
        "sequent_task_duration{executor=lanes-tagged}": 1,
        "sequent_tasks_scheduled{executor=lanes-tagged,key=a}": 2,
        "sequent_tasks_scheduled{executor=lanes-tagged,key=b}": 1,
        "sequent_tasks_scheduled{executor=lanes-tagged}": 1,
        "sequent_tasks_succeeded{executor=lanes-tagged,key=a}": 2,
        "sequent_tasks_succeeded{executor=lanes-tagged,key=b}": 1,
        "sequent_tasks_succeeded{executor=lanes-tagged}": 1
      })
      const a = yield* Metric.value(Metric.tagged(sequent.metrics.scheduled, "key", "a"))
      assert.strictEqual(a.count, 2, "a key's series is the executor's metric tagged with the key")
    }).pipe(quiet))

  it.scoped("without laneMetrics, keyed tasks count in the executor's one series", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "lanes-untagged" })
      yield* sequent.submit(Effect.void, { key: "a" })
      yield* sequent.submit(Effect.void, { key: "b" })
      assert.deepStrictEqual(yield* series("lanes-untagged"), {
        "sequent_attempt_duration{executor=lanes-untagged}": 2,
        "sequent_queue_size{executor=lanes-untagged}": 0,
        "sequent_task_duration{executor=lanes-untagged}": 2,
        "sequent_tasks_scheduled{executor=lanes-untagged}": 2,
        "sequent_tasks_succeeded{executor=lanes-untagged}": 2
      })
    }))

  it.scoped("the last attempt of a task that gives up is measured without its dead-letter handler's time", () =>
    Effect.gen(function*() {
      const sequent = yield* make({
        name: "dead-letter-time",
        retry: Schedule.recurs(1),
        deadLetter: () => Effect.sleep("5 seconds")
      })
      const fiber = yield* Effect.fork(sequent.submit(slow(1000, Infinity)))
      yield* TestClock.adjust("7 seconds")
      yield* Fiber.await(fiber)
      const metrics = yield* read(sequent.metrics)
      assert.deepStrictEqual(metrics.attemptDuration, { count: 2, min: 1, max: 1, sum: 2 })
      assert.deepStrictEqual([metrics.attemptsFailed, metrics.gaveUp], [2, 1])
    }).pipe(quiet))
})

describe("events", () => {
  it.scoped("a subscriber sees every event in order, each with its attempt, retry delay and time", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-order" })
      const events = yield* sequent.subscribe
      const started = yield* Deferred.make<void>()
      const first = failing(2)
      // paused while scheduling, so that the four Scheduled events come first
      yield* sequent.pause()
      yield* sequent.schedule(first.task)
      yield* sequent.schedule(Effect.fail("down"), {
        retry: Schedule.spaced("100 millis").pipe(Schedule.intersect(Schedule.recurs(1)))
      })
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      yield* sequent.schedule(Effect.void)
      yield* sequent.resume()
      yield* TestClock.adjust("130 millis")
      yield* Deferred.await(started)
      yield* sequent.stop

      const ms = Duration.millis
      assert.deepStrictEqual(Chunk.toArray(yield* Queue.takeAll(events)), [
        SequentEvent.Paused({ key: undefined, at: 0 }),
        SequentEvent.Scheduled({ task: 1, key: undefined, at: 0 }),
        SequentEvent.Scheduled({ task: 2, key: undefined, at: 0 }),
        SequentEvent.Scheduled({ task: 3, key: undefined, at: 0 }),
        SequentEvent.Scheduled({ task: 4, key: undefined, at: 0 }),
        SequentEvent.Resumed({ key: undefined, at: 0 }),
        // the default retry: 10 ms, then 20 ms
        SequentEvent.Started({ task: 1, key: undefined, attempt: 1, at: 0 }),
        SequentEvent.AttemptFailed({
          task: 1,
          key: undefined,
          attempt: 1,
          cause: Cause.fail("failure 1"),
          retryIn: ms(10),
          at: 0
        }),
        SequentEvent.Started({ task: 1, key: undefined, attempt: 2, at: 10 }),
        SequentEvent.AttemptFailed({
          task: 1,
          key: undefined,
          attempt: 2,
          cause: Cause.fail("failure 2"),
          retryIn: ms(20),
          at: 10
        }),
        SequentEvent.Started({ task: 1, key: undefined, attempt: 3, at: 30 }),
        SequentEvent.Succeeded({ task: 1, key: undefined, attempts: 3, duration: ms(30), at: 30 }),
        // its own retry: once, after 100 ms; the last failure is reported by GaveUp alone
        SequentEvent.Started({ task: 2, key: undefined, attempt: 1, at: 30 }),
        SequentEvent.AttemptFailed({
          task: 2,
          key: undefined,
          attempt: 1,
          cause: Cause.fail("down"),
          retryIn: ms(100),
          at: 30
        }),
        SequentEvent.Started({ task: 2, key: undefined, attempt: 2, at: 130 }),
        SequentEvent.GaveUp({ task: 2, key: undefined, attempts: 2, cause: Cause.fail("down"), at: 130 }),
        SequentEvent.Started({ task: 3, key: undefined, attempt: 1, at: 130 }),
        // stop: the running task, then the queued one
        SequentEvent.Dropped({ task: 3, key: undefined, attempts: 1, at: 130 }),
        SequentEvent.Dropped({ task: 4, key: undefined, attempts: 0, at: 130 })
      ])
    }).pipe(Effect.withRandomFixed([0.5]), quiet))

  it.scoped("SequentEvent from the package root is a value: its $match names every event of a run", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-match", retry: Schedule.recurs(1) })
      const events = yield* sequent.subscribe
      yield* Effect.exit(sequent.submit(Effect.fail("down"), { key: "a" }))
      yield* sequent.pause("a")
      yield* sequent.resume("a")
      yield* sequent.submit(Effect.void)
      yield* sequent.schedule(Effect.never)
      yield* settle()
      yield* sequent.stop
      const described = Chunk.toArray(yield* Queue.takeAll(events)).map(RootSequentEvent.$match({
        Scheduled: ({ task }) => `scheduled ${task}`,
        Started: ({ attempt, task }) => `started ${task}.${attempt}`,
        AttemptFailed: ({ attempt, task }) => `failed ${task}.${attempt}`,
        Succeeded: ({ task }) => `succeeded ${task}`,
        GaveUp: ({ attempts, task }) => `gave up ${task} after ${attempts}`,
        Dropped: ({ task }) => `dropped ${task}`,
        Paused: ({ key }) => `paused ${key}`,
        Resumed: ({ key }) => `resumed ${key}`
      }))
      assert.deepStrictEqual(described, [
        "scheduled 1",
        "started 1.1",
        "failed 1.1",
        "started 1.2",
        "gave up 1 after 2",
        "paused a",
        "resumed a",
        "scheduled 2",
        "started 2.1",
        "succeeded 2",
        "scheduled 3",
        "started 3.1",
        "dropped 3"
      ])
    }).pipe(Effect.withRandomFixed([0.5]), quiet))

  it.scoped("events of keyed lanes carry the key, and pause and resume are reported per lane and for all", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-pause" })
      const events = yield* sequent.subscribe
      yield* sequent.pause("a")
      yield* sequent.schedule(Effect.void, { key: "a" })
      yield* TestClock.adjust("5 millis")
      yield* sequent.pause()
      yield* sequent.resume("a")
      yield* sequent.resume()
      yield* sequent.flush
      assert.deepStrictEqual(Chunk.toArray(yield* Queue.takeAll(events)), [
        SequentEvent.Paused({ key: "a", at: 0 }),
        SequentEvent.Scheduled({ task: 1, key: "a", at: 0 }),
        SequentEvent.Paused({ key: undefined, at: 5 }),
        SequentEvent.Resumed({ key: "a", at: 5 }),
        SequentEvent.Resumed({ key: undefined, at: 5 }),
        SequentEvent.Started({ task: 1, key: "a", attempt: 1, at: 5 }),
        SequentEvent.Succeeded({ task: 1, key: "a", attempts: 1, duration: Duration.millis(5), at: 5 })
      ])
    }))

  it.scoped("`events` is a stream of the same events, from the moment it runs", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-stream" })
      yield* sequent.submit(Effect.void)
      const collecting = yield* Effect.fork(Stream.runCollect(Stream.take(sequent.events, 3)))
      yield* settle()
      yield* sequent.submit(Effect.void)
      assert.deepStrictEqual(Chunk.toArray(yield* Fiber.join(collecting)).map((event) => event._tag), [
        "Scheduled",
        "Started",
        "Succeeded"
      ])
    }))

  it.scoped("a subscriber that never reads does not hold up the worker, and keeps only the newest `eventBuffer` events", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-never-read", eventBuffer: 4 })
      const unread = yield* sequent.subscribe
      for (let i = 0; i < 100; i++) yield* sequent.schedule(Effect.void)
      yield* sequent.flush
      assert.strictEqual(yield* sequent.size, 0, "all 100 tasks ran")
      // 300 events were published (Scheduled 1-100, then Started and Succeeded of each task):
      // the subscriber lost the oldest 296, silently, and holds the newest 4
      assert.deepStrictEqual(
        Chunk.toArray(yield* Queue.takeAll(unread)).map((event) =>
          event._tag === "Paused" || event._tag === "Resumed" ? event._tag : `${event._tag} ${event.task}`
        ),
        ["Started 99", "Succeeded 99", "Started 100", "Succeeded 100"]
      )
    }))

  it.scoped("a subscriber that keeps up sees every event while another one lags", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "events-lagging", eventBuffer: 4 })
      const lagging = yield* sequent.subscribe
      const reading = yield* sequent.subscribe
      const seen: Array<string> = []
      for (let task = 1; task <= 5; task++) {
        yield* sequent.submit(Effect.void)
        for (const event of yield* Queue.takeAll(reading)) seen.push(`${event._tag} ${task}`)
      }
      assert.deepStrictEqual(
        seen,
        [1, 2, 3, 4, 5].flatMap((task) => [`Scheduled ${task}`, `Started ${task}`, `Succeeded ${task}`])
      )
      assert.deepStrictEqual(Chunk.toArray(yield* Queue.takeAll(lagging)).map((event) => event._tag), [
        "Succeeded",
        "Scheduled",
        "Started",
        "Succeeded"
      ])
    }))

  it.effect("a subscription ends when its scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const sequent = yield* Scope.extend(Sequent.make({ name: "events-scope" }), scope)
      const inner = yield* Scope.make()
      const events = yield* Scope.extend(sequent.subscribe, inner)
      yield* Scope.close(inner, Exit.void)
      assert.isTrue(yield* Queue.isShutdown(events))
      yield* sequent.submit(Effect.void)
      yield* Scope.close(scope, Exit.void)
    }))
})

describe("status", () => {
  it.scoped("shows a task blocked by failures: its attempts, since when it fails, its last failure and its next attempt", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "status-blocked" })
      // each attempt takes 2 ms, then fails: 0-2, 12-14, 34-36, 76-78, ...
      yield* sequent.schedule(slow(2, Infinity))
      yield* sequent.schedule(Effect.void)
      yield* TestClock.adjust("50 millis")
      assert.deepStrictEqual(yield* sequent.status, {
        name: "status-blocked",
        state: "open",
        size: 2,
        paused: false,
        lanes: [{
          key: undefined,
          size: 2,
          state: "backoff",
          head: {
            task: 1,
            attempts: 3,
            scheduledAt: 0,
            failingSince: 2,
            blockedFor: Duration.millis(48),
            lastFailure: Cause.fail("failure 3"),
            nextAttemptAt: 36 + 40
          }
        }]
      })

      yield* TestClock.adjust("27 millis") // 77: the fourth attempt runs
      const lane = (yield* sequent.status).lanes[0]!
      assert.strictEqual(lane.state, "running")
      assert.deepStrictEqual(lane.head, {
        task: 1,
        attempts: 4,
        scheduledAt: 0,
        failingSince: 2,
        blockedFor: Duration.millis(75),
        lastFailure: Cause.fail("failure 3"),
        nextAttemptAt: undefined
      })
    }).pipe(Effect.withRandomFixed([0.5]), quiet))

  it.scoped("shows each busy lane: running, in backoff, paused, halted after a give-up, ready; an emptied lane is gone", () =>
    Effect.gen(function*() {
      const sequent = yield* make({
        name: "status-lanes",
        concurrency: 2,
        onGiveUp: "halt",
        retry: Schedule.spaced("1 minute")
      })
      const gate = yield* Deferred.make<void>()
      const started = yield* Deferred.make<void>()
      yield* sequent.pause("b")
      yield* sequent.schedule(Deferred.await(gate)) // 1, default lane: holds a worker
      yield* sequent.schedule(Effect.fail("down"), { key: "a" }) // 2: fails, waits a minute
      yield* sequent.schedule(Effect.void, { key: "b" }) // 3, 4: paused
      yield* sequent.schedule(Effect.void, { key: "b" })
      yield* sequent.schedule(Effect.fail("fatal"), { key: "c", isRetryable: () => false }) // 5: gives up, halts c
      yield* sequent.schedule(Effect.void, { key: "c" }) // 6: held by the halt
      yield* sequent.schedule(Effect.void, { key: "z" }) // 7: runs, and its lane is forgotten
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)), { key: "e" }) // 8
      yield* sequent.schedule(Effect.void, { key: "d" }) // 9: no worker is free
      yield* Deferred.await(started)
      yield* TestClock.adjust("10 seconds")

      const idle = {
        failingSince: undefined,
        blockedFor: Duration.zero,
        lastFailure: undefined,
        nextAttemptAt: undefined
      }
      assert.deepStrictEqual(yield* sequent.status, {
        name: "status-lanes",
        state: "open",
        size: 7,
        paused: false,
        lanes: [
          { key: undefined, size: 1, state: "running", head: { task: 1, attempts: 1, scheduledAt: 0, ...idle } },
          { key: "b", size: 2, state: "paused", head: { task: 3, attempts: 0, scheduledAt: 0, ...idle } },
          {
            key: "a",
            size: 1,
            state: "backoff",
            head: {
              task: 2,
              attempts: 1,
              scheduledAt: 0,
              failingSince: 0,
              blockedFor: Duration.seconds(10),
              lastFailure: Cause.fail("down"),
              nextAttemptAt: 60_000
            }
          },
          { key: "c", size: 1, state: "halted", head: { task: 6, attempts: 0, scheduledAt: 0, ...idle } },
          { key: "e", size: 1, state: "running", head: { task: 8, attempts: 1, scheduledAt: 0, ...idle } },
          { key: "d", size: 1, state: "ready", head: { task: 9, attempts: 0, scheduledAt: 0, ...idle } }
        ]
      })

      yield* sequent.pause()
      assert.isTrue((yield* sequent.status).paused)
      yield* sequent.stop
      assert.deepStrictEqual(yield* sequent.status, {
        name: "status-lanes",
        state: "stopped",
        size: 0,
        paused: true,
        lanes: []
      })
    }).pipe(quiet))

  it.scoped("while flush waits, the state is flushing; once it has finished, closed; after stop, stopped", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "status-flushing" })
      const gate = yield* Deferred.make<void>()
      yield* sequent.schedule(Deferred.await(gate))
      const flushing = yield* Effect.fork(sequent.flush)
      yield* settle()
      assert.strictEqual((yield* sequent.status).state, "flushing")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(yield* sequent.status, {
        name: "status-flushing",
        state: "closed",
        size: 0,
        paused: false,
        lanes: []
      })
      yield* sequent.stop
      assert.strictEqual((yield* sequent.status).state, "stopped")
    }))

  it.scoped("a flush begun from inside a task reads flushing until the queue has drained, then closed", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "status-flush-inside" })
      const gate = yield* Deferred.make<void>()
      yield* sequent.schedule(sequent.flush)
      yield* sequent.schedule(Deferred.await(gate))
      yield* settle()
      assert.strictEqual((yield* sequent.status).state, "flushing")
      yield* Deferred.succeed(gate, undefined)
      yield* settle()
      assert.deepStrictEqual(yield* Effect.all([sequent.size, Effect.map(sequent.status, (status) => status.state)]), [
        0,
        "closed"
      ])
    }))
})

describe("MetricNames", () => {
  it.scoped("names every metric an executor registers", () =>
    Effect.gen(function*() {
      const sequent = yield* make({ name: "names", retry: Schedule.recurs(0) })
      yield* sequent.submit(Effect.void)
      yield* Effect.exit(sequent.submit(Effect.fail("once")))
      yield* sequent.schedule(Effect.never)
      yield* sequent.schedule(Effect.void)
      yield* settle()
      yield* sequent.stop
      const names = Object.keys(yield* series("names")).map((name) => name.slice(0, name.indexOf("{"))).sort()
      assert.deepStrictEqual(names, Object.values(MetricNames).sort())
    }).pipe(quiet))
})

/** A reader that collects only when asked. */
class OnDemandReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve()
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve()
  }
}

describe("export through @effect/opentelemetry", () => {
  it.scoped("the counters are monotonic sums, the queue size a gauge, the durations histograms, each point tagged", () => {
    const reader = new OnDemandReader()
    const MetricsLive = OtelMetrics.layer(() => reader).pipe(
      Layer.provide(OtelResource.layer({ serviceName: "sequent-test" }))
    )
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "otel-export", laneMetrics: true })
      yield* sequent.submit(Effect.void, { key: "a" })
      yield* sequent.submit(Effect.void)
      const { resourceMetrics } = yield* Effect.promise(() => reader.collect())
      const exported = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).flatMap((metric) =>
        metric.dataPoints
          .filter((point) => point.attributes.executor === "otel-export")
          .map((point) => ({
            name: metric.descriptor.name,
            type: DataPointType[metric.dataPointType],
            monotonic: metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : undefined,
            attributes: point.attributes,
            value: typeof point.value === "number" ? point.value : (point.value as { count: number }).count
          }))
      ).sort((a, b) => `${a.name}${a.attributes.key}`.localeCompare(`${b.name}${b.attributes.key}`))
      const point = (name: string, type: string, value: number, key?: string) => ({
        name,
        type,
        monotonic: type === "SUM" ? true : undefined,
        attributes: key === undefined ? { executor: "otel-export" } : { executor: "otel-export", key },
        value
      })
      assert.deepStrictEqual(exported, [
        point("sequent_attempt_duration", "HISTOGRAM", 1, "a"),
        point("sequent_attempt_duration", "HISTOGRAM", 1),
        point("sequent_queue_size", "GAUGE", 0),
        point("sequent_task_duration", "HISTOGRAM", 1, "a"),
        point("sequent_task_duration", "HISTOGRAM", 1),
        point("sequent_tasks_scheduled", "SUM", 1, "a"),
        point("sequent_tasks_scheduled", "SUM", 1),
        point("sequent_tasks_succeeded", "SUM", 1, "a"),
        point("sequent_tasks_succeeded", "SUM", 1)
      ])
    }).pipe(Effect.provide(MetricsLive))
  })
})
