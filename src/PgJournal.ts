/**
 * A durable `Journal` in PostgreSQL, on `@effect/sql-pg`.
 *
 * Every write is one transaction, committed before the call returns.
 *
 * Ownership: one process owns a journal (a database, schema and table prefix)
 * at a time. The owner holds a session-level advisory lock,
 * `pg_try_advisory_lock(<namespace>, hashtext(<schema>.<prefix>))`, on a
 * connection reserved for as long as its layer is alive; a second owner is
 * refused with `JournalLockedError`. The server drops the lock when that
 * session ends, so a killed owner's lock goes with its connection. The other
 * side of that coin: if the connection is cut while the owner lives, the lock
 * is gone too, and the journal does not notice.
 *
 * Shared mode (`sharing`): many instances, each running `Durable.layer` on
 * the same journal. Any instance may schedule; lanes are hashed onto shards,
 * each shard is owned by one instance at a time through a session advisory
 * lock on a connection of its own, and the instances share the shards fairly.
 * Per lane, tasks start in the order their appends committed. An instance
 * writes the outcome of a shard's tasks on the session that holds the
 * shard's lock, so one that lost a shard (its session was cut, it froze past
 * `hungAfter` and another ended its session, the server restarted) commits
 * nothing more for it; it stops the shard's running tasks and lets go of its
 * lanes. A killed instance's shards are taken over within about a second; a
 * frozen one's after `hungAfter`. `submit` answers with the outcome wherever
 * the task runs; `pause` and `resume` act on the whole journal; `flush` waits
 * for the instance's tasks wherever they run, then hands its shards over.
 * Shared mode needs session-level features: a connection pooler in
 * transaction mode (PgBouncer's `pool_mode=transaction`) breaks advisory locks
 * and LISTEN; it is not supported, and is refused where it is seen.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as shared from "./internal/pgShared.js"
import * as SharedStore from "./internal/sharedStore.js"
import { type LaneView as InternalLaneView, sharingOf, withSharing } from "./internal/sharing.js"
import * as internal from "./internal/sqlJournal.js"
import { Journal, JournalError, JournalLockedError } from "./Journal.js"

/**
 * Options shared by every constructor.
 *
 * - `tablePrefix`: prefix of the journal's tables (`<prefix>pending`,
 *   `<prefix>dead_letters`, `<prefix>migrations`) in the connection's current
 *   schema; defaults to `"sequent_"`. Journals with different prefixes are
 *   independent, each with its own lock.
 * - `sharing`: run the journal in shared mode (see the module documentation);
 *   without it, the journal has a single owner.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly tablePrefix?: string | undefined
  /** @since 0.2.0 */
  readonly sharing?: SharingOptions | undefined
}

/**
 * Options of shared mode.
 *
 * - `shards`: how many shards the lanes are hashed onto (default 64). Every
 *   instance of a journal must use the same number; an instance started with
 *   another is refused with `JournalError`.
 * - `heartbeat`: how often an instance writes its heartbeat (default 1 second).
 * - `hungAfter`: how old an instance's heartbeat may grow before the others
 *   end its session and take its shards (default 10 seconds). Make it several
 *   heartbeats long: an instance that pauses longer (a long GC, a frozen VM)
 *   loses its shards. An instance whose last heartbeat is
 *   `(hungAfter + heartbeat) / 2` old while its lock session does not answer
 *   (a network that stalls) stops the tasks of its shards and gives them up
 *   once `min(heartbeat, (hungAfter - heartbeat) / 2)` more has passed,
 *   before the others can end its session.
 *
 * @since 0.2.0
 * @category models
 */
export interface SharingOptions {
  readonly shards?: number | undefined
  readonly heartbeat?: Duration.DurationInput | undefined
  readonly hungAfter?: Duration.DurationInput | undefined
}

/**
 * Options of `layer`: how to connect (a `url`, or host, database, user…), and
 * the shared options.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends PgClient.PgClientConfig, MakeOptions {}

/**
 * The first key of the journal's advisory locks, so they do not collide with
 * the application's own single-key locks.
 *
 * @since 0.1.0
 * @category constants
 */
export const lockNamespace = 0x5e9e17

