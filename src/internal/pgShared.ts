/**
 * Shared mode of the PostgreSQL journal: the statements and the plan behind
 * lanes shared by many instances. The durable store that drives them is
 * `sharedStore.ts`; this module knows SQL, not the executor.
 *
 * - Lanes are hashed onto `shards` shards; each pending row carries its shard.
 * - An instance owns a shard while it holds the session advisory lock
 *   `(shardKey, shard)` on its lock session (a reserved connection), and
 *   writes every completion, attempt and dead letter of the shard's tasks on
 *   that same session: when the session ends (killed, cut, server restart)
 *   the lock goes with it, and so does every write that would have come
 *   after it. That is the fence.
 * - Each instance beats a heartbeat row, written on its lock session, which
 *   names the session's backend pid: others count it live while the row is
 *   fresh and the backend exists, and end the session of one whose row is
 *   older than `hungAfter` (`pg_terminate_backend`).
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type { AppendResult, Journal, JournalEntry, JournalRecord } from "../Journal.js"
import { JournalError, JournalNotFoundError } from "../Journal.js"
import type { LaneView } from "./sharing.js"
import {
  chunksOf,
  guard,
  inTransaction,
  type RecordRow,
  sharedNames,
  storableReason,
  toRecord as journalRecord
} from "./sqlJournal.js"

/** @internal */
export interface SharingConfig {
  readonly shards: number
  /** Milliseconds between two heartbeats. */
  readonly heartbeat: number
  /** Milliseconds after its last heartbeat at which an instance counts as hung. */
  readonly hungAfter: number
  /** Milliseconds between two looks at the shards and the journal when nothing wakes the instance. */
  readonly poll: number
}

/** A pending record, its shard, and the instance waiting for its outcome (a `submit` there), if one is. */
export interface SharedRecord extends JournalRecord {
  readonly shard: number
  readonly awaitedBy: string | undefined
}

/** The outcome of a task for the instance whose `submit` waits for it, as `OutcomeCodec` encodes it. */
export interface Outcome {
  readonly id: string
  readonly awaitedBy: string
  readonly tag: string
  readonly exit: string
}

/** Runs one statement on a connection. */
export type Run = <A extends object>(text: string, params: ReadonlyArray<unknown>) => Effect.Effect<
  ReadonlyArray<A>,
  SqlError
>

/**
 * The shard of a lane: FNV-1a over the lane's UTF-16 code units. Computed by
 * the instances, never by the database, so that an append knows the shards it
 * locks before it writes (it takes them in order: no deadlock between two
 * appends).
 *
 * @internal
 */
export const shardOf = (lane: string, shards: number): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < lane.length; i++) {
    hash ^= lane.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % shards
}

/** The statements of shared mode, their table names quoted once. */
export interface Statements {
  readonly channel: string
  /** The journal's mode lock: `(namespace, hashtext(schema.prefix))`, shared by every shared instance. */
  readonly mode: readonly [namespace: number, prefix: string]
  readonly shardKey: number
  readonly appendKey: number
  readonly config: SharingConfig
  readonly pending: string
  readonly dead: string
  readonly halted: string
  readonly instances: string
  readonly sharing: string
  readonly outcomes: string
}

const quote = (name: string) => `"${name.replaceAll("\"", "\"\"")}"`

/**
 * The keys of the journal's advisory locks, derived from its schema and
 * prefix: the shard locks and the append locks each have a first key of
 * their own (non-negative, so it reads back from `pg_locks.classid` as is).
 */
export const statements = (
  run: Run,
  prefix: string,
  config: SharingConfig,
  modeNamespace: number
): Effect.Effect<Statements, SqlError> =>
  Effect.map(
    run<{ readonly shard_key: number; readonly append_key: number }>(
      `SELECT hashtext(current_schema() || '.' || $1 || ':shards') & 2147483647 AS shard_key,
        hashtext(current_schema() || '.' || $1 || ':appends') & 2147483647 AS append_key`,
      [prefix]
    ),
    (rows) => {
      const names = sharedNames(prefix)
      return {
        channel: `${prefix}sequent`,
        mode: [modeNamespace, prefix],
        shardKey: Number(rows[0]!.shard_key),
        appendKey: Number(rows[0]!.append_key),
        config,
        pending: quote(names.pending),
        dead: quote(names.deadLetters),
        halted: quote(names.halted),
        instances: quote(names.instances),
        sharing: quote(names.sharing),
        outcomes: quote(names.outcomes)
      }
    }
  )

