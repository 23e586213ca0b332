/**
 * Tracing through a real OpenTelemetry SDK: `@effect/opentelemetry`'s tracer
 * over a `BasicTracerProvider` whose spans go, synchronously, to an
 * `InMemorySpanExporter`.
 */
import * as OtelResource from "@effect/opentelemetry/Resource"
import * as OtelTracer from "@effect/opentelemetry/Tracer"
import { assert, describe, it } from "@effect/vitest"
import { SpanStatusCode } from "@opentelemetry/api"
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor
} from "@opentelemetry/sdk-trace-base"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Equal from "effect/Equal"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import type * as Tracer from "effect/Tracer"
import { Sequent, SequentFalseError, type SequentOptions } from "../src/index.js"
import { failing } from "./support.js"

/** A fresh SDK per test: its layer, and the spans it finished (after a flush). */
const otel = () => {
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  const layer = OtelTracer.layer.pipe(
    Layer.provide(Layer.succeed(OtelTracer.OtelTracerProvider, provider)),
    Layer.provide(OtelResource.layer({ serviceName: "sequent-test" }))
  )
  const finished = Effect.promise(() => provider.forceFlush()).pipe(
    Effect.map(() => {
      const spans = exporter.getFinishedSpans()
      return (name: string) => spans.filter((span) => span.name === name)
    })
  )
  return { layer, finished }
}

/** An executor stopped when the test's scope closes (a flush would wait on the TestClock). */
const make = (options: SequentOptions) =>
  Effect.tap(Sequent.make(options), (sequent) => Effect.addFinalizer(() => sequent.stop))

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const ids = (span: ReadableSpan) => ({ traceId: span.spanContext().traceId, spanId: span.spanContext().spanId })

const status = (span: ReadableSpan) => ({ code: span.status.code, message: span.status.message })

