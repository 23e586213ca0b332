import { Effect, Layer, Schedule, Schema } from "effect"
import { Durable, DurableSequent, TaskKind } from "effect-sequent"
import * as SqliteJournal from "effect-sequent/SqliteJournal"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

// Task kinds: a durable task is data, stored in the journal as JSON by its schema
class SendMail extends Schema.TaggedClass<SendMail>()("SendMail", { to: Schema.String }) {}
class ChargeCard extends Schema.TaggedClass<ChargeCard>()("ChargeCard", { order: Schema.String, cents: Schema.Int }) {}
const Tasks = TaskKind.make(SendMail, ChargeCard)

// Handlers: one per kind. Here the card service is down until we say otherwise.
let cardServiceUp = false
let charges = 0
const Handlers = Tasks.handlers({
  SendMail: (mail) => Effect.log(`mail sent to ${mail.to}`),
  ChargeCard: (charge) =>
    cardServiceUp
      ? Effect.sync(() => charges++).pipe(Effect.zipRight(Effect.log(`charged ${charge.cents} for ${charge.order}`)))
      : Effect.fail("card service unavailable")
})

// A SQLite journal in a temporary directory, removed when the layer closes;
// PgJournal.layer({ url }) is the PostgreSQL one
const JournalLive = Layer.unwrapScoped(
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), "sequent-"))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => SqliteJournal.layer({ filename: join(dir, "tasks.db") })))
)
const DurableLive = Durable.layer({ retry: Schedule.intersect(Schedule.exponential("10 millis"), Schedule.recurs(2)) })
  .pipe(Layer.provide(Handlers), Layer.provide(JournalLive))

const { schedule, submit } = DurableSequent.typed(Tasks)

const program = Effect.gen(function*() {
  // returns once the task is committed to the journal; `key` is its lane, `id` its idempotency key
  yield* schedule(new SendMail({ to: "ada@example.com" }), { key: "ada", id: "welcome:ada" })

  // submit waits for the outcome: three attempts fail, so the task gives up and is dead-lettered
  const charge = new ChargeCard({ order: "o-1", cents: 1200 })
  const error = yield* Effect.flip(submit(charge, { key: "ada", id: "charge:o-1" }))
  // while an id is dead-lettered (or pending), scheduling it again stores and runs nothing
  yield* schedule(charge, { key: "ada", id: "charge:o-1" })
  const dead = yield* DurableSequent.deadLetters
  yield* Effect.log(`${error}; dead letters: ${dead.map((letter) => `${letter.id} after ${letter.attempts} attempts`)}`)

  // once the card service is back, redrive puts the task at the end of its lane, attempts reset
  cardServiceUp = true
  yield* DurableSequent.redrive("charge:o-1")
  yield* DurableSequent.flush
  yield* Effect.log(`charges made: ${charges}, dead letters: ${(yield* DurableSequent.deadLetters).length}`)
})

Effect.runPromise(program.pipe(Effect.provide(DurableLive)))
