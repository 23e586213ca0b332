/**
 * Many instances, one journal: worker processes (`test/fixtures/sharedWorker.ts`) share a
 * PostgreSQL journal (127.0.0.1:5432, database `test`; override with `SEQUENT_PG_URL`) while
 * this process appends, and faults hit them mid-stream: kill -9, a lock session cut with
 * `pg_terminate_backend`, a worker added, SIGSTOP past `hungAfter` then SIGCONT.
 *
 * Every worker logs each run it starts into `<prefix>runs` (one log for every process, in the
 * order the runs started), and a trigger logs which backend deleted each pending record (the
 * completions). After each scenario: every appended task ran; per lane, first runs are in
 * schedule order; a task ran twice only on two different workers (the in-flight task of a lane
 * that moved), at most once per lane and move; and a frozen worker committed nothing after its
 * session was ended. Synchronisation is by polling an observable condition with a deadline.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Journal } from "../../src/Journal.js"
import * as PgJournal from "../../src/PgJournal.js"
import { spawnTsx } from "./support/ChildProcess.js"
import { makeRun, url } from "./support/PgTables.js"

const run = makeRun("s")
const functions: Array<string> = []
afterAll(() => run.dropAll(functions))

const fixture = fileURLToPath(new URL("../fixtures/sharedWorker.ts", import.meta.url))
const SHARDS = 16
const HEARTBEAT = 200
/**
 * `hungAfter` of the freeze test. The others use a long one: on a loaded machine a worker can
 * miss a few seconds of heartbeats without being frozen, and then rightly loses its shards, which is
 * not what they are about.
 */
const HUNG_AFTER = 3_000
const RELAXED = 10_000
const TASK_MS = 4

interface Worker {
  readonly name: string
  readonly child: ChildProcess
  readonly lines: Queue.Queue<string | undefined>
  readonly stderr: () => string
}

/** Starts a worker and waits for its `ready`; it is killed with the scope if still alive. */
const startWorker = (prefix: string, name: string, hungAfter = RELAXED): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.map(
      spawnTsx(fixture, [Redacted.value(url), prefix, name, HEARTBEAT, hungAfter, TASK_MS]),
      (worker) => ({ ...worker, name })
    ),
    ({ child, lines, name }) =>
      Effect.sync(() => {
        if (child.signalCode === "SIGSTOP") child.kill("SIGCONT")
        if (child.exitCode === null) child.kill("SIGKILL")
        // what the worker logged at warning level or above, for the record of the run
        const logged = Effect.runSync(Queue.takeAll(lines))
        for (const line of logged) {
          if (line !== undefined && /WARN|ERROR|FATAL/.test(line)) console.log(`worker ${name}: ${line}`)
        }
      })
  ).pipe(Effect.tap((worker) =>
    Effect.gen(function*() {
      const line = yield* Queue.take(worker.lines)
      if (line !== "ready") yield* Effect.dieMessage(`worker ${name} did not start:\n${worker.stderr()}`)
    })
  ))

const awaitExit = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode === "SIGKILL") return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

/** Polls `check` every 20 ms until it holds, failing with `what` after `within`. */
const eventually = <E, R>(what: string, check: Effect.Effect<boolean, E, R>, within = Duration.seconds(60)) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(20)), until: (done) => done }),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

interface RunRow {
  readonly id: string
  readonly worker: string
  readonly lane: string
  readonly n: number
}

