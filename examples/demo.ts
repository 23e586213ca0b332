/**
 * The demo: an ordered stream of writes, replayed to an HTTP backend that goes down.
 *
 * Fifty writes go through Sequent to a small HTTP service on 127.0.0.1, one
 * every 100 ms. Each is a POST made with @effect/platform's `HttpClient`.
 * After write 10 the service goes down. First it answers 503 for two seconds.
 * Then it closes, and connections are refused for two more. Then it comes back
 * on the same port. Sequent keeps retrying the write at the head with backoff
 * while the writes behind it queue up. When the service is back, they all go
 * through in order.
 *
 * The progress lines come from Sequent itself: one line per event worth
 * showing (`Sequent.subscribe`), and a status line every half second
 * (`Sequent.status`). At the end the demo checks that the service recorded
 * writes 1..50 in order. It prints PASS or FAIL, and exits non-zero on FAIL.
 *
 *   npm start            # or: npx tsx examples/demo.ts
 *
 * `demo` takes the number of writes, the pace and the outage as options.
 * `test/demo.test.ts` runs a short version.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Sequent, type SequentClosedError, type SequentFullError } from "../src/index.js"
import { SequentEvent, type SequentStatus } from "../src/Observability.js"
import * as Backend from "./demo/backend.js"

// -----------------------------------------------------------------------------
// Options and result
// -----------------------------------------------------------------------------

/**
 * A retry schedule for a demo: exponential from 50 ms, jittered, and no delay
 * over one second, so the writes resume soon after the backend does.
 *
 * @since 0.1.0
 * @category retry
 */
export const demoRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential("50 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(1)))
)

/**
 * @since 0.1.0
 * @category models
 */
export interface DemoOptions {
  /** How many writes to send. Default: 50. */
  readonly writes?: number | undefined
  /** The time between two writes. Default: 100 ms. */
  readonly pace?: Duration.DurationInput | undefined
  /** The backend goes down right after it records this write; no outage unless it is below `writes`. Default: 10. */
  readonly outageAfter?: number | undefined
  /** How long the backend answers 503. Default: 2 seconds. */
  readonly unavailableFor?: Duration.DurationInput | undefined
  /** Then, how long it refuses connections. Default: 2 seconds. */
  readonly refusedFor?: Duration.DurationInput | undefined
  /** The executor's retry schedule. Default: {@link demoRetry}. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
  /** How often to print a status line. Default: 500 ms. */
  readonly statusEvery?: Duration.DurationInput | undefined
  /** Where the progress goes. Default: `Console.log`. */
  readonly log?: ((line: string) => Effect.Effect<void>) | undefined
}

/**
 * What the demo found. Every count comes from Sequent's events.
 *
 * @since 0.1.0
 * @category models
 */
export interface DemoResult {
  readonly writes: number
  /** The writes the backend recorded, in the order it recorded them. */
  readonly record: ReadonlyArray<number>
  /** Whether `record` is exactly 1..writes, in order. */
  readonly pass: boolean
  readonly attempts: number
  readonly failedAttempts: number
  /** The writes that needed more than one attempt. */
  readonly retried: ReadonlyArray<number>
  /** The longest time a write spent between its first failed attempt and its success. */
  readonly longestWait: Duration.Duration
  /** Writes the backend received again after it had recorded them. */
  readonly duplicates: number
  readonly outage: Backend.OutageReport | undefined
  readonly elapsed: Duration.Duration
}

// -----------------------------------------------------------------------------
// The writes: one Sequent task per POST
// -----------------------------------------------------------------------------

/**
 * Schedules writes `1..writes` at a steady pace, each a POST of `{ seq }` to
 * `url`, then waits until all of them are through (`Sequent.flush`).
 *
 * A write fails its attempt on any status other than 2xx (`filterStatusOk`)
 * and on any transport error, such as a refused connection. Sequent retries it
 * where it stands, and the writes behind it wait.
 *
 * @since 0.1.0
 * @category program
 */
export const sendWrites = (url: string, writes: number, pace: Duration.DurationInput) =>
  Effect.gen(function*() {
    const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    const write = (seq: number) =>
      Effect.asVoid(client.execute(HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(url), { seq })))

    yield* Stream.range(1, writes).pipe(
      Stream.schedule(Schedule.spaced(pace)),
      Stream.runForEach((seq) => Sequent.schedule(write(seq)))
    )
    yield* Sequent.flush
  })

// -----------------------------------------------------------------------------
// Progress: a fold of Sequent's events, and its status
// -----------------------------------------------------------------------------

/**
 * What the events tell so far. A fresh executor numbers its tasks from 1 in
 * the order they are scheduled, so task `n` is write `n`.
 *
 * @since 0.1.0
 * @category progress
 */
export interface Tally {
  readonly scheduled: number
  readonly attempts: number
  readonly failed: number
  readonly done: number
  readonly retried: ReadonlyArray<number>
  /** When the current head's first attempt failed, while it is failing. */
  readonly failingSince: number | undefined
  readonly longestWait: number
}

