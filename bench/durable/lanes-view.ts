/**
 * What `PgJournal.lanes` (the operator's view of a shared journal) costs as
 * the journal grows: pending rows are written straight into fresh tables (so
 * the set-up is quick), then the view is read `--reads` times and timed.
 *
 * Run: node --import tsx bench/durable/lanes-view.ts [--lanes=100000] [--per-lane=2] [--reads=5]
 *   (PostgreSQL at SEQUENT_PG_URL, default postgres://root@127.0.0.1:5432/test)
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import { Journal } from "../../src/Journal.js"
import * as PgJournal from "../../src/PgJournal.js"
import { intArg, parseArgs } from "./shared.js"
import { pgUrl } from "./workers.js"

const args = parseArgs()
const lanes = intArg(args, "lanes", 100_000)
const perLane = intArg(args, "per-lane", 2)
const reads = intArg(args, "reads", 5)
const url = Redacted.make(pgUrl)
const tablePrefix = `sequent_view${randomUUID().replaceAll("-", "").slice(0, 8)}_`

const fill = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  const pending = sql(`${tablePrefix}pending`)
  // the shard is what an instance would compute; the view reads it as stored, so any value in range does
  yield* sql`INSERT INTO ${pending} (id, lane, tag, payload, scheduled_at, shard)
    SELECT 'l' || l || ':' || n, 'lane-' || l, 'Step', '{}', 0, l % 64
    FROM generate_series(1, ${lanes}) AS l, generate_series(1, ${perLane}) AS n ORDER BY n, l`
  yield* sql`ANALYZE ${pending}`
})

const dropTables = Effect.gen(function*() {
  const sql = yield* PgClient.PgClient
  const rows = yield* sql<{ readonly table_name: string }>`SELECT table_name FROM information_schema.tables
    WHERE table_schema = current_schema() AND starts_with(table_name, ${tablePrefix})`
  for (const row of rows) yield* sql`DROP TABLE IF EXISTS ${sql(row.table_name)} CASCADE`
})

const program = Effect.gen(function*() {
  yield* Journal
  yield* fill
  const times: Array<number> = []
  let seen = 0
  for (let i = 0; i < reads; i++) {
    const start = performance.now()
    seen = (yield* PgJournal.lanes).length
    times.push(performance.now() - start)
  }
  if (seen !== lanes) return yield* Effect.dieMessage(`the view listed ${seen} lanes of ${lanes}`)
  times.sort((a, b) => a - b)
  const ms = (t: number) => `${t.toFixed(0)} ms`
  console.log(
    `PgJournal.lanes over ${lanes.toLocaleString("en-US")} lanes x ${perLane} pending: ` +
      `median ${ms(times[Math.floor(times.length / 2)]!)} (min ${ms(times[0]!)}, max ${
        ms(times.at(-1)!)
      }, ${reads} reads)`
  )
})

const Client = PgClient.layer({ url })
const SharedJournal = PgJournal.layerFromClient({ tablePrefix, sharing: {} })

program.pipe(
  Effect.provide(Layer.merge(SharedJournal.pipe(Layer.provideMerge(Client)), Client)),
  Effect.ensuring(Effect.orDie(Effect.provide(dropTables, Client))),
  Effect.runPromise
).catch((error) => {
  console.error(error)
  process.exit(1)
})
