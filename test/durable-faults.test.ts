/**
 * The durable executor under journal faults: every journal call it makes ends
 * in a retry, a typed error to its caller, or a documented give-up; never in
 * a dead worker, a waiter that never returns, or a task stored but not run.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import * as Durable from "../src/Durable.js"
import { DurableSequent } from "../src/Durable.js"
import { Journal, JournalError, makeMemory } from "../src/Journal.js"
import { SequentStoppedError } from "../src/SequentError.js"
import * as TaskKind from "../src/TaskKind.js"
import { settle } from "./support.js"
import * as FaultJournal from "./support/FaultJournal.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
class Fail extends Schema.TaggedClass<Fail>()("Fail", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write, Fail)

/** Handlers that record every run of a task, in order: a Fail task fails every attempt. */
const handlers = (log: Array<number>) =>
  Tasks.handlers({
    Write: (task) => Effect.sync(() => log.push(task.n)),
    Fail: (task) => Effect.zipRight(Effect.sync(() => log.push(-task.n)), Effect.fail(`task ${task.n} failed`))
  })

const durable = (journal: Journal.Service, log: Array<number>, options: Durable.DurableOptions = {}) =>
  Layer.build(
    Durable.layer(options).pipe(Layer.provide(handlers(log)), Layer.provide(Layer.succeed(Journal, journal)))
  ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))

/** A durable executor on a fault journal over a memory journal, with both journals and the fault control. */
const faulty = (options: Durable.DurableOptions = {}) =>
  Effect.gen(function*() {
    const inner = yield* makeMemory
    const { control, journal } = FaultJournal.make(inner)
    const log: Array<number> = []
    const sequent = yield* durable(journal, log, options)
    return { control, inner, log, sequent }
  })

/** Runs `effect` in a fiber, moving the test clock on until it is done: the journal retries back off 10 ms, 20 ms, ... */
const withTime = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 20 && Option.isNone(yield* Fiber.poll(fiber)); i++) {
      yield* settle()
      yield* TestClock.adjust("1 second")
    }
    return yield* Fiber.join(fiber)
  })

const neverRetry = Schedule.recurs(0)

describe("durable, at the edges", () => {
  it.scoped("a submit whose append is in flight when stop runs fails with SequentStoppedError; the task runs after a restart", () =>
    Effect.gen(function*() {
      const inner = yield* makeMemory
      const appending = yield* Deferred.make<void>()
      const commit = yield* Deferred.make<void>()
      const held: Journal.Service = {
        ...inner,
        append: (entries) =>
          Deferred.succeed(appending, undefined).pipe(
            Effect.zipRight(Deferred.await(commit)),
            Effect.zipRight(inner.append(entries))
          )
      }
      const before = yield* durable(held, [])
      const submit = yield* Effect.fork(before.submit(new Write({ n: 1 })))
      yield* Deferred.await(appending)
      yield* before.stop
      yield* Deferred.succeed(commit, undefined)
      yield* settle()
      const exit = yield* Fiber.poll(submit)
      assert.isTrue(Option.isSome(exit), "submit returned")
      assert.deepStrictEqual(Option.getOrThrow(exit), Exit.fail(new SequentStoppedError({ attempts: 0 })))
      assert.strictEqual((yield* inner.pending).length, 1, "the task is in the journal")

      const log: Array<number> = []
      const after = yield* durable(inner, log)
      yield* after.flush
      assert.deepStrictEqual(log, [1])
    }))
})