describe("tracing with OpenTelemetry", () => {
  it.scoped("a task's span is a root span linked to the span that scheduled it, and ends OK when the task succeeds", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-root", retry: Schedule.spaced("1 second") })
      const task = failing(1)
      yield* sequent.schedule(task.task).pipe(Effect.withSpan("caller"))
      yield* TestClock.adjust("1 second")
      yield* sequent.flush

      const spans = yield* sdk.finished
      const [caller] = spans("caller")
      const [taskSpan] = spans("Sequent.task")
      assert.strictEqual(spans("Sequent.task").length, 1)
      assert.isUndefined(taskSpan!.parentSpanContext, "no parent")
      assert.notStrictEqual(taskSpan!.spanContext().traceId, caller!.spanContext().traceId, "a trace of its own")
      assert.deepStrictEqual(
        taskSpan!.links.map((link) => ({
          traceId: link.context.traceId,
          spanId: link.context.spanId,
          attributes: link.attributes
        })),
        [{ ...ids(caller!), attributes: { "sequent.link": "scheduled-by" } }]
      )
      assert.deepStrictEqual(taskSpan!.attributes, { "sequent.task": 1, "sequent.scheduled_at_ms": 0 })
      assert.deepStrictEqual(status(taskSpan!), { code: SpanStatusCode.OK, message: undefined })
      assert.deepStrictEqual(
        taskSpan!.events.map((event) => ({ name: event.name, attributes: event.attributes })),
        [{ name: "attempt failed", attributes: { "sequent.attempt": 1, "sequent.retry_in_ms": 1000 } }]
      )
    }).pipe(Effect.provide(sdk.layer), quiet)
  })

  it.scoped("each attempt is a child span of the task's span, with its number; a failed one has error status", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-attempts", retry: Schedule.spaced("1 second") })
      const task = failing(2)
      yield* sequent.schedule(task.task.pipe(Effect.withSpan("inside the task")), { key: "k" })
      yield* TestClock.adjust("2 seconds")
      yield* sequent.flush

      const spans = yield* sdk.finished
      const [taskSpan] = spans("Sequent.task")
      const attempts = spans("Sequent.attempt")
      assert.deepStrictEqual(
        attempts.map((span) => ({
          parent: { traceId: span.parentSpanContext?.traceId, spanId: span.parentSpanContext?.spanId },
          attributes: span.attributes,
          status: status(span)
        })),
        [1, 2, 3].map((attempt) => ({
          parent: ids(taskSpan!),
          attributes: { "sequent.task": 1, "sequent.attempt": attempt, "sequent.key": "k" },
          status: attempt < 3
            ? { code: SpanStatusCode.ERROR, message: `failure ${attempt}` }
            : { code: SpanStatusCode.OK, message: undefined }
        }))
      )
      assert.deepStrictEqual(
        spans("inside the task").map((span) => span.parentSpanContext?.spanId),
        attempts.map((span) => span.spanContext().spanId),
        "the task's own spans are children of its attempt's"
      )
      assert.strictEqual(taskSpan!.attributes["sequent.key"], "k")
    }).pipe(Effect.provide(sdk.layer), quiet)
  })

  it.scoped("a task that gives up ends its span with an error; an attempt that returned false has error status too", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-gave-up", retry: Schedule.recurs(1) })
      let attempts = 0
      const exit = yield* Effect.exit(sequent.submit(
        Effect.suspend(() => ++attempts === 1 ? Effect.succeed(false) : Effect.fail(new Boom({ message: "boom" })))
      ))
      // (compared with Equal: a failure inside a span carries the span in a symbol-keyed property)
      assert.isTrue(Equal.equals(exit, Exit.fail(new Boom({ message: "boom" }))))

      const spans = yield* sdk.finished
      assert.deepStrictEqual(spans("Sequent.task").map(status), [{ code: SpanStatusCode.ERROR, message: "boom" }])
      assert.deepStrictEqual(spans("Sequent.attempt").map(status), [
        { code: SpanStatusCode.ERROR, message: new SequentFalseError().message },
        { code: SpanStatusCode.ERROR, message: "boom" }
      ])
    }).pipe(Effect.provide(sdk.layer), quiet)
  })

  it.scoped("when traced, a task whose only attempt returns false still fails with SequentFalseError", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-false", retry: Schedule.recurs(0) })
      const exit = yield* Effect.exit(sequent.submit(Effect.succeed(false as boolean)))
      assert.isTrue(Equal.equals(exit, Exit.fail(new SequentFalseError())))
      assert.strictEqual((yield* sdk.finished)("Sequent.attempt").length, 1, "it was traced")
    }).pipe(Effect.provide(sdk.layer), quiet)
  })

  it.scoped("a task dropped by stop ends its span as interrupted", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-dropped" })
      const started = yield* Deferred.make<void>()
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      yield* Deferred.await(started)
      yield* sequent.stop

      const spans = yield* sdk.finished
      for (const span of [...spans("Sequent.task"), ...spans("Sequent.attempt")]) {
        assert.strictEqual(span.status.code, SpanStatusCode.OK, span.name)
        assert.strictEqual(span.attributes["status.interrupted"], true, span.name)
      }
      assert.strictEqual(spans("Sequent.task").length, 1)
      assert.strictEqual(spans("Sequent.attempt").length, 1)
    }).pipe(Effect.provide(sdk.layer))
  })

  it.scoped("with spans: false a span the task opens starts a trace of its own, outside its caller's", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-off-inner", spans: false })
      yield* sequent.submit(Effect.withSpan(Effect.void, "inside the task")).pipe(Effect.withSpan("caller"))
      const spans = yield* sdk.finished
      const [caller] = spans("caller")
      const [inner] = spans("inside the task")
      assert.isUndefined(inner!.parentSpanContext, "not a child of the caller")
      assert.notStrictEqual(inner!.spanContext().traceId, caller!.spanContext().traceId)
    }).pipe(Effect.provide(sdk.layer))
  })

  it.scoped("with spans: false nothing of the executor's is traced", () => {
    const sdk = otel()
    return Effect.gen(function*() {
      const sequent = yield* make({ name: "trace-off", spans: false })
      yield* sequent.submit(Effect.void).pipe(Effect.withSpan("caller"))
      const spans = yield* sdk.finished
      assert.deepStrictEqual(
        [spans("caller").length, spans("Sequent.task").length, spans("Sequent.attempt").length],
        [1, 0, 0]
      )
    }).pipe(Effect.provide(sdk.layer))
  })
})

describe("tracing with Effect's built-in tracer", () => {
  /** The name of the span current inside a task, and of its parent. */
  const spanInsideTask = (options: SequentOptions) =>
    Effect.gen(function*() {
      const sequent = yield* make(options)
      const current = yield* sequent.submit(Effect.option(Effect.currentSpan)).pipe(Effect.withSpan("caller"))
      return Option.map(current, (span: Tracer.Span) => ({
        name: span.name,
        parent: Option.getOrUndefined(Option.map(span.parent, (parent) => parent._tag === "Span" ? parent.name : "")),
        links: span.links.length
      }))
    })

  it.scoped("spans \"auto\" leaves tasks untraced, and a task never runs inside the span that scheduled it", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* spanInsideTask({ name: "native-auto" }), Option.none())
    }))

  it.scoped("spans: true traces tasks with it too", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(
        yield* spanInsideTask({ name: "native-on", spans: true }),
        Option.some({ name: "Sequent.attempt", parent: "Sequent.task", links: 0 })
      )
    }))
})
