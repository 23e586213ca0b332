/**
 * `pause(key?)` and `resume(key?)`: a paused lane starts no new attempt, lets
 * the running one finish and keeps accepting tasks.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Sequent } from "../src/index.js"
import { failing, settle } from "./support.js"

describe("pause(key)", () => {
  it.scoped("lets the running attempt finish, starts no new one, keeps accepting, and resume(key) goes on in order", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const finished = yield* Deferred.make<void>()
      const ran: Array<string> = []
      yield* sequent.schedule(
        Effect.gen(function*() {
          yield* Deferred.succeed(started, undefined)
          yield* Deferred.await(gate)
          ran.push("a0")
          yield* Deferred.succeed(finished, undefined)
        }),
        { key: "a" }
      )
      yield* sequent.schedule(Effect.sync(() => ran.push("a1")), { key: "a" })
      yield* Deferred.await(started)
      yield* sequent.pause("a")
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(finished)
      yield* sequent.schedule(Effect.sync(() => ran.push("a2")), { key: "a" })
      yield* settle()
      assert.deepStrictEqual(ran, ["a0"], "the running attempt finished, the next one did not start")
      assert.strictEqual(yield* sequent.sizeOf("a"), 2, "a1 and the task accepted while paused")
      yield* sequent.resume("a")
      yield* sequent.flush
      assert.deepStrictEqual(ran, ["a0", "a1", "a2"])
    }))

  it.scoped("does not hold up other keys, and holds a key's tasks even when paused before the first arrives", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const ran: Array<string> = []
      yield* sequent.pause("a")
      yield* sequent.schedule(Effect.sync(() => ran.push("a")), { key: "a" })
      yield* sequent.submit(Effect.sync(() => ran.push("b")), { key: "b" })
      yield* sequent.submit(Effect.sync(() => ran.push("default")))
      yield* settle()
      assert.deepStrictEqual(ran, ["b", "default"])
      yield* sequent.resume("a")
      yield* sequent.flush
      assert.deepStrictEqual(ran, ["b", "default", "a"])
    }))

  it.scoped("a lane paused during its backoff retries on resume, not when the backoff ends", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const task = failing(1)
      yield* sequent.schedule(task.task, { key: "a" })
      yield* TestClock.adjust("30 seconds")
      yield* sequent.pause("a")
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(task.times, [0], "no attempt while paused")
      yield* sequent.resume("a")
      yield* sequent.flush
      assert.deepStrictEqual(task.times, [0, 330_000])
    }))

  it.scoped("a lane paused and resumed within its backoff retries when the backoff ends", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const task = failing(1)
      yield* sequent.schedule(task.task, { key: "a" })
      yield* TestClock.adjust("20 seconds")
      yield* sequent.pause("a")
      yield* TestClock.adjust("20 seconds")
      yield* sequent.resume("a")
      const flushing = yield* Effect.fork(sequent.flush)
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(task.times, [0, 60_000])
    }))
})

describe("pause() and resume() with no key", () => {
  it.scoped("pause() holds every lane, default and keyed, after their running attempts; resume() runs them in order", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 2 })
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      const run = (name: string) => Effect.sync(() => ran.push(name))
      yield* sequent.schedule(
        Effect.zipRight(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)), run("a0")),
        { key: "a" }
      )
      yield* Deferred.await(started)
      yield* sequent.pause()
      yield* sequent.schedule(run("a1"), { key: "a" })
      yield* sequent.schedule(run("b0"), { key: "b" })
      yield* sequent.schedule(run("d0"))
      yield* sequent.schedule(run("d1"))
      yield* Deferred.succeed(gate, undefined)
      yield* settle()
      assert.deepStrictEqual(ran, ["a0"], "the running attempt finished, nothing else started")
      assert.strictEqual(yield* sequent.size, 4)
      yield* sequent.resume()
      yield* sequent.flush
      assert.strictEqual(ran.length, 5)
      assert.deepStrictEqual(ran.filter((name) => name.startsWith("a")), ["a0", "a1"])
      assert.deepStrictEqual(ran.filter((name) => name.startsWith("d")), ["d0", "d1"])
    }))

  it.scoped("resume() after a global pause runs as many lanes at once as concurrency allows", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 3 })
      const gate = yield* Deferred.make<void>()
      const threeRunning = yield* Deferred.make<void>()
      let running = 0
      let most = 0
      const task = Effect.gen(function*() {
        most = Math.max(most, ++running)
        if (running === 3) yield* Deferred.succeed(threeRunning, undefined)
        yield* Deferred.await(gate)
        running--
      })
      yield* sequent.pause()
      for (const key of ["a", "b", "c", "d", "e"]) yield* sequent.schedule(task, { key })
      yield* settle()
      assert.strictEqual(running, 0, "nothing starts while paused")
      yield* sequent.resume()
      yield* Deferred.await(threeRunning)
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.strictEqual(most, 3)
    }))

  it.scoped("resume(key) does not lift a global pause; resume() also lifts every keyed pause", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const ran: Array<string> = []
      yield* sequent.pause()
      yield* sequent.pause("a")
      yield* sequent.schedule(Effect.sync(() => ran.push("a")), { key: "a" })
      yield* sequent.schedule(Effect.sync(() => ran.push("b")), { key: "b" })
      yield* sequent.resume("a")
      yield* settle()
      assert.deepStrictEqual(ran, [], "still paused globally")
      yield* sequent.pause("a")
      yield* sequent.resume()
      yield* sequent.flush
      assert.sameMembers(ran, ["a", "b"], "a's own pause was lifted too")
    }))

  it.scoped("a lane whose backoff ends during a global pause retries on resume()", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const task = failing(1)
      yield* sequent.schedule(task.task, { key: "a" })
      yield* TestClock.adjust("1 second")
      yield* sequent.pause()
      yield* TestClock.adjust("3 minutes")
      assert.deepStrictEqual(task.times, [0], "no attempt while paused")
      yield* sequent.resume()
      yield* sequent.flush
      assert.deepStrictEqual(task.times, [0, 181_000])
    }))
})