/** The run log, the completion log and shard ownership of one journal, through this process's client. */
const tables = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const runs = sql(`${prefix}runs`)
    const completions = sql(`${prefix}completions`)
    const logFunction = `${prefix}log_completion`
    functions.push(logFunction.slice(run.runPrefix.length))
    yield* sql`CREATE TABLE ${runs} (id BIGSERIAL PRIMARY KEY, worker TEXT NOT NULL, lane TEXT NOT NULL, n INTEGER NOT NULL,
      at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`
    yield* sql`CREATE TABLE ${completions} (seq BIGINT NOT NULL, pid INTEGER NOT NULL,
      at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`
    const shardKey = sql.unsafe<{ readonly k: number }>(
      `SELECT hashtext(current_schema() || '.' || $1 || ':shards') & 2147483647 AS k`,
      [prefix]
    )
    const key = (yield* shardKey)[0]!.k
    return {
      sql,
      runs: sql<RunRow>`SELECT id, worker, lane, n FROM ${runs} ORDER BY id`,
      runCount: Effect.map(sql<{ readonly c: string }>`SELECT count(DISTINCT (lane, n)) AS c FROM ${runs}`, (r) =>
        Number(r[0]!.c)),
      /** The shards owned, per backend pid of a lock session. */
      owners: Effect.map(
        sql.unsafe<{ readonly pid: number; readonly shards: string }>(
          `SELECT pid, count(*) AS shards FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int::oid
          AND objsubid = 2 AND granted GROUP BY pid`,
          [key]
        ),
        (rows) =>
          new Map(rows.map((row) => [row.pid, Number(row.shards)]))
      ),
      now: Effect.map(sql<{ readonly t: number }>`SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t`, (r) =>
        Number(r[0]!.t)),
      /** Logs which backend deletes each pending record; created once the journal's tables exist. */
      logCompletions: Effect.gen(function*() {
        yield* sql.unsafe(`CREATE FUNCTION "${logFunction}"() RETURNS trigger AS $$ BEGIN
          INSERT INTO "${prefix}completions" (seq, pid) VALUES (OLD.seq, pg_backend_pid()); RETURN OLD; END $$
          LANGUAGE plpgsql`)
        yield* sql.unsafe(`CREATE TRIGGER log_completion BEFORE DELETE ON "${prefix}pending"
          FOR EACH ROW EXECUTE FUNCTION "${logFunction}"()`)
      }),
      completionsBy: (pid: number, after: number) =>
        Effect.map(
          sql<{ readonly c: string }>`SELECT count(*) AS c FROM ${completions}
            WHERE pid = ${pid} AND at > to_timestamp(${after / 1000})`,
          (r) =>
            Number(r[0]!.c)
        ),
      pending: Effect.map(sql<{ readonly c: string }>`SELECT count(*) AS c FROM ${sql(`${prefix}pending`)}`, (r) =>
        Number(r[0]!.c))
    }
  })

/** Appends one task. */
const appendOne = (lane: string, n: number) =>
  Effect.flatMap(Journal, (journal) =>
    journal.append([{
      id: `${lane}:${n}`,
      lane,
      tag: "Step",
      payload: JSON.stringify({ _tag: "Step", lane, n }),
      scheduledAt: 0
    }]))

/** Appends `n` from `from` to `to` (excluded) on every lane, one batch per `n`: per lane, schedule order is `n`. */
const produce = (lanes: ReadonlyArray<string>, from: number, to: number) =>
  Effect.flatMap(Journal, (journal) =>
    Effect.forEach(
      Array.from({ length: to - from }, (_, i) => from + i),
      (n) =>
        journal.append(lanes.map((lane) => ({
          id: `${lane}:${n}`,
          lane,
          tag: "Step",
          payload: JSON.stringify({ _tag: "Step", lane, n }),
          scheduledAt: 0
        }))),
      { discard: true }
    ))

/**
 * Checks the run log: every task of `lanes` x `perLane` ran; per lane, first runs in schedule
 * order; at most `moves` tasks per lane ran twice, each on another worker than the first unless
 * `sameWorker` (a worker whose session was cut may take its own shards back, and run its task
 * in flight again). Answers with the number of tasks that ran twice.
 */
