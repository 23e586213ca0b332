/**
 * The SQLite journal when its database fails a write: every failure is a
 * typed `JournalError` (never a defect), a transaction that fails is rolled
 * back, and the journal's connection stays usable. Faults are injected from a
 * second connection to the same file: triggers that fire while a row of the
 * `fault` table says so.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { join } from "node:path"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import * as internal from "../src/internal/sqlJournal.js"
import { Journal, JournalError } from "../src/Journal.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import * as TaskKind from "../src/TaskKind.js"
import { entry } from "./journalConformance.js"

const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => fs.makeTempDirectoryScoped({ prefix: "sequent-faults-" })
).pipe(Effect.provide(NodeFileSystem.layer), Effect.orDie)

/** A client of the test's own on `filename`, with foreign keys enforced (for the deferred constraint below). */
const clientOn = (filename: string) =>
  Effect.tap(
    SqliteClient.make({ filename }).pipe(Effect.provide(Reactivity.layer)),
    (client) => client`PRAGMA foreign_keys = ON`
  )

/**
 * Installs the fault triggers on the journal's dead-letter and pending tables
 * through a connection of its own, and answers with a switch:
 *
 * - `"rollback"`: inserting a dead letter or a pending record raises
 *   `RAISE(ROLLBACK)`, so SQLite rolls the whole transaction back by itself
 *   (as it does on `SQLITE_FULL`) and refuses the explicit `ROLLBACK`;
 * - `"commit"`: inserting a dead letter breaks a deferred foreign key, so the
 *   statements succeed and `COMMIT` fails, leaving the transaction open.
 */
const faults = (filename: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const db = new Sqlite(filename)
      db.exec(`
        CREATE TABLE fault (kind TEXT PRIMARY KEY, active INTEGER NOT NULL);
        INSERT INTO fault VALUES ('rollback', 0), ('commit', 0);
        CREATE TABLE fault_parent (id TEXT PRIMARY KEY);
        CREATE TABLE fault_child (parent TEXT REFERENCES fault_parent (id) DEFERRABLE INITIALLY DEFERRED);
        CREATE TRIGGER fault_rollback_dead AFTER INSERT ON sequent_dead_letters
          WHEN (SELECT active FROM fault WHERE kind = 'rollback') BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;
        CREATE TRIGGER fault_rollback_pending AFTER INSERT ON sequent_pending
          WHEN (SELECT active FROM fault WHERE kind = 'rollback') BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;
        CREATE TRIGGER fault_commit AFTER INSERT ON sequent_dead_letters
          WHEN (SELECT active FROM fault WHERE kind = 'commit') BEGIN INSERT INTO fault_child VALUES ('missing'); END;
      `)
      return db
    }),
    (db) => Effect.sync(() => db.close())
  ).pipe(Effect.map((db) => (kind: "rollback" | "commit", active: boolean) =>
    Effect.sync(() => db.prepare("UPDATE fault SET active = ? WHERE kind = ?").run(active ? 1 : 0, kind))
  ))

/** Fails the test unless `exit` failed with a JournalError (not a defect); answers with its message. */
const assertJournalError = <A>(exit: Exit.Exit<A, unknown>, message: string): string => {
  assert.isTrue(Exit.isFailure(exit), `${message}: it succeeded`)
  if (Exit.isSuccess(exit)) return ""
  assert.isFalse(Cause.isDie(exit.cause), `${message}: it died: ${Cause.pretty(exit.cause)}`)
  const failure = Cause.failureOption(exit.cause)
  assert.isTrue(
    failure._tag === "Some" && failure.value instanceof JournalError,
    `${message}: ${Cause.pretty(exit.cause)}`
  )
  return failure._tag === "Some" ? String((failure.value as Error).message) : ""
}

const journals: ReadonlyArray<
  readonly [string, (filename: string) => Effect.Effect<Journal.Service, unknown, Scope.Scope>]
> = [
  [
    "through the client (layerFromClient)",
    (filename) =>
      Effect.flatMap(
        clientOn(filename),
        (client) => SqliteJournal.make().pipe(Effect.provideService(SqliteClient.SqliteClient, client))
      )
  ],
  [
    "on the journal's own connection (layer)",
    (filename) =>
      Effect.flatMap(
        clientOn(filename),
        (client) =>
          internal.make({ tablePrefix: internal.defaultTablePrefix, connection: "owned" }).pipe(
            Effect.provideService(SqlClient.SqlClient, client)
          )
      )
  ]
]

