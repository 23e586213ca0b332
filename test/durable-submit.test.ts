/**
 * A durable `submit` answers with its task's outcome as the kind's schemas
 * carry it: a `Schema.TaggedRequest` kind's success and failure make a round
 * trip through its success and failure schemas; a `Schema.TaggedClass` kind's
 * submit succeeds with `void`. Each test runs on the memory journal and on
 * SQLite. The types of the same API are proved by durableApi.test-d.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import { Journal, type JournalError, type JournalLockedError, makeMemory } from "../src/Journal.js"
import type { SequentOptions } from "../src/Sequent.js"
import { SequentDuplicateTaskError, SequentOutcomeError } from "../src/SequentError.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import * as TaskKind from "../src/TaskKind.js"
import { settle } from "./support.js"

class Declined extends Schema.TaggedError<Declined>()("Declined", { order: Schema.String }) {}
class Charge extends Schema.TaggedRequest<Charge>()("Charge", {
  payload: { order: Schema.String, cents: Schema.Int, placedAt: Schema.Date },
  success: Schema.Struct({ cents: Schema.NumberFromString, at: Schema.Date }),
  failure: Declined
}) {}
/** Its handler answers with a value its schemas reject: an `Int` that is not whole. */
class Malformed extends Schema.TaggedRequest<Malformed>()("Malformed", {
  payload: { side: Schema.Literal("success", "failure") },
  success: Schema.Int,
  failure: Schema.Int
}) {}
class Crash
  extends Schema.TaggedRequest<Crash>()("Crash", { payload: {}, success: Schema.Void, failure: Schema.Never })
{}
class Note extends Schema.TaggedClass<Note>()("Note", { text: Schema.String }) {}

const Tasks = TaskKind.make(Charge, Malformed, Crash, Note)
const Typed = DurableSequent.typed(Tasks)

const boom = new Error("boom")

/** What the handlers saw and answered, to compare with what the callers received. */
interface Seen {
  readonly charges: Array<Charge>
  readonly declines: Array<Declined>
  readonly receipts: Array<{ readonly at: Date }>
  readonly runs: Array<string>
}

const makeSeen = (): Seen => ({ charges: [], declines: [], receipts: [], runs: [] })

const handlers = (seen: Seen) =>
  Tasks.handlers({
    Charge: (charge) =>
      Effect.suspend(() => {
        seen.charges.push(charge)
        if (charge.cents < 0) {
          const declined = new Declined({ order: charge.order })
          seen.declines.push(declined)
          return Effect.fail(declined)
        }
        // a field the success schema does not know: the round trip leaves it behind
        const receipt = { cents: charge.cents, at: new Date(charge.placedAt.getTime()), note: "internal" }
        seen.receipts.push(receipt)
        return Effect.succeed(receipt)
      }),
    Malformed: (task) =>
      Effect.suspend(() => {
        seen.runs.push(`Malformed ${task.side}`)
        return task.side === "success" ? Effect.succeed(1.5) : Effect.fail(2.5)
      }),
    Crash: () => Effect.die(boom),
    Note: (note) => Effect.sync(() => seen.runs.push(`Note ${note.text}`))
  })

type JournalLayer = Layer.Layer<Journal, JournalError | JournalLockedError>

/** A journal that outlives each executor built on it, so that a second one restores what the first left. */
const backends: ReadonlyArray<readonly [string, Effect.Effect<JournalLayer, never, Scope.Scope>]> = [
  ["Journal.layerMemory", Effect.map(makeMemory, (journal) => Layer.succeed(Journal, journal))],
  [
    "SQLite",
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "sequent-submit-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      ),
      (dir) => SqliteJournal.layer({ filename: join(dir, "journal.db") })
    )
  ]
]

/** A durable executor on `journal`, for as long as the current scope lives. */
const start = (journal: JournalLayer, seen: Seen, options: SequentOptions = {}) =>
  Layer.build(Durable.layer(options).pipe(Layer.provide(handlers(seen)), Layer.provide(journal))).pipe(
    Effect.map((context) => Context.get(context, DurableSequent))
  )

