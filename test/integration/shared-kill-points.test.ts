/**
 * kill -9 of an owner of a shared PostgreSQL journal at exact points: its append's INSERT in
 * flight (the append is one statement), its append's COMMIT in flight, a task of its lanes in backoff
 * after a failed attempt was committed, and its completion's DELETE in flight on the lock session.
 *
 * Two instance processes (`test/fixtures/sharedInstance.ts`) share the journal; `a` produces 24
 * lanes and runs half the shards, `b` runs the other half, and `a` is the one killed. The points
 * are not timed: a gate (a trigger on the pending table that waits for an advisory lock this test
 * holds) stops `a`'s statement where it should be, and the test kills `a` once it sees the
 * statement waiting in `pg_locks`; the backoff is seen in the journal (the failed attempt
 * counted on the pending row, and no attempt running). After each: every accepted task (its
 * `schedule` returned) succeeded; per lane, first runs in schedule order; a task ran again only
 * as the in-flight task of a lane that moved from `a` to `b`. Takeover times are printed.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { shardOf } from "../../src/internal/pgShared.js"
import { makeRun, url } from "./support/PgTables.js"
import {
  checkRuns,
  eventually,
  fair,
  type Instance,
  journalTables,
  kill,
  SHARDS,
  startInstance,
  type Verdict
} from "./support/SharedInstances.js"

const run = makeRun("k")
const functions: Array<string> = []
afterAll(() => run.dropAll(functions))

const LANES = 24

type Tables = Effect.Effect.Success<ReturnType<typeof journalTables>>

/** Where a gate stops a statement on the pending table. */
type Point = "insert" | "commit" | "delete"

/**
 * The gate: triggers on the pending table that, while a point is armed for a backend (or for any,
 * pid 0), wait for an advisory lock this test holds, so the statement stays in flight until the
 * test opens it; and a log of which backend deleted each pending record, and when. `commit` is a
 * deferred constraint trigger: it runs inside COMMIT.
 */
