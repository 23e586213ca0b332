/**
 * Lanes: tasks with the same key run one at a time in order, different keys run
 * independently, up to `concurrency` lanes at once, served fairly.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as TestClock from "effect/TestClock"
import { Sequent, SequentStoppedError } from "../src/index.js"
import { failing, settle } from "./support.js"

const keys = (n: number, prefix = "k") => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

describe("lanes", () => {
  it.scoped("with concurrency 1, a key retrying for minutes does not hold up another key", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const slow = failing(3)
      const now = Clock.currentTimeMillis
      yield* sequent.schedule(slow.task, { key: "a" })

      const finished: Array<number> = []
      finished.push(yield* Effect.zipRight(sequent.submit(Effect.void, { key: "b" }), now))
      yield* TestClock.adjust("30 seconds")
      finished.push(yield* Effect.zipRight(sequent.submit(Effect.void, { key: "b" }), now))
      yield* TestClock.adjust("60 seconds")
      finished.push(yield* Effect.zipRight(sequent.submit(Effect.void, { key: "b" }), now))

      assert.deepStrictEqual(finished, [0, 30_000, 90_000], "b's tasks finish the moment they are submitted")
      assert.deepStrictEqual(slow.times, [0, 60_000], "a is still retrying")
      assert.strictEqual(yield* sequent.sizeOf("a"), 1)
      yield* TestClock.adjust("90 seconds")
      assert.deepStrictEqual(slow.times, [0, 60_000, 120_000, 180_000])
      assert.strictEqual(yield* sequent.sizeOf("a"), 0)
    }))

  it.scoped("20 fibers scheduling onto 50 keys at once: every task runs once, each key one at a time, each fiber's tasks of a key in its order", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 4 })
      const names = keys(50)
      const rounds = 3
      const seen = new Map<string, Array<readonly [fiber: number, round: number]>>(names.map((key) => [key, []]))
      const running = new Map<string, number>(names.map((key) => [key, 0]))
      let overlaps = 0
      const task = (key: string, fiber: number, round: number) =>
        Effect.gen(function*() {
          const now = running.get(key)! + 1
          running.set(key, now)
          if (now > 1) overlaps++
          seen.get(key)!.push([fiber, round])
          yield* Effect.yieldNow()
          running.set(key, running.get(key)! - 1)
        })
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, fiber) => fiber),
        (fiber) =>
          Effect.forEach(
            Array.from({ length: rounds * names.length }, (_, i) => i),
            (i) => {
              const round = Math.floor(i / names.length)
              const key = names[(i + fiber) % names.length]!
              return Effect.zipRight(
                sequent.schedule(task(key, fiber, round), { key }),
                i % 5 === 0 ? Effect.yieldNow() : Effect.void
              )
            },
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      yield* sequent.flush

      assert.strictEqual(overlaps, 0, "never two tasks of one key at once")
      for (const key of names) {
        const runs = seen.get(key)!
        assert.strictEqual(runs.length, 20 * rounds, `every task of ${key} ran once`)
        for (let fiber = 0; fiber < 20; fiber++) {
          assert.deepStrictEqual(
            runs.filter(([f]) => f === fiber).map(([, round]) => round),
            [0, 1, 2],
            `fiber ${fiber}'s tasks of ${key} kept their order`
          )
        }
      }
    }))

  it.scoped("concurrency 3 runs three lanes at once and never a fourth", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 3 })
      const gate = yield* Deferred.make<void>()
      const threeRunning = yield* Deferred.make<void>()
      const started: Array<string> = []
      let running = 0
      let most = 0
      const task = (name: string) =>
        Effect.gen(function*() {
          started.push(name)
          most = Math.max(most, ++running)
          if (running === 3) yield* Deferred.succeed(threeRunning, undefined)
          yield* Deferred.await(gate)
          running--
        })
      for (const key of ["a", "b", "c", "d", "e", "f"]) {
        for (const i of [0, 1]) yield* sequent.schedule(task(`${key}${i}`), { key })
      }
      yield* Deferred.await(threeRunning)
      yield* settle()
      assert.deepStrictEqual(started, ["a0", "b0", "c0"], "the first three lanes run, the others wait for a slot")
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.strictEqual(started.length, 12)
      assert.strictEqual(most, 3)
    }))

  it.scoped("concurrency \"unbounded\" runs every lane at once", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: "unbounded" })
      const gate = yield* Deferred.make<void>()
      const allRunning = yield* Deferred.make<void>()
      let running = 0
      const task = Effect.gen(function*() {
        if (++running === 100) yield* Deferred.succeed(allRunning, undefined)
        yield* Deferred.await(gate)
        running--
      })
      for (const key of keys(100)) yield* sequent.schedule(task, { key })
      yield* Deferred.await(allRunning)
      assert.strictEqual(running, 100)
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.strictEqual(running, 0)
    }))

  it.scoped("a lane waiting out a backoff holds no slot: with concurrency 2, two lanes in backoff leave both slots to others", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 2, retry: Schedule.spaced("1 minute") })
      const a = failing(1)
      const b = failing(1)
      yield* sequent.schedule(a.task, { key: "a" })
      yield* sequent.schedule(b.task, { key: "b" })
      const gate = yield* Deferred.make<void>()
      const bothRunning = yield* Deferred.make<void>()
      let running = 0
      const blocked = Effect.gen(function*() {
        if (++running === 2) yield* Deferred.succeed(bothRunning, undefined)
        yield* Deferred.await(gate)
      })
      yield* sequent.schedule(blocked, { key: "c" })
      yield* sequent.schedule(blocked, { key: "d" })
      yield* Deferred.await(bothRunning)
      assert.deepStrictEqual([a.times, b.times], [[0], [0]], "a and b failed once and wait for their retry")
      yield* Deferred.succeed(gate, undefined)
      yield* TestClock.adjust("1 minute")
      yield* sequent.flush
      assert.deepStrictEqual([a.times, b.times], [[0, 60_000], [0, 60_000]])
    }))
})

describe("fairness", () => {
  it.scoped("with concurrency 1, a lane that keeps receiving tasks does not starve another: the other's task runs right after the current one", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const ran: Array<string> = []
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void>()
      // every task of lane a schedules the next one while it runs, so lane a is never empty
      const stream = (i: number): Effect.Effect<void> =>
        Effect.gen(function*() {
          ran.push(`a${i}`)
          if (i < 5) yield* Effect.orDie(sequent.schedule(stream(i + 1), { key: "a" }))
          else yield* Deferred.succeed(done, undefined)
          if (i === 0) {
            yield* Deferred.succeed(started, undefined)
            yield* Deferred.await(gate)
          }
        })
      yield* sequent.schedule(stream(0), { key: "a" })
      yield* Deferred.await(started)
      yield* sequent.schedule(Effect.sync(() => ran.push("b")), { key: "b" })
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(done)
      assert.deepStrictEqual(ran, ["a0", "b", "a1", "a2", "a3", "a4", "a5"])
    }))

  it.scoped("with concurrency 1, two lanes that both keep receiving tasks take turns, task by task", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const ran: Array<string> = []
      const started = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void>()
      const stream = (key: string, i: number): Effect.Effect<void> =>
        Effect.gen(function*() {
          ran.push(`${key}${i}`)
          if (i < 3) yield* Effect.orDie(sequent.schedule(stream(key, i + 1), { key }))
          else if (key === "b") yield* Deferred.succeed(done, undefined)
          if (key === "a" && i === 0) {
            yield* Deferred.succeed(started, undefined)
            yield* Deferred.await(gate)
          }
        })
      yield* sequent.schedule(stream("a", 0), { key: "a" })
      yield* Deferred.await(started)
      yield* sequent.schedule(stream("b", 0), { key: "b" })
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(done)
      assert.deepStrictEqual(ran, ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"])
    }))

  it.scoped("ready lanes are served in the order they became ready", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      yield* sequent.schedule(Deferred.await(gate), { key: "first" })
      for (const key of ["e", "c", "a", "d", "b"]) yield* sequent.schedule(Effect.sync(() => ran.push(key)), { key })
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(ran, ["e", "c", "a", "d", "b"])
    }))
})

describe("lane reclamation", () => {
  it.scoped("100,000 keys in waves of 1,000: laneCount equals the keys with unfinished tasks, and returns to 0", () =>
    Effect.gen(function*() {
      // unbounded, so the tasks waiting for the gate hold no slot the others need
      const sequent = yield* Sequent.make({ concurrency: "unbounded" })
      let ran = 0
      const sizeReaches = (target: number) =>
        Effect.gen(function*() {
          while ((yield* sequent.size) > target) yield* Effect.yieldNow()
        })
      const halfway: Array<number> = []
      const afterWave: Array<number> = []
      for (let wave = 0; wave < 100; wave++) {
        // half the wave's tasks finish at once, the other half wait for the wave's gate
        const gate = yield* Deferred.make<void>()
        for (let i = 0; i < 1000; i++) {
          const task = i % 2 === 0 ? Effect.void : Deferred.await(gate)
          yield* sequent.schedule(Effect.zipRight(task, Effect.sync(() => ran++)), { key: `w${wave}-${i}` })
        }
        yield* sizeReaches(500)
        halfway.push(yield* sequent.laneCount)
        yield* Deferred.succeed(gate, undefined)
        yield* sizeReaches(0)
        afterWave.push(yield* sequent.laneCount)
      }
      assert.strictEqual(ran, 100_000)
      assert.deepStrictEqual(halfway, Array.from({ length: 100 }, () => 500), "one lane per key still waiting")
      assert.deepStrictEqual(afterWave, Array.from({ length: 100 }, () => 0), "no lane outlives its last task")
    }))

  it.scoped("tasks a key receives from other keys' tasks around resume(key) still run one at a time, in the order their schedule calls returned", () =>
    Effect.gen(function*() {
      // a1 schedules b1, b1 schedules a2: if resume("a") runs a worker at once, lane a is drained, forgotten
      // and created anew for a2 before resume returns (the executor once lost track of that new lane)
      const sequent = yield* Sequent.make({ concurrency: 2 })
      const busy = yield* Deferred.make<void>()
      const busyStarted = yield* Deferred.make<void>()
      const gate = yield* Deferred.make<void>()
      const returned: Array<string> = []
      const ran: Array<string> = []
      const scheduleA = (name: string, task: Effect.Effect<void>) =>
        Effect.zipRight(Effect.orDie(sequent.schedule(task, { key: "a" })), Effect.sync(() => returned.push(name)))
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(busyStarted, undefined), Deferred.await(busy)), {
        key: "x"
      })
      yield* Deferred.await(busyStarted)
      const a2 = Effect.gen(function*() {
        ran.push("a2 start")
        yield* Deferred.await(gate)
        ran.push("a2 end")
      })
      const b1 = scheduleA("a2", a2)
      const a1 = Effect.asVoid(Effect.orDie(sequent.schedule(b1, { key: "b" })))
      yield* sequent.pause("a")
      yield* scheduleA("a1", Effect.zipRight(a1, Effect.sync(() => ran.push("a1"))))
      yield* sequent.resume("a")
      yield* scheduleA("a3", Effect.sync(() => ran.push("a3")))
      assert.strictEqual(yield* sequent.sizeOf("a"), 2, "a2 and a3 are in the same lane, or a1 and a3 are")
      yield* Deferred.succeed(busy, undefined)
      yield* settle()
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      const expected = returned.flatMap((name) => name === "a2" ? ["a2 start", "a2 end"] : [name])
      assert.deepStrictEqual(ran, expected)
    }))

  it.scoped("an empty lane is kept while it is paused or halted, and forgotten on resume", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(0), onGiveUp: "halt" })
      yield* sequent.pause("paused")
      yield* Effect.exit(sequent.submit(Effect.fail("gone"), { key: "halted" }))
      yield* sequent.submit(Effect.void, { key: "plain" })
      assert.strictEqual(yield* sequent.laneCount, 2, "the paused and the halted lane")
      yield* sequent.resume("paused")
      assert.strictEqual(yield* sequent.laneCount, 1)
      yield* sequent.resume("halted")
      assert.strictEqual(yield* sequent.laneCount, 0)
    }))
})

describe("default lane", () => {
  it.scoped("tasks without a key share the default lane: one at a time, in order, beside the keyed lanes, and not counted in laneCount", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 2 })
      const gate = yield* Deferred.make<void>()
      const ran: Array<string> = []
      let running = 0
      let most = 0
      const task = (name: string) =>
        Effect.gen(function*() {
          most = Math.max(most, ++running)
          ran.push(name)
          if (name === "d0") yield* Deferred.await(gate)
          yield* Effect.yieldNow()
          running--
        })
      for (const i of [0, 1, 2, 3]) yield* sequent.schedule(task(`d${i}`))
      assert.strictEqual(
        yield* sequent.submit(Effect.succeed("keyed"), { key: "a" }),
        "keyed",
        "a keyed task runs while the default lane is blocked"
      )
      assert.strictEqual(yield* sequent.laneCount, 0)
      assert.strictEqual(yield* sequent.size, 4)
      yield* Deferred.succeed(gate, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(ran, ["d0", "d1", "d2", "d3"])
      assert.strictEqual(most, 1, "the default lane runs one task at a time")
    }))
})

describe("flush and stop across lanes", () => {
  it.scoped("flush waits for every lane, including one waiting out a backoff", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 2, retry: Schedule.spaced("1 minute") })
      const a = failing(2)
      const b = failing(0)
      const c = failing(1)
      const d = failing(0)
      yield* sequent.schedule(a.task, { key: "a" })
      yield* sequent.schedule(b.task, { key: "b" })
      yield* sequent.schedule(c.task, { key: "c" })
      yield* sequent.schedule(d.task)
      const flushing = yield* Effect.fork(sequent.flush)
      yield* TestClock.adjust("119 seconds")
      assert.isNull(flushing.unsafePoll(), "a is still retrying")
      assert.strictEqual(yield* sequent.size, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(flushing)
      assert.deepStrictEqual([a.times, b.times, c.times, d.times], [[0, 60_000, 120_000], [0], [0, 60_000], [0]])
      assert.strictEqual(yield* sequent.size, 0)
      assert.strictEqual(yield* sequent.laneCount, 0)
    }))

  it.scoped("stop drops every lane's tasks, running, queued or in backoff: each submit fails with SequentStoppedError and its attempts", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ concurrency: 2, retry: Schedule.spaced("1 minute") })
      const ran: Array<string> = []
      const bothStarted = yield* Deferred.make<void>()
      let started = 0
      const never = Effect.zipRight(
        Effect.suspend(() => ++started === 2 ? Deferred.succeed(bothStarted, undefined) : Effect.void),
        Effect.never
      )
      const retrying = failing(Infinity)
      const submit = (task: Effect.Effect<unknown, unknown>, key?: string) => Effect.fork(sequent.submit(task, { key }))
      const inBackoff = yield* submit(retrying.task, "x")
      yield* Effect.yieldNow()
      const runningA = yield* submit(never, "a")
      const runningB = yield* submit(never, "b")
      const queuedA = yield* submit(Effect.sync(() => ran.push("a")), "a")
      const waitingC = yield* submit(Effect.sync(() => ran.push("c")), "c")
      const queuedDefault = yield* submit(Effect.sync(() => ran.push("default")))
      yield* Deferred.await(bothStarted)
      yield* sequent.stop
      yield* TestClock.adjust("10 minutes")

      const stopped = (attempts: number) => Exit.fail(new SequentStoppedError({ attempts }))
      assert.deepStrictEqual(yield* Fiber.await(inBackoff), stopped(1))
      assert.deepStrictEqual(yield* Fiber.await(runningA), stopped(1))
      assert.deepStrictEqual(yield* Fiber.await(runningB), stopped(1))
      assert.deepStrictEqual(yield* Fiber.await(queuedA), stopped(0))
      assert.deepStrictEqual(yield* Fiber.await(waitingC), stopped(0))
      assert.deepStrictEqual(yield* Fiber.await(queuedDefault), stopped(0))
      assert.deepStrictEqual(ran, [])
      assert.deepStrictEqual(retrying.times, [0], "no retry after stop")
      assert.strictEqual(yield* sequent.size, 0)
      assert.strictEqual(yield* sequent.laneCount, 0)
    }))
})

describe("sizeOf", () => {
  it.scoped("counts a key's queued and running tasks, is 0 for a key with none, and drops as they finish", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate0 = yield* Deferred.make<void>()
      const gate1 = yield* Deferred.make<void>()
      const started1 = yield* Deferred.make<void>()
      yield* sequent.schedule(Deferred.await(gate0), { key: "a" })
      yield* sequent.schedule(Effect.zipRight(Deferred.succeed(started1, undefined), Deferred.await(gate1)), {
        key: "a"
      })
      yield* sequent.schedule(Effect.void, { key: "a" })
      yield* sequent.schedule(Effect.void, { key: "b" })
      yield* sequent.schedule(Effect.void)
      assert.deepStrictEqual(
        yield* Effect.all([sequent.sizeOf("a"), sequent.sizeOf("b"), sequent.sizeOf("unknown"), sequent.size]),
        [3, 1, 0, 5]
      )
      yield* Deferred.succeed(gate0, undefined)
      yield* Deferred.await(started1)
      // a0 finished; b and the default lane ran before a1 (they were waiting); a1 runs, a2 waits
      assert.deepStrictEqual(
        yield* Effect.all([sequent.sizeOf("a"), sequent.sizeOf("b"), sequent.size]),
        [2, 0, 2]
      )
      yield* Deferred.succeed(gate1, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(yield* Effect.all([sequent.sizeOf("a"), sequent.size]), [0, 0])
    }))
})