const giveUpAtOnce = { retry: Schedule.recurs(0) }
const placedAt = new Date(1_000)

for (const [name, makeJournal] of backends) {
  describe(`durable submit on ${name}`, () => {
    it.scoped("a request's submit answers with the handler's success after a round trip through its success schema", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const sequent = yield* start(yield* makeJournal, seen)
        const receipt = yield* sequent.submit(new Charge({ order: "o-1", cents: 1200, placedAt }))
        assert.deepStrictEqual(receipt, { cents: 1200, at: placedAt }, "decoded, without the field the schema lacks")
        assert.instanceOf(receipt.at, Date)
        assert.notStrictEqual(receipt.at, seen.receipts[0]!.at, "a Date decoded from its encoding, not the handler's")
      }))

    it.scoped("a request's typed failure reaches submit, once the task gives up, as an instance of its failure schema", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const sequent = yield* start(yield* makeJournal, seen, giveUpAtOnce)
        const error = yield* Effect.flip(
          sequent.submit(new Charge({ order: "o-2", cents: -1, placedAt }), { id: "o-2" })
        )
        assert.instanceOf(error, Declined)
        assert.deepStrictEqual(error, new Declined({ order: "o-2" }))
        assert.notStrictEqual(error, seen.declines[0], "decoded from its encoding, not the handler's instance")
        assert.deepStrictEqual((yield* sequent.deadLetters).map((letter) => letter.id), ["o-2"])
      }))

    it.scoped("a success that does not encode: submit fails with SequentOutcomeError, and the task counts as completed", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const journal = yield* Layer.build(yield* makeJournal)
        const sequent = yield* start(Layer.succeedContext(journal), seen, giveUpAtOnce)
        const error = yield* Effect.flip(sequent.submit(new Malformed({ side: "success" })))
        assert.instanceOf(error, SequentOutcomeError)
        assert.strictEqual(error.tag, "Malformed")
        assert.strictEqual(error.outcome, "success")
        assert.include(error.message, "1.5")
        assert.deepStrictEqual(seen.runs, ["Malformed success"], "it ran once")
        assert.deepStrictEqual(yield* sequent.deadLetters, [])
        assert.deepStrictEqual(yield* Context.get(journal, Journal).pending, [], "completed: no longer pending")
      }))

    it.scoped("a failure that does not encode: submit fails with SequentOutcomeError, and the task is dead-lettered", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const sequent = yield* start(yield* makeJournal, seen, giveUpAtOnce)
        const error = yield* Effect.flip(sequent.submit(new Malformed({ side: "failure" }), { id: "bad-failure" }))
        assert.instanceOf(error, SequentOutcomeError)
        assert.strictEqual(error.outcome, "failure")
        assert.deepStrictEqual((yield* sequent.deadLetters).map((letter) => letter.id), ["bad-failure"])
      }))

    it.scoped("a request's defect reaches submit as it is", () =>
      Effect.gen(function*() {
        const sequent = yield* start(yield* makeJournal, makeSeen(), giveUpAtOnce)
        const exit = yield* Effect.exit(sequent.submit(new Crash()))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) assert.deepStrictEqual(Cause.dieOption(exit.cause), Option.some(boom))
      }))

    it.scoped("a class kind's submit succeeds with void, whatever its handler returns", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const sequent = yield* start(yield* makeJournal, seen)
        const result: void = yield* sequent.submit(new Note({ text: "hi" }))
        assert.strictEqual(result, undefined, "the handler returned the log's new length")
        assert.deepStrictEqual(seen.runs, ["Note hi"])
      }))

    it.scoped("with an id already pending, a request's submit fails with SequentDuplicateTaskError, a class's succeeds", () =>
      Effect.gen(function*() {
        const seen = makeSeen()
        const sequent = yield* start(yield* makeJournal, seen)
        yield* sequent.pause("a")
        yield* sequent.schedule(new Charge({ order: "o-3", cents: 1, placedAt }), { key: "a", id: "o-3" })
        yield* sequent.schedule(new Note({ text: "first" }), { key: "a", id: "n-1" })
        const error = yield* Effect.flip(
          sequent.submit(new Charge({ order: "o-3", cents: 1, placedAt }), { id: "o-3" })
        )
        assert.instanceOf(error, SequentDuplicateTaskError)
        assert.strictEqual(error.id, "o-3")
        assert.strictEqual(yield* sequent.submit(new Note({ text: "again" }), { id: "n-1" }), undefined)
        assert.strictEqual(yield* sequent.size, 2, "nothing more was stored")
        yield* sequent.resume("a")
        yield* sequent.flush
        assert.deepStrictEqual(seen.charges.map((charge) => charge.order), ["o-3"])
        assert.deepStrictEqual(seen.runs, ["Note first"])
      }))

    it.scoped("after a restart, a restored request runs the same handler on a decoded instance of its kind", () =>
      Effect.gen(function*() {
        const journal = yield* makeJournal
        yield* Effect.scoped(Effect.gen(function*() {
          const before = yield* start(journal, makeSeen())
          yield* before.pause()
          yield* before.schedule(new Charge({ order: "o-4", cents: 400, placedAt }), { key: "a" })
          yield* before.schedule(new Charge({ order: "o-5", cents: -1, placedAt }), { key: "a", id: "o-5" })
          yield* before.stop
        }))

        const seen = makeSeen()
        const after = yield* start(journal, seen, giveUpAtOnce)
        const receipt = yield* after.submit(new Charge({ order: "o-6", cents: 600, placedAt }), { key: "a" })
        assert.deepStrictEqual(receipt, { cents: 600, at: placedAt })
        assert.deepStrictEqual(seen.charges.map((charge) => charge.order), ["o-4", "o-5", "o-6"], "restored first")
        const restored = seen.charges[0]!
        assert.instanceOf(restored, Charge)
        assert.instanceOf(restored.placedAt, Date)
        assert.strictEqual(restored.placedAt.getTime(), placedAt.getTime())
        assert.deepStrictEqual(seen.receipts.map((r) => r.at.getTime()), [1_000, 1_000], "o-4's handler answered alike")
        const dead = yield* after.deadLetters
        assert.deepStrictEqual(dead.map((letter) => letter.id), ["o-5"])
        assert.include(dead[0]!.reason, "Declined", "the restored task failed with its typed failure")
      }))

    it.scoped("DurableSequent's statics reach the durable executor in context", () =>
      Effect.gen(function*() {
        const journal = yield* makeJournal
        const program = Effect.gen(function*() {
          const events = yield* DurableSequent.subscribe
          const streamed = yield* Effect.fork(Stream.runCollect(Stream.take(DurableSequent.events, 3)))
          yield* settle()
          yield* DurableSequent.pause("a")
          yield* Typed.schedule(new Note({ text: "waits" }), { key: "a" })
          assert.strictEqual(yield* DurableSequent.size, 1)
          assert.strictEqual(yield* DurableSequent.sizeOf("a"), 1)
          assert.strictEqual(yield* DurableSequent.laneCount, 1)
          const status = yield* DurableSequent.status
          assert.deepStrictEqual(status.lanes.map((lane) => [lane.key, lane.state, lane.size]), [["a", "paused", 1]])
          yield* DurableSequent.resume("a")
          const receipt = yield* DurableSequent.submit(new Charge({ order: "o-7", cents: 7, placedAt }), { key: "b" })
          assert.strictEqual(receipt.cents, 7)
          yield* DurableSequent.flush
          const tags = Chunk.toReadonlyArray(yield* Queue.takeAll(events)).filter((event) => event.key === "a")
            .map((event) => event._tag)
          assert.deepStrictEqual(tags, ["Paused", "Scheduled", "Resumed", "Started", "Succeeded"])
          assert.deepStrictEqual(Chunk.toArray(yield* Fiber.join(streamed)).map((event) => event._tag), [
            "Paused",
            "Scheduled",
            "Resumed"
          ])
          yield* DurableSequent.stop
          assert.strictEqual((yield* DurableSequent.status).state, "stopped")
        })
        yield* program.pipe(
          Effect.provide(Durable.layer().pipe(Layer.provide(handlers(makeSeen())), Layer.provide(journal)))
        )
      }))
  })
}
