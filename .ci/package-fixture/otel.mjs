// The README's OpenTelemetry install command is enough for its Observability and Tracing sections:
// through @effect/opentelemetry's NodeSdk, an executor's task becomes a `Sequent.task` span and its
// metrics reach an OpenTelemetry metric reader.
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { MetricReader } from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect } from "effect"
import { Observability, Sequent } from "effect-sequent"
import { strict as assert } from "node:assert"

/** Collects only when asked. */
class OnDemandReader extends MetricReader {
  onForceFlush() {
    return Promise.resolve()
  }
  onShutdown() {
    return Promise.resolve()
  }
}

const spans = new InMemorySpanExporter()
const reader = new OnDemandReader()
const SdkLive = NodeSdk.layer(() => ({
  resource: { serviceName: "package-check" },
  spanProcessor: new SimpleSpanProcessor(spans),
  metricReader: reader
}))

const program = Effect.gen(function*() {
  yield* Effect.gen(function*() {
    yield* Sequent.schedule(Effect.void)
    yield* Sequent.flush
  }).pipe(Effect.provide(Sequent.layer({ name: "package-check" })))
  // read before the SDK's scope closes: shutting down empties the exporter
  const names = spans.getFinishedSpans().map((span) => span.name)
  const { resourceMetrics } = yield* Effect.promise(() => reader.collect())
  const metrics = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).map((metric) => metric.descriptor.name)
  return { names, metrics }
}).pipe(Effect.provide(SdkLive))

Effect.runPromise(program).then(({ metrics, names }) => {
  assert.ok(names.includes("Sequent.task"), `no Sequent.task span among ${names}`)
  assert.ok(
    metrics.includes(Observability.MetricNames.scheduled),
    `no ${Observability.MetricNames.scheduled} among ${metrics}`
  )
  console.log(
    `ok  spans: ${[...new Set(names)].join(", ")}; ${
      metrics.filter((name) => name.startsWith("sequent_")).length
    } sequent_* metrics read through a MetricReader`
  )
}).catch((error) => {
  console.error(error)
  process.exit(1)
})
