import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Sequent, SequentClosedError } from "../src/index.js"
import { failing, record } from "./support.js"

describe("order and intake", () => {
  it.scoped("tasks run one at a time, in the order they were scheduled", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      let running = 0
      let most = 0
      const task = (i: number) =>
        Effect.gen(function*() {
          running++
          most = Math.max(most, running)
          yield* record(log, `start ${i}`)
          yield* Effect.yieldNow()
          yield* record(log, `end ${i}`)
          running--
        })
      for (let i = 0; i < 5; i++) yield* sequent.schedule(task(i))
      yield* sequent.flush
      assert.deepStrictEqual(yield* Ref.get(log), [0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]))
      assert.strictEqual(most, 1)
    }))

  it.scoped("task n starts only after task n-1 succeeded, however long its retries take", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const first = failing(3)
      const second = failing(0)
      yield* sequent.schedule(first.task)
      yield* sequent.schedule(second.task)
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(second.attempts(), 0, "the second task waits while the first retries")
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(first.times, [0, 60_000, 120_000, 180_000])
      assert.deepStrictEqual(second.times, [180_000])
    }))

  it.scoped("a task that gives up lets the next one start", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(2) })
      const first = failing(10)
      const second = failing(0)
      const exits = [
        yield* Effect.fork(Effect.exit(sequent.submit(first.task))),
        yield* Effect.fork(Effect.exit(sequent.submit(second.task)))
      ]
      const [a, b] = yield* Fiber.joinAll(exits)
      assert.deepStrictEqual(a, Exit.fail("failure 3"))
      assert.deepStrictEqual(b, Exit.succeed(1))
      assert.strictEqual(first.attempts(), 3)
    }))

  it.scoped("schedule returns at once, before the task runs", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      const ran = yield* Ref.make(false)
      yield* sequent.schedule(Deferred.await(gate))
      yield* sequent.schedule(Ref.set(ran, true))
      assert.isFalse(yield* Ref.get(ran))
      assert.strictEqual(yield* sequent.size, 2)
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.isTrue(yield* Ref.get(ran))
    }))

  it.scoped("schedule returns before even a synchronous task has run", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      let ran = false
      yield* sequent.schedule(Effect.sync(() => {
        ran = true
      }))
      assert.isFalse(ran, "not run inside the schedule call")
      yield* sequent.flush
      assert.isTrue(ran)
    }))

  it.scoped("a task runs with the services of the fiber that scheduled it", () =>
    Effect.gen(function*() {
      class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
      const sequent = yield* Sequent.make()
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      const task = Effect.flatMap(Greeting, (greeting) => record(seen, greeting))
      yield* sequent.schedule(task).pipe(Effect.provideService(Greeting, "hello"))
      yield* sequent.schedule(task).pipe(Effect.provideService(Greeting, "bonjour"))
      const result = yield* sequent.submit(Greeting).pipe(Effect.provideService(Greeting, "hallo"))
      yield* sequent.flush
      assert.deepStrictEqual(yield* Ref.get(seen), ["hello", "bonjour"])
      assert.strictEqual(result, "hallo")
    }))

  it.scoped("schedule and submit fail with SequentClosedError once flush or stop has begun, and the task never runs", () =>
    Effect.gen(function*() {
      const ran = yield* Ref.make(0)
      const task = Ref.update(ran, (n) => n + 1)

      const flushed = yield* Sequent.make()
      yield* flushed.flush
      assert.deepStrictEqual(
        yield* Effect.exit(flushed.schedule(task)),
        Exit.fail(new SequentClosedError({ state: "flushing" }))
      )
      assert.deepStrictEqual(
        yield* Effect.exit(flushed.submit(task)),
        Exit.fail(new SequentClosedError({ state: "flushing" }))
      )

      const stopped = yield* Sequent.make()
      yield* stopped.stop
      assert.deepStrictEqual(
        yield* Effect.exit(stopped.schedule(task)),
        Exit.fail(new SequentClosedError({ state: "stopped" }))
      )
      assert.deepStrictEqual(
        yield* Effect.exit(stopped.submit(task)),
        Exit.fail(new SequentClosedError({ state: "stopped" }))
      )
      assert.strictEqual(yield* Ref.get(ran), 0)
    }))

  it.scoped("a schedule during a flush is refused while the flush still runs what it had", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      const log = yield* Ref.make<ReadonlyArray<number>>([])
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), record(log, 1)))
      const flushing = yield* Effect.fork(sequent.flush)
      yield* Effect.yieldNow()
      const late = yield* Effect.exit(sequent.schedule(record(log, 2)))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(late, Exit.fail(new SequentClosedError({ state: "flushing" })))
      assert.deepStrictEqual(yield* Ref.get(log), [1])
    }))

  it.scoped("10 fibers x 1,000 tasks: every task runs exactly once and each fiber's tasks keep their order", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const runs: Array<Array<number>> = Array.from({ length: 10 }, () => [])
      let running = 0
      let most = 0
      yield* Effect.forEach(
        runs,
        (seen) =>
          Effect.forEach(
            Array.from({ length: 1000 }, (_, i) => i),
            (i) =>
              Effect.zipRight(
                sequent.schedule(Effect.sync(() => {
                  running++
                  most = Math.max(most, running)
                  seen.push(i)
                  running--
                })),
                i % 7 === 0 ? Effect.yieldNow() : Effect.void
              ),
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* sequent.flush
      const expected = Array.from({ length: 1000 }, (_, i) => i)
      for (const seen of runs) assert.deepStrictEqual(seen, expected)
      assert.strictEqual(most, 1)
    }))

  it.scoped("the run order is the order in which schedule calls returned across fibers", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      yield* sequent.schedule(Deferred.await(gate))
      const returned: Array<string> = []
      const ran: Array<string> = []
      yield* Effect.forEach(
        ["a", "b", "c", "d"],
        (name) =>
          Effect.forEach(
            [0, 1, 2],
            (i) =>
              Effect.zipRight(
                sequent.schedule(Effect.sync(() => ran.push(`${name}${i}`))),
                Effect.sync(() => returned.push(`${name}${i}`))
              ).pipe(Effect.zipLeft(Effect.yieldNow())),
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.strictEqual(ran.length, 12)
      assert.deepStrictEqual(ran, returned)
      assert.notDeepEqual(returned, [...returned].sort(), "the producers interleaved")
    }))

  it.scoped("with a long backlog, every 32nd schedule lets other fibers run first; every task runs once, each fiber's in order", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      yield* sequent.schedule(Deferred.await(gate))
      const ran: Array<string> = []
      // the bystander counts the turns it gets while the producers run
      let turns = 0
      let producing = true
      const bystander = yield* Effect.fork(Effect.whileLoop({
        while: () => producing,
        body: () => Effect.zipRight(Effect.yieldNow(), Effect.sync(() => turns++)),
        step: () => {}
      }))
      const produce = (name: string, from: number, to: number) =>
        Effect.forEach(
          Array.from({ length: to - from }, (_, i) => from + i),
          (i) => sequent.schedule(Effect.sync(() => ran.push(`${name}${i}`))),
          { discard: true }
        )
      // up to the threshold, one producer alone: it yields only when the run loop makes it
      yield* produce("a", 0, 8_192)
      const turnsBelow = turns
      // past it, two producers, each schedule call possibly yielding to the other
      yield* Effect.all([produce("b", 0, 3_200), produce("c", 0, 3_200)], { concurrency: "unbounded", discard: true })
      producing = false
      yield* Fiber.join(bystander)
      const turnsAbove = turns - turnsBelow
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      const of = (name: string) => ran.filter((task) => task.startsWith(name))
      assert.strictEqual(ran.length, 8_192 + 6_400)
      assert.deepStrictEqual(of("a"), Array.from({ length: 8_192 }, (_, i) => `a${i}`))
      assert.deepStrictEqual(of("b"), Array.from({ length: 3_200 }, (_, i) => `b${i}`))
      assert.deepStrictEqual(of("c"), Array.from({ length: 3_200 }, (_, i) => `c${i}`))
      assert.isTrue(ran.indexOf("c0") < ran.indexOf("b3199"), "the producers interleaved")
      assert.isAtMost(turnsBelow, 20, "below the threshold schedule never yields on its own")
      assert.isAtLeast(turnsAbove, 6_400 / 32 / 2, "above it, at least one turn for every 32 schedules of each fiber")
    }))
})