for (const [name, open] of journals) {
  describe(`SQLite journal ${name}`, () => {
    it.scoped("a transaction SQLite rolls back by itself fails with JournalError, and the journal stays usable", () =>
      Effect.gen(function*() {
        const filename = join(yield* tempDir, "journal.db")
        const journal = yield* open(filename)
        const fault = yield* faults(filename)
        const [a, b] = yield* journal.append([entry("a"), entry("b")])
        yield* journal.deadLetter(b.seq, "earlier", 1)

        yield* fault("rollback", true)
        assertJournalError(yield* Effect.exit(journal.deadLetter(a.seq, "boom", 2)), "deadLetter")
        assertJournalError(yield* Effect.exit(journal.redrive("b")), "redrive")
        const many = Array.from({ length: internal.chunkSize + 1 }, (_, i) => entry(`many-${i}`))
        assertJournalError(yield* Effect.exit(journal.append(many)), "a batch append (one transaction)")

        yield* fault("rollback", false)
        assert.deepStrictEqual(
          (yield* journal.pending).map((r) => r.id),
          ["a"],
          "nothing of the failed writes is stored"
        )
        yield* journal.deadLetter(a.seq, "boom", 2)
        yield* journal.redrive("b")
        assert.deepStrictEqual((yield* journal.deadLetters).map((r) => r.id), ["a"])
        assert.deepStrictEqual((yield* journal.pending).map((r) => r.id), ["b"])
      }))

    it.scoped("a COMMIT that fails is a JournalError, its transaction is rolled back, and the journal stays usable", () =>
      Effect.gen(function*() {
        const filename = join(yield* tempDir, "journal.db")
        const journal = yield* open(filename)
        const fault = yield* faults(filename)
        const [a, b] = yield* journal.append([entry("a"), entry("b")])

        yield* fault("commit", true)
        assertJournalError(yield* Effect.exit(journal.deadLetter(a.seq, "boom", 2)), "deadLetter")
        yield* fault("commit", false)
        // a transaction left open would make every later write fail ("cannot start a transaction within a transaction")
        yield* journal.complete([b.seq])
        assert.deepStrictEqual(
          (yield* journal.pending).map((r) => r.id),
          ["a"],
          "the failed dead letter was rolled back"
        )
        yield* journal.deadLetter(a.seq, "boom", 2)
        assert.deepStrictEqual((yield* journal.deadLetters).map((r) => r.id), ["a"])
      }))
  })
}

describe("internal transaction", () => {
  it.effect("a journal operation whose driver throws fails with JournalError, not a defect", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(internal.guard("Failed to do it")(Effect.die(new TypeError("driver bug"))))
      assertJournalError(exit, "guard")
      const error = yield* Effect.flip(internal.guard("Failed to do it")(Effect.die(new TypeError("driver bug"))))
      assert.include(error.message, "Failed to do it: driver bug")
    }))
})

class Explode extends Schema.TaggedClass<Explode>()("Explode", { size: Schema.Number, padding: Schema.String }) {}
class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Explode, Write)

describe("durable executor on a SQLite journal whose disk is full", () => {
  it.scoped("a dead letter that hits SQLITE_FULL is retried until there is room: the lane resumes, and meanwhile schedule and redrive fail with JournalError", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const client = yield* clientOn(filename)
      const inner = yield* SqliteJournal.make().pipe(Effect.provideService(SqliteClient.SqliteClient, client))
      // signals the first dead letter that fails, however it fails
      const deadLetterFailed = yield* Deferred.make<void>()
      const journal: Journal.Service = {
        ...inner,
        deadLetter: (...args) =>
          Effect.onError(inner.deadLetter(...args), () => Deferred.succeed(deadLetterFailed, undefined))
      }
      const log: Array<number> = []
      const sequent = yield* Layer.build(
        Durable.layer({ retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
          Layer.provide(Tasks.handlers({
            // the failure's text becomes the dead letter's reason: too large to fit a full database
            Explode: (task) => Effect.fail("x".repeat(task.size)),
            Write: (task) => Effect.sync(() => log.push(task.n))
          })),
          Layer.provide(Layer.succeed(Journal, journal))
        )
      ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))

      // a dead letter written while there is room, too large to go back to a full pending table
      yield* Effect.exit(
        sequent.submit(new Explode({ size: 100, padding: "p".repeat(1_500) }), { id: "earlier", key: "z" })
      )
      assert.deepStrictEqual((yield* sequent.deadLetters).map((letter) => letter.id), ["earlier"])

      // the database may not grow by a single page any more
      const [{ page_count }] = yield* client<{ page_count: number }>`PRAGMA page_count`
      yield* client.unsafe(`PRAGMA max_page_count = ${page_count}`)

      yield* sequent.schedule(new Explode({ size: 20_000, padding: "" }), { id: "big", key: "a" })
      yield* Deferred.await(deadLetterFailed)

      // fill the rest of the pending table's page: the append that does not fit fails, typed
      let stored = 0
      let refused: Exit.Exit<void, unknown> | undefined
      while (refused === undefined && stored < 1_000) {
        const exit = yield* Effect.exit(sequent.schedule(new Write({ n: stored }), { key: "a" }))
        if (Exit.isSuccess(exit)) stored++
        else refused = exit
      }
      assert.isDefined(refused, "the database never filled up")
      assert.include(assertJournalError(refused!, "schedule on a full database"), "database or disk is full")
      assert.include(
        assertJournalError(yield* Effect.exit(sequent.redrive("earlier")), "redrive on a full database"),
        "database or disk is full"
      )
      assert.deepStrictEqual(log, [], "lane a waits for its dead letter")

      yield* client.unsafe("PRAGMA max_page_count = 1073741823")
      yield* TestClock.adjust("10 seconds") // the dead letter's retries
      yield* sequent.redrive("earlier")
      yield* sequent.flush
      assert.deepStrictEqual(log, Array.from({ length: stored }, (_, n) => n), "lane a ran every task stored after it")
      const letters = yield* sequent.deadLetters
      assert.deepStrictEqual(letters.map((letter) => letter.id), ["big", "earlier"])
      assert.include(letters[0]!.reason, "x".repeat(100))
      assert.deepStrictEqual(yield* inner.pending, [])
    }))
})
