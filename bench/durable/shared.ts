/**
 * Helpers for the durable benchmark children and their orchestrator: flags, the
 * fresh SQLite directory of a run, the exactly-once/in-order check, the one
 * `RESULT <json>` line a child prints, and min/median/max.
 *
 * Kept apart from `bench/shared.ts` (the in-memory suite) so that each suite can
 * change on its own.
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"

export const now = (): number => performance.now()

export { intArg, parseArgs } from "../shared.js"

/**
 * A fresh directory for one run's database, removed when the process exits
 * (the children end with `process.exit`, so an `exit` hook is the one that runs).
 */
export const freshDatabase = (label: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `durable-bench-${label}-`))
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }))
  return join(dir, "bench.db")
}

/**
 * The pragmas every implementation runs with, the ones `SqliteJournal` sets for
 * itself: WAL (which `SqliteClient` already turns on) and `synchronous = NORMAL`
 * (a committed transaction is in the WAL without an fsync per commit).
 * better-sqlite3's default is `FULL`, which would fsync every commit of the
 * competitors and measure the disk rather than the library.
 */
export const samePragmas: Effect.Effect<void, unknown, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.zipRight(sql`PRAGMA journal_mode = WAL`, sql`PRAGMA synchronous = NORMAL`)
)

/** A `SqliteClient` on `filename` with {@link samePragmas} applied. */
export const sqliteLayer = (filename: string) =>
  SqliteClient.layer({ filename }).pipe(
    Layer.tap((context) => Effect.orDie(Effect.provide(samePragmas, context)))
  )

export class CheckError extends Error {}

/**
 * Tasks 0..n-1 must run exactly once each, and in order within each lane, where
 * task i belongs to lane `i % lanes` (with one lane: 0, 1, 2, ... in order).
 */
export class LaneCheck {
  readonly next: Int32Array
  count = 0
  errors = 0
  first = ""
  constructor(readonly lanes: number) {
    this.next = Int32Array.from({ length: lanes }, (_, lane) => lane)
  }
  see(i: number): void {
    const lane = i % this.lanes
    const expected = this.next[lane]!
    if (i !== expected && this.errors++ === 0) {
      this.first = `lane ${lane}: task ${i} ran when task ${expected} was expected`
    }
    this.next[lane] = i + this.lanes
    this.count++
  }
  verify(n: number): void {
    if (this.errors > 0) throw new CheckError(`${this.errors} out-of-order or repeated runs; first: ${this.first}`)
    if (this.count !== n) throw new CheckError(`${this.count} of ${n} tasks ran`)
  }
  describe(unit = "lane", units = `${unit}s`): string {
    return this.lanes === 1
      ? `each ran once, in order (one ${unit})`
      : `each ran once, in order per ${unit} (${this.lanes} ${units})`
  }
}

/** What a child reports: one line `RESULT <json>` on stdout. */
export interface Result {
  readonly impl: string
  readonly mode: string
  readonly n: number
  /** ms from the first schedule/offer/send to the last task's completion being committed */
  readonly totalMs: number
  /** ms until the last schedule/offer/send had returned (committed) */
  readonly enqueueMs: number
  readonly tasksPerSecond: number
  /** CPU time (user + system) of the process over the measured interval */
  readonly cpuMs: number
  readonly check: string
}

/** Starts the clocks: call `stop` once the last task's completion is committed. */
export const stopwatch = () => {
  const t0 = now()
  const cpu0 = process.cpuUsage()
  return {
    elapsed: () => now() - t0,
    cpuMs: () => {
      const cpu = process.cpuUsage(cpu0)
      return (cpu.user + cpu.system) / 1000
    }
  }
}

export const result = (r: Omit<Result, "tasksPerSecond">): Result => ({
  ...r,
  tasksPerSecond: Math.round(r.n / (r.totalMs / 1000))
})

/** Runs a child's program; prints its result, or the failure and exits non-zero. */
export const main = (program: Effect.Effect<Result, unknown>, watchdogMs = 600_000): void => {
  const watchdog = setTimeout(() => {
    process.stderr.write(`durable benchmark child timed out after ${watchdogMs} ms\n`)
    process.exit(3)
  }, watchdogMs)
  watchdog.unref()
  Effect.runPromiseExit(program).then((exit) => {
    if (exit._tag === "Success") {
      process.stdout.write(`RESULT ${JSON.stringify(exit.value)}\n`)
      process.exit(0)
    }
    process.stderr.write(`\nDURABLE BENCHMARK FAILED:\n${Cause.pretty(exit.cause)}\n`)
    process.exit(2)
  })
}

export interface Spread {
  readonly min: number
  readonly median: number
  readonly max: number
}

export const spread = (xs: ReadonlyArray<number>): Spread => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return {
    min: s[0] ?? NaN,
    median: s.length === 0 ? NaN : s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2,
    max: s[s.length - 1] ?? NaN
  }
}
