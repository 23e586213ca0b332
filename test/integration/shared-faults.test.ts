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
 *
 * Every journal here uses tables prefixed `sequent_f<run>_<n>_`, dropped when the file finishes.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
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
const Tasks = TaskKind.make(Echo)
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

/** An instance on the journal through `proxy`, in a scope of its own that the test closes. */
const start = (proxy: FaultProxy.FaultProxy, tablePrefix: string, shared: boolean) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Effect.ignore(closes(scope)))
    const layer = Durable.layer({ retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
      Layer.provide(Tasks.handlers({ Echo: ({ n }: Echo) => Effect.succeed(n) })),
      Layer.provide(PgJournal.layer({
        url: through(proxy.port),
        tablePrefix,
        sharing: shared ? { shards: 4, heartbeat: Duration.millis(200), hungAfter: Duration.seconds(4) } : undefined
      }))
    )
    const context = yield* Layer.buildWithScope(layer, scope)
    return { scope, sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service }
  })

describe("a journal whose network stalls", () => {
  it.scopedLive(
    "a shared instance's scope closes, its lock session stuck in a statement",
    () =>
      Effect.gen(function*() {
        const proxy = yield* FaultProxy.make({ targetPort: Number(new URL(Redacted.value(url)).port || 5432) })
        const tablePrefix = run.fresh()
        const a = yield* start(proxy, tablePrefix, true)
        assert.strictEqual(
          yield* Typed.submit(new Echo({ n: 1 })).pipe(Effect.provideService(DurableSequent, a.sequent)),
          1
        )
        yield* proxy.stall
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
    "a single owner's scope closes",
    () =>
      Effect.gen(function*() {
        const proxy = yield* FaultProxy.make({ targetPort: Number(new URL(Redacted.value(url)).port || 5432) })
        const a = yield* start(proxy, run.fresh(), false)
        assert.strictEqual(
          yield* Typed.submit(new Echo({ n: 1 })).pipe(Effect.provideService(DurableSequent, a.sequent)),
          1
        )
        yield* proxy.stall
        yield* closes(a.scope)
      }),
    120_000
  )
})
