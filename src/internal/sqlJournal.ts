/**
 * The `Journal` service over an `@effect/sql` client, shared by the SQLite and
 * PostgreSQL backends. Only the schema differs between the dialects; ownership
 * (the process lock) is each backend's business.
 *
 * @internal
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { AppendResult, DeadLetter, JournalEntry, JournalRecord } from "../Journal.js"
import { Journal, JournalError, JournalNotFoundError } from "../Journal.js"

/**
 * Rows per statement. Keeps every statement well under SQLite's 32766 and
 * PostgreSQL's 65535 bound parameters (an insert binds 6 per row).
 *
 * @internal
 */
export const chunkSize = 1000

/** @internal */
export const defaultTablePrefix = "sequent_"

/** @internal */
export interface Tables {
  readonly pending: string
  readonly deadLetters: string
  readonly migrations: string
}

/** @internal */
export const tables = (prefix: string): Tables => ({
  pending: `${prefix}pending`,
  deadLetters: `${prefix}dead_letters`,
  migrations: `${prefix}migrations`
})

const createTables = (names: Tables) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pending = sql(names.pending)
    const deadLetters = sql(names.deadLetters)
    yield* sql.onDialectOrElse({
      pg: () =>
        sql`CREATE TABLE ${pending} (
          seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          lane TEXT NOT NULL,
          tag TEXT NOT NULL,
          payload TEXT NOT NULL,
          scheduled_at DOUBLE PRECISION NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0
        )`,
      // AUTOINCREMENT: a seq is never handed out twice, even after the
      // record holding the largest one was completed.
      orElse: () =>
        sql`CREATE TABLE ${pending} (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE,
          lane TEXT NOT NULL,
          tag TEXT NOT NULL,
          payload TEXT NOT NULL,
          scheduled_at REAL NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0
        )`
    })
    yield* sql.onDialectOrElse({
      pg: () =>
        sql`CREATE TABLE ${deadLetters} (
          seq BIGINT PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          lane TEXT NOT NULL,
          tag TEXT NOT NULL,
          payload TEXT NOT NULL,
          scheduled_at DOUBLE PRECISION NOT NULL,
          attempts INTEGER NOT NULL,
          reason TEXT NOT NULL,
          failed_at DOUBLE PRECISION NOT NULL
        )`,
      orElse: () =>
        sql`CREATE TABLE ${deadLetters} (
          seq INTEGER PRIMARY KEY,
          id TEXT NOT NULL UNIQUE,
          lane TEXT NOT NULL,
          tag TEXT NOT NULL,
          payload TEXT NOT NULL,
          scheduled_at REAL NOT NULL,
          attempts INTEGER NOT NULL,
          reason TEXT NOT NULL,
          failed_at REAL NOT NULL
        )`
    })
  })

const runMigrations = Migrator.make({})

/**
 * Creates or upgrades the journal's tables with the `@effect/sql` Migrator
 * (its bookkeeping table is `<prefix>migrations`).
 *
 * @internal
 */
export const migrate = (prefix: string): Effect.Effect<void, JournalError, SqlClient.SqlClient> => {
  const names = tables(prefix)
  return runMigrations({
    loader: Migrator.fromRecord({ "1_create_journal": createTables(names) }),
    table: names.migrations
  }).pipe(
    Effect.asVoid,
    // A migration that fails is reported by the Migrator as a defect.
    Effect.catchAllDefect((cause) => Effect.fail(cause)),
    Effect.mapError((cause) => new JournalError({ reason: "Failed to create the journal tables", cause }))
  )
}

/** @internal */
export const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  if (items.length <= size) return [items]
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

interface RecordRow {
  readonly seq: number | string | bigint
  readonly id: string
  readonly lane: string
  readonly tag: string
  readonly payload: string
  readonly scheduled_at: number | string
  readonly attempts: number | string
}

interface DeadLetterRow extends RecordRow {
  readonly reason: string
  readonly failed_at: number | string
}

// PostgreSQL hands BIGINT back as a string; SQLite hands back numbers.
const toRecord = (row: RecordRow): JournalRecord => ({
  seq: Number(row.seq),
  id: row.id,
  lane: row.lane,
  tag: row.tag,
  payload: row.payload,
  scheduledAt: Number(row.scheduled_at),
  attempts: Number(row.attempts)
})

