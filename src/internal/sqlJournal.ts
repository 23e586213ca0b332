/**
 * The `Journal` service over an `@effect/sql` client, shared by the SQLite and
 * PostgreSQL backends. Only the schema differs between the dialects; ownership
 * (the process lock) is each backend's business.
 *
 * @internal
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Predicate from "effect/Predicate"
import type { AppendResult, DeadLetter, Journal, JournalEntry, JournalRecord } from "../Journal.js"
import { JournalError, JournalNotFoundError } from "../Journal.js"

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
  readonly halted: string
  readonly migrations: string
}

/** @internal */
export const tables = (prefix: string): Tables => ({
  pending: `${prefix}pending`,
  deadLetters: `${prefix}dead_letters`,
  halted: `${prefix}halted_lanes`,
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

/** Lanes halted by a give-up (`onGiveUp: "halt"`), so that a restart keeps them halted. */
const createHaltedLanes = (names: Tables) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE ${sql(names.halted)} (lane TEXT PRIMARY KEY)`
  })

/** The names the shared mode adds to a journal's tables. */
/** @internal */
export const sharedNames = (prefix: string) => ({
  ...tables(prefix),
  instances: `${prefix}instances`,
  sharing: `${prefix}sharing`,
  outcomes: `${prefix}outcomes`
})

/** A migration of shared mode's tables, which exist on PostgreSQL only. */
const onPostgres = (
  prefix: string,
  migrate: (sql: SqlClient.SqlClient, names: ReturnType<typeof sharedNames>) => Effect.Effect<unknown, SqlError>
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      pg: () => Effect.asVoid(migrate(sql, sharedNames(prefix))),
      orElse: () => Effect.void
    }))

/**
 * The shared mode's tables, for the Migrator (PostgreSQL only): the shard of
 * every pending row (`-1` for a row written by a single owner, which a shared
 * start assigns), the heartbeats, and the shard count every instance must
 * agree on.
 *
 * @internal
 */
export const createSharedTables = (prefix: string) =>
  onPostgres(prefix, (sql, names) =>
    Effect.gen(function*() {
      yield* sql`ALTER TABLE ${sql(names.pending)} ADD COLUMN shard INTEGER NOT NULL DEFAULT -1`
      yield* sql`CREATE INDEX ${sql(`${names.pending}_shard_seq`)} ON ${sql(names.pending)} (shard, seq)`
      yield* sql`CREATE TABLE ${sql(names.instances)} (
            id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            beat_at TIMESTAMPTZ NOT NULL
          )`
      yield* sql`CREATE TABLE ${sql(names.sharing)} (
            only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
            shards INTEGER NOT NULL
          )`
    }))

/**
 * What shared mode adds for `submit` and `pause` across instances: the
 * instance waiting for a pending task's outcome, the outcomes on their way to
 * it, which of the halted lanes are paused, and a pause of every lane.
 */
const createSharedOutcomes = (prefix: string) =>
  onPostgres(prefix, (sql, names) =>
    Effect.gen(function*() {
      yield* sql`ALTER TABLE ${sql(names.pending)} ADD COLUMN awaited_by TEXT`
      yield* sql`CREATE TABLE ${sql(names.outcomes)} (
            id TEXT PRIMARY KEY,
            awaited_by TEXT NOT NULL,
            tag TEXT NOT NULL,
            exit TEXT NOT NULL
          )`
      yield* sql`CREATE INDEX ${sql(`${names.outcomes}_awaited_by`)} ON ${sql(names.outcomes)} (awaited_by)`
      yield* sql`ALTER TABLE ${sql(names.halted)} ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE`
      yield* sql`ALTER TABLE ${sql(names.sharing)} ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE`
    }))

/**
 * The seq of the task an outcome is kept for: an id is free again once its
 * task has completed, and a caller must get its own task's outcome, not that
 * of an earlier task under the same id.
 */
const addOutcomeSeq = (prefix: string) =>
  onPostgres(prefix, (sql, names) => sql`ALTER TABLE ${sql(names.outcomes)} ADD COLUMN seq BIGINT`)

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
    loader: Migrator.fromRecord({
      "1_create_journal": createTables(names),
      "2_halted_lanes": createHaltedLanes(names),
      "3_shared": createSharedTables(prefix),
      "4_shared_outcomes": createSharedOutcomes(prefix),
      "5_outcome_seq": addOutcomeSeq(prefix)
    }),
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

/** @internal */
export interface RecordRow {
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
/** @internal */
export const toRecord = (row: RecordRow): JournalRecord => ({
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

const isSqlError = (u: unknown): u is SqlError => Predicate.isTagged(u, "SqlError")

/**
 * A dead letter's reason, as text every dialect stores: PostgreSQL refuses a
 * NUL character in text, and a reason is often an error message the journal
 * does not control, so a NUL is written as U+FFFD. Otherwise the dead letter
 * could never be written, and its lane would wait for it forever.
 *
 * @internal
 */
export const storableReason = (reason: string): string =>
  reason.includes("\u0000") ? reason.replaceAll("\u0000", "\uFFFD") : reason

/**
 * Maps every way a journal statement can fail to a `JournalError` with
 * `reason`: a `SqlError`, and anything the driver throws (which reaches the
 * journal as a defect). The journal's own typed errors and interruption pass
 * through, so no failure of the database ever escapes the `JournalError`
 * channel.
 *
 * @internal
 */
export const guard =
  (reason: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | JournalError, R> =>
    effect.pipe(
      Effect.mapError((error): Exclude<E, SqlError> | JournalError =>
        isSqlError(error) ? new JournalError({ reason, cause: error }) : error as Exclude<E, SqlError>
      ),
      Effect.catchAllDefect((cause) => Effect.fail(new JournalError({ reason, cause })))
    )

/**
 * Runs `effect` between `BEGIN` and `COMMIT` on the connection that
 * `execute` reaches, and leaves that connection out of any transaction
 * whatever happens:
 *
 * - a body that fails is rolled back, and the body's failure is the result;
 * - a `COMMIT` that fails is rolled back (a failed `COMMIT` can leave the
 *   transaction open: SQLite does so when a deferred constraint fails), and
 *   the `COMMIT`'s failure is the result, typed, never a defect;
 * - a `BEGIN` that fails is rolled back too, so a transaction left open by a
 *   failure of an earlier `ROLLBACK` is closed for the next try.
 *
 * A `ROLLBACK` that fails is ignored: SQLite rolls a transaction back by
 * itself after some errors (`SQLITE_FULL`, a trigger's `RAISE(ROLLBACK)`),
 * and then refuses the explicit one with "no transaction is active".
 *
 * @internal
 */
export const inTransaction = (execute: (text: string) => Effect.Effect<unknown, SqlError>) => {
  const rollback = Effect.catchAllCause(execute("ROLLBACK"), () => Effect.void)
  const begin = Effect.onError(execute("BEGIN"), () => rollback)
  const commit = Effect.onError(execute("COMMIT"), () => rollback)
  return <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | SqlError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(begin, Effect.exit(restore(effect))).pipe(
        Effect.flatMap((exit): Effect.Effect<A, E | SqlError> =>
          Exit.isSuccess(exit) ? Effect.as(commit, exit.value) : Effect.zipRight(rollback, exit)
        )
      )
    )
}

/**
 * How the journal reaches its database.
 *
 * - `"shared"`: every statement goes through the client (its lock or pool, its
 *   `sql.execute` span), so the client can serve other code at the same time.
 * - `"owned"`: the client is the journal's alone (`SqliteJournal.layer` opens
 *   its own). The journal reserves the client's connection for its lifetime
 *   and runs its statements on it directly, which skips the scope, the lock
 *   and the span the client adds to every statement: about 20 µs a statement
 *   on a small machine, half the cost of committing a one-row SQLite delete,
 *   which one lane pays once per task. The statements then have no span.
 *   Not for PostgreSQL: a pooled connection that breaks is replaced by the
 *   pool, a reserved one is not.
 *
 * @internal
 */
export type Connection = "shared" | "owned"

/** Runs the journal's statements: text in the client's dialect, and its parameters. */
interface Runner {
  readonly run: <A extends object>(
    text: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<A>, SqlError>
  /** Runs `effect`'s statements in one transaction. */
  readonly transaction: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E | SqlError>
}

/**
 * Statements through the client. A transaction reserves a connection (as the
 * client's `withTransaction` does) and runs the statements on it, but commits
 * and rolls back with `inTransaction`: `withTransaction` turns a failed
 * `COMMIT` or `ROLLBACK` into a defect, and leaves the transaction open.
 */
const sharedRunner = (sql: SqlClient.SqlClient): Runner => ({
  run: <A extends object>(text: string, params: ReadonlyArray<unknown>) => sql.unsafe<A>(text, params),
  transaction: (effect) =>
    Effect.scoped(
      Effect.flatMap(sql.reserve, (connection) =>
        inTransaction((text) => connection.execute(text, [], undefined))(
          Effect.provideService(effect, SqlClient.TransactionConnection, [connection, 0])
        ))
    )
})

/**
 * Statements on a connection held for the journal's lifetime. The journal
 * runs one operation at a time on it (each holds the write permit), so a
 * transaction is plain `BEGIN` and `COMMIT` on it, through `inTransaction`.
 */
const ownedRunner = (connection: SqlConnection.Connection): Runner => {
  const run = <A extends object>(text: string, params: ReadonlyArray<unknown>) =>
    connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>
  return { run, transaction: inTransaction((text) => run(text, [])) }
}

/** The journal's database, as every group of its operations reaches it. */
interface Db {
  readonly sql: SqlClient.SqlClient
  readonly run: Runner["run"]
  readonly transaction: Runner["transaction"]
  /** Runs a statement built with the client's template (it is only compiled, never run by the client). */
  readonly runCompiled: <A extends object>(
    statement: Statement.Statement<unknown>
  ) => Effect.Effect<ReadonlyArray<A>, SqlError>
  /** Writes take one permit, so two writers in this process never race on the same id. */
  readonly exclusive: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
  /** Reads need the permit only on an owned connection, where another operation's transaction may be open. */
  readonly reading: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>
  readonly pendingTable: Statement.Identifier
  readonly deadTable: Statement.Identifier
  readonly haltedTable: Statement.Identifier
  /** The table names, quoted, for the statements built as text. */
  readonly pendingName: string
  readonly deadName: string
  readonly placeholder: (i: number) => string
}

const openDb = Effect.fnUntraced(function*(options: {
  readonly tablePrefix: string
  readonly connection?: Connection | undefined
}) {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* migrate(options.tablePrefix).pipe(Effect.provideService(SqlClient.SqlClient, sql))
  const names = tables(options.tablePrefix)
  const exclusive = (yield* Effect.makeSemaphore(1)).withPermits(1)
  const owned = options.connection === "owned"
  const { run, transaction } = owned
    ? ownedRunner(yield* guard("Failed to reserve the journal's connection")(sql.reserve))
    : sharedRunner(sql)
  const pendingTable = sql(names.pending)
  const deadTable = sql(names.deadLetters)
  const db: Db = {
    sql,
    run,
    transaction,
    runCompiled: <A extends object>(statement: Statement.Statement<unknown>) => {
      const [text, params] = statement.compile()
      return run<A>(text, params)
    },
    exclusive,
    reading: owned ? exclusive : (effect) => effect,
    pendingTable,
    deadTable,
    haltedTable: sql(names.halted),
    pendingName: sql`${pendingTable}`.compile()[0],
    deadName: sql`${deadTable}`.compile()[0],
    placeholder: sql.onDialectOrElse({ pg: () => (i: number) => `$${i}`, orElse: () => (_: number) => "?" })
  }
  return db
})

/**
 * Inserts the entries whose id is neither pending nor dead-lettered, in one
 * statement, numbering them in input order (`ORDER BY n`); answers with the
 * rows it inserted. The CASTs give PostgreSQL the types its untyped VALUES
 * lack, and are no-ops for SQLite. A row is six placeholders, so the text for
 * a given batch size is always the same (and stays prepared in the client's
 * statement cache).
 */
const insertNew = (db: Db, entries: ReadonlyArray<JournalEntry>) => {
  const { placeholder } = db
  const params: Array<unknown> = []
  const rows: Array<string> = []
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]
    const p = params.length
    params.push(i, entry.id, entry.lane, entry.tag, entry.payload, entry.scheduledAt)
    const marks = [1, 2, 3, 4, 5, 6].map((k) => placeholder(p + k))
    rows.push(`(${marks.join(",")})`)
  }
  return db.run<{ readonly id: string; readonly seq: number | string }>(
    `WITH v (n, id, lane, tag, payload, scheduled_at) AS (VALUES ${rows.join(",")})
    INSERT INTO ${db.pendingName} (id, lane, tag, payload, scheduled_at)
    SELECT id, lane, tag, payload, CAST(scheduled_at AS DOUBLE PRECISION) FROM v
    WHERE NOT EXISTS (SELECT 1 FROM ${db.deadName} d WHERE d.id = v.id)
    ORDER BY CAST(n AS INTEGER)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, seq`,
    params
  )
}

const existingSeqs = (db: Db, ids: ReadonlyArray<string>) => {
  const { deadTable, pendingTable, sql } = db
  return db.runCompiled<{ readonly id: string; readonly seq: number | string }>(sql`
    SELECT id, seq FROM ${pendingTable} WHERE id IN ${sql.in(ids)}
    UNION ALL
    SELECT id, seq FROM ${deadTable} WHERE id IN ${sql.in(ids)}`)
}

const appendAll = (db: Db, entries: ReadonlyArray<JournalEntry>) =>
  Effect.gen(function*() {
    // the first occurrence of each id, in input order
    const unique = new Map<string, JournalEntry>()
    for (const entry of entries) if (!unique.has(entry.id)) unique.set(entry.id, entry)
    // id -> seq of every record that is, or is now, stored
    const seqs = new Map<string, number>()
    const inserted = new Set<string>()
    for (const chunk of chunksOf(Array.from(unique.values()), chunkSize)) {
      for (const row of yield* insertNew(db, chunk)) {
        seqs.set(row.id, Number(row.seq))
        inserted.add(row.id)
      }
    }
    // The rest were already pending or dead-lettered: the common case is
    // that there are none, and this costs nothing.
    const known = Array.from(unique.keys()).filter((id) => !inserted.has(id))
    for (const chunk of chunksOf(known, chunkSize)) {
      if (chunk.length === 0) continue
      for (const row of yield* existingSeqs(db, chunk)) seqs.set(row.id, Number(row.seq))
    }
    return entries.map((entry): AppendResult => ({
      seq: seqs.get(entry.id)!,
      inserted: inserted.delete(entry.id)
    }))
  })

/**
 * The operations on the path of every task. Each has one text whatever the
 * number of records, so it is prepared once and stays in the client's
 * statement cache. A batch of completions is one statement, with the seqs in
 * a single parameter: a JSON array for SQLite, a bigint[] for PostgreSQL.
 */
const taskSteps = (db: Db): Pick<Journal.Service, "append" | "attemptFailed" | "complete"> => {
  const { exclusive, pendingName, placeholder, run } = db
  const completeOne = `DELETE FROM ${pendingName} WHERE seq = ${placeholder(1)}`
  const completeMany = db.sql.onDialectOrElse({
    pg: () => ({
      text: `DELETE FROM ${pendingName} WHERE seq = ANY($1::bigint[])`,
      param: (seqs: ReadonlyArray<number>): unknown => seqs
    }),
    orElse: () => ({
      text: `DELETE FROM ${pendingName} WHERE seq IN (SELECT value FROM json_each(?))`,
      param: (seqs: ReadonlyArray<number>): unknown => JSON.stringify(seqs)
    })
  })
  const updateAttempts = `UPDATE ${pendingName} SET attempts = ${placeholder(1)} WHERE seq = ${placeholder(2)}`
  return {
    append: (entries) =>
      entries.length === 0
        ? Effect.succeed([])
        // a single statement is atomic on its own, more need a transaction
        : exclusive(entries.length > chunkSize ? db.transaction(appendAll(db, entries)) : appendAll(db, entries)).pipe(
          guard(`Failed to append ${entries.length} journal entries`)
        ),
    attemptFailed: (seq, attempts) =>
      exclusive(run(updateAttempts, [attempts, seq])).pipe(
        Effect.asVoid,
        guard(`Failed to record the attempts of journal record ${seq}`)
      ),
    complete: (seqs) =>
      seqs.length === 0
        ? Effect.void
        : exclusive(
          seqs.length === 1 ? run(completeOne, seqs) : run(completeMany.text, [completeMany.param(seqs)])
        ).pipe(Effect.asVoid, guard(`Failed to complete ${seqs.length} journal records`))
  }
}

/** Moves a pending record to the dead letters, and records its lane as halted with `haltLane`. */
const moveToDeadLetters = (db: Db, seq: number, reason: string, failedAt: number, haltLane: boolean | undefined) =>
  Effect.gen(function*() {
    const { deadTable, haltedTable, pendingTable, runCompiled, sql } = db
    const rows = yield* runCompiled<RecordRow>(sql`
      DELETE FROM ${pendingTable} WHERE seq = ${seq}
      RETURNING seq, id, lane, tag, payload, scheduled_at, attempts`)
    if (rows.length === 0) return
    const { attempts, id, lane, payload, scheduledAt, tag } = toRecord(rows[0])
    const letter = {
      seq,
      id,
      lane,
      tag,
      payload,
      scheduled_at: scheduledAt,
      attempts,
      reason: storableReason(reason),
      failed_at: failedAt
    }
    yield* runCompiled(sql`INSERT INTO ${deadTable} ${sql.insert(letter)}`)
    if (haltLane === true) {
      yield* runCompiled(sql`INSERT INTO ${haltedTable} (lane) VALUES (${lane}) ON CONFLICT (lane) DO NOTHING`)
    }
  })

/** Moves a dead letter back to pending, with a new seq and its attempts reset. */
const moveToPending = (db: Db, id: string) =>
  Effect.gen(function*() {
    const rows = yield* db.runCompiled<RecordRow>(db.sql`
      DELETE FROM ${db.deadTable} WHERE id = ${id}
      RETURNING seq, id, lane, tag, payload, scheduled_at, attempts`)
    if (rows.length === 0) return yield* new JournalNotFoundError({ id })
    const letter = toRecord(rows[0])
    const [inserted] = yield* insertNew(db, [letter])
    if (inserted === undefined) {
      // cannot happen while ids are pending or dead, never both
      return yield* new JournalError({ reason: `Journal record ${JSON.stringify(id)} is both pending and dead` })
    }
    return { ...letter, seq: Number(inserted.seq), attempts: 0 }
  })

const deadLetterOps = (db: Db): Pick<Journal.Service, "deadLetter" | "deadLetters" | "redrive" | "discard"> => {
  const { deadTable, exclusive, sql } = db
  const selectDeadLetters = sql`
    SELECT seq, id, lane, tag, payload, scheduled_at, attempts, reason, failed_at
    FROM ${deadTable} ORDER BY seq`.compile()
  return {
    deadLetter: (seq, reason, failedAt, haltLane) =>
      exclusive(db.transaction(moveToDeadLetters(db, seq, reason, failedAt, haltLane))).pipe(
        guard(`Failed to dead-letter journal record ${seq}`)
      ),
    deadLetters: db.reading(db.run<DeadLetterRow>(...selectDeadLetters)).pipe(
      Effect.map((rows) => rows.map(toDeadLetter)),
      guard("Failed to read the journal's dead letters")
    ),
    redrive: (id) =>
      exclusive(db.transaction(moveToPending(db, id))).pipe(
        guard(`Failed to redrive journal record ${JSON.stringify(id)}`)
      ),
    discard: (id) =>
      exclusive(db.runCompiled<DeadLetterRow>(sql`
        DELETE FROM ${deadTable} WHERE id = ${id}
        RETURNING seq, id, lane, tag, payload, scheduled_at, attempts, reason, failed_at`)).pipe(
        guard(`Failed to discard journal record ${JSON.stringify(id)}`),
        Effect.flatMap((rows) =>
          rows.length === 0 ? Effect.fail(new JournalNotFoundError({ id })) : Effect.succeed(toDeadLetter(rows[0]))
        )
      )
  }
}

const laneOps = (db: Db): Pick<Journal.Service, "haltedLanes" | "unhalt" | "pending"> => {
  const { haltedTable, pendingTable, sql } = db
  const selectPending = sql`
    SELECT seq, id, lane, tag, payload, scheduled_at, attempts
    FROM ${pendingTable} ORDER BY seq`.compile()
  return {
    haltedLanes: db.reading(
      db.runCompiled<{ readonly lane: string }>(sql`SELECT lane FROM ${haltedTable} ORDER BY lane`)
    ).pipe(
      Effect.map((rows) => rows.map((row) => row.lane)),
      guard("Failed to read the journal's halted lanes")
    ),
    unhalt: (lane) =>
      db.exclusive(db.runCompiled(
        lane === undefined ? sql`DELETE FROM ${haltedTable}` : sql`DELETE FROM ${haltedTable} WHERE lane = ${lane}`
      )).pipe(
        Effect.asVoid,
        guard(`Failed to resume ${lane === undefined ? "every lane" : `lane ${JSON.stringify(lane)}`}`)
      ),
    pending: db.reading(db.run<RecordRow>(...selectPending)).pipe(
      Effect.map((rows) => rows.map(toRecord)),
      guard("Failed to read the pending journal records")
    )
  }
}

/**
 * Builds the journal over the `SqlClient` in context, creating its tables
 * first. Writes are serialised by one permit, so two writers in this process
 * never race on the same id; ownership across processes is the caller's.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(options: {
  readonly tablePrefix: string
  readonly connection?: Connection | undefined
}) {
  const db = yield* openDb(options)
  const journal: Journal.Service = { ...taskSteps(db), ...deadLetterOps(db), ...laneOps(db) }
  return journal
})
