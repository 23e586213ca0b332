/**
 * A PostgreSQL journal (127.0.0.1:5432, database `test`; override with `SEQUENT_PG_URL`)
 * reached through a fault proxy, so that the network between an instance and the server can
 * stall: every byte held, no reply and no reset, as a partition or a frozen server host gives.
 *
 * - Closing a shared instance's scope then still returns, with its lock session stuck in a
 *   statement: every statement its finalizers run is bounded (a finalizer runs uninterruptibly,
 *   so a timeout alone could not end one), and the client's LISTEN stream, whose UNLISTEN has no
 *   timeout, is not waited for.
 * - So does closing a single owner's, whose finalizer unlocks its tables.
 * - A shared instance whose LISTEN connection is cut listens again on a new one.
 *
 * Every journal here uses tables prefixed `sequent_f<run>_<n>_`, dropped when the file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Durable from "../../src/Durable.js"
import { DurableSequent } from "../../src/Durable.js"
import * as PgJournal from "../../src/PgJournal.js"
import * as TaskKind from "../../src/TaskKind.js"
import * as FaultProxy from "./support/FaultProxy.js"
import { makeRun, url } from "./support/PgTables.js"
import { eventually } from "./support/SharedInstances.js"

const run = makeRun("f")
afterAll(() => run.dropAll())

class Echo extends Schema.TaggedRequest<Echo>()("Echo", {
  payload: { n: Schema.Int },
  success: Schema.Int,
  failure: Schema.Never
}) {}
/** A task whose handler each instance chooses: it may hold its lane for as long as the test needs. */
class Hold extends Schema.TaggedRequest<Hold>()("Hold", {
  payload: { n: Schema.Int },
  success: Schema.Int,
  failure: Schema.Never
}) {}
const Tasks = TaskKind.make(Echo, Hold)
const Typed = DurableSequent.typed(Tasks)

/** The journal's URL with the proxy on `port` in place of the server. */
const through = (port: number) => {
  const proxied = new URL(Redacted.value(url))
  proxied.host = `127.0.0.1:${port}`
  return Redacted.make(proxied.toString())
}

/**
 * Each statement a close runs on a stalled connection costs its timeout, and the driver's
 * cancel of it (up to 5 s, itself stalled) after: bounded, if not short.
 */
const closeWithin = Duration.seconds(60)

/** Closes `scope`, failing the test if the close does not return within `closeWithin`. */
const closes = (scope: Scope.CloseableScope) =>
  Scope.close(scope, Exit.void).pipe(
    Effect.interruptible,
    Effect.timeoutFail({ duration: closeWithin, onTimeout: () => new Error("the scope's close never returned") }),
    Effect.disconnect
  )

/** An instance on the journal at `journalUrl`, in a scope of its own that the test closes. */
const start = (
  journalUrl: Redacted.Redacted,
  tablePrefix: string,
  shared: boolean,
  hold: (n: number) => Effect.Effect<number> = Effect.succeed
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Effect.ignore(closes(scope)))
    const layer = Durable.layer({ retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
      Layer.provide(Tasks.handlers({ Echo: ({ n }: Echo) => Effect.succeed(n), Hold: ({ n }: Hold) => hold(n) })),
      Layer.provide(PgJournal.layer({
        url: journalUrl,
        tablePrefix,
        sharing: shared ? { shards: 4, heartbeat: Duration.millis(200), hungAfter: Duration.seconds(4) } : undefined
      }))
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    return { scope, sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service }
  })

/** The backends listening on the channel of the journal `tablePrefix`. */
const listeners = (tablePrefix: string) =>
  Effect.flatMap(PgClient.PgClient, (sql) =>
    Effect.map(
      sql<{ readonly pid: number }>`SELECT pid FROM pg_stat_activity
        WHERE query = ${`LISTEN "${tablePrefix}sequent"`} AND state = 'idle'`,
      (rows) => rows.map((row) => row.pid)
    ))

/** What `sequent` answers to `Echo(n)`: `n`, once the journal works. */
const echo = (sequent: DurableSequent.Service, n: number) =>
  Typed.submit(new Echo({ n })).pipe(Effect.provideService(DurableSequent, sequent))

/** A fresh proxy to the journal's server. */
const proxyToServer = FaultProxy.make({ targetPort: Number(new URL(Redacted.value(url)).port || 5432) })

/** An instance through a fresh proxy, once a task has gone through it. */
const running = (tablePrefix: string, shared: boolean) =>
  Effect.gen(function*() {
    const proxy = yield* proxyToServer
    const instance = yield* start(through(proxy.port), tablePrefix, shared)
    assert.strictEqual(yield* echo(instance.sequent, 1), 1)
    return { proxy, ...instance }
  })

