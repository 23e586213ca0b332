// Runs the entry points of the exports map of the installed effect-sequent, in a project that
// installed it with the README's commands. Plain JavaScript, so it tests the JavaScript that
// ships; types.mts tests the types.
//
//   node entry-points.mjs <dir> root|SqliteJournal|PgJournal|package.json...
//
// <dir> is a scratch directory for the SQLite journal; each name after it is one entry point.
import { Effect, Layer, Redacted, Schema } from "effect"
import { Durable, DurableSequent, Journal, JournalError, Sequent, SequentLive, TaskKind } from "effect-sequent"
import { strict as assert } from "node:assert"
import { createRequire } from "node:module"
import { join } from "node:path"

const [dir, ...names] = process.argv.slice(2)

/** `effect-sequent`: three tasks scheduled, then flushed, on the default layer. */
const root = Effect.gen(function*() {
  const ran = []
  yield* Effect.gen(function*() {
    for (const n of [1, 2, 3]) yield* Sequent.schedule(Effect.sync(() => ran.push(n)))
    yield* Sequent.flush
  }).pipe(Effect.provide(SequentLive))
  assert.deepEqual(ran, [1, 2, 3])
  return "3 tasks scheduled and flushed through SequentLive, run in order"
})

class Write extends Schema.TaggedClass()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write)

/**
 * `effect-sequent/SqliteJournal`: tasks scheduled on a paused executor are committed to the journal
 * file; the executor stops; a second one on the same file runs them in order, and flushes.
 */
const sqlite = Effect.gen(function*() {
  const SqliteJournal = yield* Effect.promise(() => import("effect-sequent/SqliteJournal"))
  const filename = join(dir, "journal.db")
  const ran = []
  const Handlers = Tasks.handlers({ Write: (write) => Effect.sync(() => ran.push(write.n)) })
  const executor = () => Durable.layer().pipe(Layer.provide(Handlers), Layer.provide(SqliteJournal.layer({ filename })))
  const { schedule } = DurableSequent.typed(Tasks)

  yield* Effect.gen(function*() {
    yield* DurableSequent.pause()
    for (const n of [1, 2, 3]) yield* schedule(new Write({ n }), { key: "lane", id: `write:${n}` })
    yield* DurableSequent.stop
  }).pipe(Effect.provide(executor()))
  assert.deepEqual(ran, [], "a paused executor ran a task")

  yield* DurableSequent.flush.pipe(Effect.provide(executor()))
  assert.deepEqual(ran, [1, 2, 3])
  const pending = yield* Effect.flatMap(Journal, (journal) => journal.pending).pipe(
    Effect.provide(SqliteJournal.layer({ filename }))
  )
  assert.deepEqual(pending, [])
  return "3 tasks committed to a SQLite journal, run in order by the next executor on the file, flushed"
})

/**
 * `effect-sequent/PgJournal`: the layer builds, and with nothing listening on its port it fails with
 * a JournalError, which shows that the PostgreSQL driver loaded.
 */
const pg = Effect.gen(function*() {
  const PgJournal = yield* Effect.promise(() => import("effect-sequent/PgJournal"))
  const JournalLive = PgJournal.layer({ url: Redacted.make("postgres://postgres@127.0.0.1:1/none") })
  assert.ok(Layer.isLayer(JournalLive))
  const error = yield* Effect.flip(Effect.provide(Journal, JournalLive))
  assert.ok(error instanceof JournalError, `expected a JournalError, got ${error}`)
  return `layer built; without a server it fails with ${error._tag}: ${error.reason}`
})

/** `effect-sequent/package.json`: resolvable through the exports map. */
const packageJson = Effect.sync(() => {
  const manifest = createRequire(import.meta.url)("effect-sequent/package.json")
  assert.equal(manifest.name, "effect-sequent")
  return `${manifest.name}@${manifest.version}`
})

const checks = { root, SqliteJournal: sqlite, PgJournal: pg, "package.json": packageJson }

const program = Effect.forEach(names, (name) => {
  const check = checks[name]
  if (check === undefined) return Effect.dieMessage(`unknown entry point ${name}`)
  const entry = name === "root" ? "effect-sequent" : `effect-sequent/${name}`
  return Effect.map(check, (result) => console.log(`ok  ${entry}: ${result}`))
}, { discard: true })

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
