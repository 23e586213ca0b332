/**
 * Instance processes of a shared PostgreSQL journal (`test/fixtures/sharedInstance.ts`), the run
 * log they write, and the checks made on it, for the kill-point and soak tests.
 *
 * An instance's stdout is read into its record as it comes: what it accepted (a task whose
 * `schedule` returned), the rounds it started, and its warnings. The run log has one row per
 * attempt, in the order attempts started; `checkRuns` judges it against what was accepted.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { type Child, spawnTsx } from "./ChildProcess.js"
import { url } from "./PgTables.js"

const fixture = fileURLToPath(new URL("../../fixtures/sharedInstance.ts", import.meta.url))

export const SHARDS = 16

/** What an instance printed, kept as it comes. */
export interface Printed {
  readonly accepted: Set<string>
  /** The last round it started, -1 before any. */
  lastRound: number
  /** The round after its production ended, once it has. */
  produced: number | undefined
  readonly warnings: Array<string>
  /** Whether stdout has closed (the process is gone). */
  closed: boolean
}

export interface Instance extends Child {
  readonly name: string
  readonly record: Printed
}

export interface InstanceOptions {
  readonly heartbeat?: number | undefined
  readonly hungAfter?: number | undefined
  readonly taskMs?: number | undefined
  readonly retryMs?: number | undefined
  /** `<prefix>:<count>`, the lanes it produces; none by default. */
  readonly lanes?: string | undefined
  readonly failSeed?: number | undefined
  readonly roundMs?: number | undefined
}

/** Polls `check` every 20 ms until it holds, failing with `what` after `within`. */
export const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, within = Duration.seconds(60)) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(20)), until: (done) => done }),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

export const awaitExit = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

const follow = (line: string, record: Printed) => {
  const [verb, a, b] = line.split(" ")
  if (verb === "accepted") record.accepted.add(`${a}:${b}`)
  else if (verb === "round") record.lastRound = Number(a)
  else if (verb === "produced") record.produced = Number(a)
  else if (/WARN|ERROR|FATAL/.test(line)) record.warnings.push(line)
}

/**
 * Starts an instance and waits for its `ready`; from then on its stdout goes into its record.
 * It is killed with the scope if still alive, and what it logged at warning level is printed.
 */
export const startInstance = (
  prefix: string,
  name: string,
  options: InstanceOptions = {}
): Effect.Effect<Instance, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.map(
      spawnTsx(fixture, [
        Redacted.value(url),
        prefix,
        name,
        options.heartbeat ?? 200,
        options.hungAfter ?? 10_000,
        options.taskMs ?? 4,
        options.retryMs ?? 10,
        options.lanes ?? "-",
        options.failSeed ?? 0,
        options.roundMs ?? 20
      ], { stdin: true }),
      (child): Instance => ({
        ...child,
        name,
        record: { accepted: new Set(), lastRound: -1, produced: undefined, warnings: [], closed: false }
      })
    ),
    ({ child, name, record, stderr }) =>
      Effect.sync(() => {
        // one that ended by itself failed: what it said is the reason a wait timed out
        if (child.exitCode !== null && child.exitCode !== 0) console.log(`instance ${name} failed:\n${stderr()}`)
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        for (const line of record.warnings) console.log(`instance ${name}: ${line}`)
      })
  ).pipe(Effect.tap((instance) =>
    Effect.gen(function*() {
      const line = yield* Queue.take(instance.lines)
      if (line !== "ready") return yield* Effect.dieMessage(`instance ${name} did not start:\n${instance.stderr()}`)
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(instance.lines), (next) =>
        Effect.sync(() => {
          if (next === undefined) instance.record.closed = true
          else follow(next, instance.record)
        }))))
    })
  ))

/** SIGKILL, and once it has exited, its stdout read to the end (every line it printed is in its record). */
export const kill = (instance: Instance) =>
  Effect.zipRight(
    Effect.sync(() => instance.child.kill("SIGKILL")),
    Effect.zipRight(awaitExit(instance.child), eventually("stdout closed", Effect.sync(() => instance.record.closed)))
  )

export interface RunRow {
  readonly id: string
  readonly worker: string
  readonly task: string
  readonly lane: string
  readonly n: number
  readonly ok: boolean
}

