import { Clock, Console, Effect, Fiber, Layer, Queue, Schedule, Schema } from "effect"
import { Durable, DurableSequent, Journal, TaskKind } from "effect-sequent"

// A TaggedRequest kind: its handler's success and failure have schemas too
class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", { order: Schema.String }) {}
class GatewayDown extends Schema.TaggedError<GatewayDown>()("GatewayDown", {}) {}
class Charge extends Schema.TaggedRequest<Charge>()("Charge", {
  payload: { order: Schema.String, cents: Schema.Int },
  success: Schema.Struct({ receipt: Schema.String, chargedAt: Schema.Date }),
  failure: Schema.Union(CardDeclined, GatewayDown)
}) {}
const Tasks = TaskKind.make(Charge)

// The handler must succeed and fail with those types. The gateway is down at the first call.
let calls = 0
const Handlers = Tasks.handlers({
  Charge: (charge) =>
    Effect.gen(function*() {
      if (calls++ === 0) return yield* new GatewayDown()
      if (charge.cents > 100_000) return yield* new CardDeclined({ order: charge.order })
      return { receipt: `r-${charge.order}`, chargedAt: new Date(yield* Clock.currentTimeMillis) }
    })
})

// A declined card will not get better: the retry schedule stops at once on it
const retry = Schedule.intersect(
  Schedule.exponential("10 millis"),
  Schedule.recurWhile((error) => !(error instanceof CardDeclined))
)
// Journal.layerMemory keeps the journal in memory; SqliteJournal.layer({ filename }) keeps it on disk
const DurableLive = Durable.layer({ retry }).pipe(Layer.provide(Handlers), Layer.provide(Journal.layerMemory))

const { schedule, submit } = DurableSequent.typed(Tasks)

const program = Effect.scoped(Effect.gen(function*() {
  // events, as from any executor: subscribe before scheduling what you want to see
  const events = yield* DurableSequent.subscribe
  const printer = yield* Effect.fork(Effect.gen(function*() {
    for (;;) {
      const event = yield* Queue.take(events)
      yield* Console.log(`event: ${event._tag} in lane ${event.key}`)
      if (event._tag === "GaveUp") return
    }
  }))

  // submit answers with the handler's success, encoded and decoded by its schema: chargedAt is a Date
  const { chargedAt, receipt } = yield* submit(new Charge({ order: "o-1", cents: 1200 }), { key: "ada" })
  yield* Console.log(`${receipt}, charged at ${chargedAt.toISOString()}`)

  // the status of a durable executor: a paused lane and its waiting task
  yield* DurableSequent.pause("bob")
  yield* schedule(new Charge({ order: "o-2", cents: 800 }), { key: "bob" })
  const status = yield* DurableSequent.status
  yield* Console.log(status.lanes.map((lane) => `${lane.key}: ${lane.state}, ${lane.size} task(s)`).join("; "))
  yield* DurableSequent.resume("bob")

  // and with its failure, an instance of the failure schema's class once the task gives up
  const outcome = yield* submit(new Charge({ order: "o-3", cents: 250_000 }), { key: "ada" }).pipe(
    Effect.map(({ receipt }) => `charged ${receipt}`),
    Effect.catchTag("CardDeclined", (declined) => Effect.succeed(`card declined for ${declined.order}`))
  )
  yield* Fiber.join(printer)
  yield* DurableSequent.flush
  yield* Console.log(`charged ${receipt}; ${outcome}`)
}))

Effect.runPromise(program.pipe(Effect.provide(DurableLive)))
