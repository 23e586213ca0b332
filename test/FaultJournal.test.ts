/**
 * The fault journal of test/support: a fault before the inner call writes
 * nothing, a fault after it loses the reply of a write that happened.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { Journal, JournalError, makeMemory } from "../src/Journal.js"
import { entry } from "./journalConformance.js"
import * as FaultJournal from "./support/FaultJournal.js"

/** A memory journal that counts the calls that reach it, under the fault journal. */
const counted = Effect.gen(function*() {
  const memory = yield* makeMemory
  const reached = new Map<FaultJournal.Operation, number>()
  const count = <A, E>(operation: FaultJournal.Operation, call: () => Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      reached.set(operation, (reached.get(operation) ?? 0) + 1)
      return call()
    })
  const inner: Journal.Service = {
    append: (entries) => count("append", () => memory.append(entries)),
    attemptFailed: (seq, attempts) => count("attemptFailed", () => memory.attemptFailed(seq, attempts)),
    complete: (seqs) => count("complete", () => memory.complete(seqs)),
    deadLetter: (seq, reason, at, halt) => count("deadLetter", () => memory.deadLetter(seq, reason, at, halt)),
    haltedLanes: count("haltedLanes", () => memory.haltedLanes),
    unhalt: (lane) => count("unhalt", () => memory.unhalt(lane)),
    pending: count("pending", () => memory.pending),
    deadLetters: count("deadLetters", () => memory.deadLetters),
    redrive: (id) => count("redrive", () => memory.redrive(id)),
    discard: (id) => count("discard", () => memory.discard(id))
  }
  return {
    memory,
    reached: (operation: FaultJournal.Operation) => reached.get(operation) ?? 0,
    ...FaultJournal.make(inner)
  }
})

/** One call of each operation, on a journal that holds a pending "p" and the dead letters "d1", "d2". */
const callOf = (journal: Journal.Service, operation: FaultJournal.Operation): Effect.Effect<unknown, unknown> => {
  switch (operation) {
    case "append":
      return journal.append([entry("new")])
    case "attemptFailed":
      return journal.attemptFailed(1, 5)
    case "complete":
      return journal.complete([1])
    case "deadLetter":
      return journal.deadLetter(1, "boom", 0)
    case "haltedLanes":
      return journal.haltedLanes
    case "unhalt":
      return journal.unhalt(undefined)
    case "pending":
      return journal.pending
    case "deadLetters":
      return journal.deadLetters
    case "redrive":
      return journal.redrive("d1")
    case "discard":
      return journal.discard("d2")
  }
}

const seeded = Effect.gen(function*() {
  const setup = yield* counted
  const [, d1, d2] = yield* setup.memory.append([entry("p"), entry("d1"), entry("d2")])
  yield* setup.memory.deadLetter(d1!.seq, "old", 0)
  yield* setup.memory.deadLetter(d2!.seq, "old", 0)
  return setup
})

const isJournalError = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) &&
  Cause.failureOption(exit.cause).pipe((o) => o._tag === "Some" && o.value instanceof JournalError)

describe("FaultJournal", () => {
  for (const operation of FaultJournal.operations) {
    it.effect(`${operation}: a fault before fails the call with JournalError without reaching the journal; a fault after reaches it and fails the reply`, () =>
      Effect.gen(function*() {
        const { control, journal, reached } = yield* seeded
        control.failNext(operation, "before")
        assert.isTrue(isJournalError(yield* Effect.exit(callOf(journal, operation))), "before")
        assert.strictEqual(reached(operation), 0, "before: the inner journal was not called")

        control.failNext(operation, "after")
        assert.isTrue(isJournalError(yield* Effect.exit(callOf(journal, operation))), "after")
        assert.strictEqual(reached(operation), 1, "after: the inner journal was called")
        assert.strictEqual(control.injected(operation), 2)

        assert.isTrue(Exit.isSuccess(yield* Effect.exit(callOf(journal, "pending"))), "healed after the faults ran out")
        assert.strictEqual(control.calls(operation), operation === "pending" ? 3 : 2)
      }))
  }

  it.effect("a write failed before stores nothing; a write failed after is stored, though its caller heard a failure", () =>
    Effect.gen(function*() {
      const { control, journal, memory } = yield* counted
      control.failNext("append", "before")
      yield* Effect.flip(journal.append([entry("lost")]))
      assert.deepStrictEqual(yield* memory.pending, [])

      control.failNext("append", "after")
      const error = yield* Effect.flip(journal.append([entry("stored")]))
      assert.include(error.message, "injected fault: append failed after the journal")
      assert.deepStrictEqual((yield* memory.pending).map((record) => record.id), ["stored"])

      const [again] = yield* journal.append([entry("stored")])
      assert.isFalse(again!.inserted, "a retry of the lost reply finds the record")
    }))

  it.effect("failNext counts its calls; failAlways lasts until heal; a fault can be a defect", () =>
    Effect.gen(function*() {
      const { control, journal } = yield* counted
      control.failNext("pending", "before", 2)
      assert.isTrue(isJournalError(yield* Effect.exit(journal.pending)))
      assert.isTrue(isJournalError(yield* Effect.exit(journal.pending)))
      assert.deepStrictEqual(yield* journal.pending, [])

      control.failAlways("deadLetters", "before")
      for (let i = 0; i < 5; i++) assert.isTrue(isJournalError(yield* Effect.exit(journal.deadLetters)))
      control.heal()
      assert.deepStrictEqual(yield* journal.deadLetters, [])

      control.failNext("haltedLanes", "before", 1, "defect")
      const exit = yield* Effect.exit(journal.haltedLanes)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
    }))

  it.effect("awaitInjected resumes once the fault has struck", () =>
    Effect.gen(function*() {
      const { control, journal } = yield* counted
      const waiting = yield* Effect.fork(control.awaitInjected("complete"))
      yield* Effect.yieldNow()
      assert.isNull(waiting.unsafePoll(), "no fault yet")
      control.failNext("complete", "before")
      yield* Effect.exit(journal.complete([1]))
      yield* Fiber.join(waiting)
      assert.strictEqual(control.injected("complete"), 1)
    }))

  it.effect("layer wraps the journal of the layer it is given, and provides its control", () =>
    Effect.gen(function*() {
      const journal = yield* Journal
      const control = yield* FaultJournal.FaultControl
      control.failNext("append", "before")
      assert.isTrue(isJournalError(yield* Effect.exit(journal.append([entry("a")]))))
      yield* journal.append([entry("a")])
      assert.deepStrictEqual((yield* journal.pending).map((record) => record.id), ["a"])
    }).pipe(Effect.provide(FaultJournal.layer(Journal.layerMemory))))
})