/** The run log and the journal's state, through this process's client; creates the log. */
export const journalTables = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const runs = sql(`${prefix}runs`)
    yield* sql`CREATE TABLE ${runs} (id BIGSERIAL PRIMARY KEY, worker TEXT NOT NULL, task TEXT NOT NULL,
      lane TEXT NOT NULL, n INTEGER NOT NULL, ok BOOLEAN NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`
    yield* sql`CREATE INDEX ON ${runs} (task)`
    const key = (name: string) =>
      Effect.map(
        sql<{ readonly k: number }>`SELECT hashtext(current_schema() || '.' || ${prefix} || ${name}) & 2147483647 AS k`,
        (rows) => rows[0]!.k
      )
    const shardKey = yield* key(":shards")
    const count = (query: Effect.Effect<ReadonlyArray<{ readonly c: string }>, unknown>) =>
      Effect.map(Effect.orDie(query), (rows) => Number(rows[0]!.c))
    return {
      sql,
      key,
      runs: sql<RunRow>`SELECT id, worker, task, lane, n, ok FROM ${runs} ORDER BY id`,
      runCount: count(sql`SELECT count(*) AS c FROM ${runs}`),
      /** The shards owned, per backend pid of a lock session. */
      owners: Effect.map(
        sql<{ readonly pid: number; readonly shards: string }>`SELECT pid, count(*) AS shards FROM pg_locks
          WHERE locktype = 'advisory' AND classid = ${shardKey}::int::oid AND objsubid = 2 AND granted GROUP BY pid`,
        (rows) => new Map(rows.map((row) => [row.pid, Number(row.shards)]))
      ),
      /** The shards owned, per instance name (the application name of its sessions). */
      ownersByName: Effect.map(
        sql<{ readonly name: string; readonly shards: string }>`SELECT a.application_name AS name, count(*) AS shards
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'
          AND l.classid = ${shardKey}::int::oid AND l.objsubid = 2 AND l.granted GROUP BY a.application_name`,
        (rows) => new Map(rows.map((row) => [row.name, Number(row.shards)]))
      ),
      /** The shards a lock session owns. */
      shardsOf: (pid: number) =>
        Effect.map(
          sql<{ readonly shard: string }>`SELECT objid::bigint AS shard FROM pg_locks WHERE locktype = 'advisory'
            AND classid = ${shardKey}::int::oid AND objsubid = 2 AND granted AND pid = ${pid}`,
          (rows) => new Set(rows.map((row) => Number(row.shard)))
        ),
      /** The lock session's backend of each instance that has beaten its heartbeat. */
      lockPids: Effect.map(
        sql<{ readonly pid: number }>`SELECT pid FROM ${sql(`${prefix}instances`)}`,
        (rows) => rows.map((row) => row.pid)
      ),
      now: Effect.map(sql<{ readonly t: number }>`SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t`, (r) =>
        Number(r[0]!.t)),
      pending: count(sql`SELECT count(*) AS c FROM ${sql(`${prefix}pending`)}`),
      deadLetters: count(sql`SELECT count(*) AS c FROM ${sql(`${prefix}dead_letters`)}`)
    }
  })

export const sum = <K>(owners: ReadonlyMap<K, number>) => Array.from(owners.values()).reduce((a, b) => a + b, 0)
/** Every shard owned, none by more than its share among `instances` (of 16 shards among 5, one may own none). */
export const fair = (owners: ReadonlyMap<number, number>, instances: number) =>
  sum(owners) === SHARDS && Array.from(owners.values()).every((n) => n <= Math.ceil(SHARDS / instances))

/** What the run log showed: tasks run, tasks run again after they had succeeded, and where. */
export interface Verdict {
  readonly ran: number
  readonly attempts: number
  readonly failedAttempts: number
  /** Runs of a task after one of its attempts had succeeded: `[task, first worker, later worker]`. */
  readonly reruns: ReadonlyArray<readonly [task: string, first: string, again: string]>
  /** Tasks that ran though their `schedule` never returned (their append was in flight at a kill). */
  readonly unaccepted: ReadonlyArray<string>
}

/**
 * Judges the run log (throws on a breach): every accepted task succeeded; every task that ran
 * was accepted or in `inFlight` (scheduled by a producer killed before its `schedule`
 * returned); per lane, the tasks' `n` never go down along the log, which says both that first
 * runs are in schedule order and that a task runs again only while it is its lane's head, in
 * flight (the next task starts only once its completion is committed); and every task that ran
 * succeeded at last.
 */
export const checkRuns = (
  rows: ReadonlyArray<RunRow>,
  accepted: ReadonlySet<string>,
  inFlight: (task: string) => boolean
): Verdict => {
  const head = new Map<string, number>()
  const succeeded = new Map<string, string>()
  const ran = new Set<string>()
  const reruns: Array<readonly [string, string, string]> = []
  let failedAttempts = 0
  for (const row of rows) {
    const last = head.get(row.lane) ?? -1
    if (row.n < last) {
      throw new Error(`lane ${row.lane}: ${row.task} ran (row ${row.id}) after task ${last} had started`)
    }
    head.set(row.lane, row.n)
    ran.add(row.task)
    const first = succeeded.get(row.task)
    if (first !== undefined) reruns.push([row.task, first, row.worker])
    else if (row.ok) succeeded.set(row.task, row.worker)
    if (!row.ok) failedAttempts++
  }
  for (const task of accepted) if (!succeeded.has(task)) throw new Error(`accepted task ${task} never succeeded`)
  const unaccepted = Array.from(ran).filter((task) => !accepted.has(task))
  for (const task of unaccepted) if (!inFlight(task)) throw new Error(`task ${task} ran but was never scheduled`)
  for (const task of ran) if (!succeeded.has(task)) throw new Error(`task ${task} ran but never succeeded`)
  return { ran: ran.size, attempts: rows.length, failedAttempts, reruns, unaccepted }
}