/**
 * Checks the shard count against the journal's, recording it on the first
 * shared start, and gives rows written by a single owner their shard. The
 * caller holds the migration lock, so no other instance starts meanwhile.
 */
export const prepare = (run: Run, s: Statements): Effect.Effect<void, SqlError | JournalError> =>
  Effect.gen(function*() {
    yield* run(`INSERT INTO ${s.sharing} (shards) VALUES ($1) ON CONFLICT (only_row) DO NOTHING`, [s.config.shards])
    const rows = yield* run<{ readonly shards: number }>(`SELECT shards FROM ${s.sharing}`, [])
    const shards = Number(rows[0]?.shards)
    if (shards !== s.config.shards) {
      return yield* new JournalError({
        reason: `The shared journal has ${shards} shards, this instance was started with ${s.config.shards}`
      })
    }
    const lanes = yield* run<{ readonly lane: string }>(`SELECT DISTINCT lane FROM ${s.pending} WHERE shard < 0`, [])
    for (const chunk of chunksOf(lanes.map((row) => row.lane), 1000)) {
      if (chunk.length === 0) continue
      yield* run(
        `UPDATE ${s.pending} p SET shard = v.shard FROM unnest($1::text[], $2::int[]) AS v(lane, shard)
        WHERE p.lane = v.lane AND p.shard < 0`,
        [chunk, chunk.map((lane) => shardOf(lane, shards))]
      )
    }
  })

/** Runs `body` in one transaction on a connection of the pool. */
const transaction = <A, E>(sql: SqlClient.SqlClient, body: (run: Run) => Effect.Effect<A, E | SqlError>) =>
  Effect.scoped(
    Effect.flatMap(sql.reserve, (connection) => {
      const run: Run = <A extends object>(text: string, params: ReadonlyArray<unknown>) =>
        connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>
      return inTransaction((text) => run(text, []))(body(run))
    })
  )

/**
 * Append locks are striped: a shard takes the lock `shard % appendStripes`,
 * so a transaction holds at most this many, however many shards there are
 * (each advisory lock takes a slot of the server's shared lock table, sized
 * by `max_locks_per_transaction`).
 */
const appendStripes = 64

/**
 * Takes the append locks of `shards` for the rest of the transaction, in
 * ascending order (`unnest` yields an array in its order, and the locks are
 * taken row by row), so two appends never wait for each other in a cycle.
 *
 * Why: a `seq` is taken when the row is inserted, not when it commits, so two
 * appends to one lane could commit in the other order than their seqs, and an
 * owner that had read the later one could run it before the earlier one is
 * visible. Under the shard's transaction lock, an append takes its seqs only
 * after every earlier append of the shard has committed (or rolled back):
 * per shard, seq order is commit order, and an owner that has read up to a
 * seq has seen every record of the shard below it that will ever commit.
 * Locking shards (striped), not lanes, keeps the number of locks a batch
 * takes small.
 */
const lockShards = (run: Run, s: Statements, shards: ReadonlyArray<number>) =>
  run(`SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k`, [s.appendKey, stripesOf(shards)])

/** The append locks of `shards`, in ascending order. */
const stripesOf = (shards: ReadonlyArray<number>) =>
  Array.from(new Set(shards.map((shard) => shard % appendStripes))).sort((a, b) => a - b)

/** An entry to append, and the instance that waits for its outcome, if one does. */
export interface SharedEntry {
  readonly entry: JournalEntry
  readonly awaitedBy: string | undefined
}

/**
 * The append in one statement: one round trip, and no transaction of its own
 * to begin and commit. The append locks come first: every inserted row is
 * joined with their count, so no row takes its seq before they are all held
 * (see `lockShards`). The entries whose id is neither pending nor dead are
 * inserted, numbered in input order, and when any is, the owners of `shards`
 * are woken (a NOTIFY is sent when the statement commits).
 */