const makeGate = (t: Tables, prefix: string) =>
  Effect.gen(function*() {
    const key = yield* t.key(":gate")
    const fn = `${prefix}gate`
    functions.push(fn.slice(run.runPrefix.length), `${prefix}log_delete`.slice(run.runPrefix.length))
    const pending = `"${prefix}pending"`
    yield* t.sql.unsafe(`CREATE TABLE "${prefix}gate" (point TEXT NOT NULL, pid INTEGER NOT NULL)`)
    yield* t.sql.unsafe(`CREATE TABLE "${prefix}deleted" (id TEXT NOT NULL, pid INTEGER NOT NULL,
      at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`)
    yield* t.sql.unsafe(`CREATE FUNCTION "${fn}"() RETURNS trigger AS $$ BEGIN
      IF EXISTS (SELECT 1 FROM "${prefix}gate" WHERE point = TG_ARGV[0] AND pid IN (0, pg_backend_pid())) THEN
        PERFORM pg_advisory_xact_lock_shared(${key}, 0);
      END IF;
      RETURN NULL; END $$ LANGUAGE plpgsql`)
    yield* t.sql.unsafe(`CREATE FUNCTION "${prefix}log_delete"() RETURNS trigger AS $$ BEGIN
      INSERT INTO "${prefix}deleted" (id, pid) VALUES (OLD.id, pg_backend_pid()); RETURN NULL; END $$
      LANGUAGE plpgsql`)
    yield* t.sql.unsafe(`CREATE TRIGGER gate_insert BEFORE INSERT ON ${pending}
      FOR EACH STATEMENT EXECUTE FUNCTION "${fn}"('insert')`)
    yield* t.sql.unsafe(`CREATE CONSTRAINT TRIGGER gate_commit AFTER INSERT ON ${pending}
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${fn}"('commit')`)
    yield* t.sql.unsafe(`CREATE TRIGGER gate_delete BEFORE DELETE ON ${pending}
      FOR EACH STATEMENT EXECUTE FUNCTION "${fn}"('delete')`)
    yield* t.sql.unsafe(`CREATE TRIGGER log_delete AFTER DELETE ON ${pending}
      FOR EACH ROW EXECUTE FUNCTION "${prefix}log_delete"()`)
    // held on a connection of its own for as long as the scenario lasts, or until `open`
    const held = yield* t.sql.reserve
    yield* held.execute(`SELECT pg_advisory_lock($1, 0)`, [key], undefined)
    const waiters = t.sql<{ readonly pid: number }>`SELECT pid FROM pg_locks WHERE locktype = 'advisory'
      AND classid = ${key}::int::oid AND objid = 0 AND objsubid = 2 AND NOT granted`
    return {
      arm: (point: Point, pid = 0) =>
        t.sql`INSERT INTO ${t.sql(`${prefix}gate`)} (point, pid) VALUES (${point}, ${pid})`,
      /** The backend that waits at the gate, once one does. */
      waiter: Effect.flatMap(
        eventually("a statement waiting at the gate", Effect.map(waiters, (rows) => rows.length > 0)),
        () => Effect.map(waiters, (rows) => rows[0]!.pid)
      ),
      open: Effect.zipRight(
        t.sql`DELETE FROM ${t.sql(`${prefix}gate`)}`,
        held.execute(`SELECT pg_advisory_unlock($1, 0)`, [key], undefined)
      ),
      /** The records `pid` deleted after `after` (epoch milliseconds). */
      deletedBy: (pid: number, after: number) =>
        Effect.map(
          t.sql<{ readonly id: string }>`SELECT id FROM ${t.sql(`${prefix}deleted`)}
            WHERE pid = ${pid} AND at > to_timestamp(${after / 1000})`,
          (rows) => rows.map((row) => row.id)
        ),
      backendGone: (pid: number) =>
        Effect.map(
          t.sql<{ readonly c: string }>`SELECT count(*) AS c FROM pg_stat_activity WHERE pid = ${pid}`,
          (rows) => Number(rows[0]!.c) === 0
        )
    }
  })

interface Setup {
  readonly prefix: string
  readonly t: Tables
  readonly gate: Effect.Effect.Success<ReturnType<typeof makeGate>>
  /** The producer, and the instance killed. */
  readonly a: Instance
  readonly b: Instance
  readonly aPid: number
  readonly bPid: number
}

/** `b` first (it builds the journal, and owns every shard), the gate, then `a`, until each has half. */
const setup = (
  options: { readonly aRetryMs?: number; readonly hungAfter?: number } = {}
): Effect.Effect<Setup, unknown, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = run.fresh()
    const t = yield* journalTables(prefix)
    const b = yield* startInstance(prefix, "b", { hungAfter: options.hungAfter })
    yield* eventually("b's heartbeat", Effect.map(t.lockPids, (pids) => pids.length === 1))
    const [bPid] = yield* t.lockPids
    const gate = yield* makeGate(t, prefix)
    const a = yield* startInstance(prefix, "a", {
      retryMs: options.aRetryMs,
      hungAfter: options.hungAfter,
      lanes: `a:${LANES}`
    })
    yield* eventually("a fair share each", Effect.map(t.owners, (owners) => fair(owners, 2)))
    const aPid = (yield* t.lockPids).find((pid) => pid !== bPid)!
    return { prefix, t, gate, a, b, aPid, bPid: bPid! }
  })

/** Runs until `a` has had `rounds` rounds accepted and the workers some runs, then returns. */
const producing = (s: Setup, rounds: number) =>
  Effect.zipRight(
    s.a.send("produce 0"),
    eventually(
      `${rounds} rounds accepted`,
      Effect.map(s.t.runCount, (runs) => s.a.record.accepted.size >= LANES * rounds && runs >= LANES * (rounds / 2))
    )
  )

