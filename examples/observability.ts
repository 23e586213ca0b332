/**
 * Watching an executor: its events as they happen, its status while a lane is
 * blocked, and its metrics exported through OpenTelemetry.
 *
 * Invoices are charged through a payments API, one lane per customer. The API
 * refuses `globex`'s charges until it is "fixed"; meanwhile the example prints
 * every event, then the executor's status (globex blocked in backoff, its next
 * attempt due), fixes the API, waits for everything to finish, and prints the
 * metrics as an OpenTelemetry metric reader collects them.
 *
 *   npx tsx examples/observability.ts
 *
 * @since 0.1.0
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import {
  ConsoleMetricExporter,
  type HistogramMetricData,
  MetricReader,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Observability, Sequent, type SequentEvent, type SequentStatus } from "../src/index.js"

// -----------------------------------------------------------------------------
// The work: charging invoices through a payments API that may be down
// -----------------------------------------------------------------------------

class PaymentsDown extends Data.TaggedError("PaymentsDown")<{ readonly customer: string }> {}

/** Refuses `globex` until `fixed` is done. */
const charge = (fixed: Deferred.Deferred<void>, customer: string, invoice: number) =>
  Effect.gen(function*() {
    if (customer === "globex" && !(yield* Deferred.isDone(fixed))) return yield* new PaymentsDown({ customer })
    yield* Effect.sleep("5 millis")
    return invoice
  })

// -----------------------------------------------------------------------------
// Exporting the metrics
// -----------------------------------------------------------------------------

/**
 * The executor's metrics are Effect `Metric`s, so any Effect metrics exporter
 * collects them. Through OpenTelemetry, give `NodeSdk.layer` a metric reader.
 */
export const MetricsLive = (reader: MetricReader) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "billing" },
    metricReader: reader
  }))

/**
 * A reader for a service: it exports every 15 seconds. Swap the exporter for
 * `new OTLPMetricExporter()` (@opentelemetry/exporter-metrics-otlp-http), or use
 * `new PrometheusExporter({ port: 9464 })` (@opentelemetry/exporter-prometheus)
 * as the reader itself, to be scraped at `:9464/metrics`.
 */
export const periodicReader = () =>
  new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 15_000 })

/** This example's reader: it collects only when asked, so that the example can print what it sees. */
class OnDemandReader extends MetricReader {
  protected override onForceFlush() {
    return Promise.resolve()
  }
  protected override onShutdown() {
    return Promise.resolve()
  }
}

// -----------------------------------------------------------------------------
// Reading events and status
// -----------------------------------------------------------------------------

/** One line per event. */
const describe = (event: SequentEvent) => {
  const lane = event.key ?? "default lane"
  switch (event._tag) {
    case "Scheduled":
      return `task ${event.task} scheduled on ${lane}`
    case "Started":
      return `task ${event.task} attempt ${event.attempt} started`
    case "AttemptFailed":
      return `task ${event.task} attempt ${event.attempt} failed (${
        Cause.squash(event.cause) instanceof PaymentsDown ? "payments down" : Cause.pretty(event.cause)
      }), retry in ${Duration.format(event.retryIn)}`
    case "Succeeded":
      return `task ${event.task} succeeded after ${event.attempts} attempt(s)`
    case "GaveUp":
      return `task ${event.task} gave up after ${event.attempts} attempt(s)`
    case "Dropped":
      return `task ${event.task} dropped`
    case "Paused":
      return `${lane} paused`
    case "Resumed":
      return `${lane} resumed`
  }
}

/** One line per busy lane. */
const describeStatus = (status: SequentStatus, now: number) =>
  [
    `${status.name}: ${status.state}, ${status.size} task(s) not finished`,
    ...status.lanes.map(({ head, key, size, state }) =>
      head === undefined ? `  ${key}: ${state}` : [
        `  ${key ?? "default lane"}: ${state}, ${size} task(s); head task ${head.task}, ${head.attempts} attempt(s)`,
        head.failingSince === undefined ? "" : `, failing for ${Duration.format(head.blockedFor)}`,
        head.nextAttemptAt === undefined ? "" : `, next attempt in ${Math.max(0, head.nextAttemptAt - now)}ms`
      ].join("")
    )
  ].join("\n")

// -----------------------------------------------------------------------------
// The program
// -----------------------------------------------------------------------------

const BillingSequent = Sequent.layer({
  name: "billing",
  laneMetrics: true,
  concurrency: 4,
  retry: Schedule.spaced("100 millis"),
  // the events below report every failed attempt: no log line for each
  attemptLogLevel: "None"
})

const watch = Effect.gen(function*() {
  const fixed = yield* Deferred.make<void>()
  const secondFailure = yield* Deferred.make<void>()

  // subscribe before scheduling: a subscription sees the events from the moment it is made
  const events = yield* Sequent.subscribe
  yield* Effect.fork(Effect.forever(Effect.gen(function*() {
    const event = yield* Queue.take(events)
    yield* Console.log(describe(event))
    if (event._tag === "AttemptFailed" && event.attempt === 2) yield* Deferred.succeed(secondFailure, undefined)
  })))

  for (const [customer, invoice] of [["acme", 1], ["globex", 2], ["acme", 3], ["globex", 4]] as const) {
    yield* Sequent.schedule(charge(fixed, customer, invoice), { key: customer })
  }

  // globex has failed twice: look at the executor while it waits to try again
  yield* Deferred.await(secondFailure)
  const status = yield* Sequent.status
  yield* Console.log(describeStatus(status, yield* Clock.currentTimeMillis))

  yield* Deferred.succeed(fixed, undefined)
  yield* Sequent.flush
})

const printMetrics = (reader: MetricReader) =>
  Effect.gen(function*() {
    const { resourceMetrics } = yield* Effect.promise(() => reader.collect())
    const lines: Array<string> = []
    for (const metric of resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)) {
      if (!Object.values(Observability.MetricNames).includes(metric.descriptor.name as never)) continue
      for (const point of metric.dataPoints) {
        const tags = Object.entries(point.attributes).map(([key, value]) => `${key}="${String(value)}"`).join(",")
        const value = typeof point.value === "number"
          ? point.value
          : `count ${(point as HistogramMetricData["dataPoints"][number]).value.count}`
        lines.push(`${metric.descriptor.name}{${tags}} ${value}`)
      }
    }
    yield* Console.log(["metrics:", ...lines.sort()].join("\n  "))
  })

const main = Effect.gen(function*() {
  const reader = new OnDemandReader()
  yield* Effect.scoped(
    Effect.gen(function*() {
      yield* Effect.provide(watch, BillingSequent)
      yield* printMetrics(reader)
    }).pipe(Effect.provide(MetricsLive(reader)))
  )
})

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  NodeRuntime.runMain(main)
}