const appendStatement = (
  run: Run,
  s: Statements,
  appends: ReadonlyArray<SharedEntry>,
  shards: ReadonlyArray<number>
) => {
  const entries = appends.map((a) => a.entry)
  return run<{ readonly id: string; readonly seq: string | number }>(
    `WITH locks AS MATERIALIZED (
      SELECT count(pg_advisory_xact_lock($1, k)) AS held FROM unnest($2::int[]) AS k
    ), inserted AS (
      INSERT INTO ${s.pending} (id, lane, tag, payload, scheduled_at, shard, awaited_by)
      SELECT v.id, v.lane, v.tag, v.payload, v.scheduled_at, v.shard, v.awaited_by
      FROM locks,
        unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::int[], $11::text[]) WITH ORDINALITY
        AS v(id, lane, tag, payload, scheduled_at, shard, awaited_by, n)
      WHERE locks.held >= 0 AND NOT EXISTS (SELECT 1 FROM ${s.dead} d WHERE d.id = v.id)
      ORDER BY v.n
      ON CONFLICT (id) DO NOTHING
      RETURNING id, seq
    ), woken AS (
      SELECT pg_notify($9, $10) FROM (SELECT 1 FROM inserted LIMIT 1) AS one
    )
    SELECT id, seq FROM inserted WHERE (SELECT count(*) FROM woken) >= 0`,
    [
      s.appendKey,
      stripesOf(shards),
      entries.map((e) => e.id),
      entries.map((e) => e.lane),
      entries.map((e) => e.tag),
      entries.map((e) => e.payload),
      entries.map((e) => e.scheduledAt),
      entries.map((e) => shardOf(e.lane, s.config.shards)),
      s.channel,
      wakePayload(shards),
      appends.map((a) => a.awaitedBy ?? null)
    ]
  )
}

/** The seqs of the ids that are pending or dead-lettered. */
export const storedSeqs = (run: Run, s: Statements, ids: ReadonlyArray<string>) =>
  run<{ readonly id: string; readonly seq: string | number }>(
    `SELECT id, seq FROM ${s.pending} WHERE id = ANY($1::text[])
    UNION ALL SELECT id, seq FROM ${s.dead} WHERE id = ANY($1::text[])`,
    [ids]
  )

/** Which of `seqs` are still pending. */
export const stillPending = (run: Run, s: Statements, seqs: ReadonlyArray<number>) =>
  Effect.map(
    run<{ readonly seq: string | number }>(`SELECT seq FROM ${s.pending} WHERE seq = ANY($1::bigint[])`, [seqs]),
    (rows) => rows.map((row) => Number(row.seq))
  )

/** The ids of `ids` whose outcome `instance` waits for: pending, or with the outcome kept. */
export const awaitedBy = (run: Run, s: Statements, ids: ReadonlyArray<string>, instance: string) =>
  run<{ readonly id: string }>(
    `SELECT id FROM ${s.pending} WHERE id = ANY($1::text[]) AND awaited_by = $2
    UNION SELECT id FROM ${s.outcomes} WHERE id = ANY($1::text[]) AND awaited_by = $2`,
    [ids, instance]
  )

const shardsOf = (s: Statements, lanes: ReadonlyArray<string>) =>
  Array.from(new Set(lanes.map((lane) => shardOf(lane, s.config.shards)))).sort((a, b) => a - b)

/** A NOTIFY payload must stay under 8000 bytes: past this many shards, the payload wakes every owner. */
const notifyAtMost = 256

/** The NOTIFY payload that wakes the owners of `shards`. */
const wakePayload = (shards: ReadonlyArray<number>) => shards.length > notifyAtMost ? "*" : shards.join(",")

/** Wakes the owners of `shards` once the transaction commits. */
const notifyShards = (run: Run, s: Statements, shards: ReadonlyArray<number>) =>
  run(`SELECT pg_notify($1, $2)`, [s.channel, wakePayload(shards)])

/**
 * At most `millis` of `statements`, even in a finalizer: finalizers run
 * uninterruptibly, and on a connection the network has stalled (no reply, no
 * reset) a statement never answers, so a scope's close would wait for ever.
 * Made interruptible so the timeout can end it; the driver then cancels it, in
 * at most five seconds more. What it would have done is given up: closing
 * goes on without it.
 */
export const bounded = (statements: Effect.Effect<unknown, SqlError>, millis: number): Effect.Effect<void> =>
  statements.pipe(Effect.interruptible, Effect.timeout(Duration.millis(millis)), Effect.ignore)

/** The NOTIFY payload an instance sends itself, to hear that its LISTEN still works. */
export const pingPayload = (instance: string) => `ping:${instance}`

/** Sends `instance` its ping, through the channel every instance listens to. */
export const ping = (run: Run, s: Statements, instance: string) =>
  run(`SELECT pg_notify($1, $2)`, [s.channel, pingPayload(instance)])

