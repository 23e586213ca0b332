/**
 * `submit` across instances of a shared PostgreSQL journal (127.0.0.1:5432, database `test`;
 * override with `SEQUENT_PG_URL`): two instances, A and B, in this process, each a
 * `Durable.layer` on its own client of one journal. A task scheduled by `submit` on A runs
 * wherever its lane is owned, and A's caller gets its outcome, typed by the kind, as if it had
 * run in A; when the lane moves while the task runs, the caller waits for the new owner's run;
 * when A shuts down first, its caller fails with `SequentStoppedError` instead of waiting forever.
 *
 * Every journal here uses tables prefixed `sequent_o<run>_<n>_`, dropped when the file finishes.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Durable from "../../src/Durable.js"
import { DurableSequent } from "../../src/Durable.js"
import { shardOf } from "../../src/internal/pgShared.js"
import * as PgJournal from "../../src/PgJournal.js"
import { SequentStoppedError } from "../../src/SequentError.js"
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
const Tasks = TaskKind.make(Where, Refuse, Slow)
const Typed = DurableSequent.typed(Tasks)

const instance = (name: string, tablePrefix: string, started: Deferred.Deferred<void>) =>
  Durable.layer({ concurrency: 64, retry: Schedule.recurs(0), closeGracePeriod: 0 }).pipe(
    Layer.provide(Tasks.handlers({
      Where: ({ n }) => Effect.sync(() => ({ by: name, n })),
      Refuse: ({ order }) => Effect.fail(new Declined({ order })),
      Slow: () => name === "A" ? Effect.succeed(name) : Effect.zipRight(Deferred.succeed(started, void 0), Effect.never)
    })),
    Layer.provide(PgJournal.layer({
      url,
      tablePrefix,
      sharing: { shards: SHARDS, heartbeat: Duration.millis(200), hungAfter: Duration.seconds(10) }
    }))
  )

/** Builds an instance in a scope of its own, so that a test can close it. */
const start = (name: string, tablePrefix: string, started: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(instance(name, tablePrefix, started), scope)
    return { scope, sequent: context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service }
  })

/** Two instances on fresh tables, once each owns some of the shards (checked with probes through A). */
const twoInstances = Effect.gen(function*() {
  const tablePrefix = run.fresh()
  const started = yield* Deferred.make<void>()
  const a = yield* start("A", tablePrefix, started)
  const b = yield* start("B", tablePrefix, started)
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
  return { a, b, answers, keysOf, started, tablePrefix }
})

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
        yield* Scope.close(a.scope, Exit.void)
        const exit = yield* Fiber.await(waiting).pipe(Effect.timeout(Duration.seconds(30)))
        assert.isTrue(Exit.isFailure(exit))
        const error = yield* Effect.flip(exit)
        assert.instanceOf(error, SequentStoppedError)
      }),
    60_000
  )
})
