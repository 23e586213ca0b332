/**
 * The API across instances of a shared PostgreSQL journal (127.0.0.1:5432, database `test`;
 * override with `SEQUENT_PG_URL`): two instances, A and B, in this process, each a
 * `Durable.layer` on its own client of one journal.
 *
 * - `submit`: a task submitted on A runs wherever its lane is owned, and A's caller gets its
 *   outcome, typed by the kind, as if it had run in A; when the lane moves while the task runs,
 *   the caller waits for the new owner's run; when A shuts down first, its caller fails with
 *   `SequentStoppedError` instead of waiting forever.
 * - `pause` / `resume`: from any instance, honoured by the instance that runs the lane.
 * - `flush`: waits for every task the instance scheduled, wherever it runs, then hands its
 *   lanes over.
 *
 * Every journal here uses tables prefixed `sequent_o<run>_<n>_`, dropped when the file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Durable from "../../src/Durable.js"
import { DurableSequent } from "../../src/Durable.js"
import { shardOf } from "../../src/internal/pgShared.js"
import { Journal } from "../../src/Journal.js"
import * as PgJournal from "../../src/PgJournal.js"
import { SequentOutcomeError, SequentStoppedError } from "../../src/SequentError.js"
import * as TaskKind from "../../src/TaskKind.js"
import { makeRun, url } from "./support/PgTables.js"

const run = makeRun("o")
afterAll(() => run.dropAll())

const SHARDS = 16

class Declined extends Schema.TaggedError<Declined>()("Declined", { order: Schema.String }) {}
/** Answers with the instance that ran it, its `n` carried as a string by the success schema. */
class Where extends Schema.TaggedRequest<Where>()("Where", {
  payload: { n: Schema.Int },
  success: Schema.Struct({ by: Schema.String, n: Schema.NumberFromString }),
  failure: Declined
}) {}
/** Fails with its typed error on every attempt. */
class Refuse extends Schema.TaggedRequest<Refuse>()("Refuse", {
  payload: { order: Schema.String },
  success: Schema.Void,
  failure: Declined
}) {}
/** On B it waits for ever (after saying it started); on A it answers at once. */
class Slow extends Schema.TaggedRequest<Slow>()("Slow", {
  payload: {},
  success: Schema.String,
  failure: Schema.Never
}) {}
/** Says it started, then answers with the instance that ran it once the test opens its gate. */
class Gated extends Schema.TaggedRequest<Gated>()("Gated", {
  payload: {},
  success: Schema.String,
  failure: Schema.Never
}) {}
const Tasks = TaskKind.make(Where, Refuse, Slow, Gated)

/** What the handlers share with the test. */
interface Signals {
  /** A Slow task started on B. */
  readonly started: Deferred.Deferred<void>
  /** A Gated task started. */
  readonly gatedStarted: Deferred.Deferred<void>
  readonly gate: Deferred.Deferred<void>
}
const Typed = DurableSequent.typed(Tasks)

/** Every Where that ran, as `instance:n`, in the order they ran. */
type Log = Array<string>

/** A kind only A knows (A runs a newer version of the code than B). */
class Newer
  extends Schema.TaggedRequest<Newer>()("Newer", { payload: {}, success: Schema.String, failure: Schema.Never })
{}
const TasksOfA = TaskKind.make(Where, Refuse, Slow, Gated, Newer)

const handlersOf = (name: string, signals: Signals, log: Log) => ({
  Where: ({ n }: Where) => Effect.sync(() => (log.push(`${name}:${n}`), { by: name, n })),
  Refuse: ({ order }: Refuse) => Effect.fail(new Declined({ order })),
  Slow: () =>
    name === "A" ? Effect.succeed(name) : Effect.zipRight(Deferred.succeed(signals.started, void 0), Effect.never),
  Gated: () =>
    Effect.sync(() => log.push(`Gated:${name}`)).pipe(
      Effect.zipRight(Deferred.succeed(signals.gatedStarted, void 0)),
      Effect.zipRight(Deferred.await(signals.gate)),
      Effect.as(name)
    )
})