/**
 * The shared `append`: one statement under the append locks of the shards it
 * touches, which wakes their owners when it commits. The ids it did not
 * insert (already pending or dead) are looked up after it, for their seqs.
 */
export const append = (sql: SqlClient.SqlClient, s: Statements) => {
  const run: Run = (text, params) => sql.unsafe(text, params)
  return (appends: ReadonlyArray<SharedEntry>): Effect.Effect<ReadonlyArray<AppendResult>, JournalError> => {
    if (appends.length === 0) return Effect.succeed([])
    const unique = new Map<string, SharedEntry>()
    for (const a of appends) if (!unique.has(a.entry.id)) unique.set(a.entry.id, a)
    const shards = shardsOf(s, Array.from(unique.values(), (a) => a.entry.lane))
    return Effect.gen(function*() {
      const seqs = new Map<string, number>()
      const inserted = new Set<string>()
      for (const row of yield* appendStatement(run, s, Array.from(unique.values()), shards)) {
        seqs.set(row.id, Number(row.seq))
        inserted.add(row.id)
      }
      const known = Array.from(unique.keys()).filter((id) => !inserted.has(id))
      if (known.length > 0) { for (const row of yield* storedSeqs(run, s, known)) seqs.set(row.id, Number(row.seq)) }
      return appends.map(({ entry }): AppendResult => ({
        seq: seqs.get(entry.id)!,
        inserted: inserted.delete(entry.id)
      }))
    }).pipe(guard(`Failed to append ${appends.length} journal entries`))
  }
}

interface Row extends RecordRow {
  readonly shard: number | string
  readonly awaited_by: string | null
}

/** A fetched row as a record: its fields added to the journal's record, where a spread would copy it on a slow path. */
const toRecord = (row: Row): SharedRecord =>
  Object.assign(journalRecord(row), { shard: Number(row.shard), awaitedBy: row.awaited_by ?? undefined })

/**
 * The shared `redrive`: the dead letter goes back to pending under its
 * shard's append lock, so it takes its new seq in commit order too.
 */
export const redrive = (sql: SqlClient.SqlClient, s: Statements) =>
(
  id: string
): Effect.Effect<JournalRecord, JournalError | JournalNotFoundError> =>
  transaction(sql, (run) =>
    Effect.gen(function*() {
      const letters = yield* run<Row>(`SELECT lane FROM ${s.dead} WHERE id = $1`, [id])
      if (letters.length === 0) return yield* new JournalNotFoundError({ id })
      const shards = shardsOf(s, [letters[0]!.lane])
      yield* lockShards(run, s, shards)
      const rows = yield* run<Row>(
        `WITH d AS (DELETE FROM ${s.dead} WHERE id = $1 RETURNING id, lane, tag, payload, scheduled_at)
        INSERT INTO ${s.pending} (id, lane, tag, payload, scheduled_at, shard)
        SELECT id, lane, tag, payload, scheduled_at, $2 FROM d
        RETURNING seq, id, lane, tag, payload, scheduled_at, attempts, shard, awaited_by`,
        [id, shards[0]]
      )
      if (rows.length === 0) return yield* new JournalNotFoundError({ id })
      yield* notifyShards(run, s, shards)
      const { awaitedBy: _a, shard: _s, ...record } = toRecord(rows[0]!)
      return record
    })).pipe(guard(`Failed to redrive journal record ${JSON.stringify(id)}`))

/**
 * The pending records of the given shards after each one's cursor, in seq
 * order, at most `limit` of them. Per shard, seq order is commit order (see
 * `lockShards`), so a shard's cursor is the largest seq read from it.
 *
 * Each shard is read on its own, a range of the `(shard, seq)` index after
 * its cursor: a join with the cursors would be planned for ten of them, as a
 * scan of the whole table, whose cost grows with the backlog and its dead
 * rows while an owner that keeps up reads a few rows per shard.
 */
