/**
 * A durable `Journal` in a SQLite file, on `@effect/sql-sqlite-node`
 * (better-sqlite3).
 *
 * Durability: the database runs in WAL mode with `synchronous = NORMAL`. A
 * transaction that has returned is in the write-ahead log, which the operating
 * system keeps even when the process is killed (`kill -9`, a crash, an OOM
 * kill); only a power loss or an operating-system crash can lose the last
 * transactions before a checkpoint. Pass `synchronous: "FULL"` if you need to
 * survive those too.
 *
 * Ownership: one process owns a journal file at a time. The owner holds an
 * exclusive SQLite lock on a companion file, `<real path>.lock`, for as long
 * as its layer is alive, where the real path is the database file's with
 * every symbolic link, `.` and `..` resolved; a second owner (another
 * process, or another layer in the same process) is refused with
 * `JournalLockedError`, whatever name it reaches the file by. The lock is a
 * POSIX file lock, so the operating system releases it when the owner dies,
 * even by `SIGKILL`, and a restarted process can take over straight away. The
 * `.lock` file itself stays on disk; it holds no data. In the same process,
 * a second layer is refused even through a hard link to the file; a process
 * that opens a hard link of the file is not, so give a journal's file one
 * name only (SQLite names its `-wal` and `-shm` files after the path, and two
 * processes on two links of one database can corrupt it). An in-memory
 * database (`":memory:"`, or `layerMemory`) belongs to its connection alone
 * and takes no lock; an empty filename is refused, as it would give an
 * anonymous temporary database that keeps nothing.
 *
 * Connection: `layer` opens a client of its own, and the journal holds that
 * client's connection for as long as the layer lives, running its statements
 * on it directly (no `sql.execute` span per statement, and about 20 µs less
 * each). `make` and `layerFromClient` share the client they are given: every
 * statement goes through it, so other code can use it at the same time.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as owner from "./internal/sqliteOwner.js"
import * as internal from "./internal/sqlJournal.js"
import { Journal, JournalError, type JournalLockedError } from "./Journal.js"

/**
 * Options shared by every constructor.
 *
 * - `tablePrefix`: prefix of the journal's tables (`<prefix>pending`,
 *   `<prefix>dead_letters`, `<prefix>migrations`); defaults to `"sequent_"`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MakeOptions {
  readonly tablePrefix?: string | undefined
  /**
   * SQLite's `synchronous` setting: `"NORMAL"` (the default) survives a killed
   * process; `"FULL"` also survives a power loss, at the cost of an fsync per
   * transaction.
   */
  readonly synchronous?: "NORMAL" | "FULL" | undefined
}

/**
 * Options of `layer`: the database file, and the shared options.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends MakeOptions {
  readonly filename: string
}

/**
 * Builds the journal over the `SqliteClient` in context: takes the
 * ownership lock (skipped for a `:memory:` database), switches the connection
 * to WAL with `synchronous = NORMAL`, and creates or migrates the tables. A
 * client opened on an empty filename (an anonymous temporary database, which
 * keeps nothing) is refused with `JournalError`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options?: MakeOptions | undefined
): Effect.Effect<
  Journal.Service,
  JournalError | JournalLockedError,
  SqliteClient.SqliteClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const client = yield* SqliteClient.SqliteClient
    const target = yield* owner.resolve(client.config.filename)
    if (target._tag === "file") {
      yield* owner.lockFile(target)
      yield* owner.claimFile(target)
    }
    return yield* makeLocked(client, options, "shared")
  })

/**
 * A journal in the SQLite file `filename`, which is created if missing. The
 * layer owns the file (see the module documentation) until its scope closes.
 * A missing or empty `filename`, or one that names a directory, fails the
 * layer with `JournalError`; `":memory:"` is a journal that keeps nothing
 * (see `layerMemory`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Journal } from "effect-sequent"
 * import * as SqliteJournal from "effect-sequent/SqliteJournal"
 *
 * const program = Effect.gen(function*() {
 *   const journal = yield* Journal
 *   return yield* journal.pending
 * })
 *
 * Effect.runPromise(Effect.provide(program, SqliteJournal.layer({ filename: "jobs.db" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: LayerOptions): Layer.Layer<Journal, JournalError | JournalLockedError> =>
  Layer.scoped(
    Journal,
    Effect.gen(function*() {
      const target = yield* owner.resolve(options.filename)
      if (target._tag === "memory") return yield* makeLocked(yield* open(":memory:", ":memory:"), options, "owned")
      // Take ownership before touching the database file at all.
      yield* owner.lockFile(target)
      const client = yield* open(target.path, target.filename)
      yield* owner.claimFile(target)
      // Nothing else can reach this client, so the journal may hold its connection.
      return yield* makeLocked(client, options, "owned")
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * A journal in an in-memory SQLite database: nothing survives the layer, and
 * no lock is taken. For tests; `Journal.layerMemory` does the same without
 * SQLite.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MakeOptions | undefined): Layer.Layer<Journal, JournalError> =>
  Layer.scoped(Journal, Effect.flatMap(open(":memory:", ":memory:"), (client) => makeLocked(client, options, "owned")))
    .pipe(Layer.provide(Reactivity.layer))

/** A client of the journal's own on `filename` (`shown` in errors). */
const open = (filename: string, shown: string) =>
  SqliteClient.make({ filename }).pipe(
    // better-sqlite3 throws when it cannot open the file.
    Effect.catchAllDefect((cause) =>
      Effect.fail(new JournalError({ reason: `Failed to open the journal ${shown}`, cause }))
    )
  )

/**
 * The journal over an existing `SqliteClient` (for example one that other
 * tables share). Ownership works as with `layer`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (
  options?: MakeOptions | undefined
): Layer.Layer<Journal, JournalError | JournalLockedError, SqliteClient.SqliteClient> =>
  Layer.scoped(Journal, make(options))

const makeLocked = (
  client: SqliteClient.SqliteClient,
  options: MakeOptions | undefined,
  connection: internal.Connection
) =>
  Effect.gen(function*() {
    yield* client`PRAGMA journal_mode = WAL`.pipe(
      Effect.zipRight(client.unsafe(`PRAGMA synchronous = ${options?.synchronous === "FULL" ? "FULL" : "NORMAL"}`)),
      Effect.mapError((cause) =>
        new JournalError({ reason: `Failed to configure the journal ${client.config.filename}`, cause })
      )
    )
    return yield* internal.make({ tablePrefix: options?.tablePrefix ?? internal.defaultTablePrefix, connection }).pipe(
      Effect.provideService(SqlClient.SqlClient, client)
    )
  })
