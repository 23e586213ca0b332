import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { Sequent, SequentClosedError, SequentLive, SequentStoppedError } from "../src/index.js"
import { record, recordingLogger } from "./support.js"

describe("flush", () => {
  it.scoped("runs every task scheduled before it, then the worker ends", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      const log = yield* Ref.make<ReadonlyArray<number>>([])
      let failures = 2
      yield* sequent.schedule(record(log, 1))
      yield* sequent.schedule(Effect.suspend(() => failures-- > 0 ? Effect.fail("down") : record(log, 2)))
      yield* sequent.schedule(record(log, 3))
      const flushing = yield* Effect.fork(sequent.flush)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(yield* Ref.get(log), [1, 2, 3])
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("is idempotent, and concurrent callers all wait for the same drain", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      const done = yield* Ref.make(false)
      yield* sequent.schedule(Effect.zipRight(Deferred.await(gate), Ref.set(done, true)))
      const callers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(sequent.flush))
      yield* Effect.yieldNow()
      for (const caller of callers) assert.isNull(caller.unsafePoll(), "waits while a task is pending")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(callers)
      assert.isTrue(yield* Ref.get(done))
      yield* sequent.flush
    }))

  it.scoped("returns at once after stop", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      yield* sequent.schedule(Effect.never)
      yield* sequent.stop
      yield* sequent.flush
      assert.strictEqual(yield* sequent.size, 0)
    }))
})

describe("from inside a task", () => {
  it.scoped("flush closes intake and returns at once, and the queue still drains", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      yield* sequent.schedule(Effect.zipRight(sequent.flush, record(log, "a flushed")))
      yield* sequent.schedule(record(log, "b"))
      yield* sequent.flush
      assert.deepStrictEqual(yield* Ref.get(log), ["a flushed", "b"])
      assert.deepStrictEqual(
        yield* Effect.exit(sequent.schedule(Effect.void)),
        Exit.fail(new SequentClosedError({ state: "flushing" }))
      )
    }))

  it.scoped("stop interrupts the calling task and drops the queue instead of waiting for itself", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const interrupted = yield* Deferred.make<void>()
      const ran = yield* Ref.make(false)
      const caller = yield* Effect.fork(sequent.submit(
        Effect.zipRight(sequent.stop, Effect.never).pipe(
          Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
        )
      ))
      const queued = yield* Effect.fork(sequent.submit(Ref.set(ran, true)))
      yield* Deferred.await(interrupted)
      yield* sequent.stop // waits for the stop the task began
      assert.deepStrictEqual(yield* Fiber.await(caller), Exit.fail(new SequentStoppedError({ attempts: 1 })))
      assert.deepStrictEqual(yield* Fiber.await(queued), Exit.fail(new SequentStoppedError({ attempts: 0 })))
      assert.isFalse(yield* Ref.get(ran))
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("stop closes intake at once: a task that goes on after it schedules nothing, and the task behind it never runs", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const gate = yield* Deferred.make<void>()
      const late = yield* Deferred.make<Exit.Exit<void, unknown>>()
      yield* sequent.schedule(Effect.gen(function*() {
        yield* Deferred.await(gate)
        yield* sequent.stop
        yield* Deferred.succeed(late, yield* Effect.exit(sequent.schedule(record(log, "late"))))
        yield* record(log, "a")
      }))
      yield* sequent.schedule(record(log, "b"))
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Deferred.await(late), Exit.fail(new SequentClosedError({ state: "stopped" })))
      yield* sequent.stop // waits for the stop the task began
      assert.deepStrictEqual(yield* Ref.get(log), ["a"])
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("stop from a fiber the task forked and joins interrupts the task instead of waiting for the worker that waits for it", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const caller = yield* Effect.fork(sequent.submit(Effect.flatMap(Effect.fork(sequent.stop), Fiber.join)))
      const queued = yield* Effect.fork(sequent.submit(Effect.void))
      assert.deepStrictEqual(yield* Fiber.await(caller), Exit.fail(new SequentStoppedError({ attempts: 1 })))
      assert.deepStrictEqual(yield* Fiber.await(queued), Exit.fail(new SequentStoppedError({ attempts: 0 })))
      yield* sequent.stop
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("flush from a fiber the task forked and joins closes intake and returns, as from the task itself", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      yield* sequent.schedule(Effect.zipRight(Effect.flatMap(Effect.fork(sequent.flush), Fiber.join), record(log, "a")))
      yield* sequent.schedule(record(log, "b"))
      yield* sequent.flush
      assert.deepStrictEqual(yield* Ref.get(log), ["a", "b"])
    }))
})