export const fetch = (
  run: Run,
  s: Statements,
  cursors: ReadonlyArray<readonly [shard: number, after: number]>,
  limit: number
): Effect.Effect<ReadonlyArray<SharedRecord>, SqlError> =>
  Effect.map(
    run<Row>(
      `SELECT p.seq, p.id, p.lane, p.tag, p.payload, p.scheduled_at, p.attempts, p.shard, p.awaited_by
      FROM unnest($1::int[], $2::bigint[]) AS c(shard, after)
      CROSS JOIN LATERAL (SELECT * FROM ${s.pending} p WHERE p.shard = c.shard AND p.seq > c.after
        ORDER BY p.seq LIMIT $3) p
      ORDER BY p.seq LIMIT $3`,
      [cursors.map(([shard]) => shard), cursors.map(([, after]) => after), limit]
    ),
    (rows) => rows.map(toRecord)
  )

const lanesNamed = (lane: string | undefined) => lane === undefined ? "every lane" : `lane ${JSON.stringify(lane)}`

/** Changes the halts in one transaction and, once that commits, wakes the owners to read them again. */
const changeHalts = (
  sql: SqlClient.SqlClient,
  s: Statements,
  change: (run: Run) => Effect.Effect<unknown, SqlError>,
  what: string
): Effect.Effect<void, JournalError> =>
  transaction(sql, (run) => Effect.zipRight(change(run), run(`SELECT pg_notify($1, 'halts')`, [s.channel]))).pipe(
    Effect.asVoid,
    guard(`Failed to ${what}`)
  )

/**
 * The shared `unhalt`: forgets a lane's halt or pause (every lane's, and the
 * pause of them all, with `undefined`).
 */
export const unhalt = (sql: SqlClient.SqlClient, s: Statements) => (lane: string | undefined) =>
  changeHalts(
    sql,
    s,
    (run) =>
      lane === undefined
        ? Effect.zipRight(run(`DELETE FROM ${s.halted}`, []), run(`UPDATE ${s.sharing} SET paused = FALSE`, []))
        : run(`DELETE FROM ${s.halted} WHERE lane = $1`, [lane]),
    `resume ${lanesNamed(lane)}`
  )

/** The shared `pause`: keeps a lane's pause (of every lane with `undefined`) until a resume. */
export const pause = (sql: SqlClient.SqlClient, s: Statements) => (lane: string | undefined) =>
  changeHalts(
    sql,
    s,
    (run) =>
      lane === undefined
        ? run(`UPDATE ${s.sharing} SET paused = TRUE`, [])
        : run(`INSERT INTO ${s.halted} (lane, paused) VALUES ($1, TRUE) ON CONFLICT (lane) DO NOTHING`, [lane]),
    `pause ${lanesNamed(lane)}`
  )

/** The journal's halted and paused lanes (`true` for a pause), and whether every lane is paused. */
export interface Halts {
  readonly lanes: ReadonlyMap<string, boolean>
  readonly all: boolean
}

/** Reads the halts, in one statement. */
export const halts = (run: Run, s: Statements): Effect.Effect<Halts, SqlError> =>
  Effect.map(
    run<{ readonly lane: string | null; readonly paused: boolean }>(
      `SELECT lane, paused FROM ${s.halted} UNION ALL SELECT NULL, paused FROM ${s.sharing}`,
      []
    ),
    (rows) => ({
      lanes: new Map(rows.flatMap((row) => row.lane === null ? [] : [[row.lane, row.paused] as const])),
      all: rows.some((row) => row.lane === null && row.paused)
    })
  )

// -----------------------------------------------------------------------------
// the lock session: fenced writes, heartbeats, shard locks
// -----------------------------------------------------------------------------

/** Deletes completed records (on the lock session). */
export const complete = (run: Run, s: Statements, seqs: ReadonlyArray<number>) =>
  run(`DELETE FROM ${s.pending} WHERE seq = ANY($1::bigint[])`, [seqs])

/**
 * Keeps the outcomes of the records the statement's `d` deletes (so they
 * commit with their removal) for the instances waiting for them, and wakes
 * those. An instance that is gone gets none: nobody would take it.
 */
const answer = (s: Statements, outcomes: string, channel: string) =>
  `answer AS (
    INSERT INTO ${s.outcomes} (id, awaited_by, tag, exit, seq)
    SELECT o.id, o.awaited_by, o.tag, o.exit, d.seq FROM ${outcomes} JOIN d ON d.id = o.id
    WHERE EXISTS (SELECT 1 FROM ${s.instances} i WHERE i.id = o.awaited_by)
    ON CONFLICT (id) DO UPDATE
      SET awaited_by = EXCLUDED.awaited_by, tag = EXCLUDED.tag, exit = EXCLUDED.exit, seq = EXCLUDED.seq
    RETURNING awaited_by
  )
  SELECT pg_notify(${channel}, 'outcome:' || a) FROM (SELECT DISTINCT awaited_by AS a FROM answer) w`