const instance = (name: string, tablePrefix: string, signals: Signals, log: Log) =>
  Durable.layer({ concurrency: 64, retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
    Layer.provide(
      name === "A"
        ? TasksOfA.handlers({ ...handlersOf(name, signals, log), Newer: () => Effect.succeed(name) })
        : Tasks.handlers(handlersOf(name, signals, log))
    ),
    Layer.provide(PgJournal.layer({
      url,
      tablePrefix,
      sharing: { shards: SHARDS, heartbeat: Duration.millis(200), hungAfter: Duration.seconds(10) }
    }))
  )

/** Builds an instance in a scope of its own, so that a test can close it. */
const start = (name: string, tablePrefix: string, signals: Signals, log: Log) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(instance(name, tablePrefix, signals, log), scope)
    return { scope, sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service }
  })

const makeSignals = Effect.all({
  started: Deferred.make<void>(),
  gatedStarted: Deferred.make<void>(),
  gate: Deferred.make<void>()
})

/** Two instances on fresh tables, once each owns some of the shards (checked with probes through A). */
const twoInstances = Effect.gen(function*() {
  const tablePrefix = run.fresh()
  const signals = yield* makeSignals
  const { started } = signals
  const log: Log = []
  const a = yield* start("A", tablePrefix, signals, log)
  const b = yield* start("B", tablePrefix, signals, log)
  // 64 keys hit every shard, so once both own shards, some of them run on each
  const keys = Array.from({ length: 64 }, (_, i) => `k${i}`)
  assert.strictEqual(new Set(keys.map((key) => shardOf(key, SHARDS))).size, SHARDS)
  const probe = Effect.forEach(keys, (key, n) => Typed.submit(new Where({ n }), { key }), { concurrency: "unbounded" })
  const both = (answers: ReadonlyArray<{ readonly by: string }>) =>
    answers.some((answer) => answer.by === "A") && answers.some((answer) => answer.by === "B")
  // until both own shards, one of them may run every probe
  const probeUntilBoth: Effect.Effect<ReadonlyArray<{ readonly by: string; readonly n: number }>, unknown> = Effect
    .flatMap(
      probe.pipe(Effect.provideService(DurableSequent, a.sequent)),
      (answers) => both(answers) ? Effect.succeed(answers) : Effect.zipRight(Effect.sleep("50 millis"), probeUntilBoth)
    )
  const answers = yield* probeUntilBoth.pipe(
    Effect.timeoutFail({
      duration: Duration.seconds(30),
      onTimeout: () => new Error("both instances never owned shards")
    })
  )
  const keysOf = (name: string) => keys.filter((_, n) => answers[n]!.by === name)
  const submitOn = (on: { readonly sequent: DurableSequent.Service }, keys: ReadonlyArray<string>, from: number) =>
    Effect.forEach(keys, (key, i) => Typed.submit(new Where({ n: from + i }), { key }), { concurrency: "unbounded" })
      .pipe(Effect.provideService(DurableSequent, on.sequent))
  return { a, b, answers, keysOf, log, signals, started, submitOn, tablePrefix }
})

/** Polls `check` every 20 ms until it holds, failing after 10 s. */
const eventually = <E>(what: string, check: Effect.Effect<boolean, E>) =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced(Duration.millis(20)), until: (done) => done }),
    Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error(`timed out waiting for ${what}`) })
  )

/** What `sequent` answers to `Where(n)` in lane `k1`, under the task id `id`. */
const submitWhere = (sequent: DurableSequent.Service, n: number, id: string) =>
  Typed.submit(new Where({ n }), { key: "k1", id }).pipe(
    Effect.provideService(DurableSequent, sequent),
    Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => new Error(`submit ${n} never returned`) })
  )

const laneOf = (sequent: DurableSequent.Service, key: string) =>
  Effect.map(sequent.status, (status) => status.lanes.find((lane) => lane.key === key))

