/**
 * Per-customer webhook delivery with lanes.
 *
 * Each customer's events must reach the customer's endpoint in the order they
 * happened (an `invoice.paid` must not overtake its `invoice.created`), but one
 * customer's endpoint being slow or down must not delay anyone else's. So every
 * customer gets a lane (`key: customerId`): a customer's events go out one at a
 * time, in order, each retried in place until its endpoint takes it, while up
 * to eight customers are served at once.
 *
 * A failure that retrying cannot fix (a 4xx other than 408 and 429) gives up at
 * once; the event goes to the dead-letter store and, with `onGiveUp: "halt"`,
 * the customer's later events are held (still accepted) until an operator has
 * looked at it and calls `Sequent.resume(customerId)`.
 *
 *   npx tsx examples/lanes.ts
 *
 * posts to an in-process stand-in for three customers' endpoints: `acme` takes
 * everything, `globex` answers 503 twice before it recovers, `initech` rejects
 * with 400 until it is "reconfigured". Set `WEBHOOK_URL` to post to a real
 * server instead (`<WEBHOOK_URL>/<customer>`, through `fetch`).
 *
 * `test/lanes-example.test.ts` runs the same program on the test clock.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type DeadLetter, Sequent } from "../src/index.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface WebhookEvent {
  readonly id: string
  readonly customerId: string
  readonly endpoint: string
  readonly type: string
  readonly data: Record<string, unknown>
}

/**
 * Where events that gave up are kept for an operator (a table, in real life).
 *
 * @since 0.1.0
 * @category dead letters
 */
export class DeadLetters extends Context.Tag("examples/lanes/DeadLetters")<DeadLetters, {
  readonly put: (deadLetter: DeadLetter) => Effect.Effect<void>
  readonly all: Effect.Effect<ReadonlyArray<DeadLetter>>
}>() {
  /** @since 0.1.0 */
  static readonly memory: Layer.Layer<DeadLetters> = Layer.effect(
    DeadLetters,
    Effect.map(Ref.make<ReadonlyArray<DeadLetter>>([]), (store) => ({
      put: (deadLetter) => Ref.update(store, (all) => [...all, deadLetter]),
      all: Ref.get(store)
    }))
  )
}

// -----------------------------------------------------------------------------
// Delivery through lanes (the README quotes this section)
// -----------------------------------------------------------------------------

// one delivery attempt: POST the event, succeed on a 2xx
const deliver = (event: WebhookEvent): Effect.Effect<void, HttpClientError.HttpClientError, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
    const request = HttpClientRequest.post(event.endpoint).pipe(
      HttpClientRequest.setHeader("webhook-id", event.id),
      HttpClientRequest.bodyUnsafeJson({ id: event.id, type: event.type, data: event.data })
    )
    yield* client.execute(request)
  })

// transport errors, 5xx, 408 and 429 are worth retrying; any other status will be rejected again
const isRetryable = (error: HttpClientError.HttpClientError): boolean => {
  if (error._tag === "RequestError") return error.reason === "Transport"
  if (error.reason !== "StatusCode") return false
  const status = error.response.status
  return status >= 500 || status === 408 || status === 429
}

// exponential from 1 second, jittered, at most 10 minutes apart, for at most 24 hours
const webhookRetry = Schedule.exponential("1 second").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.minutes(10))),
  Schedule.upTo("24 hours")
)

// eight customers at once, at most 10,000 events waiting, a customer's lane halted after a give-up
const WebhookSequent = Layer.scoped(
  Sequent,
  Effect.gen(function*() {
    const deadLetters = yield* DeadLetters
    return yield* Sequent.make({
      concurrency: 8,
      capacity: 10_000,
      onFull: "wait",
      retry: webhookRetry,
      onGiveUp: "halt",
      deadLetter: (deadLetter) =>
        Effect.zipRight(
          deadLetters.put(deadLetter),
          Effect.logError(`webhook for ${deadLetter.key} gave up after ${deadLetter.attempts} attempt(s)`)
        )
    })
  })
)