describe("durable, journal faults", () => {
  it.scoped("an append that commits but loses its reply: schedule succeeds, and the task runs once, before later tasks of its lane", () =>
    Effect.gen(function*() {
      const { control, inner, log, sequent } = yield* faulty()
      yield* sequent.pause("a") // so that w1 is still pending when it is scheduled again
      control.failNext("append", "after")
      yield* sequent.schedule(new Write({ n: 1 }), { key: "a", id: "w1" })
      yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
      // a retry with the same id stores and runs nothing more
      yield* sequent.schedule(new Write({ n: 1 }), { key: "a", id: "w1" })
      assert.deepStrictEqual((yield* inner.pending).map((record) => record.id).slice(0, 1), ["w1"])
      yield* sequent.resume("a")
      yield* sequent.flush
      assert.strictEqual(control.injected("append"), 1)
      assert.deepStrictEqual(log, [1, 2])
      assert.deepStrictEqual(yield* inner.pending, [], "nothing stays pending behind the executor's back")
    }))

  it.scoped("when the check after a failed append fails too, schedule waits for the journal to answer, then succeeds", () =>
    Effect.gen(function*() {
      const { control, inner, log, sequent } = yield* faulty()
      control.failNext("append", "after")
      control.failNext("pending", "before", 3)
      yield* withTime(sequent.schedule(new Write({ n: 1 }), { key: "a" }))
      assert.strictEqual(control.injected("pending"), 3)
      yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
      yield* sequent.flush
      assert.deepStrictEqual(log, [1, 2])
      assert.deepStrictEqual(yield* inner.pending, [])
    }))

  it.scoped("an append that fails before it commits: schedule fails with JournalError, nothing is stored, a retry runs it once", () =>
    Effect.gen(function*() {
      const { control, inner, log, sequent } = yield* faulty()
      control.failNext("append", "before")
      const error = yield* Effect.flip(sequent.schedule(new Write({ n: 1 }), { id: "w1" }))
      assert.instanceOf(error, JournalError)
      assert.deepStrictEqual(yield* inner.pending, [])
      yield* sequent.schedule(new Write({ n: 1 }), { id: "w1" })
      yield* sequent.flush
      assert.deepStrictEqual(log, [1])
    }))

  for (const timing of ["before", "after"] as const) {
    for (const kind of ["error", "defect"] as const) {
      it.scoped(`a completion that fails ${timing} committing (${kind}) is retried: the task runs once, its lane goes on`, () =>
        Effect.gen(function*() {
          const { control, inner, log, sequent } = yield* faulty()
          control.failNext("complete", timing, 2, kind)
          yield* sequent.schedule(new Write({ n: 1 }), { key: "a" })
          yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
          yield* withTime(sequent.flush)
          assert.strictEqual(control.injected("complete"), 2)
          assert.deepStrictEqual(log, [1, 2])
          assert.deepStrictEqual(yield* inner.pending, [])
        }))

      it.scoped(`an attempt count that fails ${timing} committing (${kind}) is retried, and the task is retried as its schedule says`, () =>
        Effect.gen(function*() {
          const { control, inner, log, sequent } = yield* faulty({ retry: Schedule.recurs(1) })
          control.failNext("attemptFailed", timing, 2, kind)
          yield* sequent.schedule(new Fail({ n: 1 }), { key: "a" })
          yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
          yield* withTime(sequent.flush)
          assert.deepStrictEqual(log, [-1, -1, 2], "two attempts, then the lane goes on")
          assert.deepStrictEqual((yield* inner.deadLetters).map((letter) => letter.attempts), [2])
          assert.deepStrictEqual(yield* inner.pending, [])
        }))

      it.scoped(`a dead letter that fails ${timing} committing (${kind}) is retried: written once, and the lane goes on`, () =>
        Effect.gen(function*() {
          const { control, inner, log, sequent } = yield* faulty({ retry: neverRetry })
          control.failNext("deadLetter", timing, 2, kind)
          yield* sequent.schedule(new Fail({ n: 1 }), { key: "a", id: "f1" })
          yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
          yield* withTime(sequent.flush)
          assert.deepStrictEqual(log, [-1, 2])
          assert.deepStrictEqual((yield* inner.deadLetters).map((letter) => letter.id), ["f1"])
          assert.deepStrictEqual(yield* inner.pending, [])
        }))
    }
  }

  it.scoped("a resume whose journal write fails is retried until the journal has it, then the lane runs", () =>
    Effect.gen(function*() {
      const { control, inner, log, sequent } = yield* faulty({ retry: neverRetry, onGiveUp: "halt" })
      yield* Effect.exit(sequent.submit(new Fail({ n: 1 }), { key: "a" }))
      yield* sequent.schedule(new Write({ n: 2 }), { key: "a" })
      assert.deepStrictEqual(yield* inner.haltedLanes, ["a"])
      control.failNext("unhalt", "before", 2)
      yield* withTime(sequent.resume("a"))
      assert.deepStrictEqual(yield* inner.haltedLanes, [])
      yield* sequent.flush
      assert.deepStrictEqual(log, [-1, 2])
    }))

  it.scoped("a redrive that commits but loses its reply succeeds: the task runs once; one that fails before is a typed error", () =>
    Effect.gen(function*() {
      const { control, inner, log, sequent } = yield* faulty({ retry: neverRetry })
      yield* Effect.exit(sequent.submit(new Fail({ n: 1 }), { id: "f1" }))
      yield* Effect.exit(sequent.submit(new Fail({ n: 2 }), { id: "f2" }))
      control.failNext("redrive", "after")
      yield* sequent.redrive("f1")
      control.failNext("redrive", "before")
      const error = yield* Effect.flip(sequent.redrive("f2"))
      assert.instanceOf(error, JournalError)
      yield* sequent.flush
      assert.deepStrictEqual(log, [-1, -2, -1], "f1 ran again once, f2 did not")
      assert.deepStrictEqual((yield* inner.deadLetters).map((letter) => letter.id).sort(), ["f1", "f2"])
    }))

  it.scoped("reads and discards that fail are typed errors to their caller, and the executor goes on", () =>
    Effect.gen(function*() {
      const { control, log, sequent } = yield* faulty({ retry: neverRetry })
      yield* Effect.exit(sequent.submit(new Fail({ n: 1 }), { id: "f1" }))
      control.failNext("deadLetters", "before")
      assert.instanceOf(yield* Effect.flip(sequent.deadLetters), JournalError)
      control.failNext("discard", "before")
      assert.instanceOf(yield* Effect.flip(sequent.discard("f1")), JournalError)
      assert.strictEqual((yield* sequent.discard("f1")).id, "f1")
      yield* sequent.schedule(new Write({ n: 2 }))
      yield* sequent.flush
      assert.deepStrictEqual(log, [-1, 2])
    }))

  for (const operation of ["pending", "haltedLanes"] as const) {
    it.scoped(`a restore whose ${operation} read fails makes the layer fail with JournalError, and a later build restores`, () =>
      Effect.gen(function*() {
        const inner = yield* makeMemory
        yield* inner.append([{
          id: "w1",
          lane: "",
          tag: "Write",
          payload: JSON.stringify({ _tag: "Write", n: 1 }),
          scheduledAt: 0
        }])
        const { control, journal } = FaultJournal.make(inner)
        control.failNext(operation, "before")
        const error = yield* Effect.flip(durable(journal, []))
        assert.instanceOf(error, JournalError)
        const log: Array<number> = []
        const sequent = yield* durable(journal, log)
        yield* sequent.flush
        assert.deepStrictEqual(log, [1])
      }))
  }
})