describe("submit on a shared journal", () => {
  it.scopedLive(
    "answers with the outcome wherever the task ran: its success, and its typed failure, through the kind's schemas",
    () =>
      Effect.gen(function*() {
        const { a, answers, keysOf } = yield* twoInstances
        // each answer is what the handler of the instance that ran it returned, decoded by the success schema
        answers.forEach((answer, n) => {
          assert.deepStrictEqual(answer, { by: answer.by, n })
          assert.include(["A", "B"], answer.by)
        })
        const onB = keysOf("B")
        assert.isAbove(onB.length, 0)
        const failed = yield* Effect.flip(
          Typed.submit(new Refuse({ order: "o-1" }), { key: onB[0]! }).pipe(
            Effect.provideService(DurableSequent, a.sequent)
          )
        )
        assert.instanceOf(failed, Declined)
        assert.strictEqual((failed as Declined).order, "o-1")
      }),
    60_000
  )

  it.scopedLive(
    "a caller under an id whose earlier task has completed gets its own task's outcome, not the earlier one's",
    () =>
      Effect.gen(function*() {
        const log: Log = []
        const a = yield* start("A", run.fresh(), yield* makeSignals, log)
        // the first task's caller is answered here, where it ran; its outcome is kept for this instance all the same
        assert.deepStrictEqual(yield* submitWhere(a.sequent, 1, "same"), { by: "A", n: 1 })
        assert.deepStrictEqual(yield* submitWhere(a.sequent, 2, "same"), { by: "A", n: 2 })
        assert.deepStrictEqual(log, ["A:1", "A:2"])
      }),
    60_000
  )

  it.scopedLive(
    "an outcome taken before its caller's append has answered waits for that answer, and is dropped if it is another task's",
    () =>
      Effect.gen(function*() {
        const tablePrefix = run.fresh()
        const log: Log = []
        const sql = yield* PgClient.PgClient
        const a = yield* start("A", tablePrefix, yield* makeSignals, log)
        assert.deepStrictEqual(yield* submitWhere(a.sequent, 0, "first"), { by: "A", n: 0 })
        const [{ id: instance }] = yield* sql<{ readonly id: string }>`SELECT id FROM ${sql(`${tablePrefix}instances`)}`
        const pending = `${tablePrefix}pending`
        const lockOnPending = (granted: boolean) =>
          Effect.map(
            sql<{ readonly found: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_locks
              WHERE relation = ${pending}::regclass AND granted = ${granted}) AS found`,
            (rows) => rows[0]!.found
          )
        // the caller's append waits on the table, so its answer (and its task's seq) is not in yet
        const unlock = yield* Deferred.make<void>()
        const locked = yield* Effect.fork(sql.withTransaction(
          Effect.zipRight(sql.unsafe(`LOCK TABLE "${pending}" IN EXCLUSIVE MODE`), Deferred.await(unlock))
        ))
        yield* eventually("the table to be locked", lockOnPending(true))
        const submitted = yield* Effect.fork(submitWhere(a.sequent, 2, "same"))
        yield* eventually("the append to wait on the table", lockOnPending(false))
        // an outcome kept for this instance under the caller's id, of another task (its seq is no task's)
        const outcomes = sql(`${tablePrefix}outcomes`)
        yield* sql`INSERT INTO ${outcomes} (id, awaited_by, tag, exit, seq) VALUES ('same', ${instance}, 'Where', 'x', -1)`
        yield* sql`SELECT pg_notify(${`${tablePrefix}sequent`}, ${`outcome:${instance}`})`
        yield* eventually(
          "the instance to take it",
          Effect.map(sql<{ readonly n: string }>`SELECT count(*) AS n FROM ${outcomes}`, (rows) => rows[0]!.n === "0")
        )
        yield* Deferred.succeed(unlock, void 0)
        yield* Fiber.join(locked)
        assert.deepStrictEqual(yield* Fiber.join(submitted), { by: "A", n: 2 })
        assert.deepStrictEqual(log, ["A:0", "A:2"])
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    60_000
  )

  it.scopedLive(
    "a caller whose task's lane moves while it runs gets the outcome of the new owner's run",
    () =>
      Effect.gen(function*() {
        const { a, b, keysOf, started } = yield* twoInstances
        const key = keysOf("B")[0]!
        const waiting = yield* Typed.submit(new Slow(), { key }).pipe(
          Effect.provideService(DurableSequent, a.sequent),
          Effect.fork
        )
        yield* Deferred.await(started)
        // B shuts down with the task in flight: its lanes, this one with them, go to A, which runs it again
        yield* Scope.close(b.scope, Exit.void)
        const answer = yield* Fiber.join(waiting).pipe(Effect.timeout(Duration.seconds(30)))
        assert.strictEqual(answer, "A")
      }),
    60_000
  )

  it.scopedLive(
    "a caller whose own instance shuts down while the task runs elsewhere fails with SequentStoppedError",
    () =>
      Effect.gen(function*() {
        const { a, keysOf, started } = yield* twoInstances
        const waiting = yield* Typed.submit(new Slow(), { key: keysOf("B")[0]! }).pipe(
          Effect.provideService(DurableSequent, a.sequent),
          Effect.fork
        )
        yield* Deferred.await(started)
        // A's append has answered (an append still unanswered at shutdown fails with JournalError)
        yield* eventually("A's append to answer", Effect.map(a.sequent.size, (size) => size === 0))
        yield* Scope.close(a.scope, Exit.void)
        const exit = yield* Fiber.await(waiting).pipe(Effect.timeout(Duration.seconds(30)))
        assert.isTrue(Exit.isFailure(exit))
        const error = yield* Effect.flip(exit)
        assert.instanceOf(error, SequentStoppedError)
      }),
    60_000
  )
})

describe("submit on a shared journal, when no outcome can come", () => {
  it.scopedLive(
    "a task its owner cannot decode (a kind it does not know) answers its caller with a defect saying so",
    () =>
      Effect.gen(function*() {
        const { a, keysOf } = yield* twoInstances
        const exit = yield* DurableSequent.typed(TasksOfA).submit(new Newer(), { key: keysOf("B")[0]! }).pipe(
          Effect.provideService(DurableSequent, a.sequent),
          Effect.exit,
          Effect.timeout(Duration.seconds(10))
        )
        assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
        assert.include(Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause), "cannot run, and is dead-lettered")
      }),
    60_000
  )

  it.scopedLive(
    "a task that ended with no outcome kept (its caller's instance counted gone) answers with SequentOutcomeError",
    () =>
      Effect.gen(function*() {
        const { a, b, keysOf, tablePrefix } = yield* twoInstances
        const key = keysOf("B")[0]!
        yield* b.sequent.pause(key)
        const waiting = yield* Effect.fork(
          Typed.submit(new Where({ n: 4000 }), { key, id: "lost" }).pipe(
            Effect.provideService(DurableSequent, a.sequent)
          )
        )
        yield* eventually("B to queue the task", Effect.map(laneOf(b.sequent, key), (lane) => lane?.size === 1))
        // as if it had completed while A's heartbeat was missing: gone from the journal, no outcome kept
        const sql = yield* PgClient.PgClient
        yield* sql`DELETE FROM ${sql(`${tablePrefix}pending`)} WHERE id = 'lost'`
        const error = yield* Fiber.join(waiting).pipe(Effect.flip, Effect.timeout(Duration.seconds(10)))
        assert.instanceOf(error, SequentOutcomeError)
        assert.include((error as SequentOutcomeError).reason, "its outcome was not kept")
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    60_000
  )
})

describe("pause and resume on a shared journal", () => {
  it.scopedLive(
    "pause(key) on any instance pauses the lane where it runs, until resume(key) on any instance",
    () =>
      Effect.gen(function*() {
        const { a, b, keysOf, log } = yield* twoInstances
        const key = keysOf("B")[0]!
        const asked = Date.now()
        yield* a.sequent.pause(key)
        yield* eventually("B to pause the lane", Effect.map(laneOf(b.sequent, key), (lane) => lane?.state === "paused"))
        console.log(`pause(key) on A honoured by B after ${Date.now() - asked} ms`)
        const waiting = yield* Effect.fork(
          Typed.submit(new Where({ n: 1000 }), { key }).pipe(Effect.provideService(DurableSequent, a.sequent))
        )
        // B holds the task in the paused lane, not running it
        yield* eventually("B to queue the task", Effect.map(laneOf(b.sequent, key), (lane) => lane?.size === 1))
        assert.strictEqual((yield* laneOf(b.sequent, key))?.state, "paused")
        assert.notInclude(log, "B:1000")
        yield* a.sequent.resume(key)
        const answer = yield* Fiber.join(waiting).pipe(Effect.timeout(Duration.seconds(10)))
        assert.deepStrictEqual(answer, { by: "B", n: 1000 })
      }),
    60_000
  )

  it.scopedLive(
    "pause() on any instance pauses every instance, until resume() on any instance",
    () =>
      Effect.gen(function*() {
        const { a, b } = yield* twoInstances
        yield* b.sequent.pause()
        yield* eventually("A to pause", Effect.map(a.sequent.status, (status) => status.paused))
        yield* a.sequent.resume()
        yield* eventually("B to resume", Effect.map(b.sequent.status, (status) => !status.paused))
      }),
    60_000
  )
})

describe("flush on a shared journal", () => {
  it.scopedLive(
    "waits for every task the instance scheduled, wherever it runs, then hands its lanes over",
    () =>
      Effect.gen(function*() {
        const { a, b, keysOf, log, submitOn } = yield* twoInstances
        const key = keysOf("B")[0]!
        yield* b.sequent.pause(key)
        yield* a.sequent.schedule(new Where({ n: 2000 }), { key })
        yield* eventually("B to queue A's task", Effect.map(laneOf(b.sequent, key), (lane) => lane?.size === 1))
        const flushing = yield* Effect.fork(a.sequent.flush)
        // A's task is pending on B, in a paused lane: A's flush cannot be over
        yield* eventually("A to be flushing", Effect.map(a.sequent.status, (status) => status.state === "flushing"))
        assert.isTrue(Option.isNone(yield* Fiber.poll(flushing)))
        yield* b.sequent.resume(key)
        yield* Fiber.join(flushing).pipe(Effect.timeout(Duration.seconds(10)))
        assert.include(log, "B:2000")
        assert.strictEqual((yield* a.sequent.status).state, "closed")
        // A runs nothing more: the lanes it ran are B's now
        const answers = yield* submitOn(b, keysOf("A"), 3000).pipe(Effect.timeout(Duration.seconds(10)))
        assert.isTrue(answers.every((answer) => answer.by === "B"))
      }),
    60_000
  )
})

describe("flush on a shared journal, when the other instance leaves", () => {
  it.scopedLive(
    "takes the shards no one else is left to take, so its tasks in them run and the flush returns",
    () =>
      Effect.gen(function*() {
        const { a, b, keysOf, log, signals } = yield* twoInstances
        const key = keysOf("B")[0]!
        // A's task waits on B behind a task that holds B's lane
        const gated = yield* Effect.fork(
          Typed.submit(new Gated(), { key }).pipe(Effect.provideService(DurableSequent, a.sequent))
        )
        yield* Deferred.await(signals.gatedStarted)
        yield* a.sequent.schedule(new Where({ n: 2000 }), { key })
        const flushing = yield* Effect.fork(a.sequent.flush)
        yield* eventually("A to be flushing", Effect.map(a.sequent.status, (status) => status.state === "flushing"))
        // B leaves at once (no grace: its Gated attempt is stopped), and its shards are free
        yield* Scope.close(b.scope, Exit.void)
        yield* Deferred.succeed(signals.gate, void 0)
        yield* Fiber.join(flushing).pipe(
          Effect.timeoutFail({ duration: Duration.seconds(20), onTimeout: () => new Error("A's flush never returned") })
        )
        assert.strictEqual(yield* Fiber.join(gated), "A")
        assert.include(log, "A:2000")
      }),
    60_000
  )
})

describe("the mode lock on a shared journal", () => {
  it.scopedLive(
    "a single owner cannot start beside instances that own shards, even once their layer's lock connection is cut",
    () =>
      Effect.gen(function*() {
        const { tablePrefix } = yield* twoInstances
        const sql = yield* PgClient.PgClient
        // the connections the layers took the mode lock on, not the lock sessions (named by the heartbeats)
        const cut = yield* sql<{ readonly pid: number }>`
        SELECT pg_terminate_backend(l.pid), l.pid FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.classid = ${PgJournal.lockNamespace}::int::oid AND l.objsubid = 2
          AND l.mode = 'ShareLock' AND l.granted
          AND l.objid = (hashtext(current_schema() || '.' || ${tablePrefix})::bigint & 4294967295)::oid
          AND l.pid NOT IN (SELECT pid FROM ${sql(`${tablePrefix}instances`)})`
        assert.strictEqual(cut.length, 2)
        const single = yield* Effect.flip(Effect.provide(Journal, PgJournal.layer({ url, tablePrefix })))
        assert.strictEqual(single._tag, "JournalLockedError")
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    60_000
  )
})

/**
 * A alone, then B joining while a Gated task runs on A in a shard that moves to B: once B owns the 7
 * shards A runs nothing in, and A keeps the eighth until the task has ended.
 */
const joiningWhileGated = Effect.gen(function*() {
  const tablePrefix = run.fresh()
  const signals = yield* makeSignals
  const log: Log = []
  const sql = yield* PgClient.PgClient
  const a = yield* start("A", tablePrefix, signals, log)
  const shardKey = (yield* sql<{ readonly k: number }>`
    SELECT hashtext(current_schema() || '.' || ${tablePrefix} || ':shards') & 2147483647 AS k`)[0]!.k
  const owners = sql<{ readonly pid: number; readonly shards: string }>`SELECT pid, count(*) AS shards
    FROM pg_locks WHERE locktype = 'advisory' AND classid = ${shardKey}::int::oid AND objsubid = 2 AND granted
    GROUP BY pid ORDER BY 2 DESC`
  const owned = Effect.map(owners, (rows) => rows.map((row) => Number(row.shards)))
  yield* eventually("A to own every shard", Effect.map(owned, (counts) => counts[0] === SHARDS))
  // alone, A owns shards 0-15; with B it keeps 0-7, so a lane of shard 8 or above moves
  const key = Array.from({ length: 64 }, (_, i) => `k${i}`).find((k) => shardOf(k, SHARDS) >= SHARDS / 2)!
  const gated = yield* Effect.fork(
    Typed.submit(new Gated(), { key }).pipe(Effect.provideService(DurableSequent, a.sequent))
  )
  yield* Deferred.await(signals.gatedStarted)
  yield* start("B", tablePrefix, signals, log)
  // B gets the shards A runs nothing in at once; the one with the task in flight waits for it
  yield* eventually("B to own 7 shards", Effect.map(owned, (counts) => counts.join() === "9,7"))
  const gatedRuns = () => log.filter((line) => line.startsWith("Gated"))
  return { gated, gatedRuns, owned, pidOfA: (yield* owners)[0]!.pid, signals, sql, tablePrefix }
})

describe("a rebalance on a shared journal", () => {
  it.scopedLive(
    "an instance joining takes its share, and a task running in a shard handed over ends where it runs, once",
    () =>
      Effect.gen(function*() {
        const { gated, gatedRuns, owned, signals } = yield* joiningWhileGated
        assert.isTrue(Option.isNone(yield* Fiber.poll(gated)))
        yield* Deferred.succeed(signals.gate, void 0)
        assert.strictEqual(yield* Fiber.join(gated).pipe(Effect.timeout(Duration.seconds(10))), "A")
        yield* eventually("a fair share each", Effect.map(owned, (counts) => counts.join() === "8,8"))
        assert.deepStrictEqual(gatedRuns(), ["Gated:A"])
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    60_000
  )

  it.scopedLive(
    "a task that ends while a look holds the lock session commits before its shard goes, and runs once",
    () =>
      Effect.gen(function*() {
        const { gated, gatedRuns, owned, pidOfA, signals, sql, tablePrefix } = yield* joiningWhileGated
        // A's next look stops at its heartbeat, holding its lock session, while the table is locked
        const table = `${tablePrefix}instances`
        const unlock = yield* Deferred.make<void>()
        const locked = yield* Effect.fork(sql.withTransaction(
          Effect.zipRight(sql.unsafe(`LOCK TABLE "${table}" IN EXCLUSIVE MODE`), Deferred.await(unlock))
        ))
        yield* eventually(
          "A's look to wait on the table",
          Effect.map(
            sql<{ readonly waiting: boolean }>`SELECT EXISTS (SELECT 1 FROM pg_locks
              WHERE relation = ${table}::regclass AND NOT granted AND pid = ${pidOfA}) AS waiting`,
            (rows) => rows[0]!.waiting
          )
        )
        // the task ends now: its completion waits for the session behind the look. Nothing outside can
        // see it waiting, so the look is held a moment longer; the outcome does not depend on how long.
        yield* Deferred.succeed(signals.gate, void 0)
        yield* Effect.sleep("200 millis")
        yield* Deferred.succeed(unlock, void 0)
        yield* Fiber.join(locked)
        assert.strictEqual(yield* Fiber.join(gated).pipe(Effect.timeout(Duration.seconds(10))), "A")
        yield* eventually("a fair share each", Effect.map(owned, (counts) => counts.join() === "8,8"))
        assert.deepStrictEqual(gatedRuns(), ["Gated:A"])
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    60_000
  )
})
