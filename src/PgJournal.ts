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
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/sqlJournal.js"
import { Journal, JournalError, JournalLockedError } from "./Journal.js"

/**
 * Options shared by every constructor.
 *
 * - `tablePrefix`: prefix of the journal's tables (`<prefix>pending`,
 *   `<prefix>dead_letters`, `<prefix>migrations`) in the connection's current
 *   schema; defaults to `"sequent_"`. Journals with different prefixes are
 *   independent, each with its own lock.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly tablePrefix?: string | undefined
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
  const { tablePrefix, ...config } = options
  return Layer.scoped(
    Journal,
    Effect.gen(function*() {
      const client = yield* PgClient.make(config).pipe(
        Effect.mapError((cause) => new JournalError({ reason: "Failed to connect to the journal database", cause }))
      )
      return yield* make({ tablePrefix }).pipe(Effect.provideService(SqlClient.SqlClient, client))
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

const lockKey = "hashtext(current_schema() || '.' || $2)"

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
      connection.execute(`SELECT pg_advisory_unlock($1, ${lockKey})`, [lockNamespace, tablePrefix], undefined).pipe(
        Effect.ignore
      )
    )
  }).pipe(
    Effect.catchTag("SqlError", (cause) =>
      Effect.fail(new JournalError({ reason: `Failed to lock the journal tables ${tablePrefix}*`, cause })))
  )
