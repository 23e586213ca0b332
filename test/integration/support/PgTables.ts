/**
 * Tables of a test run on the machine's PostgreSQL (127.0.0.1:5432, database
 * `test`; override with `SEQUENT_PG_URL`): every journal a test file builds
 * gets a table prefix unique to the run, and `dropAll` removes them when the
 * file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { randomUUID } from "node:crypto"

export const url = Redacted.make(process.env["SEQUENT_PG_URL"] ?? "postgres://root@127.0.0.1:5432/test")

/** Prefixes `sequent_<letter><run>_<n>_`, fresh on every call of `fresh`. */
export const makeRun = (letter: string) => {
  const runPrefix = `sequent_${letter}${randomUUID().replaceAll("-", "").slice(0, 10)}_`
  let tables = 0
  return {
    runPrefix,
    fresh: () => `${runPrefix}${tables++}_`,
    /** Drops every table of the run, and `functions` of its own (by name after the prefix). */
    dropAll: (functions: ReadonlyArray<string> = []) =>
      Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        const rows = yield* sql<{ table_name: string }>`
          SELECT table_name FROM information_schema.tables
          WHERE table_schema = current_schema() AND starts_with(table_name, ${runPrefix})`
        for (const row of rows) yield* sql`DROP TABLE IF EXISTS ${sql(row.table_name)} CASCADE`
        for (const name of functions) yield* sql.unsafe(`DROP FUNCTION IF EXISTS ${runPrefix}${name}() CASCADE`)
      }).pipe(Effect.provide(PgClient.layer({ url })), Effect.runPromise)
  }
}