describe("stop", () => {
  it.scoped("interrupts the running task, whose finalizer has run when stop returns, and drops the queue", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const started = yield* Deferred.make<void>()
      const finalized = yield* Ref.make(false)
      const ran = yield* Ref.make(false)
      const running = yield* Effect.fork(sequent.submit(
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never).pipe(
          Effect.ensuring(Ref.set(finalized, true))
        )
      ))
      const queued = yield* Effect.fork(sequent.submit(Ref.set(ran, true)))
      yield* Deferred.await(started)
      yield* sequent.stop
      assert.isTrue(yield* Ref.get(finalized))
      assert.deepStrictEqual(yield* Fiber.await(running), Exit.fail(new SequentStoppedError({ attempts: 1 })))
      assert.deepStrictEqual(yield* Fiber.await(queued), Exit.fail(new SequentStoppedError({ attempts: 0 })))
      assert.isFalse(yield* Ref.get(ran))
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("leaves no lane behind: a pause of a key after it makes none", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      yield* sequent.schedule(Effect.void, { key: "k" })
      yield* sequent.stop
      yield* sequent.pause("k")
      assert.strictEqual(yield* sequent.laneCount, 0)
      assert.deepStrictEqual((yield* sequent.status).lanes, [])
    }))

  it.scoped("interrupts a task waiting out its backoff", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      let attempts = 0
      const fiber = yield* Effect.fork(sequent.submit(Effect.suspend(() => {
        attempts++
        return Effect.fail("down")
      })))
      yield* TestClock.adjust("90 seconds")
      yield* sequent.stop
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(attempts, 2)
      assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.fail(new SequentStoppedError({ attempts: 2 })))
    }))

  it.scoped("is idempotent", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      yield* sequent.schedule(Effect.never)
      yield* Effect.all([sequent.stop, sequent.stop], { concurrency: "unbounded" })
      yield* sequent.stop
      assert.strictEqual(yield* sequent.size, 0)
    }))

  it.scoped("during a flush releases the flush, which returns normally", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      yield* sequent.schedule(Effect.never)
      const flushing = yield* Effect.fork(sequent.flush)
      yield* Effect.yieldNow()
      yield* sequent.stop
      assert.deepStrictEqual(yield* Fiber.await(flushing), Exit.void)
    }))
})

describe("size", () => {
  it.scoped("counts queued plus running tasks, and is 0 once stop has returned", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const gate = yield* Deferred.make<void>()
      assert.strictEqual(yield* sequent.size, 0)
      yield* sequent.schedule(Deferred.await(gate))
      yield* sequent.schedule(Effect.void)
      yield* sequent.schedule(Effect.never)
      assert.strictEqual(yield* sequent.size, 3)
      yield* Deferred.succeed(gate, undefined)
      while ((yield* sequent.size) > 1) yield* Effect.yieldNow()
      assert.strictEqual(yield* sequent.size, 1, "the never-ending task is still running")
      yield* sequent.stop
      assert.strictEqual(yield* sequent.size, 0)
    }))
})

describe("scope", () => {
  it.effect("the worker starts when the layer is built and closing the layer runs what was scheduled", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<number>>([])
      yield* Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* Sequent.schedule(record(log, i))
      }).pipe(Effect.provide(SequentLive))
      assert.deepStrictEqual(yield* Ref.get(log), [0, 1, 2])
    }))

  it.effect("closing the scope flushes within the grace period, then stops and warns how many tasks were dropped", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const log = yield* Ref.make<ReadonlyArray<number>>([])
        const sequent = yield* Sequent.make({ closeGracePeriod: "5 seconds", retry: Schedule.spaced("1 second") }).pipe(
          Scope.extend(scope)
        )
        yield* sequent.schedule(record(log, 1))
        yield* sequent.schedule(Effect.fail("never recovers"))
        yield* sequent.schedule(record(log, 3))
        yield* sequent.schedule(record(log, 4))
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("4 seconds")
        assert.isNull(closing.unsafePoll(), "still flushing within the grace period")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        assert.deepStrictEqual(yield* Ref.get(log), [1])
        const warning = logger.entries.find((entry) => entry.level === "WARN" && entry.message.includes("dropped"))
        assert.isDefined(warning)
        assert.include(warning!.message, "3 task(s) dropped")
      }).pipe(Effect.provide(logger.layer))
    }))

  it.effect("closing the scope after an explicit stop warns of nothing: stop already settled its tasks", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        yield* Effect.scoped(Effect.gen(function*() {
          const sequent = yield* Sequent.make()
          yield* sequent.schedule(Effect.never)
          yield* sequent.schedule(Effect.void)
          yield* sequent.stop
        }))
        assert.deepStrictEqual(logger.entries.filter((entry) => entry.message.includes("dropped")), [])
      }).pipe(Effect.provide(logger.layer))
    }))

  it.effect("closing the scope from inside one of its own tasks returns, stops the executor and interrupts the task after", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const sequent = yield* Scope.extend(Sequent.make(), scope)
      const closeReturned = yield* Deferred.make<void>()
      const ranOn = yield* Ref.make(false)
      yield* sequent.schedule(
        Scope.close(scope, Exit.void).pipe(
          Effect.zipRight(Deferred.succeed(closeReturned, undefined)),
          Effect.zipRight(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(closeReturned, undefined))
        )
      )
      yield* sequent.schedule(Ref.set(ranOn, true))
      yield* Deferred.await(closeReturned)
      yield* sequent.stop // waits for the stop the close began
      assert.strictEqual((yield* sequent.status).state, "stopped")
      assert.strictEqual(yield* sequent.size, 0)
      assert.isFalse(yield* Ref.get(ranOn), "the task behind it never ran")
      assert.deepStrictEqual(
        yield* Effect.exit(sequent.schedule(Effect.void)),
        Exit.fail(new SequentClosedError({ state: "stopped" }))
      )
    }))

  it.effect("a layer built with options closes the same way", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<number>>([])
      const layer = Sequent.layer({ retry: Schedule.spaced("1 second") })
      let failures = 1
      const fiber = yield* Effect.fork(
        Effect.gen(function*() {
          yield* Sequent.schedule(Effect.suspend(() => failures-- > 0 ? Effect.fail("down") : record(log, 1)))
          yield* Sequent.schedule(record(log, 2))
        }).pipe(Effect.provide(layer))
      )
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* Ref.get(log), [1, 2])
      assert.isTrue(Layer.isLayer(layer))
    }))
})