const toDeadLetter = (row: DeadLetterRow): DeadLetter => ({
  ...toRecord(row),
  reason: row.reason,
  failedAt: Number(row.failed_at)
})

const sqlFailure = (reason: string) => (cause: SqlError) => new JournalError({ reason, cause })

/**
 * Builds the journal over the `SqlClient` in context, creating its tables
 * first. Writes are serialised by one permit, so two writers in this process
 * never race on the same id; ownership across processes is the caller's.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(options: { readonly tablePrefix: string }) {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* migrate(options.tablePrefix).pipe(Effect.provideService(SqlClient.SqlClient, sql))

  const names = tables(options.tablePrefix)
  const pendingTable = sql(names.pending)
  const deadTable = sql(names.deadLetters)
  const writePermit = yield* Effect.makeSemaphore(1)

  // The append statement is built by hand: it is the hot path, and a row is
  // six placeholders, so the text for a given batch size is always the same
  // (and stays prepared in the client's statement cache).
  const [pendingName] = sql`${pendingTable}`.compile()
  const [deadName] = sql`${deadTable}`.compile()
  const placeholder = sql.onDialectOrElse({
    pg: () => (i: number) => `$${i}`,
    orElse: () => (_: number) => "?"
  })

  /**
   * Inserts the entries whose id is neither pending nor dead-lettered, in one
   * statement, numbering them in input order (`ORDER BY n`); answers with the
   * rows it inserted. The CASTs give PostgreSQL the types its untyped VALUES
   * lack, and are no-ops for SQLite.
   */
  const insertNew = (entries: ReadonlyArray<JournalEntry>) => {
    const params: Array<unknown> = []
    const rows: Array<string> = []
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      const p = params.length
      params.push(i, entry.id, entry.lane, entry.tag, entry.payload, entry.scheduledAt)
      rows.push(
        `(${placeholder(p + 1)},${placeholder(p + 2)},${placeholder(p + 3)},${placeholder(p + 4)},${
          placeholder(p + 5)
        },${placeholder(p + 6)})`
      )
    }
    return sql.unsafe<{ readonly id: string; readonly seq: number | string }>(
      `WITH v (n, id, lane, tag, payload, scheduled_at) AS (VALUES ${rows.join(",")})
      INSERT INTO ${pendingName} (id, lane, tag, payload, scheduled_at)
      SELECT id, lane, tag, payload, CAST(scheduled_at AS DOUBLE PRECISION) FROM v
      WHERE NOT EXISTS (SELECT 1 FROM ${deadName} d WHERE d.id = v.id)
      ORDER BY CAST(n AS INTEGER)
      ON CONFLICT (id) DO NOTHING
      RETURNING id, seq`,
      params
    )
  }

  const existingSeqs = (ids: ReadonlyArray<string>) =>
    sql<{ readonly id: string; readonly seq: number | string }>`
      SELECT id, seq FROM ${pendingTable} WHERE id IN ${sql.in(ids)}
      UNION ALL
      SELECT id, seq FROM ${deadTable} WHERE id IN ${sql.in(ids)}`

  const appendAll = (entries: ReadonlyArray<JournalEntry>) =>
    Effect.gen(function*() {
      // the first occurrence of each id, in input order
      const unique = new Map<string, JournalEntry>()
      for (const entry of entries) if (!unique.has(entry.id)) unique.set(entry.id, entry)
      // id -> seq of every record that is, or is now, stored
      const seqs = new Map<string, number>()
      const inserted = new Set<string>()
      for (const chunk of chunksOf(Array.from(unique.values()), chunkSize)) {
        for (const row of yield* insertNew(chunk)) {
          seqs.set(row.id, Number(row.seq))
          inserted.add(row.id)
        }
      }
      // The rest were already pending or dead-lettered: the common case is
      // that there are none, and this costs nothing.
      const known = Array.from(unique.keys()).filter((id) => !inserted.has(id))
      for (const chunk of chunksOf(known, chunkSize)) {
        if (chunk.length === 0) continue
        for (const row of yield* existingSeqs(chunk)) seqs.set(row.id, Number(row.seq))
      }
      return entries.map((entry): AppendResult => ({
        seq: seqs.get(entry.id)!,
        inserted: inserted.delete(entry.id)
      }))
    })

  /** One writer at a time; a single statement is atomic on its own, more need a transaction. */
  const atomically = <A, E, R>(statements: number, effect: Effect.Effect<A, E, R>) =>
    writePermit.withPermits(1)(statements > 1 ? sql.withTransaction(effect) : effect)
  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) => atomically(2, effect)

  return Journal.of({
    append: (entries) =>
      entries.length === 0
        ? Effect.succeed([])
        : atomically(Math.ceil(entries.length / chunkSize), appendAll(entries)).pipe(
          Effect.mapError(sqlFailure(`Failed to append ${entries.length} journal entries`))
        ),
    attemptFailed: (seq, attempts) =>
      writePermit.withPermits(1)(
        sql`UPDATE ${pendingTable} SET attempts = ${attempts} WHERE seq = ${seq}`
      ).pipe(
        Effect.asVoid,
        Effect.mapError(sqlFailure(`Failed to record the attempts of journal record ${seq}`))
      ),
    complete: (seqs) =>
      seqs.length === 0
        ? Effect.void
        : atomically(
          Math.ceil(seqs.length / chunkSize),
          Effect.forEach(
            chunksOf(seqs, chunkSize),
            (chunk) => sql`DELETE FROM ${pendingTable} WHERE seq IN ${sql.in(chunk)}`,
            { discard: true }
          )
        ).pipe(Effect.mapError(sqlFailure(`Failed to complete ${seqs.length} journal records`))),
    deadLetter: (seq, reason, failedAt) =>
      transaction(Effect.gen(function*() {
        const rows = yield* sql<RecordRow>`
          DELETE FROM ${pendingTable} WHERE seq = ${seq}
          RETURNING seq, id, lane, tag, payload, scheduled_at, attempts`
        if (rows.length === 0) return
        const record = toRecord(rows[0])
        yield* sql`INSERT INTO ${deadTable} ${
          sql.insert({
            seq: record.seq,
            id: record.id,
            lane: record.lane,
            tag: record.tag,
            payload: record.payload,
            scheduled_at: record.scheduledAt,
            attempts: record.attempts,
            reason,
            failed_at: failedAt
          })
        }`
      })).pipe(Effect.mapError(sqlFailure(`Failed to dead-letter journal record ${seq}`))),
    pending: sql<RecordRow>`
      SELECT seq, id, lane, tag, payload, scheduled_at, attempts
      FROM ${pendingTable} ORDER BY seq`.pipe(
      Effect.map((rows) => rows.map(toRecord)),
      Effect.mapError(sqlFailure("Failed to read the pending journal records"))
    ),
    deadLetters: sql<DeadLetterRow>`
      SELECT seq, id, lane, tag, payload, scheduled_at, attempts, reason, failed_at
      FROM ${deadTable} ORDER BY seq`.pipe(
      Effect.map((rows) => rows.map(toDeadLetter)),
      Effect.mapError(sqlFailure("Failed to read the journal's dead letters"))
    ),
    redrive: (id) =>
      transaction(Effect.gen(function*() {
        const rows = yield* sql<RecordRow>`
          DELETE FROM ${deadTable} WHERE id = ${id}
          RETURNING seq, id, lane, tag, payload, scheduled_at, attempts`
        if (rows.length === 0) return yield* new JournalNotFoundError({ id })
        const letter = toRecord(rows[0])
        const [inserted] = yield* insertNew([letter])
        if (inserted === undefined) {
          // cannot happen while ids are pending or dead, never both
          return yield* new JournalError({ reason: `Journal record ${JSON.stringify(id)} is both pending and dead` })
        }
        return { ...letter, seq: Number(inserted.seq), attempts: 0 }
      })).pipe(
        Effect.catchTag("SqlError", (cause) =>
          Effect.fail(new JournalError({ reason: `Failed to redrive journal record ${JSON.stringify(id)}`, cause })))
      )
  })
})
