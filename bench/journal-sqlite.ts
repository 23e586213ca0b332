/**
 * SQLite journal throughput: records appended and then completed per second,
 * for batches of 1, 100 and 1000 (one `append` and one `complete` per batch).
 * Then the same single-record calls made by many concurrent callers through the
 * group-commit batcher (`src/internal/batcher.ts`), which turns them into
 * batches again. Each case runs on a fresh file in a temporary directory,
 * after a warm-up.
 *
 * Run: npx tsx bench/journal-sqlite.ts [--records=200000] [--single=20000] [--callers=1000]
 */
import * as Effect from "effect/Effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { makeBatcher } from "../src/internal/batcher.js"
import { Journal, type JournalEntry } from "../src/Journal.js"
import * as SqliteJournal from "../src/SqliteJournal.js"

const flag = (name: string, fallback: number) => {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`))
  return arg === undefined ? fallback : Number(arg.slice(name.length + 3).replace(/_/g, ""))
}

const payload = JSON.stringify({ to: "someone@example.com", subject: "Hello", body: "x".repeat(200) })

const entryAt = (n: number): JournalEntry => ({ id: `job-${n}`, lane: "", tag: "SendMail", payload, scheduledAt: 0 })

const run = (journal: Journal.Service, batchSize: number, records: number, offset: number) =>
  Effect.gen(function*() {
    const batches = Math.ceil(records / batchSize)
    for (let b = 0; b < batches; b++) {
      const entries: Array<JournalEntry> = []
      for (let i = 0; i < batchSize; i++) {
        entries.push(entryAt(offset + b * batchSize + i))
      }
      const results = yield* journal.append(entries)
      yield* journal.complete(results.map((r) => r.seq))
    }
    return batches * batchSize
  })

/** `records` single-entry appends, each followed by its complete, from `callers` concurrent fibers. */
const runGrouped = (journal: Journal.Service, callers: number, records: number, offset: number) =>
  Effect.scoped(Effect.gen(function*() {
    const append = yield* makeBatcher(journal.append)
    const complete = yield* makeBatcher((seqs: ReadonlyArray<number>) => Effect.as(journal.complete(seqs), seqs))
    yield* Effect.forEach(
      Array.from({ length: records }, (_, i) => offset + i),
      (n) => Effect.flatMap(append(entryAt(n)), (result) => complete(result.seq)),
      { concurrency: callers, discard: true }
    )
    return records
  }))

const measure = (label: string, records: number, body: typeof run, size: number) =>
  Effect.gen(function*() {
    const dir = mkdtempSync(join(tmpdir(), "sequent-bench-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
    return yield* Effect.gen(function*() {
      const journal = yield* Journal
      yield* body(journal, size, Math.min(records / 10, 5_000), 0) // warm-up
      const t0 = performance.now()
      const done = yield* body(journal, size, records, 1_000_000_000)
      const ms = performance.now() - t0
      const left = (yield* journal.pending).length
      return { label, records: done, ms: Math.round(ms), perSecond: Math.round(done / (ms / 1000)), left }
    }).pipe(Effect.provide(SqliteJournal.layer({ filename: join(dir, "journal.db") })))
  }).pipe(Effect.scoped)

const program = Effect.gen(function*() {
  const records = flag("records", 200_000)
  const single = flag("single", 20_000)
  const callers = flag("callers", 1_000)
  const cases = [
    measure("batch 1", single, run, 1),
    measure("batch 100", records, run, 100),
    measure("batch 1000", records, run, 1_000),
    measure(`1 per call, ${callers} callers, batcher`, records, runGrouped, callers)
  ]
  for (const bench of cases) {
    const r = yield* bench
    console.log(
      `${r.label.padEnd(36)}: ${r.records} records appended+completed in ${r.ms} ms = ` +
        `${r.perSecond.toLocaleString("en-US")} records/s (left pending: ${r.left})`
    )
  }
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
