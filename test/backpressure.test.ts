/**
 * `capacity` bounds the tasks accepted and not yet finished; `onFull` decides
 * whether a caller waits for room or is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { Sequent, SequentClosedError, SequentFullError, SequentOptionError, type SequentOptions } from "../src/index.js"
import { settle } from "./support.js"

describe("onFull: \"wait\"", () => {
  it.scoped("schedule suspends while the executor is full and returns once a task finishes", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ capacity: 2 })
      const gate = yield* Deferred.make<void>()
      const ran: Array<number> = []
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), Effect.sync(() => ran.push(1))), { key: "a" })
      yield* sequent.schedule(Effect.sync(() => ran.push(2)), { key: "a" })
      const waiting = yield* Effect.fork(sequent.schedule(Effect.sync(() => ran.push(3)), { key: "b" }))
      yield* settle()
      assert.isNull(waiting.unsafePoll(), "waits for room")
      assert.strictEqual(yield* sequent.size, 2)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(waiting)
      yield* sequent.flush
      assert.sameMembers(ran, [1, 2, 3])
    }))

  it.scoped("callers waiting for room are admitted in arrival order, and every task they hand over runs once", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ capacity: 1 })
      const gate = yield* Deferred.make<void>()
      const ran: Array<number> = []
      const task = (i: number) => Effect.sync(() => (ran.push(i), i))
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), task(0)))
      const waiters: Array<Fiber.RuntimeFiber<number, unknown>> = []
      for (let i = 1; i <= 6; i++) {
        const key = i % 3 === 0 ? undefined : `k${i % 3}`
        waiters.push(yield* Effect.fork(sequent.submit(task(i), { key })))
        yield* Effect.yieldNow()
      }
      assert.strictEqual(yield* sequent.size, 1)
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Fiber.joinAll(waiters)
      yield* sequent.flush
      assert.deepStrictEqual(results, [1, 2, 3, 4, 5, 6])
      assert.deepStrictEqual(ran, [0, 1, 2, 3, 4, 5, 6])
    }))

  it.scoped("a caller that stops waiting leaves the line: its task never runs, and the callers behind it are admitted", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ capacity: 1 })
      const gate = yield* Deferred.make<void>()
      const ran: Array<number> = []
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), Effect.sync(() => ran.push(0))))
      const first = yield* Effect.fork(sequent.schedule(Effect.sync(() => ran.push(1))))
      yield* Effect.yieldNow()
      const second = yield* Effect.fork(sequent.schedule(Effect.sync(() => ran.push(2))))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(second)
      yield* sequent.flush
      assert.deepStrictEqual(ran, [0, 2])
    }))

  it.scoped("flush or stop while callers wait for room: those callers fail with SequentClosedError and their tasks never run", () =>
    Effect.gen(function*() {
      const ran: Array<string> = []
      const waitWhileFull = Effect.fnUntraced(function*(end: "flush" | "stop") {
        const sequent = yield* Sequent.make({ capacity: 1 })
        const gate = yield* Deferred.make<void>()
        yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), Effect.sync(() => ran.push(`${end}: accepted`))))
        const scheduling = yield* Effect.fork(
          sequent.schedule(Effect.sync(() => ran.push(`${end}: waited`)), { key: "a" })
        )
        const submitting = yield* Effect.fork(sequent.submit(Effect.sync(() => ran.push(`${end}: waited`))))
        yield* Effect.yieldNow()
        const ending = yield* Effect.fork(end === "flush" ? sequent.flush : sequent.stop)
        const exits = [yield* Fiber.await(scheduling), yield* Fiber.await(submitting)]
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(ending)
        return exits
      })
      const closed = (state: "flushing" | "stopped") => Exit.fail(new SequentClosedError({ state }))
      assert.deepStrictEqual(yield* waitWhileFull("flush"), [closed("flushing"), closed("flushing")])
      assert.deepStrictEqual(yield* waitWhileFull("stop"), [closed("stopped"), closed("stopped")])
      assert.deepStrictEqual(ran, ["flush: accepted"], "the flush ran what was accepted, the stop dropped it")
    }))
})

describe("onFull: \"fail\"", () => {
  it.scoped("schedule and submit fail with SequentFullError while the executor is full, counting every lane, and the refused task never runs", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ capacity: 2, onFull: "fail", concurrency: 2 })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const task = (name: string) => Effect.sync(() => ran.push(name))
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), task("a")), { key: "a" })
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), task("b")), { key: "b" })
      const full = Exit.fail(new SequentFullError({ capacity: 2 }))
      assert.deepStrictEqual(yield* Effect.exit(sequent.schedule(task("refused"), { key: "c" })), full)
      assert.deepStrictEqual(yield* Effect.exit(sequent.submit(task("refused"))), full)
      yield* Deferred.succeed(gate, undefined)
      while ((yield* sequent.size) > 0) yield* Effect.yieldNow()
      yield* sequent.submit(task("later"), { key: "c" })
      yield* sequent.flush
      assert.sameMembers(ran, ["a", "b", "later"])
    }))
})

describe("option checks", () => {
  const defectOf = <A, E>(exit: Exit.Exit<A, E>) =>
    Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

  it.effect("a capacity or concurrency that is not a whole number >= 1 makes make and layer die with SequentOptionError", () =>
    Effect.gen(function*() {
      const invalid: Array<readonly [string, SequentOptions]> = [
        ["capacity", { capacity: 0 }],
        ["capacity", { capacity: -3 }],
        ["capacity", { capacity: 1.5 }],
        ["capacity", { capacity: Number.NaN }],
        ["concurrency", { concurrency: 0 }],
        ["concurrency", { concurrency: 2.5 }]
      ]
      for (const [option, options] of invalid) {
        const made = defectOf(yield* Effect.exit(Effect.scoped(Sequent.make(options))))
        const layered = defectOf(yield* Effect.exit(Effect.provide(Sequent.size, Sequent.layer(options))))
        for (const defect of [made, layered]) {
          assert.instanceOf(defect, SequentOptionError, JSON.stringify(options))
          assert.strictEqual((defect as SequentOptionError).option, option)
        }
      }
    }))
})