/**
 * Deletes completed records and keeps the outcomes waited for elsewhere, in
 * one statement (on the lock session): an outcome is kept if and only if its
 * record's completion commits.
 */
export const completeAnswering = (
  run: Run,
  s: Statements,
  seqs: ReadonlyArray<number>,
  outcomes: ReadonlyArray<Outcome>
) =>
  outcomes.length === 0 ? complete(run, s, seqs) : run(
    `WITH d AS (DELETE FROM ${s.pending} WHERE seq = ANY($1::bigint[]) RETURNING id, seq), ${
      answer(s, "unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS o(id, awaited_by, tag, exit)", "$6")
    }`,
    [
      seqs,
      outcomes.map((o) => o.id),
      outcomes.map((o) => o.awaitedBy),
      outcomes.map((o) => o.tag),
      outcomes.map((o) => o.exit),
      s.channel
    ]
  )

/**
 * An outcome kept for an instance, with the seq of the task it is the outcome
 * of: an id is free again once its task has completed, so only the seq tells
 * a caller's own task from an earlier one under the same id (`null` from a
 * version that kept no seq).
 */
export interface KeptOutcome {
  readonly id: string
  readonly tag: string
  readonly exit: string
  readonly seq: number | string | null
}

/** Takes the outcomes kept for `instance`. */
export const takeOutcomes = (run: Run, s: Statements, instance: string) =>
  run<KeptOutcome>(`DELETE FROM ${s.outcomes} WHERE awaited_by = $1 RETURNING id, tag, exit, seq`, [instance])

/** Records a failed attempt (on the lock session). */
export const attemptFailed = (run: Run, s: Statements, seq: number, attempts: number) =>
  run(`UPDATE ${s.pending} SET attempts = $1 WHERE seq = $2`, [attempts, seq])

/**
 * Moves a record to the dead letters, halting its lane with `halt` and
 * keeping `outcome` for the instance waiting for it: one statement, so no
 * transaction is left open.
 */
export const deadLetter = (
  run: Run,
  s: Statements,
  letter: { readonly seq: number; readonly attempts: number; readonly reason: string; readonly failedAt: number },
  halt: boolean,
  outcome?: Outcome | undefined
) =>
  run(
    `WITH d AS (DELETE FROM ${s.pending} WHERE seq = $1
      RETURNING seq, id, lane, tag, payload, scheduled_at),
    letter AS (INSERT INTO ${s.dead} (seq, id, lane, tag, payload, scheduled_at, attempts, reason, failed_at)
      SELECT seq, id, lane, tag, payload, scheduled_at, $2, $3, $4 FROM d RETURNING lane),
    halt AS (INSERT INTO ${s.halted} (lane) SELECT lane FROM letter WHERE $5 ON CONFLICT (lane) DO NOTHING), ${
      answer(s, "(SELECT $6::text AS id, $7::text AS awaited_by, $8::text AS tag, $9::text AS exit) o", "$10")
    }`,
    [
      letter.seq,
      letter.attempts,
      storableReason(letter.reason),
      letter.failedAt,
      halt,
      outcome?.id ?? null,
      outcome?.awaitedBy ?? null,
      outcome?.tag ?? null,
      outcome?.exit ?? null,
      s.channel
    ]
  )

/**
 * Takes the journal's mode lock, shared, on the lock session: while an
 * instance owns shards it holds it on the same session, so a single owner can
 * never start beside it, even if the connection the layer took the lock on is
 * cut. Answers whether it holds it (not when a single owner has the journal).
 */
export const holdMode = (run: Run, s: Statements) =>
  Effect.map(
    run<{ readonly locked: boolean }>(
      `SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema() || '.' || $2)) AS locked`,
      s.mode
    ),
    (rows) => rows[0]?.locked === true
  )

/** Writes this instance's heartbeat, naming its lock session's backend. */
export const heartbeat = (run: Run, s: Statements, id: string) =>
  run(
    `INSERT INTO ${s.instances} (id, pid, beat_at) VALUES ($1, pg_backend_pid(), now())
    ON CONFLICT (id) DO UPDATE SET pid = EXCLUDED.pid, beat_at = EXCLUDED.beat_at`,
    [id]
  )