describe("a shared instance whose LISTEN connection is cut", () => {
  it.scopedLive(
    "listens again on a new connection: the client swallows that connection's errors, so only a ping it misses tells",
    () =>
      Effect.gen(function*() {
        const tablePrefix = run.fresh()
        const a = yield* running(tablePrefix, true)
        const sql = yield* PgClient.PgClient
        let first: ReadonlyArray<number> = []
        yield* eventually(
          "the instance to listen",
          Effect.map(listeners(tablePrefix), (pids) => (first = pids).length === 1)
        )
        yield* sql`SELECT pg_terminate_backend(${first[0]!})`
        yield* eventually(
          "the instance to listen again, on another connection",
          Effect.map(listeners(tablePrefix), (pids) => pids.length === 1 && pids[0] !== first[0]),
          Duration.seconds(20)
        )
        assert.strictEqual(yield* echo(a.sequent, 2), 2)
        yield* closes(a.scope)
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    120_000
  )
})

/** The backends holding the shard locks of the journal `tablePrefix`, with how many each holds. */
const shardHolders = (tablePrefix: string) =>
  Effect.flatMap(
    PgClient.PgClient,
    (sql) =>
      sql<{ readonly pid: number; readonly shards: string }>`SELECT pid, count(*) AS shards FROM pg_locks
      WHERE locktype = 'advisory' AND objsubid = 2 AND granted
      AND classid = (hashtext(current_schema() || '.' || ${tablePrefix} || ':shards') & 2147483647)::int::oid
      GROUP BY pid`
  )

/** The warnings logged, as text. */
const warnings: Array<string> = []
const capturing = Logger.make(({ logLevel, message }) => {
  if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
})

describe("a shared instance whose event loop is held past its trust", () => {
  it.scopedLive(
    "keeps its shards: the look after the hold confirms the session, which no one else has ended",
    () =>
      Effect.gen(function*() {
        const tablePrefix = run.fresh()
        // a task that holds the event loop for longer than the trust lasts (2.1 s here), not past hungAfter (4 s)
        const a = yield* start(url, tablePrefix, true, (n) =>
          Effect.sync(() => {
            const until = Date.now() + 3_000
            while (Date.now() < until);
            return n
          }))
        yield* eventually(
          "the instance to own every shard",
          Effect.map(shardHolders(tablePrefix), (rows) => rows.length === 1 && Number(rows[0]!.shards) === 4)
        )
        assert.strictEqual(
          yield* Typed.submit(new Hold({ n: 1 })).pipe(Effect.provideService(DurableSequent, a.sequent)),
          1
        )
        // a task starts only once a look has confirmed the session
        assert.strictEqual(yield* echo(a.sequent, 2), 2)
        assert.deepStrictEqual(warnings.filter((warning) => warning.includes("lock session")), [])
        yield* closes(a.scope)
      }).pipe(Effect.provide(Layer.merge(PgClient.layer({ url }), Logger.add(capturing)))),
    120_000
  )
})

describe("a journal whose network stalls", () => {
  it.scopedLive(
    "a shared instance's scope closes, its lock session stuck in a statement",
    () =>
      Effect.gen(function*() {
        const tablePrefix = run.fresh()
        const a = yield* running(tablePrefix, true)
        yield* a.proxy.stall
        // the instance's heartbeat goes stale: its looks, on the lock session, are stuck
        const sql = yield* PgClient.PgClient
        yield* eventually(
          "the instance's looks to be stuck",
          Effect.map(
            sql<{ readonly stale: boolean }>`SELECT beat_at < now() - interval '1 second' AS stale
            FROM ${sql(`${tablePrefix}instances`)}`,
            (rows) => rows.length === 1 && rows[0]!.stale
          )
        )
        yield* closes(a.scope)
      }).pipe(Effect.provide(PgClient.layer({ url }))),
    120_000
  )

  it.scopedLive(
    "a shared instance stops its running task before another instance can take its lane, which then runs it",
    () =>
      Effect.gen(function*() {
        const tablePrefix = run.fresh()
        const proxy = yield* proxyToServer
        const started = yield* Deferred.make<void>()
        const stopped = yield* Deferred.make<void>()
        const a = yield* start(through(proxy.port), tablePrefix, true, () =>
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(stopped, undefined))
          ))
        yield* Typed.schedule(new Hold({ n: 1 })).pipe(Effect.provideService(DurableSequent, a.sequent))
        yield* Deferred.await(started)
        yield* proxy.stall
        // the other instance reaches the server; it takes the lane once the first one's heartbeat is `hungAfter` old
        const stoppedBeforeTakeover = yield* Deferred.make<boolean>()
        yield* start(url, tablePrefix, true, (n) =>
          Effect.as(
            Effect.flatMap(Deferred.isDone(stopped), (done) => Deferred.succeed(stoppedBeforeTakeover, done)),
            n
          ))
        assert.isTrue(yield* Deferred.await(stoppedBeforeTakeover), "the stalled instance's task still ran")
        yield* proxy.resume
        yield* closes(a.scope)
      }),
    120_000
  )

  it.scopedLive(
    "a single owner's scope closes",
    () =>
      Effect.gen(function*() {
        const a = yield* running(run.fresh(), false)
        yield* a.proxy.stall
        yield* closes(a.scope)
      }),
    120_000
  )
})