/**
 * @since 0.1.0
 * @category progress
 */
export const emptyTally: Tally = {
  scheduled: 0,
  attempts: 0,
  failed: 0,
  done: 0,
  retried: [],
  failingSince: undefined,
  longestWait: 0
}

/**
 * Adds one event to the tally.
 *
 * @since 0.1.0
 * @category progress
 */
export const tally = (t: Tally, event: SequentEvent): Tally =>
  SequentEvent.$match(event, {
    Scheduled: () => ({ ...t, scheduled: t.scheduled + 1 }),
    Started: () => ({ ...t, attempts: t.attempts + 1 }),
    AttemptFailed: ({ at, attempt, task }) => ({
      ...t,
      failed: t.failed + 1,
      retried: attempt === 1 ? [...t.retried, task] : t.retried,
      failingSince: t.failingSince ?? at
    }),
    Succeeded: ({ at }) => ({
      ...t,
      done: t.done + 1,
      failingSince: undefined,
      longestWait: t.failingSince === undefined ? t.longestWait : Math.max(t.longestWait, at - t.failingSince)
    }),
    GaveUp: () => ({ ...t, failed: t.failed + 1, failingSince: undefined }),
    Dropped: () => ({ ...t, failingSince: undefined }),
    Paused: () => t,
    Resumed: () => t
  })

/**
 * Why an attempt failed, in a few words.
 *
 * @since 0.1.0
 * @category progress
 */
export const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const error = Option.getOrElse(Cause.failureOption(cause), () => Cause.squash(cause))
  if (!HttpClientError.isHttpClientError(error)) return String(error)
  if (error._tag === "ResponseError") return `HTTP ${error.response.status}`
  // fetch fails with a TypeError whose cause is the socket error
  const code = (error.cause as { cause?: { code?: unknown } } | undefined)?.cause?.code
  if (code === "ECONNREFUSED") return "connection refused"
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection closed"
  return typeof code === "string" ? code : error.message
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

const statusLine = (status: SequentStatus, t: Tally, now: number): string => {
  const counts = `pending ${String(status.size).padStart(2)} | attempts ${String(t.attempts).padStart(2)},` +
    ` ${t.failed} failed | done ${String(t.done).padStart(2)}`
  const lane = status.lanes[0]
  const head = lane?.head
  if (lane === undefined || head === undefined) return `${counts} | idle`
  if (lane.state === "backoff" && head.nextAttemptAt !== undefined) {
    return `${counts} | write ${head.task} blocked ${seconds(Duration.toMillis(head.blockedFor))},` +
      ` attempt ${head.attempts + 1} in ${Math.max(0, Math.round(head.nextAttemptAt - now))} ms`
  }
  return `${counts} | write ${head.task} ${lane.state}`
}

/** The event lines worth printing: failures, and the recovery. */
const narrate = (event: SequentEvent, t: Tally): string | undefined =>
  SequentEvent.$match(event, {
    Scheduled: () => undefined,
    Started: () => undefined,
    AttemptFailed: ({ attempt, cause, retryIn, task }) =>
      `write ${task} attempt ${attempt} failed: ${describeFailure(cause)}, retry in ${
        Math.round(Duration.toMillis(retryIn))
      } ms`,
    Succeeded: ({ attempts, task }) =>
      attempts > 1
        ? `write ${task} went through on attempt ${attempts}; the ${t.scheduled - t.done} writes behind it follow`
        : undefined,
    GaveUp: ({ task }) => `write ${task} gave up`,
    Dropped: ({ task }) => `write ${task} dropped`,
    Paused: () => undefined,
    Resumed: () => undefined
  })

const isLast = (event: SequentEvent, writes: number) =>
  (event._tag === "Succeeded" || event._tag === "GaveUp" || event._tag === "Dropped") && event.task === writes

// -----------------------------------------------------------------------------
// The demo
// -----------------------------------------------------------------------------

/**
 * Runs the demo: starts the backend, sends the writes through Sequent while
 * the backend goes down and comes back, prints progress, and reports what the
 * backend recorded.
 *
 * @since 0.1.0
 * @category program
 */