// an event goes to the end of its customer's lane; schedule returns at once
const enqueue = (event: WebhookEvent) =>
  Sequent.schedule(deliver(event), { key: event.customerId, timeout: "10 seconds", isRetryable })

// -----------------------------------------------------------------------------
// The demo
// -----------------------------------------------------------------------------

/**
 * Two invoices (created, then paid) for each of three customers, interleaved.
 *
 * @since 0.1.0
 * @category demo
 */
export const events = (baseUrl: string): ReadonlyArray<WebhookEvent> =>
  [1, 2].flatMap((invoice) =>
    ["created", "paid"].flatMap((what) =>
      ["acme", "globex", "initech"].map((customerId) => ({
        id: `${customerId}-inv${invoice}-${what}`,
        customerId,
        endpoint: `${baseUrl}/${customerId}`,
        type: `invoice.${what}`,
        data: { invoice }
      }))
    )
  )

const laneEmpty = (customerId: string) =>
  Sequent.sizeOf(customerId).pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: (size) => size === 0 })
  )

/**
 * Enqueues every event, waits until acme's and globex's are delivered, notes
 * what initech holds, then fixes initech (`fixInitech`), resumes its lane and
 * flushes.
 *
 * @since 0.1.0
 * @category demo
 */
export const deliverAll = (baseUrl: string, fixInitech: Effect.Effect<void>) =>
  Effect.gen(function*() {
    for (const event of events(baseUrl)) yield* enqueue(event)
    yield* laneEmpty("acme")
    yield* laneEmpty("globex")
    const held = yield* Sequent.sizeOf("initech")
    const deadLetters = yield* Effect.flatMap(DeadLetters, (store) => store.all)
    // the operator has looked at the dead letter and fixed the endpoint: the held events go out, in order
    yield* fixInitech
    yield* Sequent.resume("initech")
    yield* Sequent.flush
    return { held, deadLetters }
  }).pipe(Effect.provide(WebhookSequent), Effect.provide(DeadLetters.memory))

/**
 * Three customers' endpoints in-process: acme takes everything, globex answers
 * 503 twice, initech rejects with 400 until `fix` runs. `received` lists what
 * each endpoint accepted, in order.
 *
 * @since 0.1.0
 * @category demo
 */
export const standInEndpoints = Effect.sync(() => {
  const received: Array<string> = []
  let initechFixed = false
  let globexCalls = 0
  const layer = Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request, url) =>
      Effect.sync(() => {
        const customer = url.pathname.slice(1)
        let status = 200
        if (customer === "globex" && ++globexCalls <= 2) status = 503
        if (customer === "initech" && !initechFixed) status = 400
        if (status === 200) received.push(request.headers["webhook-id"]!)
        return HttpClientResponse.fromWeb(request, new Response(null, { status }))
      })
    )
  )
  return { layer, received, fix: Effect.sync(() => void (initechFixed = true)) }
})

const main = Effect.gen(function*() {
  const url = process.env.WEBHOOK_URL
  if (url !== undefined) {
    yield* deliverAll(url, Effect.void).pipe(Effect.provide(FetchHttpClient.layer))
    return
  }
  const standIn = yield* standInEndpoints
  const { deadLetters, held } = yield* deliverAll("https://hooks.example", standIn.fix).pipe(
    Effect.provide(standIn.layer)
  )
  for (const deadLetter of deadLetters) {
    const error = Cause.squash(deadLetter.cause)
    yield* Console.log(`dead letter: ${deadLetter.key}, ${error instanceof Error ? error.message : String(error)}`)
  }
  yield* Console.log(`initech was halted with ${held} event(s) held, then resumed`)
  yield* Console.log(["delivered:", ...standIn.received].join("\n  "))
})

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  NodeRuntime.runMain(main)
}