const check = (
  rows: ReadonlyArray<RunRow>,
  lanes: ReadonlyArray<string>,
  perLane: number,
  moves: number,
  sameWorker = false
) => {
  let duplicates = 0
  for (const lane of lanes) {
    const first = new Map<number, string>()
    const order: Array<number> = []
    let repeats = 0
    for (const row of rows) {
      if (row.lane !== lane) continue
      const seen = first.get(row.n)
      if (seen === undefined) {
        first.set(row.n, row.worker)
        order.push(row.n)
      } else {
        repeats++
        if (!sameWorker) assert.notStrictEqual(seen, row.worker, `lane ${lane}: task ${row.n} ran twice on ${seen}`)
      }
    }
    assert.deepStrictEqual(order, Array.from({ length: perLane }, (_, n) => n), `lane ${lane}: first runs out of order`)
    assert.isAtMost(repeats, moves, `lane ${lane}: ${repeats} tasks ran twice`)
    duplicates += repeats
  }
  return duplicates
}

const lanesOf = (count: number) => Array.from({ length: count }, (_, i) => `lane-${i}`)

/** The test process's side: the run log's client, and a shared journal it appends through (it owns no shard). */
const Producer = (prefix: string) =>
  Layer.merge(
    PgJournal.layer({ url, tablePrefix: prefix, sharing: { shards: SHARDS } }),
    PgClient.layer({ url })
  )

const scenario = <A, E>(body: (prefix: string) => Effect.Effect<A, E, Journal | PgClient.PgClient | Scope.Scope>) =>
  Effect.suspend(() => {
    const prefix = run.fresh()
    return body(prefix).pipe(Effect.provide(Producer(prefix)))
  })