/**
 * Builds the journal over the `SqlClient` in context (a PostgreSQL one): takes
 * the ownership lock on a reserved connection, then creates or migrates the
 * tables.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: MakeOptions | undefined
): Effect.Effect<Journal.Service, JournalError | JournalLockedError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const tablePrefix = options?.tablePrefix ?? internal.defaultTablePrefix
    if (options?.sharing !== undefined) return yield* makeShared(tablePrefix, options.sharing)
    yield* acquireLock(tablePrefix)
    return yield* internal.make({ tablePrefix })
  })

/**
 * A journal in the PostgreSQL database described by `options`. The layer owns
 * its tables (see the module documentation) until its scope closes.
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import { Journal } from "effect-sequent"
 * import * as PgJournal from "effect-sequent/PgJournal"
 *
 * const JournalLive = PgJournal.layer({ url: Redacted.make("postgres://postgres@localhost/app") })
 *
 * const program = Effect.flatMap(Journal, (journal) => journal.pending)
 *
 * Effect.runPromise(Effect.provide(program, JournalLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<Journal, JournalError | JournalLockedError> => {
  const { sharing, tablePrefix, ...config } = options
  return Layer.scoped(
    Journal,
    Effect.gen(function*() {
      const client = yield* PgClient.make(config).pipe(
        Effect.mapError((cause) => new JournalError({ reason: "Failed to connect to the journal database", cause }))
      )
      return yield* make({ tablePrefix, sharing }).pipe(
        Effect.provideService(SqlClient.SqlClient, client),
        Effect.provideService(PgClient.PgClient, client)
      )
    })
  ).pipe(Layer.provide(Reactivity.layer))
}

/**
 * The journal over an existing PostgreSQL `SqlClient`. Ownership works as
 * with `layer`; the lock holds one of the client's pooled connections.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: MakeOptions | undefined
): Layer.Layer<Journal, JournalError | JournalLockedError, SqlClient.SqlClient> => Layer.scoped(Journal, make(options))

/**
 * One lane of a shared journal, as an operator sees it: its shard, its
 * pending tasks, the task at its head and the attempts that task has failed
 * so far, the instance that owns the lane's shard now (its heartbeat id),
 * whether a give-up halted it, and whether it is paused.
 *
 * @since 0.2.0
 * @category models
 */
export interface LaneView extends InternalLaneView {}

/**
 * Every lane of the shared journal in context that has pending tasks, from
 * any instance, in lane order. One pass over the pending rows: at 100,000
 * lanes it costs what reading their pending rows once costs. Fails with
 * `JournalError` on a journal that is not a shared PostgreSQL one.
 *
 * @since 0.2.0
 * @category accessors
 */
export const lanes: Effect.Effect<ReadonlyArray<LaneView>, JournalError, Journal> = Effect.flatMap(
  Journal,
  (journal) => {
    const mode = sharingOf(journal)
    return mode === undefined
      ? Effect.fail(new JournalError({ reason: "PgJournal.lanes needs a shared PostgreSQL journal (`sharing`)" }))
      : mode.lanes
  }
)

const lockKey = "hashtext(current_schema() || '.' || $2)"

/** The unlock a layer's finalizer runs, for at most two seconds: on a stalled network the lock goes with the connection. */
const unlockOnClose = (unlock: Effect.Effect<unknown, SqlError>): Effect.Effect<void> => shared.bounded(unlock, 2_000)

const acquireLock = (tablePrefix: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const connection = yield* sql.reserve
    const rows = yield* connection.execute(
      `SELECT pg_try_advisory_lock($1, ${lockKey}) AS locked`,
      [lockNamespace, tablePrefix],
      undefined
    )
    if (rows[0]?.locked !== true) {
      return yield* new JournalLockedError({ resource: `PostgreSQL tables ${tablePrefix}*` })
    }
    // The reserved connection goes back to the pool after this finalizer, so
    // the lock must not outlive the scope on it.
    yield* Effect.addFinalizer(() =>
      unlockOnClose(
        connection.execute(`SELECT pg_advisory_unlock($1, ${lockKey})`, [lockNamespace, tablePrefix], undefined)
      )
    )
  }).pipe(
    Effect.catchTag("SqlError", (cause) =>
      Effect.fail(new JournalError({ reason: `Failed to lock the journal tables ${tablePrefix}*`, cause })))
  )