/** Waits for `b` to own every shard, and answers when it did. */
const takenOver = (s: Setup) =>
  Effect.zipRight(
    eventually("b owns every shard", Effect.map(s.t.owners, (o) => o.size === 1 && o.get(s.bPid) === SHARDS)),
    s.t.now
  )

/**
 * Once every task has run: the checks on the run log, and that every task run again was a moved
 * lane's: first run on `a`, again on `b`, at most one per lane.
 */
const verdict = (s: Setup, inFlight: (task: string) => boolean) =>
  Effect.gen(function*() {
    yield* eventually("every task run", Effect.map(s.t.pending, (c) => c === 0))
    assert.strictEqual(yield* s.t.deadLetters, 0)
    const result = checkRuns(yield* s.t.runs, s.a.record.accepted, inFlight)
    const lanes = new Set<string>()
    for (const [task, first, again] of result.reruns) {
      assert.deepStrictEqual([first, again], ["a", "b"], `${task} ran again, first on ${first}, then on ${again}`)
      const lane = task.slice(0, task.lastIndexOf(":"))
      assert.isFalse(lanes.has(lane), `lane ${lane}: two tasks ran again`)
      lanes.add(lane)
    }
    // every kill comes after a has had three rounds accepted
    assert.isAtLeast(result.ran, LANES * 3)
    return result
  })

/** A task of the round `a` had in flight when it was killed: its `schedule` had not returned. */
const ofLastRound = (a: Instance) => (task: string) => task.endsWith(`:${a.record.lastRound}`)

const report = (point: string, result: Verdict, times: string) =>
  console.log(
    `kill -9 ${point}: ${times}; ${result.ran} tasks, ${result.attempts} attempts, ` +
      `${result.reruns.length} ran again, ${result.unaccepted.length} ran unaccepted`
  )

/**
 * Kills `a` while its append waits at `point` (the INSERT, or the COMMIT), takes the time b
 * needs to own every shard, then lets the append's backend go on (it finds its client gone).
 */
const killAtAppend = (point: "insert" | "commit") =>
  Effect.gen(function*() {
    const s = yield* setup()
    yield* producing(s, 5)
    yield* s.gate.arm(point)
    const append = yield* s.gate.waiter
    const killedAt = yield* s.t.now
    yield* kill(s.a)
    const takenAt = yield* takenOver(s)
    yield* s.gate.open
    yield* eventually("the append's backend gone", s.gate.backendGone(append))
    const result = yield* verdict(s, ofLastRound(s.a))
    report(
      `during an append's ${point.toUpperCase()}`,
      result,
      `shards taken over after ${Math.round(takenAt - killedAt)} ms`
    )
    assert.isBelow(takenAt - killedAt, 2_000)
    return { result }
  })

/** Long enough that neither instance, on a loaded machine, misses it before the kill. */
const HUNG_AFTER = 5_000

/**
 * Kills `a` while its completion's DELETE waits at the gate on its lock session, and holds the
 * gate shut. The server checks every second that a lock session's client is still connected:
 * it finds `a` gone, cancels the DELETE and ends the session, locks and all, well before
 * `hungAfter`. Answers with the tasks that DELETE completed after the kill, and the verdict.
 */
const killAtCompletion = Effect.gen(function*() {
  const s = yield* setup({ hungAfter: HUNG_AFTER })
  yield* producing(s, 5)
  yield* s.gate.arm("delete", s.aPid)
  assert.strictEqual(yield* s.gate.waiter, s.aPid)
  const killedAt = yield* s.t.now
  yield* kill(s.a)
  const takenAt = yield* takenOver(s)
  yield* s.gate.open
  const result = yield* verdict(s, ofLastRound(s.a))
  const completedLate = yield* s.gate.deletedBy(s.aPid, killedAt)
  report(
    "during a completion's DELETE, the gate held",
    result,
    `shards taken over ${Math.round(takenAt - killedAt)} ms after the kill; ` +
      `${completedLate.length} completions committed after the kill`
  )
  assert.isBelow(takenAt - killedAt, HUNG_AFTER)
  return { completedLate, result }
})

