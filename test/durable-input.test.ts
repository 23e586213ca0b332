/**
 * The ids and keys a durable executor accepts: those every journal stores
 * exactly. The rest are refused before anything is written.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { join } from "node:path"
import * as Durable from "../src/Durable.js"
import { DurableSequent, type DurableTaskOptions } from "../src/Durable.js"
import { Journal } from "../src/Journal.js"
import { SequentInvalidTaskError } from "../src/SequentError.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import * as TaskKind from "../src/TaskKind.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write)

const sqliteLayer = Layer.unwrapScoped(
  Effect.map(
    Effect.flatMap(FileSystem.FileSystem, (fs) => fs.makeTempDirectoryScoped({ prefix: "sequent-input-" })).pipe(
      Effect.provide(NodeFileSystem.layer),
      Effect.orDie
    ),
    (dir) => SqliteJournal.layer({ filename: join(dir, "journal.db") })
  )
)

const backends: ReadonlyArray<readonly [string, Layer.Layer<Journal, unknown>]> = [
  ["memory", Journal.layerMemory],
  ["sqlite", sqliteLayer]
]

/** A durable executor and its journal; `log` records the `n` of every task that ran. */
const setup = (journalLayer: Layer.Layer<Journal, unknown>, log: Array<number>) =>
  Layer.build(
    Durable.layer().pipe(
      Layer.provide(Tasks.handlers({ Write: (task) => Effect.sync(() => log.push(task.n)) })),
      Layer.provideMerge(journalLayer)
    )
  ).pipe(Effect.map((context) => ({
    sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service,
    journal: context.unsafeMap.get(Journal.key) as Journal.Service
  })))

const loneHigh = "🦀".slice(0, 1)
const loneLow = "🦀".slice(1)

for (const [name, journalLayer] of backends) {
  describe(`durable ids and keys (${name})`, () => {
    it.scoped("an id or key with a lone surrogate or a NUL character is refused with SequentInvalidTaskError, and nothing is stored", () =>
      Effect.gen(function*() {
        const log: Array<number> = []
        const { journal, sequent } = yield* setup(journalLayer, log)
        const refused: ReadonlyArray<readonly [DurableTaskOptions, string]> = [
          [{ id: loneHigh }, "its id contains a lone UTF-16 surrogate"],
          [{ key: loneHigh }, "its key contains a lone UTF-16 surrogate"],
          [{ key: `lane ${loneLow} b` }, "its key contains a lone UTF-16 surrogate"],
          [{ key: `${loneLow}${loneHigh}` }, "its key contains a lone UTF-16 surrogate"],
          [{ id: "a\u0000b" }, "its id contains a NUL character"],
          [{ key: "\u0000", id: "fine" }, "its key contains a NUL character"],
          // the journal stores the default lane as "": as a key of its own it would halt or pause another lane after a restart
          [{ key: "" }, "its key is empty"]
        ]
        for (const [options, reason] of refused) {
          const error = yield* Effect.flip(sequent.schedule(new Write({ n: 1 }), options))
          assert.instanceOf(error, SequentInvalidTaskError, JSON.stringify(options))
          assert.include(error.message, reason)
          const submitted = yield* Effect.flip(sequent.submit(new Write({ n: 1 }), options))
          assert.instanceOf(submitted, SequentInvalidTaskError)
        }
        assert.deepStrictEqual(yield* journal.pending, [], "nothing was written")
        // a surrogate pair is fine
        yield* sequent.schedule(new Write({ n: 2 }), { id: "🦀 id", key: "🦀" })
        yield* sequent.flush
        assert.deepStrictEqual(log, [2])
      }))

    it.scoped("an id or key of 1024 bytes of UTF-8 is accepted and runs; one byte more is refused", () =>
      Effect.gen(function*() {
        const log: Array<number> = []
        const { journal, sequent } = yield* setup(journalLayer, log)
        const atLimit = ["a".repeat(1024), "é".repeat(512), "🦀".repeat(256), "€".repeat(341) + "a"]
        const overLimit = ["a".repeat(1025), "é".repeat(512) + "a", "🦀".repeat(256) + "a", "€".repeat(341) + "ab"]
        for (const text of overLimit) {
          const byId = yield* Effect.flip(sequent.schedule(new Write({ n: 0 }), { id: text }))
          assert.include(byId.message, "its id is 1025 bytes long in UTF-8, more than the 1024")
          const byKey = yield* Effect.flip(sequent.schedule(new Write({ n: 0 }), { key: text }))
          assert.include(byKey.message, "its key is 1025 bytes long in UTF-8")
        }
        assert.deepStrictEqual(yield* journal.pending, [], "nothing was written")
        yield* sequent.pause()
        yield* Effect.forEach(atLimit, (text, n) => sequent.schedule(new Write({ n }), { id: text, key: text }))
        assert.deepStrictEqual(
          (yield* journal.pending).map((record) => [record.id, record.lane]),
          atLimit.map((t) => [t, t])
        )
        yield* sequent.resume()
        yield* sequent.flush
        assert.deepStrictEqual(log.sort(), [0, 1, 2, 3])
      }))
  })
}
