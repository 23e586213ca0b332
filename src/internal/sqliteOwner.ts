/**
 * Ownership of a SQLite journal file: which file a filename names, and the
 * locks that give that file a single owner.
 *
 * A file can be reached by many names: a relative and an absolute path, a
 * path through a symbolic link, a hard link. The lock is taken on the file,
 * not on the name:
 *
 * - across processes, an exclusive SQLite lock on `<real path>.lock`, where
 *   the real path has every symbolic link, `.` and `..` resolved;
 * - in this process, the file's device and inode as well, which is what two
 *   hard links share.
 *
 * A hard link opened by another process is not detected: its real path is
 * its own. SQLite itself names its `-wal` and `-shm` files after the path, so
 * two processes on two hard links of one WAL database can corrupt it; the
 * journal warns when its file has more than one link.
 *
 * @internal
 */
import Sqlite from "better-sqlite3"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import { JournalError, JournalLockedError } from "../Journal.js"

/**
 * Where a journal lives: in memory (asked for as `":memory:"`, in so many
 * words), or in the file at `path`, a real path.
 *
 * @internal
 */
export type Target =
  | { readonly _tag: "memory" }
  | { readonly _tag: "file"; readonly filename: string; readonly path: string }

/**
 * The file `filename` names, resolved to its real path; it need not exist
 * yet, but the directory it goes in must. A missing or empty filename is an
 * error: an empty one would give an anonymous temporary database, which
 * keeps nothing.
 *
 * @internal
 */
export const resolve = (filename: unknown): Effect.Effect<Target, JournalError> => {
  if (typeof filename !== "string" || filename === "") {
    return Effect.fail(
      new JournalError({
        reason: `No journal file given (filename is ${JSON.stringify(filename) ?? String(filename)}): ` +
          `pass the path of the database file, or ":memory:" for a journal that keeps nothing`
      })
    )
  }
  if (filename === ":memory:") return Effect.succeed({ _tag: "memory" })
  return Effect.try({
    try: () => realPath(path.resolve(filename), 0),
    catch: (cause) => new JournalError({ reason: `Failed to open the journal ${filename}`, cause })
  }).pipe(
    Effect.filterOrFail(
      (real) => !isDirectory(real),
      () => new JournalError({ reason: `Failed to open the journal ${filename}: it is a directory` })
    ),
    Effect.map((real): Target => ({ _tag: "file", filename, path: real }))
  )
}

/** The real path of `absolute`, which may not exist yet, though its directory must; follows a dangling link. */
const realPath = (absolute: string, links: number): string => {
  const entry = fs.lstatSync(absolute, { throwIfNoEntry: false })
  if (entry === undefined) return path.join(fs.realpathSync(path.dirname(absolute)), path.basename(absolute))
  if (entry.isSymbolicLink() && links < 40 && !fs.existsSync(absolute)) {
    // a link to a file still to be created: SQLite creates the file the link points to
    return realPath(path.resolve(path.dirname(absolute), fs.readlinkSync(absolute)), links + 1)
  }
  return fs.realpathSync(absolute)
}

const isDirectory = (real: string) => fs.statSync(real, { throwIfNoEntry: false })?.isDirectory() === true

/**
 * Holds `BEGIN EXCLUSIVE` on `<real path>.lock` through a connection of its
 * own for the lifetime of the scope. Closing the connection (scope end, or
 * the process dying) releases it. Taken before the database file is opened.
 *
 * @internal
 */
export const lockFile = (
  target: Extract<Target, { _tag: "file" }>
): Effect.Effect<void, JournalError | JournalLockedError, Scope.Scope> => {
  const lockPath = `${target.path}.lock`
  return Effect.acquireRelease(
    Effect.try({
      // timeout 0: refuse at once instead of waiting for the holder
      try: () => new Sqlite(lockPath, { timeout: 0 }),
      catch: (cause) => new JournalError({ reason: `Failed to open the journal lock ${lockPath}`, cause })
    }),
    (db) => Effect.sync(() => db.close())
  ).pipe(
    Effect.flatMap((db) =>
      Effect.try({
        try: () => db.exec("BEGIN EXCLUSIVE"),
        catch: (cause) =>
          isBusy(cause)
            ? new JournalLockedError({ resource: target.filename, cause })
            : new JournalError({ reason: `Failed to lock the journal ${target.filename}`, cause })
      })
    )
  )
}

const isBusy = (cause: unknown) => {
  const code = (cause as { readonly code?: unknown } | null)?.code
  return code === "SQLITE_BUSY" || code === "SQLITE_LOCKED"
}

/**
 * The database files owned in this process, by device and inode. Kept on
 * `globalThis`, so that two copies of this module loaded side by side share
 * it.
 */
const owned: Set<string> = (() => {
  const key = Symbol.for("effect-sequent/SqliteJournal/owned")
  const global = globalThis as { [key]?: Set<string> }
  return global[key] ??= new Set<string>()
})()

/**
 * Claims the database file, which exists by now, for this process's owner
 * for the lifetime of the scope: another layer of this process that reached
 * the same file by another name (a hard link) is refused.
 *
 * @internal
 */
export const claimFile = (
  target: Extract<Target, { _tag: "file" }>
): Effect.Effect<void, JournalError | JournalLockedError, Scope.Scope> =>
  Effect.try({
    try: () => fs.statSync(target.path, { bigint: true }),
    catch: (cause) => new JournalError({ reason: `Failed to open the journal ${target.filename}`, cause })
  }).pipe(
    Effect.flatMap((stats) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const inode = `${stats.dev}:${stats.ino}`
          if (owned.has(inode)) return Effect.fail(new JournalLockedError({ resource: target.filename }))
          owned.add(inode)
          return Effect.succeed(inode)
        }),
        (inode) => Effect.sync(() => owned.delete(inode))
      ).pipe(
        Effect.tap(() =>
          stats.nlink > 1n
            ? Effect.logWarning(
              `Sequent: the journal ${target.filename} has ${stats.nlink} hard links; ` +
                "another process that opens it through another link is not locked out"
            )
            : Effect.void
        )
      )
    ),
    Effect.asVoid
  )