describe("shared PostgreSQL journal, worker processes", () => {
  it.scopedLive("kill -9 of an owner mid-stream: the other takes its lanes within a second, every task runs, in order", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        const lanes = lanesOf(24)
        const a = yield* startWorker(prefix, "a")
        yield* t.logCompletions
        const b = yield* startWorker(prefix, "b")
        yield* eventually("two owners", Effect.map(t.owners, (o) => o.size === 2 && sum(o) === SHARDS))
        yield* produce(lanes, 0, 40)
        yield* eventually("a third of the runs", Effect.map(t.runCount, (c) => c >= 24 * 12))
        const killedAt = yield* t.now
        a.child.kill("SIGKILL")
        yield* awaitExit(a.child)
        yield* eventually("one owner of every shard", Effect.map(t.owners, (o) => o.size === 1 && sum(o) === SHARDS))
        const takenAt = yield* t.now
        yield* produce(lanes, 40, 60)
        yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0))
        const duplicates = check(yield* t.runs, lanes, 60, 1)
        console.log(
          `kill -9: shards taken over after ${Math.round(takenAt - killedAt)} ms; ${duplicates} tasks ran twice`
        )
        assert.isBelow(takenAt - killedAt, 1_000)
        assert.isTrue(b.child.exitCode === null)
      })
    ))

  it.scopedLive("a lock session cut with pg_terminate_backend: its instance stops its lanes, and the shards are owned again", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        const lanes = lanesOf(24)
        yield* startWorker(prefix, "a")
        yield* t.logCompletions
        yield* startWorker(prefix, "b")
        yield* eventually("two owners", Effect.map(t.owners, (o) => o.size === 2 && sum(o) === SHARDS))
        yield* produce(lanes, 0, 40)
        yield* eventually("a third of the runs", Effect.map(t.runCount, (c) => c >= 24 * 12))
        const [cut] = Array.from((yield* t.owners).keys())
        const cutAt = yield* t.now
        // waits (up to 5 s) until the backend has exited: from then on it can commit nothing
        yield* t.sql`SELECT pg_terminate_backend(${cut!}, 5000)`
        const goneAt = yield* t.now
        yield* eventually(
          "every shard owned again",
          Effect.map(t.owners, (o) => !o.has(cut!) && sum(o) === SHARDS)
        )
        const ownedAt = yield* t.now
        yield* produce(lanes, 40, 60)
        yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0))
        const duplicates = check(yield* t.runs, lanes, 60, 1, true)
        assert.strictEqual(yield* t.completionsBy(cut!, goneAt), 0, "the cut session committed after it was gone")
        console.log(
          `pg_terminate_backend: shards owned again after ${
            Math.round(ownedAt - cutAt)
          } ms; ${duplicates} tasks ran twice`
        )
      })
    ))

  it.scopedLive("a worker added mid-stream takes a fair share; only moved lanes' tasks in flight run twice", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        const lanes = lanesOf(24)
        yield* startWorker(prefix, "a")
        yield* t.logCompletions
        yield* eventually("one owner", Effect.map(t.owners, (o) => o.size === 1 && sum(o) === SHARDS))
        // appends go on, one task per lane every few milliseconds, until the new worker has its share
        const stream = { next: 0, stop: false }
        const producer = yield* Effect.fork(
          Effect.suspend(() => produce(lanes, stream.next, stream.next + 1)).pipe(
            Effect.tap(() => Effect.sync(() => stream.next++)),
            Effect.zipRight(Effect.sleep(Duration.millis(5))),
            Effect.repeat({ until: () => stream.stop })
          )
        )
        yield* eventually("some runs", Effect.map(t.runCount, (c) => c >= 24 * 20))
        yield* startWorker(prefix, "b")
        const readyAt = yield* t.now
        yield* eventually("two owners with a fair share", Effect.map(t.owners, (o) => o.size === 2 && fair(o, 2)))
        const sharedAt = yield* t.now
        const joinedAt = stream.next
        yield* eventually("20 more appends per lane", Effect.sync(() => stream.next >= joinedAt + 20))
        stream.stop = true
        yield* Fiber.join(producer)
        yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0))
        const duplicates = check(yield* t.runs, lanes, stream.next, 1)
        console.log(
          `worker added: fair share ${
            Math.round(sharedAt - readyAt)
          } ms after it was ready; ${duplicates} tasks ran twice`
        )
      })
    ))

  it.scopedLive("a clean shutdown (SIGTERM) finishes what it holds, then hands its shards over at once: nothing runs twice", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        const lanes = lanesOf(24)
        const a = yield* startWorker(prefix, "a")
        yield* t.logCompletions
        yield* startWorker(prefix, "b")
        yield* eventually("two owners", Effect.map(t.owners, (o) => o.size === 2 && sum(o) === SHARDS))
        yield* produce(lanes, 0, 40)
        yield* eventually("a third of the runs", Effect.map(t.runCount, (c) => c >= 24 * 12))
        const stoppedAt = yield* t.now
        a.child.kill("SIGTERM")
        yield* awaitExit(a.child)
        const exitedAt = yield* t.now
        yield* eventually("one owner of every shard", Effect.map(t.owners, (o) => o.size === 1 && sum(o) === SHARDS))
        const takenAt = yield* t.now
        yield* produce(lanes, 40, 60)
        yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0))
        const duplicates = check(yield* t.runs, lanes, 60, 0)
        console.log(
          `SIGTERM: flushed and exited after ${Math.round(exitedAt - stoppedAt)} ms; ` +
            `every shard with the other ${Math.round(takenAt - stoppedAt)} ms after the signal`
        )
        assert.strictEqual(duplicates, 0)
        // it hands its shards over before it exits, and wakes the other: no poll or timeout to wait for
        assert.isBelow(takenAt - exitedAt, 500)
      })
    ))

  it.scopedLive("PgJournal.lanes shows, from an instance that owns nothing, each lane's pending tasks, head attempts, owner and halt; a resume there is honoured by the owner within a second", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        yield* produce(["x", "y"], 0, 3)
        yield* appendOne("z", -1)
        yield* t.sql`INSERT INTO ${t.sql(`${prefix}halted_lanes`)} (lane) VALUES ('y')`
        const view = (lanes: ReadonlyArray<PgJournal.LaneView>) =>
          lanes.map((l) => [l.lane, l.pending, l.headId, l.headAttempts, l.owner, l.halted])
        assert.deepStrictEqual(view(yield* PgJournal.lanes), [
          ["x", 3, "x:0", 0, undefined, false],
          ["y", 3, "y:0", 0, undefined, true],
          ["z", 1, "z:-1", 0, undefined, false]
        ])
        yield* startWorker(prefix, "a")
        const instances = t.sql<{ readonly id: string }>`SELECT id FROM ${t.sql(`${prefix}instances`)}`
        yield* eventually("the worker's heartbeat", Effect.map(instances, (rows) => rows.length === 1))
        const [worker] = yield* instances
        yield* eventually(
          "x done, z retried on the worker",
          Effect.map(PgJournal.lanes, (lanes) => lanes.length === 2 && lanes[1]!.headAttempts >= 2)
        )
        const [y, z] = yield* PgJournal.lanes
        assert.deepStrictEqual(view([y!]), [["y", 3, "y:0", 0, worker!.id, true]], "a halted lane stays halted")
        assert.deepStrictEqual([z!.lane, z!.owner], ["z", worker!.id])
        // what DurableSequent.resume("y") does on an instance that does not own the lane
        const resumedAt = yield* t.now
        yield* Effect.flatMap(Journal, (journal) => journal.unhalt("y"))
        const ranY = t.sql<{ readonly c: string }>`SELECT count(*) AS c FROM ${t.sql(`${prefix}runs`)} WHERE lane = 'y'`
        yield* eventually("y's tasks run on its owner", Effect.map(ranY, (rows) => Number(rows[0]!.c) === 3))
        const ranAt = yield* t.now
        console.log(`resume from another instance: the owner ran the lane ${Math.round(ranAt - resumedAt)} ms later`)
        assert.isBelow(ranAt - resumedAt, 1_000)
      })
    ))

  it.scopedLive("three workers, one frozen past hungAfter: the others take its shards, and after SIGCONT it commits nothing for them", () =>
    scenario((prefix) =>
      Effect.gen(function*() {
        const t = yield* tables(prefix)
        const lanes = lanesOf(24)
        const a = yield* startWorker(prefix, "a", HUNG_AFTER)
        yield* t.logCompletions
        yield* startWorker(prefix, "b", HUNG_AFTER)
        yield* startWorker(prefix, "c", HUNG_AFTER)
        yield* eventually("three owners with a fair share", Effect.map(t.owners, (o) => o.size === 3 && fair(o, 3)))
        const before = yield* t.owners
        yield* produce(lanes, 0, 40)
        yield* eventually("a third of the runs", Effect.map(t.runCount, (c) => c >= 24 * 12))
        const frozenAt = yield* t.now
        a.child.kill("SIGSTOP")
        yield* eventually("the others own every shard", Effect.map(t.owners, (o) => o.size === 2 && sum(o) === SHARDS))
        const takenAt = yield* t.now
        // the frozen worker's lock session: the owner that is gone
        const taken = yield* t.owners
        const frozen = Array.from(before.keys()).filter((pid) => !taken.has(pid))
        assert.strictEqual(frozen.length, 1, "exactly one lock session was ended")
        a.child.kill("SIGCONT")
        yield* produce(lanes, 40, 60)
        yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0))
        assert.strictEqual(
          yield* t.completionsBy(frozen[0]!, takenAt),
          0,
          "the frozen session committed after takeover"
        )
        const duplicates = check(yield* t.runs, lanes, 60, 1)
        console.log(
          `SIGSTOP: shards taken over ${
            Math.round(takenAt - frozenAt)
          } ms after the freeze (hungAfter ${HUNG_AFTER} ms); ${duplicates} tasks ran twice`
        )
        assert.isBelow(takenAt - frozenAt, HUNG_AFTER + 1_000)
      })
    ))
})

const sum = (owners: ReadonlyMap<number, number>) => Array.from(owners.values()).reduce((a, b) => a + b, 0)
const fair = (owners: ReadonlyMap<number, number>, instances: number) =>
  sum(owners) === SHARDS && Array.from(owners.values()).every((n) => n <= Math.ceil(SHARDS / instances))
