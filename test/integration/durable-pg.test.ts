/**
 * The durable executor on PostgreSQL (127.0.0.1:5432, database `test`;
 * override with `SEQUENT_PG_URL`): what it refuses before a write, so that a
 * bad task never fails the group commit of good ones, and the journal's
 * failures that are typed and leave it usable.
 *
 * Every journal built here uses tables prefixed `sequent_f<run>_<n>_`, unique
 * to this run; they are all dropped when the file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Durable from "../../src/Durable.js"
import { DurableSequent } from "../../src/Durable.js"
import { Journal, JournalError } from "../../src/Journal.js"
import * as PgJournal from "../../src/PgJournal.js"
import { SequentInvalidTaskError } from "../../src/SequentError.js"
import * as TaskKind from "../../src/TaskKind.js"
import { entry } from "../journalConformance.js"
import { makeRun, url } from "./support/PgTables.js"

const run = makeRun("f")
const { runPrefix } = run
const freshPrefix = run.fresh

afterAll(() => run.dropAll(["fault"]))

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
class Fail extends Schema.TaggedClass<Fail>()("Fail", { message: Schema.String }) {}
const Tasks = TaskKind.make(Write, Fail)

/** A durable executor on fresh PostgreSQL tables, with its journal; `log` records the `n` of every Write that ran. */
const setup = (log: Array<number>, tablePrefix = freshPrefix()) =>
  Layer.build(
    Durable.layer({ retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
      Layer.provide(Tasks.handlers({
        Write: (task) => Effect.sync(() => log.push(task.n)),
        Fail: (task) => Effect.fail(task.message)
      })),
      Layer.provideMerge(PgJournal.layer({ url, tablePrefix }))
    )
  ).pipe(Effect.map((context) => ({
    sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service,
    journal: context.unsafeMap.get(Journal.key) as Journal.Service
  })))

describe("durable executor on PostgreSQL", () => {
  it.scoped("of ten concurrent schedules, the one with a NUL in its key fails alone with SequentInvalidTaskError; the nine are stored and run", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const { journal, sequent } = yield* setup(log)
      yield* sequent.pause()
      const exits = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, n) => n),
        (n) => Effect.exit(sequent.schedule(new Write({ n }), { key: n === 4 ? "bad\u0000key" : `k${n}` })),
        { concurrency: "unbounded" }
      )
      const failed = exits.flatMap((exit, n) => Exit.isFailure(exit) ? [[n, Cause.squash(exit.cause)] as const] : [])
      assert.deepStrictEqual(failed.map(([n]) => n), [4])
      assert.instanceOf(failed[0]![1], SequentInvalidTaskError)
      assert.strictEqual((yield* journal.pending).length, 9)
      yield* sequent.resume()
      yield* sequent.flush
      assert.deepStrictEqual(log.sort(), [0, 1, 2, 3, 5, 6, 7, 8, 9])
    }))

  it.scoped("an id and a key of 1024 bytes of UTF-8 are stored exactly and run; one byte more, or a lone surrogate, is refused", () =>
    Effect.gen(function*() {
      const log: Array<number> = []
      const { journal, sequent } = yield* setup(log)
      const long = "é".repeat(512)
      for (
        const options of [{ id: `${long}a` }, { key: `${long}a` }, { id: "🦀".slice(0, 1) }, { key: "🦀".slice(1) }]
      ) {
        const error = yield* Effect.flip(sequent.schedule(new Write({ n: 0 }), options))
        assert.instanceOf(error, SequentInvalidTaskError)
      }
      yield* sequent.pause()
      yield* sequent.schedule(new Write({ n: 1 }), { id: long, key: long })
      yield* sequent.schedule(new Write({ n: 2 }), { id: "🦀".repeat(256), key: "🦀".repeat(256) })
      assert.deepStrictEqual((yield* journal.pending).map((record) => [record.id, record.lane]), [
        [long, long],
        ["🦀".repeat(256), "🦀".repeat(256)]
      ])
      yield* sequent.resume()
      yield* sequent.flush
      assert.deepStrictEqual(log.sort(), [1, 2])
    }))

  it.scoped(
    "a task whose failure has a NUL in its message is dead-lettered, and its lane moves on",
    () =>
      Effect.gen(function*() {
        const log: Array<number> = []
        const { sequent } = yield* setup(log)
        yield* sequent.schedule(new Fail({ message: "bad\u0000byte" }), { key: "a", id: "nul" })
        yield* sequent.schedule(new Write({ n: 1 }), { key: "a" })
        yield* sequent.flush
        assert.deepStrictEqual(log, [1])
        const [letter] = yield* sequent.deadLetters
        assert.strictEqual(letter!.id, "nul")
        assert.include(letter!.reason, "bad\uFFFDbyte")
      }),
    30_000
  )
})

describe("PostgreSQL journal, when a COMMIT fails", () => {
  it.scoped("a deferred constraint that fails at COMMIT is a JournalError, and the journal stays usable", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const journal = yield* Layer.build(PgJournal.layer({ url, tablePrefix: prefix })).pipe(
        Effect.map((context) => context.unsafeMap.get(Journal.key) as Journal.Service)
      )
      const sql = yield* Layer.build(PgClient.layer({ url })).pipe(
        Effect.map((context) => context.unsafeMap.get(PgClient.PgClient.key) as PgClient.PgClient)
      )
      const fault = `${runPrefix}fault`
      yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${fault}_switch (active BOOLEAN NOT NULL)`)
      yield* sql.unsafe(`INSERT INTO ${fault}_switch SELECT true WHERE NOT EXISTS (SELECT 1 FROM ${fault}_switch)`)
      yield* sql.unsafe(`CREATE OR REPLACE FUNCTION ${fault}() RETURNS trigger AS $$
        BEGIN
          IF (SELECT active FROM ${fault}_switch) THEN RAISE EXCEPTION 'injected at commit'; END IF;
          RETURN NULL;
        END $$ LANGUAGE plpgsql`)
      yield* sql.unsafe(`CREATE CONSTRAINT TRIGGER ${prefix}fault AFTER INSERT ON ${prefix}dead_letters
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${fault}()`)
      yield* sql.unsafe(`UPDATE ${fault}_switch SET active = true`)

      const [a, b] = yield* journal.append([entry("a"), entry("b")])
      const exit = yield* Effect.exit(journal.deadLetter(a!.seq, "boom", 1))
      assert.isTrue(Exit.isFailure(exit) && !Cause.isDie(exit.cause), `${exit}`)
      assert.instanceOf(Cause.squash((exit as Exit.Failure<void, unknown>).cause), JournalError)
      assert.include(String(Cause.squash((exit as Exit.Failure<void, unknown>).cause)), "injected at commit")

      yield* sql.unsafe(`UPDATE ${fault}_switch SET active = false`)
      yield* journal.complete([b!.seq])
      assert.deepStrictEqual(
        (yield* journal.pending).map((record) => record.id),
        ["a"],
        "the failed dead letter was rolled back"
      )
      yield* journal.deadLetter(a!.seq, "boom", 1)
      assert.deepStrictEqual((yield* journal.deadLetters).map((record) => record.id), ["a"])
    }))
})