/** What an instance sees of the others. */
export interface Survey {
  readonly me: number
  readonly instances: ReadonlyArray<{
    readonly id: string
    readonly pid: number
    readonly fresh: boolean
    readonly connected: boolean
  }>
  /** Every shard lock held, and the backend holding it. */
  readonly locks: ReadonlyArray<{ readonly shard: number; readonly pid: number }>
}

/** Reads the instances and who holds which shard, in one statement. */
export const survey = (run: Run, s: Statements): Effect.Effect<Survey, SqlError> =>
  Effect.map(
    run<{ readonly survey: string }>(
      `SELECT json_build_object(
        'me', pg_backend_pid(),
        'instances', COALESCE((SELECT json_agg(json_build_object(
          'id', i.id, 'pid', i.pid,
          'fresh', i.beat_at > now() - $1 * interval '1 millisecond',
          'connected', EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = i.pid))) FROM ${s.instances} i), '[]'),
        'locks', COALESCE((SELECT json_agg(json_build_object('shard', l.objid::bigint, 'pid', l.pid))
          FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = $2::int::oid AND l.objsubid = 2
          AND l.granted), '[]')
      )::text AS survey`,
      [s.config.hungAfter, s.shardKey]
    ),
    (rows) => JSON.parse(rows[0]!.survey) as Survey
  )

/** Tries the locks of `shards` (on the lock session); answers with the shards it now owns. */
export const take = (run: Run, s: Statements, shards: ReadonlyArray<number>) =>
  Effect.map(
    run<{ readonly k: number }>(`SELECT k FROM unnest($2::int[]) AS k WHERE pg_try_advisory_lock($1, k)`, [
      s.shardKey,
      shards
    ]),
    (rows) => rows.map((row) => Number(row.k))
  )

/** Releases the locks of `shards` (on the lock session), and tells the others. */
export const release = (run: Run, s: Statements, shards: ReadonlyArray<number>) =>
  Effect.zipRight(
    run(`SELECT pg_advisory_unlock($1, k) FROM unnest($2::int[]) AS k`, [s.shardKey, shards]),
    run(`SELECT pg_notify($1, 'free')`, [s.channel])
  )

/** Ends the session of a hung instance, and forgets it; its locks go when its backend exits. */
export const terminate = (run: Run, s: Statements, instance: { readonly id: string; readonly pid: number }) =>
  Effect.zipRight(
    run(`SELECT pg_terminate_backend($1)`, [instance.pid]),
    run(`DELETE FROM ${s.instances} WHERE id = $1 AND pid = $2`, [instance.id, instance.pid])
  )

/** Forgets instances whose session is gone, and the outcomes kept for them. */
export const forget = (run: Run, s: Statements, ids: ReadonlyArray<string>) =>
  run(
    `WITH gone AS (DELETE FROM ${s.instances} WHERE id = ANY($1::text[]))
    DELETE FROM ${s.outcomes} WHERE awaited_by = ANY($1::text[])`,
    [ids]
  )

/**
 * Why the lock session cannot be trusted, if it cannot: its heartbeat, written
 * on the session, names another backend than the survey read on it. That is a
 * connection pooler in transaction mode (PgBouncer's `pool_mode=transaction`)
 * handing each statement to whichever server connection is free, under which
 * session locks mean nothing. Seen whenever two statements land on two
 * backends; a pooler that happens to keep one backend goes unseen.
 *
 * @internal
 */
export const sessionMoved = (survey: Survey, instance: string): string | undefined => {
  const mine = survey.instances.find((i) => i.id === instance)
  return mine === undefined || mine.pid === survey.me
    ? undefined
    : `the lock session's statements ran on two server backends (${mine.pid}, then ${survey.me}): ` +
      "a connection pooler in transaction mode sits between this instance and PostgreSQL, " +
      "and shared mode needs session-level locks (connect directly, or through a pooler in session mode)"
}

/** What one look at the shards decides. */
export interface Plan {
  readonly release: ReadonlyArray<number>
  /** Free shards to try, as many as this instance should take. */
  readonly take: ReadonlyArray<number>
  /** Hung instances whose session to end. */
  readonly terminate: ReadonlyArray<{ readonly id: string; readonly pid: number }>
  /** Instances whose session is gone. */
  readonly forget: ReadonlyArray<string>
}

