/**
 * The journal conformance suite on PostgreSQL (127.0.0.1:5432, database
 * `test`; override with `SEQUENT_PG_URL`), plus the advisory-lock ownership.
 *
 * Every journal built here uses tables prefixed `sequent_t<run>_<n>_`, unique
 * to this run; they are all dropped when the file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Journal, type JournalError, JournalLockedError } from "../../src/Journal.js"
import * as PgJournal from "../../src/PgJournal.js"
import { entry, journalAtomicity, journalConformance } from "../journalConformance.js"
import { makeRun, url } from "./support/PgTables.js"

const run = makeRun("t")
const freshPrefix = run.fresh

/** Every build is an empty journal in tables of its own. */
const pgLayer = Layer.suspend(() => PgJournal.layer({ url, tablePrefix: freshPrefix() }))

afterAll(() => run.dropAll())

/** The same, in shared mode: its append and redrive take the shards' append locks, and must keep the semantics. */
const sharedLayer = Layer.suspend(() => PgJournal.layer({ url, tablePrefix: freshPrefix(), sharing: { shards: 8 } }))

describe("postgres, shared mode", () => {
  journalConformance(sharedLayer)
  journalAtomicity(sharedLayer)

  /** Builds `second` while `first` is alive (the outer layer is built first). */
  const buildWhile = (
    first: Layer.Layer<Journal, JournalError | JournalLockedError>,
    second: Layer.Layer<Journal, JournalError | JournalLockedError>
  ) => Effect.flip(Effect.provide(Effect.provide(Journal, second), first))

  it.effect("a shared journal and a single owner of the same tables exclude each other", () =>
    Effect.gen(function*() {
      const tablePrefix = freshPrefix()
      const shared = PgJournal.layer({ url, tablePrefix, sharing: {} })
      const single = PgJournal.layer({ url, tablePrefix })
      assert.strictEqual((yield* buildWhile(shared, single))._tag, "JournalLockedError")
      assert.strictEqual((yield* buildWhile(single, shared))._tag, "JournalLockedError")
    }))

  it.effect("an instance started with another shard count is refused with JournalError", () =>
    Effect.gen(function*() {
      const tablePrefix = freshPrefix()
      const error = yield* buildWhile(
        PgJournal.layer({ url, tablePrefix, sharing: { shards: 8 } }),
        PgJournal.layer({ url, tablePrefix, sharing: { shards: 16 } })
      )
      assert.strictEqual(error._tag, "JournalError")
      assert.include(error.message, "has 8 shards, this instance was started with 16")
    }))
})

describe("postgres", () => {
  journalConformance(pgLayer)
  journalAtomicity(pgLayer)

  it.effect("a database that cannot be reached fails the layer with JournalError", () =>
    Effect.gen(function*() {
      const unreachable = PgJournal.layer({
        url: Redacted.make("postgres://root@127.0.0.1:1/test"),
        tablePrefix: freshPrefix()
      })
      const error = yield* Effect.flip(Effect.provide(Journal, unreachable))
      assert.strictEqual(error._tag, "JournalError")
      assert.include(error.message, "Failed to connect")
    }))

  const withJournal = <A, E>(tablePrefix: string, f: (journal: Journal.Service) => Effect.Effect<A, E>) =>
    Effect.flatMap(Journal, f).pipe(Effect.provide(PgJournal.layer({ url, tablePrefix })))

  it.effect("records and dead letters survive closing and reopening the journal", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const [a, b] = yield* withJournal(prefix, (journal) =>
        Effect.gen(function*() {
          const results = yield* journal.append([entry("a", "mail"), entry("b")])
          yield* journal.attemptFailed(results[0].seq, 2)
          yield* journal.deadLetter(results[1].seq, "boom", 42)
          return results
        }))
      yield* withJournal(prefix, (journal) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* journal.pending, [{ ...entry("a", "mail"), seq: a.seq, attempts: 2 }])
          assert.deepStrictEqual(
            (yield* journal.deadLetters).map((l) => [l.id, l.seq, l.reason, l.failedAt]),
            [["b", b.seq, "boom", 42]]
          )
          const [c] = yield* journal.append([entry("c")])
          assert.isAbove(c.seq, b.seq)
        }))
    }))

  it.effect("a second owner of the same tables is refused with JournalLockedError until the first closes", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const second = Layer.build(PgJournal.layer({ url, tablePrefix: prefix })).pipe(Effect.scoped)
      const refused = yield* withJournal(prefix, () => Effect.flip(second))
      assert.instanceOf(refused, JournalLockedError)
      // released with the first owner's scope
      yield* second
    }))

  it.effect("journals with different prefixes do not lock each other out", () =>
    Effect.gen(function*() {
      const other = freshPrefix()
      const pending = yield* withJournal(freshPrefix(), () => withJournal(other, (journal) => journal.pending))
      assert.deepStrictEqual(pending, [])
    }))

  it.effect("layerFromClient takes the same lock through the client's pool", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const fromClient = PgJournal.layerFromClient({ tablePrefix: prefix }).pipe(
        Layer.provide(PgClient.layer({ url }))
      )
      const refused = yield* withJournal(prefix, () => Effect.flip(Layer.build(fromClient).pipe(Effect.scoped)))
      assert.strictEqual(refused._tag, "JournalLockedError")
      yield* Effect.flatMap(Journal, (journal) => journal.append([entry("a")])).pipe(Effect.provide(fromClient))
    }))
})