/** The lock every shared instance holds (shared) and a single owner takes (exclusive): the two modes exclude each other. */
const modeLock = `pg_try_advisory_lock_shared($1, ${lockKey})`
/** Held while an instance migrates and prepares the tables, so that instances starting together take turns. */
const migrationLock = (verb: "lock" | "unlock") => `SELECT pg_advisory_${verb}($1, ${lockKey})`

const sharingConfig = (options: SharingOptions): shared.SharingConfig => {
  const shards = options.shards ?? 64
  const heartbeat = Duration.toMillis(options.heartbeat ?? Duration.seconds(1))
  const hungAfter = Duration.toMillis(options.hungAfter ?? Duration.seconds(10))
  // a killed instance is seen within a poll: keep it short, but no busier than the heartbeat needs
  return { shards, heartbeat, hungAfter, poll: Math.min(200, heartbeat) }
}

const invalidSharing = (config: shared.SharingConfig): string | undefined =>
  !Number.isInteger(config.shards) || config.shards < 1 || config.shards > 65536
    ? `shards must be a whole number from 1 to 65536, got ${config.shards}`
    : !(config.heartbeat > 0) || !(config.hungAfter > config.heartbeat)
    ? "heartbeat must be positive, and hungAfter longer than heartbeat"
    : undefined

/** Migrates the tables and prepares them for sharing; the caller holds the migration lock. */
const prepareShared = (
  run: shared.Run,
  sql: SqlClient.SqlClient,
  tablePrefix: string,
  config: shared.SharingConfig
) =>
  Effect.gen(function*() {
    const journal = yield* internal.make({ tablePrefix }).pipe(Effect.provideService(SqlClient.SqlClient, sql))
    const statements = yield* shared.statements(run, tablePrefix, config, lockNamespace)
    yield* shared.prepare(run, statements)
    return { journal, statements }
  })

/**
 * The shared journal: the mode lock (shared) on a connection held for the
 * layer's life, then the tables migrated and prepared under the migration
 * lock.
 */
const makeShared = (tablePrefix: string, options: SharingOptions) =>
  Effect.gen(function*() {
    const config = sharingConfig(options)
    const invalid = invalidSharing(config)
    if (invalid !== undefined) return yield* new JournalError({ reason: `Invalid sharing options: ${invalid}` })
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const pg = yield* Effect.serviceOption(PgClient.PgClient)
    const connection = yield* sql.reserve
    const run: shared.Run = <A extends object>(text: string, params: ReadonlyArray<unknown>) =>
      connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>
    const held = yield* run<{ readonly locked: boolean }>(`SELECT ${modeLock} AS locked`, [lockNamespace, tablePrefix])
    if (held[0]?.locked !== true) {
      return yield* new JournalLockedError({ resource: `PostgreSQL tables ${tablePrefix}* (held by a single owner)` })
    }
    // the reserved connection goes back to the pool after this finalizer, so the lock must not outlive the scope on it
    yield* Effect.addFinalizer(() =>
      unlockOnClose(run(`SELECT pg_advisory_unlock_shared($1, ${lockKey})`, [lockNamespace, tablePrefix]))
    )
    const { journal, statements } = yield* Effect.ensuring(
      Effect.zipRight(
        run(migrationLock("lock"), [lockNamespace + 1, tablePrefix]),
        prepareShared(run, sql, tablePrefix, config)
      ),
      Effect.ignore(run(migrationLock("unlock"), [lockNamespace + 1, tablePrefix]))
    )
    const append = shared.append(sql, statements)
    const sharedJournal: Journal.Service = {
      ...journal,
      append: (entries) => append(entries.map((entry) => ({ entry, awaitedBy: undefined }))),
      redrive: shared.redrive(sql, statements),
      unhalt: shared.unhalt(sql, statements)
    }
    const listen = Option.map(pg, (client) => client.listen)
    const sharing = { statements, sql, listen, append, journal: sharedJournal }
    return withSharing(sharedJournal, {
      makeStore: (tasks, clock) => SharedStore.make(sharing, tasks, clock),
      lanes: shared.lanes((text, params) => sql.unsafe(text, params), statements)
    })
  }).pipe(
    Effect.catchTag("SqlError", (cause) =>
      Effect.fail(new JournalError({ reason: `Failed to open the shared journal ${tablePrefix}*`, cause })))
  )
