import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import { join } from "node:path"
import { Journal, JournalLockedError } from "../src/Journal.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import { entry, journalAtomicity, journalConformance } from "./journalConformance.js"
import { spawnSqliteHolder } from "./support.js"

/** A fresh directory, removed with the scope. */
const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => fs.makeTempDirectoryScoped({ prefix: "sequent-journal-" })
).pipe(Effect.provide(NodeFileSystem.layer), Effect.orDie)

/** Every build is an empty journal in a new file. */
const sqliteLayer = Layer.unwrapScoped(
  Effect.map(tempDir, (dir) => SqliteJournal.layer({ filename: join(dir, "journal.db") }))
)

const backends: ReadonlyArray<readonly [string, Layer.Layer<Journal, unknown>]> = [
  ["memory", Journal.layerMemory],
  ["sqlite", sqliteLayer]
]

for (const [name, layer] of backends) {
  describe(name, () => journalConformance(layer))
}

describe("memory", () => {
  it.effect("every build of layerMemory starts empty", () =>
    Effect.gen(function*() {
      const append = Effect.flatMap(Journal, (journal) => journal.append([entry("a")]))
      const first = yield* Effect.provide(append, Journal.layerMemory)
      const second = yield* Effect.provide(append, Journal.layerMemory)
      assert.deepStrictEqual(second, first)
      assert.isTrue(second[0].inserted)
    }))
})

const withJournal = <A, E>(filename: string, f: (journal: Journal.Service) => Effect.Effect<A, E>) =>
  Effect.flatMap(Journal, f).pipe(Effect.provide(SqliteJournal.layer({ filename })))

const awaitExit = (child: ChildProcess) =>
  Effect.async<NodeJS.Signals | number | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed(child.signalCode ?? child.exitCode))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed(signal ?? code)))
  })

describe("sqlite", () => {
  journalAtomicity(sqliteLayer)

  it.effect("a file that cannot be opened fails the layer with JournalError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(withJournal("/nonexistent-dir/journal.db", (journal) => journal.pending))
      assert.strictEqual(error._tag, "JournalError")
      assert.include(error.message, "/nonexistent-dir/journal.db")
    }))

  it.scoped("records, attempts, dead letters and the seq order survive closing and reopening the file", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const [a, b, c] = yield* withJournal(filename, (journal) =>
        Effect.gen(function*() {
          const results = yield* journal.append([entry("a", "mail"), entry("b"), entry("c")])
          yield* journal.attemptFailed(results[0].seq, 2)
          yield* journal.deadLetter(results[1].seq, "boom", 42)
          yield* journal.complete([results[2].seq])
          return results
        }))
      yield* withJournal(filename, (journal) =>
        Effect.gen(function*() {
          assert.deepStrictEqual(yield* journal.pending, [{ ...entry("a", "mail"), seq: a.seq, attempts: 2 }])
          assert.deepStrictEqual(yield* journal.deadLetters, [{
            ...entry("b"),
            seq: b.seq,
            attempts: 0,
            reason: "boom",
            failedAt: 42
          }])
          const [d] = yield* journal.append([entry("d")])
          assert.isAbove(d.seq, c.seq)
          assert.deepStrictEqual(yield* journal.append([entry("b")]), [{ seq: b.seq, inserted: false }])
        }))
    }))

  it.scoped("the journal's connection runs in WAL mode with synchronous = NORMAL", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const layer = SqliteJournal.layerFromClient().pipe(Layer.provideMerge(SqliteClient.layer({ filename })))
      const [mode, sync] = yield* Effect.gen(function*() {
        yield* Journal
        const sql = yield* SqliteClient.SqliteClient
        const mode = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
        const sync = yield* sql<{ synchronous: number }>`PRAGMA synchronous`
        return [mode[0].journal_mode, sync[0].synchronous] as const
      }).pipe(Effect.provide(layer))
      assert.strictEqual(mode, "wal")
      assert.strictEqual(sync, 1) // NORMAL
    }))

  it.scoped("synchronous: \"FULL\" is kept on the journal's connection", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const layer = SqliteJournal.layerFromClient({ synchronous: "FULL" }).pipe(
        Layer.provideMerge(SqliteClient.layer({ filename }))
      )
      const sync = yield* Effect.gen(function*() {
        yield* Journal
        const sql = yield* SqliteClient.SqliteClient
        return (yield* sql<{ synchronous: number }>`PRAGMA synchronous`)[0]!.synchronous
      }).pipe(Effect.provide(layer))
      assert.strictEqual(sync, 2) // FULL
    }))

  it.scoped("table names carry the prefix, so two prefixes share one client independently", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const tables = yield* Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append([entry("a")])
        const sql = yield* SqliteClient.SqliteClient
        return yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
      }).pipe(
        Effect.provide(
          SqliteJournal.layerFromClient({ tablePrefix: "jobs_" }).pipe(
            Layer.provideMerge(SqliteClient.layer({ filename }))
          )
        )
      )
      assert.deepStrictEqual(
        tables.map((t) => t.name).filter((name) => !name.startsWith("sqlite_")),
        ["jobs_dead_letters", "jobs_halted_lanes", "jobs_migrations", "jobs_pending"]
      )
    }))

  it.scoped("a second layer on the same file in this process is refused with JournalLockedError until the first closes", () =>
    Effect.gen(function*() {
      const filename = join(yield* tempDir, "journal.db")
      const second = Layer.build(SqliteJournal.layer({ filename })).pipe(Effect.scoped)
      const refused = yield* withJournal(filename, () => Effect.flip(second))
      assert.instanceOf(refused, JournalLockedError)
      assert.strictEqual(refused.resource, filename)
      yield* second
    }))

  it.scoped(
    "a journal held by another process is refused, and can be taken once that process is killed with SIGKILL",
    () =>
      Effect.gen(function*() {
        const filename = join(yield* tempDir, "journal.db")
        const child = yield* spawnSqliteHolder(filename)

        const refused = yield* Effect.flip(withJournal(filename, (journal) => journal.pending))
        assert.strictEqual(refused._tag, "JournalLockedError")

        child.kill("SIGKILL")
        assert.strictEqual(yield* awaitExit(child), "SIGKILL")

        // the OS dropped the lock with the process, and the child's appends survived kill -9
        const pending = yield* withJournal(filename, (journal) => journal.pending)
        assert.deepStrictEqual(pending.map((r) => r.id), ["child-1", "child-2"])
      }),
    60_000
  )
})