export const demo = (
  options: DemoOptions = {}
): Effect.Effect<DemoResult, Backend.WriteServiceError | SequentClosedError | SequentFullError, Scope.Scope> =>
  Effect.gen(function*() {
    const writes = options.writes ?? 50
    const pace = options.pace ?? Duration.millis(100)
    const outageAfter = options.outageAfter ?? 10
    const unavailableFor = options.unavailableFor ?? Duration.seconds(2)
    const refusedFor = options.refusedFor ?? Duration.seconds(2)
    const log = options.log ?? Console.log
    const startedAt = yield* Clock.currentTimeMillis
    const at = (time: number, line: string) => log(`${seconds(time - startedAt).padStart(7)}  ${line}`)
    const say = (line: string) => Effect.flatMap(Clock.currentTimeMillis, (now) => at(now, line))

    const outage = outageAfter < writes ? { after: outageAfter, unavailableFor, refusedFor } : undefined
    const service = yield* Backend.make({ outage, log: say })
    yield* log(`effect-sequent demo: ${writes} writes, one every ${Duration.format(pace)}, to ${service.url}`)
    if (outage !== undefined) {
      yield* log(
        `the backend goes down after write ${outageAfter}: 503 for ${Duration.format(unavailableFor)},` +
          ` then refused connections for ${Duration.format(refusedFor)}`
      )
    }
    yield* log("")

    const run = Effect.gen(function*() {
      const events = yield* Sequent.subscribe
      const progress = yield* Ref.make(emptyTally)
      const watcher = yield* Stream.fromQueue(events).pipe(
        Stream.takeUntil((event) => isLast(event, writes)),
        Stream.runForEach((event) =>
          Effect.flatMap(Ref.updateAndGet(progress, (t) => tally(t, event)), (t) => {
            const line = narrate(event, t)
            return line === undefined ? Effect.void : at(event.at, line)
          })
        ),
        Effect.fork
      )
      const status = yield* Effect.fork(Effect.forever(Effect.zipRight(
        Effect.sleep(options.statusEvery ?? Duration.millis(500)),
        Effect.all([Sequent.status, Ref.get(progress), Clock.currentTimeMillis]).pipe(
          Effect.flatMap(([snapshot, t, now]) => at(now, statusLine(snapshot, t, now)))
        )
      )))

      const [, outageReport] = yield* Effect.all([sendWrites(service.url, writes, pace), service.outage], {
        concurrency: "unbounded"
      })
      yield* Fiber.interrupt(status)
      yield* Fiber.join(watcher)
      return { tally: yield* Ref.get(progress), outage: outageReport }
    })

    const report = yield* run.pipe(
      Effect.scoped,
      // the progress lines narrate every failed attempt, so Sequent's own log of them is turned off
      Effect.provide(
        Sequent.layer({ retry: options.retry ?? demoRetry, closeGracePeriod: "1 second", attemptLogLevel: "None" })
      ),
      Effect.provide(FetchHttpClient.layer)
    )
    const record = yield* service.record
    return {
      writes,
      record,
      pass: record.length === writes && record.every((seq, i) => seq === i + 1),
      attempts: report.tally.attempts,
      failedAttempts: report.tally.failed,
      retried: report.tally.retried,
      longestWait: Duration.millis(report.tally.longestWait),
      duplicates: yield* service.duplicates,
      outage: report.outage,
      elapsed: Duration.millis((yield* Clock.currentTimeMillis) - startedAt)
    }
  })

/**
 * The closing report of a run.
 *
 * @since 0.1.0
 * @category program
 */
export const summary = (result: DemoResult): string => {
  const { outage, record, writes } = result
  const mismatch = record.findIndex((seq, i) => seq !== i + 1)
  const recordLine = result.pass
    ? `writes 1..${writes}, in order`
    : mismatch >= 0
    ? `${record.length} writes; at position ${mismatch + 1} expected ${mismatch + 1}, found ${record[mismatch]}`
    : `${record.length} writes, expected ${writes}`
  const retried = result.retried.length === 0
    ? ""
    : ` (on write${result.retried.length > 1 ? "s" : ""} ${result.retried.join(", ")}, retried in place)`
  return [
    "",
    "summary",
    `  recorded      ${recordLine}`,
    `  attempts      ${result.attempts} for ${writes} writes: ${result.failedAttempts} failed${retried}`,
    outage === undefined
      ? "  outage        none"
      : `  outage        ${seconds(outage.endedAt - outage.startedAt)}: 503 for ${
        seconds(outage.refusingAt - outage.startedAt)
      }, then refused for ${seconds(outage.endedAt - outage.refusingAt)}`,
    `  longest wait  ${seconds(Duration.toMillis(result.longestWait))} from a write's first failure to its success`,
    `  duplicates    ${result.duplicates}`,
    `  elapsed       ${seconds(Duration.toMillis(result.elapsed))}`,
    "",
    result.pass ? "PASS" : "FAIL"
  ].join("\n")
}

/**
 * The backend's record is not the writes in order.
 *
 * @since 0.1.0
 * @category errors
 */
export class DemoCheckError extends Data.TaggedError("DemoCheckError")<{ readonly writes: number }> {
  override get message(): string {
    return `the backend's record is not writes 1..${this.writes} in order`
  }
}

const main = Effect.gen(function*() {
  const result = yield* demo()
  yield* Console.log(summary(result))
  if (!result.pass) return yield* new DemoCheckError({ writes: result.writes })
})

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  NodeRuntime.runMain(Effect.scoped(main))
}
