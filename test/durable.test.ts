import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { join } from "node:path"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import { Journal, makeMemory } from "../src/Journal.js"
import { SequentInvalidTaskError } from "../src/SequentError.js"
import * as SqliteJournal from "../src/SqliteJournal.js"
import * as TaskKind from "../src/TaskKind.js"
import { makeTempDir } from "./support.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
class Fail extends Schema.TaggedClass<Fail>()("Fail", { reason: Schema.String }) {}
class Unregistered extends Schema.TaggedClass<Unregistered>()("Unregistered", {}) {}

const Tasks = TaskKind.make(Write, Fail)
const Typed = DurableSequent.typed(Tasks)

/** Handlers that record each write, and block on `gate` while it is given. */
const handlers = (log: Array<number>, gate?: Deferred.Deferred<void>) =>
  Tasks.handlers({
    Write: (task) =>
      Effect.zipRight(gate === undefined ? Effect.void : Deferred.await(gate), Effect.sync(() => log.push(task.n))),
    Fail: (task) => Effect.fail(task.reason)
  })

/** A durable executor over the given journal service, in the current scope. */
const durable = (
  journal: Journal.Service,
  log: Array<number>,
  gate?: Deferred.Deferred<void>,
  retry?: Schedule.Schedule<unknown, unknown>
) =>
  Layer.build(
    Durable.layer(retry === undefined ? {} : { retry }).pipe(
      Layer.provide(handlers(log, gate)),
      Layer.provide(Layer.succeed(Journal, journal))
    )
  ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))

/** One life of a durable executor: in a scope of its own, which `close` ends, as a process's exit would. */
const life = (...args: Parameters<typeof durable>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const sequent = yield* Scope.extend(durable(...args), scope)
    return { sequent, close: Scope.close(scope, Exit.void) }
  })