const scenario = <A, E>(body: Effect.Effect<A, E, PgClient.PgClient | Scope.Scope>) =>
  Effect.provide(body, PgClient.layer({ url }))

describe("shared PostgreSQL journal, kill -9 of an owner at exact points", () => {
  it.scopedLive("its append's INSERT in flight: the one statement goes on after the kill and commits, and those tasks run, unaccepted", () =>
    scenario(Effect.gen(function*() {
      const { result } = yield* killAtAppend("insert")
      // the append is one statement: the server, which does not know the client is gone, finishes and commits it
      assert.isAbove(result.unaccepted.length, 0, "the INSERT in flight did not commit")
    })))

  it.scopedLive("its append's COMMIT in flight: the commit goes through after the kill, and those tasks run, unaccepted", () =>
    scenario(Effect.gen(function*() {
      const { result } = yield* killAtAppend("commit")
      // the server had the COMMIT before the client died, and carried it out: schedule never returned
      assert.isAbove(result.unaccepted.length, 0, "the COMMIT in flight did not commit")
    })))

  it.scopedLive("a task of its lanes in backoff, its failed attempt committed: b runs it with the attempts counted", () =>
    scenario(Effect.gen(function*() {
      // a minute between a's attempts: once its failed attempt is committed, a is in the backoff until killed
      const s = yield* setup({ aRetryMs: 60_000 })
      const shards = yield* s.t.shardsOf(s.aPid)
      const lane = Array.from({ length: LANES }, (_, i) => `a-${i}`).find((l) => shards.has(shardOf(l, SHARDS)))!
      const task = `${lane}:3`
      yield* s.a.send(`fail ${lane} 3 2`)
      yield* s.a.send("produce 0 8")
      const state = s.t.sql<{ readonly attempts: number; readonly runs: string }>`
        SELECT p.attempts, (SELECT count(*) FROM ${s.t.sql(`${s.prefix}runs`)} r WHERE r.task = p.id) AS runs
        FROM ${s.t.sql(`${s.prefix}pending`)} p WHERE p.id = ${task}`
      // the failure is committed on the pending row and no other attempt has started: in backoff
      yield* eventually(
        `${task} in backoff`,
        Effect.map(state, (rows) => rows.length === 1 && rows[0]!.attempts === 1 && Number(rows[0]!.runs) === 1)
      )
      assert.isTrue((yield* s.t.shardsOf(s.aPid)).has(shardOf(lane, SHARDS)), "a still owns the lane")
      const killedAt = yield* s.t.now
      yield* kill(s.a)
      assert.deepStrictEqual(
        (yield* s.t.runs).filter((row) => row.task === task).map((row) => [row.worker, row.ok]),
        [["a", false]],
        "a had started no other attempt when it was killed"
      )
      const takenAt = yield* takenOver(s)
      const result = yield* verdict(s, ofLastRound(s.a))
      // b went on from the attempts the journal counted: one more failure, then the success
      assert.deepStrictEqual(
        (yield* s.t.runs).filter((row) => row.task === task).map((row) => [row.worker, row.ok]),
        [["a", false], ["b", false], ["b", true]]
      )
      report("during a retry's backoff", result, `shards taken over after ${Math.round(takenAt - killedAt)} ms`)
      assert.isBelow(takenAt - killedAt, 2_000)
    })))

  it.scopedLive("its completion's DELETE in flight on the lock session: the server ends the session and the DELETE, b takes over before hungAfter", () =>
    scenario(Effect.gen(function*() {
      const { completedLate, result } = yield* killAtCompletion
      assert.deepStrictEqual(completedLate, [], "the DELETE of an ended session committed")
      // the tasks of that DELETE had run on a, and ran again on b
      assert.isAbove(result.reruns.length, 0)
    })))
})