/**
 * Decides what to take, release and end. Live instances are those whose
 * heartbeat is fresh and whose lock session still exists (a killed one's is
 * gone at once, so its share is taken without waiting for `hungAfter`). Each
 * should own at most `ceil(shards / live)` shards: an instance above that
 * releases the excess, one below takes free shards, in the order `order`
 * gives (a random one, so that instances starting together do not all try
 * the same shards). In `"take"` mode (flushing) it takes its share of the
 * free shards but releases none: a flushing instance finishes what it holds,
 * then hands every shard back at once. In `"hold"` mode it does neither.
 *
 * @internal
 */
export const plan = (
  survey: Survey,
  shards: number,
  owned: ReadonlySet<number>,
  order: (free: Array<number>) => ReadonlyArray<number>,
  mode: ShareMode
): Plan => {
  const others = survey.instances.filter((i) => i.pid !== survey.me)
  const live = 1 + others.filter((i) => i.fresh && i.connected).length
  const holders = new Set(survey.locks.map((l) => l.pid))
  const target = Math.ceil(shards / live)
  const mine = Array.from(owned).sort((a, b) => a - b)
  const taken = new Set(survey.locks.map((l) => l.shard))
  const free: Array<number> = []
  for (let shard = 0; shard < shards; shard++) if (!taken.has(shard)) free.push(shard)
  return {
    release: mode === "share" && mine.length > target ? mine.slice(target) : [],
    take: mode !== "hold" && mine.length < target ? order(free).slice(0, target - mine.length) : [],
    terminate: others.filter((i) => !i.fresh && i.connected && holders.has(i.pid)),
    forget: others.filter((i) => !i.connected).map((i) => i.id)
  }
}

/** How an instance shares the shards (see `plan`). @internal */
export type ShareMode = "share" | "take" | "hold"

/** The PostgreSQL client's `listen`, when the journal has one. */
export type Listen = Option.Option<(channel: string) => Stream.Stream<string, SqlError>>

/** What the shared store needs of the journal. */
export interface Sharing {
  readonly statements: Statements
  readonly sql: SqlClient.SqlClient
  readonly listen: Listen
  readonly append: (appends: ReadonlyArray<SharedEntry>) => Effect.Effect<ReadonlyArray<AppendResult>, JournalError>
  readonly journal: Journal.Service
}

interface LaneRow {
  readonly lane: string
  readonly shard: number | string
  readonly pending: number | string
  readonly head_id: string
  readonly head_attempts: number | string
  readonly owner: string | null
  readonly halted: boolean
  readonly paused: boolean
}

/**
 * Every lane with pending tasks, in lane order: one pass over the pending
 * rows (a hash aggregate: its cost grows with the pending rows, not with a
 * sort of them), a primary-key lookup per lane for its head, and one scan of
 * the server's lock table for the owners.
 */
export const lanes = (run: Run, s: Statements): Effect.Effect<ReadonlyArray<LaneView>, JournalError> =>
  run<LaneRow>(
    `WITH l AS (
      SELECT lane, min(shard) AS shard, count(*) AS pending, min(seq) AS head FROM ${s.pending} GROUP BY lane
    ), owners AS (
      SELECT k.objid::bigint AS shard, i.id FROM pg_locks k JOIN ${s.instances} i ON i.pid = k.pid
      WHERE k.locktype = 'advisory' AND k.classid = $1::int::oid AND k.objsubid = 2 AND k.granted
    )
    SELECT l.lane, l.shard, l.pending, p.id AS head_id, p.attempts AS head_attempts, o.id AS owner,
      EXISTS (SELECT 1 FROM ${s.halted} h WHERE h.lane = l.lane AND NOT h.paused) AS halted,
      EXISTS (SELECT 1 FROM ${s.halted} h WHERE h.lane = l.lane AND h.paused) AS paused
    FROM l JOIN ${s.pending} p ON p.seq = l.head LEFT JOIN owners o ON o.shard = l.shard
    ORDER BY l.lane`,
    [s.shardKey]
  ).pipe(
    Effect.map((rows) =>
      rows.map((row): LaneView => ({
        lane: row.lane,
        shard: Number(row.shard),
        pending: Number(row.pending),
        headId: row.head_id,
        headAttempts: Number(row.head_attempts),
        owner: row.owner ?? undefined,
        halted: row.halted,
        paused: row.paused
      }))
    ),
    guard("Failed to read the journal's lanes")
  )