describe("durable", () => {
  it.scoped("schedule returns once the task is in the journal, and completion removes it", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const gate = yield* Deferred.make<void>()
      const log: Array<number> = []
      const sequent = yield* durable(journal, log, gate)
      yield* sequent.schedule(new Write({ n: 1 }), { key: "a" })
      const pending = yield* journal.pending
      assert.deepStrictEqual(pending.map((record) => [record.tag, record.lane, JSON.parse(record.payload)]), [
        ["Write", "a", { _tag: "Write", n: 1 }]
      ])
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(log, [1])
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  it.scoped("after a stop, a new executor on the same journal resumes the pending tasks in order, per lane, attempts kept", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const gate = yield* Deferred.make<void>()
      const first: Array<number> = []
      const { close, sequent: before } = yield* life(journal, first, gate)
      for (const n of [1, 2, 3]) yield* before.schedule(new Write({ n }), { key: "a" })
      for (const n of [10, 20]) yield* before.schedule(new Write({ n }), { key: "b" })
      yield* before.stop // the running task and the queue are dropped here, but not from the journal
      yield* close
      assert.deepStrictEqual(first, [])
      const stored = yield* journal.pending
      assert.strictEqual(stored.length, 5)
      assert.strictEqual(stored[0]!.attempts, 0)

      const second: Array<number> = []
      const after = yield* durable(journal, second)
      yield* after.schedule(new Write({ n: 4 }), { key: "a" })
      yield* after.flush
      assert.deepStrictEqual(second.filter((n) => n < 10), [1, 2, 3, 4], "lane a: restored first, then the new task")
      assert.deepStrictEqual(second.filter((n) => n >= 10), [10, 20])
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  it.scoped("every failed attempt is counted in the journal, and the count carries over a restart", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const { close, sequent: before } = yield* life(journal, [], undefined, Schedule.spaced("1 minute"))
      yield* before.schedule(new Fail({ reason: "down" }))
      yield* TestClock.adjust("1 minute") // attempts 1 and 2 fail
      yield* before.stop
      yield* close
      assert.deepStrictEqual((yield* journal.pending).map((record) => record.attempts), [2])

      const after = yield* durable(journal, [], undefined, Schedule.recurs(0))
      yield* after.flush // attempt 3 fails and gives up at once
      const dead = yield* after.deadLetters
      assert.deepStrictEqual(dead.map((letter) => letter.attempts), [3])
      assert.include(dead[0]!.reason, "down")
    }))

  it.scoped("a task that gives up goes to the dead letters; redrive puts it back at the end of its lane", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const log: Array<number> = []
      const sequent = yield* durable(journal, log, undefined, Schedule.recurs(0))
      const exit = yield* Effect.exit(sequent.submit(new Fail({ reason: "rejected" }), { key: "a", id: "fail-1" }))
      assert.deepStrictEqual(exit, Exit.fail("rejected"))
      const dead = yield* sequent.deadLetters
      assert.deepStrictEqual(dead.map((letter) => letter.id), ["fail-1"])
      yield* sequent.redrive("fail-1")
      yield* sequent.schedule(new Write({ n: 1 }), { key: "a" })
      yield* sequent.flush
      assert.deepStrictEqual((yield* sequent.deadLetters).map((letter) => letter.id), ["fail-1"], "it failed again")
      assert.deepStrictEqual(log, [1])
    }))

  it.scoped("discard deletes a dead letter for good: it never runs, and its id can be scheduled again", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const log: Array<number> = []
      const sequent = yield* durable(journal, log, undefined, Schedule.recurs(0))
      yield* Effect.exit(sequent.submit(new Fail({ reason: "rejected" }), { key: "a", id: "job-1" }))
      const letter = yield* sequent.discard("job-1")
      assert.strictEqual(letter.id, "job-1")
      assert.include(letter.reason, "rejected")
      assert.deepStrictEqual(yield* sequent.deadLetters, [])
      const missing = yield* Effect.flip(sequent.redrive("job-1"))
      assert.strictEqual(missing._tag, "JournalNotFoundError")
      yield* sequent.schedule(new Write({ n: 7 }), { key: "a", id: "job-1" })
      yield* sequent.flush
      assert.deepStrictEqual(log, [7])
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  it.scoped("a lane halted by a give-up stays halted after a restart, until resume", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const first: Array<number> = []
      const halting = (log: Array<number>) =>
        Layer.build(
          Durable.layer({ retry: Schedule.recurs(0), onGiveUp: "halt" }).pipe(
            Layer.provide(handlers(log)),
            Layer.provide(Layer.succeed(Journal, journal))
          )
        ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
      const scope1 = yield* Scope.make()
      const before = yield* Scope.extend(halting(first), scope1)
      yield* Effect.exit(before.submit(new Fail({ reason: "rejected" }), { key: "a" }))
      yield* before.schedule(new Write({ n: 1 }), { key: "a" })
      yield* before.schedule(new Write({ n: 2 }), { key: "b" })
      yield* before.stop
      yield* Scope.close(scope1, Exit.void)
      assert.deepStrictEqual(first, [2], "lane a halted, lane b went on")

      // a restart: lane a is still halted, its task waits
      const second: Array<number> = []
      const scope2 = yield* Scope.make()
      const after = yield* Scope.extend(halting(second), scope2)
      const status = yield* after.status
      assert.deepStrictEqual(status.lanes.map((lane) => [lane.key, lane.state, lane.size]), [["a", "halted", 1]])
      yield* after.resume("a")
      yield* after.flush
      assert.deepStrictEqual(second, [1])
      yield* Scope.close(scope2, Exit.void)
      assert.deepStrictEqual(yield* journal.haltedLanes, [], "resume is remembered too")
    }))

  it.scoped("ids given to tasks scheduled without one never repeat from one life to the next, under a fixed Random and clock", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const { close, sequent: before } = yield* life(journal, [], undefined, Schedule.recurs(0))
      yield* Effect.exit(before.submit(new Fail({ reason: "rejected" })))
      yield* close
      const log: Array<number> = []
      const after = yield* durable(journal, log)
      yield* after.schedule(new Write({ n: 1 }))
      yield* after.flush
      assert.deepStrictEqual(log, [1], "the new task was stored and ran: its id is not the dead letter's")
      const ids = [...(yield* journal.deadLetters).map((letter) => letter.id)]
      assert.strictEqual(ids.length, 1)
      assert.match(ids[0]!, /^auto:/)
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a handler that throws fails its task as a defect, in place: the executor still starts, and the lane moves on after the give-up", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      yield* journal.append([
        { id: "throws", lane: "a", tag: "Write", payload: JSON.stringify({ _tag: "Write", n: 13 }), scheduledAt: 0 },
        { id: "fine", lane: "a", tag: "Write", payload: JSON.stringify({ _tag: "Write", n: 7 }), scheduledAt: 0 }
      ])
      const log: Array<number> = []
      const throwing = Tasks.handlers({
        Write: (task) => {
          if (task.n === 13) throw new Error("handler bug")
          return Effect.sync(() => log.push(task.n))
        },
        Fail: (task) => Effect.fail(task.reason)
      })
      const sequent = yield* Layer.build(
        Durable.layer({ retry: Schedule.recurs(1) }).pipe(
          Layer.provide(throwing),
          Layer.provide(Layer.succeed(Journal, journal))
        )
      ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
      const exit = yield* Effect.exit(sequent.submit(new Write({ n: 13 }), { key: "b" }))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "submit gets the defect, not a throw")
      yield* sequent.flush
      assert.deepStrictEqual(log, [7])
      const dead = yield* sequent.deadLetters
      assert.deepStrictEqual(dead.map((letter) => [letter.id, letter.attempts]).slice(0, 1), [["throws", 2]])
      assert.strictEqual(dead.length, 2)
      assert.include(dead[0]!.reason, "handler bug")
    }))

  it.scoped("a journal runs one durable executor at a time: a second one fails to build until the first one's scope has closed", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      yield* journal.append([
        { id: "w1", lane: "a", tag: "Write", payload: JSON.stringify({ _tag: "Write", n: 1 }), scheduledAt: 0 }
      ])
      const gate = yield* Deferred.make<void>()
      const first: Array<number> = []
      const { close, sequent: running } = yield* life(journal, first, gate)
      const second = yield* Effect.flip(durable(journal, []))
      assert.strictEqual(second._tag, "JournalError")
      assert.include(second.message, "another durable executor runs on this journal")
      yield* Deferred.succeed(gate, undefined)
      yield* running.flush
      yield* running.stop
      // stopped, its store may still be writing: the journal is not free before its scope closes
      assert.strictEqual((yield* Effect.flip(durable(journal, [])))._tag, "JournalError")
      yield* close
      assert.deepStrictEqual(first, [1], "the task ran once, on the first executor")

      const log: Array<number> = []
      const after = yield* durable(journal, log)
      yield* after.schedule(new Write({ n: 2 }))
      yield* after.flush
      assert.deepStrictEqual(log, [2])
    }))

  it.scoped("the empty key names no durable lane: pause(\"\") and resume(\"\") leave the default lane, stored as \"\", alone", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const log: Array<number> = []
      const sequent = yield* Layer.build(
        Durable.layer({ retry: Schedule.recurs(0), onGiveUp: "halt" }).pipe(
          Layer.provide(handlers(log)),
          Layer.provide(Layer.succeed(Journal, journal))
        )
      ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
      yield* Effect.exit(sequent.submit(new Fail({ reason: "rejected" })))
      yield* sequent.schedule(new Write({ n: 1 }))
      assert.deepStrictEqual(yield* journal.haltedLanes, [""], "the default lane is halted")
      yield* sequent.resume("")
      yield* sequent.pause("")
      assert.deepStrictEqual(yield* journal.haltedLanes, [""], "still halted in the journal")
      const status = yield* sequent.status
      assert.deepStrictEqual(status.lanes.map((lane) => [lane.key, lane.state]), [[undefined, "halted"]])
      assert.isFalse(status.paused)
      yield* sequent.resume()
      yield* sequent.flush
      assert.deepStrictEqual(log, [1])
      assert.deepStrictEqual(yield* journal.haltedLanes, [])
    }))

  it.scoped("the same id scheduled twice is stored and run once", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const gate = yield* Deferred.make<void>()
      const log: Array<number> = []
      const sequent = yield* durable(journal, log, gate)
      yield* sequent.schedule(new Write({ n: 1 }), { id: "once" })
      yield* sequent.schedule(new Write({ n: 2 }), { id: "once" })
      assert.strictEqual((yield* journal.pending).length, 1)
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(log, [1])
    }))

  it.scoped("a value that is not a registered task kind is a typed error, and a compile-time one through typed accessors", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const sequent = yield* durable(journal, [])
      const exit = yield* Effect.exit(sequent.schedule(new Unregistered()))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(sequent.schedule(new Unregistered()))
      assert.instanceOf(error, SequentInvalidTaskError)
      assert.strictEqual((yield* journal.pending).length, 0, "nothing was written")
      // @ts-expect-error Unregistered is not one of Tasks' kinds
      const rejected = () => Typed.schedule(new Unregistered())
      assert.isFunction(rejected)
    }))

  it.scoped("a stored task whose payload no longer decodes is dead-lettered with the reason, and its lane moves on", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      yield* journal.append([
        {
          id: "broken",
          lane: "a",
          tag: "Write",
          payload: JSON.stringify({ _tag: "Write", n: "not a number" }),
          scheduledAt: 0
        },
        { id: "gone", lane: "a", tag: "Removed", payload: "{}", scheduledAt: 0 },
        { id: "fine", lane: "a", tag: "Write", payload: JSON.stringify({ _tag: "Write", n: 7 }), scheduledAt: 0 }
      ])
      const log: Array<number> = []
      const sequent = yield* durable(journal, log)
      yield* sequent.flush
      assert.deepStrictEqual(log, [7])
      const dead = yield* sequent.deadLetters
      assert.deepStrictEqual(dead.map((letter) => letter.id), ["broken", "gone"])
      assert.include(dead[0]!.reason, "no longer decodes")
      assert.include(dead[1]!.reason, "no task kind Removed")
    }))

  it.scoped("concurrent schedules share one journal transaction (group commit)", () =>
    Effect.gen(function*() {
      const inner = yield* makeMemory
      let appends = 0
      const counting: Journal.Service = {
        ...inner,
        append: (entries) =>
          Effect.suspend(() => {
            appends++
            return inner.append(entries)
          })
      }
      const log: Array<number> = []
      const sequent = yield* durable(counting, log)
      yield* Effect.forEach(
        Array.from({ length: 200 }, (_, n) => n),
        (n) => sequent.schedule(new Write({ n }), { key: `k${n % 10}` }),
        { concurrency: "unbounded", discard: true }
      )
      yield* sequent.flush
      assert.strictEqual(log.length, 200)
      assert.isAtMost(appends, 5, `200 concurrent schedules took ${appends} transactions`)
    }))

  it.scoped("on SQLite, tasks survive closing the executor and reopening the file", () =>
    Effect.gen(function*() {
      const filename = join(yield* makeTempDir("sequent-durable-"), "journal.db")
      const first: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const sequent = yield* Layer.build(
          Durable.layer().pipe(Layer.provide(handlers(first, gate)), Layer.provide(SqliteJournal.layer({ filename })))
        ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
        for (const n of [1, 2, 3]) yield* sequent.schedule(new Write({ n }))
        yield* sequent.stop
      }))
      const second: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const sequent = yield* Layer.build(
          Durable.layer().pipe(Layer.provide(handlers(second)), Layer.provide(SqliteJournal.layer({ filename })))
        ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
        yield* sequent.flush
      }))
      assert.deepStrictEqual(first, [])
      assert.deepStrictEqual(second, [1, 2, 3])
    }))
})
