/**
 * The SQLite journal's file: one journal per file whatever name it is reached
 * by, and a journal that is durable unless memory is asked for in so many
 * words.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import { join, relative } from "node:path"
import { Journal, JournalError, JournalLockedError } from "../src/Journal.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import { entry } from "./journalConformance.js"
import { spawnSqliteHolder } from "./support.js"

const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.flatMap(
  FileSystem.FileSystem,
  (fs) => fs.makeTempDirectoryScoped({ prefix: "sequent-sqlite-" })
).pipe(Effect.provide(NodeFileSystem.layer), Effect.orDie)

const withJournal = <A, E>(
  layer: Layer.Layer<Journal, unknown>,
  f: (journal: Journal.Service) => Effect.Effect<A, E>
) => Effect.flatMap(Journal, f).pipe(Effect.provide(layer))

/** How building `layer` fails, defects included. */
const buildFailure = (layer: Layer.Layer<Journal, unknown>) =>
  Effect.map(Effect.exit(Layer.build(layer).pipe(Effect.scoped)), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "the layer was built")
    const cause = (exit as Exit.Failure<unknown, unknown>).cause
    assert.isFalse(Cause.isDie(cause), `the layer died: ${Cause.pretty(cause)}`)
    const failure = Cause.failureOption(cause)
    return failure._tag === "Some" ? failure.value : undefined
  })

/** While a first layer holds `first`, a second layer on `second` is refused; once the first closes, it is not. */
const refusesSecondOwner = (first: string, second: string) =>
  Effect.gen(function*() {
    const secondLayer = Layer.build(SqliteJournal.layer({ filename: second })).pipe(Effect.scoped)
    const refused = yield* withJournal(SqliteJournal.layer({ filename: first }), (journal) =>
      Effect.zipRight(journal.append([entry("a")]), Effect.flip(secondLayer)))
    assert.instanceOf(refused, JournalLockedError)
    assert.strictEqual(refused.resource, second)
    // the first owner's records are there for the next owner, by the second name
    const pending = yield* withJournal(SqliteJournal.layer({ filename: second }), (journal) =>
      journal.pending)
    assert.deepStrictEqual(pending.map((record) => record.id), ["a"])
  })

describe("SQLite journal ownership, by file rather than by name", () => {
  it.scoped("a second layer through a symbolic link to the file is refused with JournalLockedError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = join(dir, "journal.db")
      yield* withJournal(SqliteJournal.layer({ filename }), (journal) => journal.pending) // the file exists
      fs.symlinkSync(filename, join(dir, "link.db"))
      yield* refusesSecondOwner(filename, join(dir, "link.db"))
      yield* refusesSecondOwner(join(dir, "link.db"), filename)
    }))

  it.scoped("a symbolic link to a file not yet created is the file it will create", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fs.symlinkSync(join(dir, "later.db"), join(dir, "link.db"))
      yield* refusesSecondOwner(join(dir, "link.db"), join(dir, "later.db"))
    }))

  it.scoped("a second layer through a hard link to the file is refused with JournalLockedError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = join(dir, "journal.db")
      yield* withJournal(SqliteJournal.layer({ filename }), (journal) => journal.pending)
      fs.linkSync(filename, join(dir, "hard.db"))
      yield* refusesSecondOwner(filename, join(dir, "hard.db"))
      yield* refusesSecondOwner(join(dir, "hard.db"), filename)
    }))

  it.scoped("a relative path and an absolute one, or one with .. in it, are the same journal", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fs.mkdirSync(join(dir, "sub"))
      const filename = join(dir, "journal.db")
      yield* refusesSecondOwner(filename, relative(process.cwd(), filename))
      yield* refusesSecondOwner(join(dir, "sub", "..", "journal.db"), filename)
    }))

  it.scoped("layerFromClient takes the same lock as layer, by the file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = join(dir, "journal.db")
      yield* withJournal(SqliteJournal.layer({ filename }), (journal) => journal.pending)
      fs.symlinkSync(filename, join(dir, "link.db"))
      const fromClient = SqliteJournal.layerFromClient().pipe(
        Layer.provide(SqliteClient.layer({ filename: join(dir, "link.db") }))
      )
      const refused = yield* withJournal(SqliteJournal.layer({ filename }), () =>
        Effect.flip(Layer.build(fromClient).pipe(Effect.scoped)))
      assert.instanceOf(refused, JournalLockedError)
    }))

  it.scoped("a journal held by another process through a symbolic link is refused", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const filename = join(dir, "journal.db")
      fs.symlinkSync(filename, join(dir, "link.db"))
      yield* spawnSqliteHolder(join(dir, "link.db"))
      const refused = yield* Effect.flip(withJournal(SqliteJournal.layer({ filename }), (journal) => journal.pending))
      assert.instanceOf(refused, JournalLockedError)
    }), 60_000)
})

describe("SQLite journal file names", () => {
  it.effect("an empty or missing filename fails the layer with JournalError, instead of opening a temporary database", () =>
    Effect.gen(function*() {
      const empty = yield* buildFailure(SqliteJournal.layer({ filename: "" }))
      assert.instanceOf(empty, JournalError)
      assert.include((empty as JournalError).message, "No journal file given")
      const missing = yield* buildFailure(SqliteJournal.layer({} as SqliteJournal.LayerOptions))
      assert.instanceOf(missing, JournalError)
      assert.include((missing as JournalError).message, "No journal file given")
    }))

  it.effect("layerFromClient refuses a client on an empty filename", () =>
    Effect.gen(function*() {
      const failure = yield* buildFailure(
        SqliteJournal.layerFromClient().pipe(Layer.provide(SqliteClient.layer({ filename: "" })))
      )
      assert.instanceOf(failure, JournalError)
    }))

  it.scoped("a filename that is a directory fails with JournalError saying so, and leaves no lock file behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      fs.mkdirSync(join(dir, "data"))
      const failure = yield* buildFailure(SqliteJournal.layer({ filename: join(dir, "data") }))
      assert.instanceOf(failure, JournalError)
      assert.include((failure as JournalError).message, "is a directory")
      assert.deepStrictEqual(fs.readdirSync(dir), ["data"])
    }))

  it.effect("\":memory:\" and layerMemory are journals that keep nothing, and take no lock", () =>
    Effect.gen(function*() {
      const append = (layer: Layer.Layer<Journal, unknown>) =>
        withJournal(layer, (journal) => Effect.zipRight(journal.append([entry("a")]), journal.pending))
      for (const layer of [SqliteJournal.layerMemory(), SqliteJournal.layer({ filename: ":memory:" })]) {
        // two at once: no lock between them, and each starts empty
        const [first, second] = yield* Effect.all([append(layer), append(layer)], { concurrency: 2 })
        assert.deepStrictEqual([first.length, second.length], [1, 1])
      }
    }))
})
