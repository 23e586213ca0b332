/**
 * Per-task policy (retry, timeout, isRetryable) and what happens when a task
 * gives up (deadLetter, onGiveUp).
 */
import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import type {
  DeadLetter,
  DurableSequent,
  GiveUp,
  Journal,
  JournalError,
  ScheduleError,
  SequentClosedError,
  SequentFullError,
  SequentStoppedError,
  TaskHandlers,
  TaskOptions
} from "../src/index.js"
import { Durable, Sequent, SequentLive, SequentOptionError, SequentTimeoutError } from "../src/index.js"
import { failing, recordingLogger, settle } from "./support.js"

class Flaky extends Data.TaggedError("Flaky")<{}> {}
class StoreDown extends Data.TaggedError("StoreDown")<{}> {}
class LetterBox extends Context.Tag("test/LetterBox")<LetterBox, Array<GiveUp>>() {}
class Fatal extends Data.TaggedError("Fatal")<{}> {}

const failures = (cause: Cause.Cause<unknown>) => Chunk.toReadonlyArray(Cause.failures(cause))

describe("per-task retry", () => {
  it.scoped("a task's own retry schedule replaces the executor's, for that task only", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 minute") })
      const own = failing(2)
      const inherited = failing(1)
      yield* sequent.schedule(own.task, { retry: Schedule.spaced("1 second") })
      yield* sequent.schedule(inherited.task)
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(own.times, [0, 1_000, 2_000])
      assert.deepStrictEqual(inherited.times, [2_000, 62_000])
    }))

  it.scoped("a task's finite retry schedule gives up: submit fails with the last error", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const task = failing(10)
      const exit = yield* Effect.exit(sequent.submit(task.task, { retry: Schedule.recurs(2) }))
      assert.deepStrictEqual(exit, Exit.fail("failure 3"))
      assert.strictEqual(task.attempts(), 3)
    }))
})

describe("timeout", () => {
  it.scoped("an attempt longer than its timeout is interrupted and counts as failed; a faster retry succeeds", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("10 seconds") })
      const starts: Array<number> = []
      const ends: Array<number> = []
      let interrupted = 0
      let attempt = 0
      const task = Effect.gen(function*() {
        starts.push(yield* Clock.currentTimeMillis)
        const n = ++attempt
        yield* Effect.sleep(n === 1 ? "5 seconds" : "500 millis").pipe(
          Effect.onInterrupt(() => Effect.sync(() => interrupted++))
        )
        ends.push(yield* Clock.currentTimeMillis)
        return n
      })
      const fiber = yield* Effect.fork(sequent.submit(task, { timeout: "1 second" }))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(fiber), 2)
      assert.deepStrictEqual(starts, [0, 11_000], "timed out at 1 s, retried 10 s later")
      assert.deepStrictEqual(ends, [11_500])
      assert.strictEqual(interrupted, 1)
    }))

  it.scoped("when the retry schedule gives up after timeouts, submit fails with SequentTimeoutError", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({
        retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2)))
      })
      const starts: Array<number> = []
      const task = Effect.zipRight(
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => starts.push(now))),
        Effect.never
      )
      const fiber = yield* Effect.fork(Effect.exit(sequent.submit(task, { timeout: "2 seconds" })))
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(
        yield* Fiber.join(fiber),
        Exit.fail(new SequentTimeoutError({ timeout: Duration.seconds(2) }))
      )
      assert.deepStrictEqual(starts, [0, 3_000, 6_000])
    }))

  it.scoped("a non-positive timeout fails schedule and submit with SequentOptionError, and the task is not accepted", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      let ran = 0
      const task = Effect.sync(() => ran++)
      const errors = [
        yield* Effect.flip(sequent.schedule(task, { timeout: 0 })),
        yield* Effect.flip(sequent.schedule(task, { timeout: "0 millis" })),
        yield* Effect.flip(sequent.schedule(task, { timeout: -1_000, key: "a" })),
        yield* Effect.flip(sequent.submit(task, { timeout: Duration.zero }))
      ]
      assert.strictEqual(yield* sequent.size, 0)
      yield* sequent.flush
      assert.strictEqual(ran, 0)
      for (const error of errors) {
        assert.instanceOf(error, SequentOptionError)
        assert.strictEqual((error as SequentOptionError).option, "timeout")
      }
    }))
})

describe("timeout in the types", () => {
  const task = Effect.succeed(1)
  type Refusals = SequentClosedError | SequentFullError

  it.scoped("a timeout typed DurationInput | undefined keeps SequentOptionError in schedule's type, and fails with it", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const configured = 0 as Duration.DurationInput | undefined
      const scheduled = sequent.schedule(task, { timeout: configured })
      expectTypeOf(scheduled).toEqualTypeOf<Effect.Effect<void, Refusals | SequentOptionError>>()
      const submitted = sequent.submit(task, { timeout: configured })
      expectTypeOf(submitted).toEqualTypeOf<
        Effect.Effect<number, Refusals | SequentOptionError | SequentStoppedError | SequentTimeoutError>
      >()
      const error = yield* Effect.flip(scheduled)
      assert.instanceOf(error, SequentOptionError)
      assert.strictEqual(error._tag === "SequentOptionError" && error.option, "timeout")
    }))

  it.scoped("options without a timeout, or with one that is only undefined, keep it out; a TaskOptions value keeps it in", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const typed: TaskOptions = {}
      expectTypeOf(sequent.schedule(task)).toEqualTypeOf<Effect.Effect<void, Refusals>>()
      expectTypeOf(sequent.schedule(task, { key: "a" })).toEqualTypeOf<Effect.Effect<void, Refusals>>()
      expectTypeOf(sequent.schedule(task, { timeout: undefined })).toEqualTypeOf<Effect.Effect<void, Refusals>>()
      expectTypeOf(sequent.schedule(task, { timeout: "1 second" }))
        .toEqualTypeOf<Effect.Effect<void, Refusals | SequentOptionError>>()
      expectTypeOf(sequent.schedule(task, typed)).toEqualTypeOf<Effect.Effect<void, Refusals | SequentOptionError>>()
      expectTypeOf<ScheduleError<{ readonly key: "a" } | { readonly timeout: 5 }>>()
        .toEqualTypeOf<Refusals | SequentOptionError>()
      // and at run time: a task without a timeout is accepted, and one with a positive timeout runs
      yield* sequent.schedule(task, { timeout: undefined })
      assert.strictEqual(yield* sequent.submit(task, typed), 1)
    }))
})

describe("isRetryable", () => {
  it.scoped("a failure it rejects gives up at once, with no further attempt; a failure it accepts is retried", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      const starts: Array<number> = []
      let attempt = 0
      const task = Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<never, Flaky | Fatal> => {
        starts.push(now)
        return ++attempt === 1 ? Effect.fail(new Flaky()) : Effect.fail(new Fatal())
      })
      const fiber = yield* Effect.fork(
        Effect.exit(sequent.submit(task, { isRetryable: (error: Flaky | Fatal) => error._tag === "Flaky" }))
      )
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* Fiber.join(fiber), Exit.fail(new Fatal()))
      assert.deepStrictEqual(starts, [0, 1_000], "Flaky was retried after 1 s; Fatal gave up with no retry")
    }))

  it.scoped("a task whose first failure is rejected makes one attempt and gives up without waiting", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      let attempts = 0
      const task = Effect.suspend(() => (attempts++, Effect.fail(new Fatal())))
      const exit = yield* Effect.exit(sequent.submit(task, { isRetryable: () => false }))
      assert.deepStrictEqual(exit, Exit.fail(new Fatal()))
      assert.strictEqual(attempts, 1)
      assert.strictEqual(yield* Clock.currentTimeMillis, 0, "no clock time passed")
    }))

  it.scoped("timeouts and defects are always retried, whatever it says", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.spaced("1 second") })
      const starts: Array<number> = []
      let attempt = 0
      const task = Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<number> => {
        starts.push(now)
        switch (++attempt) {
          case 1:
            return Effect.die(new Error("defect"))
          case 2:
            return Effect.never
          default:
            return Effect.succeed(attempt)
        }
      })
      const fiber = yield* Effect.fork(sequent.submit(task, { isRetryable: () => false, timeout: "1 second" }))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(fiber), 3)
      assert.deepStrictEqual(starts, [0, 1_000, 3_000])
    }))
})

describe("faults in the policy itself", () => {
  it.scoped("isRetryable never sees the SequentFalseError of a task that returned false: false is always retried", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(5) })
      const seen: Array<unknown> = []
      let attempts = 0
      const task = Effect.sync(() => ++attempts === 3)
      const result = yield* sequent.submit(task, { isRetryable: (error: unknown) => (seen.push(error), false) })
      assert.isTrue(result)
      assert.strictEqual(attempts, 3)
      assert.deepStrictEqual(seen, [])
    }))

  it.scoped("an isRetryable that throws makes the task give up with the failure and the defect, and the lane moves on", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(5) })
      const bug = new Error("predicate bug")
      const exit = yield* Effect.exit(sequent.submit(Effect.fail("down"), {
        key: "a",
        isRetryable: (): boolean => {
          throw bug
        }
      }))
      const next = yield* sequent.submit(Effect.succeed("next"), { key: "a" })
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        assert.deepStrictEqual(failures(exit.cause), ["down"])
        assert.deepStrictEqual(Chunk.toReadonlyArray(Cause.defects(exit.cause)), [bug])
      }
      assert.strictEqual(next, "next")
    }))

  it.scoped("a retry schedule that dies makes the task give up, and the lane moves on", () =>
    Effect.gen(function*() {
      const bug = new Error("schedule bug")
      const retry = Schedule.spaced("1 second").pipe(Schedule.modifyDelay((): Duration.Duration => {
        throw bug
      }))
      const sequent = yield* Sequent.make({ retry })
      const exit = yield* Effect.exit(sequent.submit(Effect.fail("down"), { key: "a" }))
      const next = yield* sequent.submit(Effect.succeed("next"), { key: "a" })
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        assert.deepStrictEqual(failures(exit.cause), ["down"])
        assert.deepStrictEqual(Chunk.toReadonlyArray(Cause.defects(exit.cause)), [bug])
      }
      assert.strictEqual(next, "next")
    }))

  it.effect("a deadLetter handler that throws instead of returning an effect is logged and ignored: the lane moves on", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({
          retry: Schedule.recurs(0),
          deadLetter: (): Effect.Effect<void> => {
            throw new Error("handler bug")
          }
        })
        const gaveUp = yield* Effect.exit(sequent.submit(Effect.fail("gone"), { key: "a" }))
        const next = yield* sequent.submit(Effect.succeed("next"), { key: "a" })
        const failed = logger.entries.filter((entry) => entry.message === "Sequent: the dead-letter handler failed")
        assert.deepStrictEqual(gaveUp, Exit.fail("gone"))
        assert.strictEqual(next, "next")
        assert.strictEqual(failed.length, 1)
        assert.include(failed[0]!.cause, "handler bug")
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))
})

describe("deadLetter", () => {
  it.scoped("receives the key, the attempts and the cause of every task that gave up", () =>
    Effect.gen(function*() {
      const letters: Array<DeadLetter> = []
      const sequent = yield* Sequent.make({
        retry: Schedule.recurs(2),
        deadLetter: (letter) => Effect.sync(() => letters.push(letter))
      })
      const keyed = failing(10)
      const defect = new Error("defect")
      yield* Effect.exit(sequent.submit(keyed.task, { key: "a" }))
      yield* Effect.exit(sequent.submit(Effect.die(defect)))
      yield* Effect.exit(sequent.submit(Effect.fail(new Fatal()), { key: "b", isRetryable: () => false }))
      yield* sequent.submit(Effect.void, { key: "a" })
      assert.deepStrictEqual(
        letters.map(({ attempts, key }) => ({ key, attempts })),
        [{ key: "a", attempts: 3 }, { key: undefined, attempts: 3 }, { key: "b", attempts: 1 }]
      )
      assert.deepStrictEqual(failures(letters[0]!.cause), ["failure 3"])
      assert.deepStrictEqual(Chunk.toReadonlyArray(Cause.defects(letters[1]!.cause)), [defect])
      assert.deepStrictEqual(failures(letters[2]!.cause), [new Fatal()])
    }))

  it.scoped("with onGiveUp: \"halt\", a resume from inside the handler lifts the halt its give-up makes", () =>
    Effect.gen(function*() {
      const service = yield* Deferred.make<Sequent.Service>()
      const sequent = yield* Sequent.make({
        retry: Schedule.recurs(0),
        onGiveUp: "halt",
        deadLetter: (letter) => Effect.flatMap(Deferred.await(service), (self) => self.resume(letter.key))
      })
      yield* Deferred.succeed(service, sequent)
      yield* sequent.schedule(Effect.fail("rejected"), { key: "a" })
      assert.strictEqual(yield* sequent.submit(Effect.succeed("a2"), { key: "a" }), "a2")
      const status = yield* sequent.status
      assert.deepStrictEqual(status.lanes, [], "no lane is halted")
    }))

  it.scoped("is called before the lane moves on: the next task waits until the handler returns", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const stamp = (event: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => events.push(`${event} at ${now}`)))
      const sequent = yield* Sequent.make({
        retry: Schedule.recurs(0),
        deadLetter: () => Effect.zipRight(Effect.sleep("1 minute"), stamp("dead letter stored"))
      })
      yield* sequent.schedule(Effect.fail("gone"), { key: "a" })
      yield* sequent.schedule(stamp("next task"), { key: "a" })
      const flushing = yield* Effect.fork(sequent.flush)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(flushing)
      assert.deepStrictEqual(events, ["dead letter stored at 60000", "next task at 60000"])
    }))

  it.effect("a handler that fails is logged at Error and ignored: the lane moves on", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({
          retry: Schedule.recurs(0),
          deadLetter: () => Effect.die(new Error("dead-letter store down"))
        })
        const gaveUp = yield* Effect.exit(sequent.submit(Effect.fail("gone"), { key: "a" }))
        const next = yield* sequent.submit(Effect.succeed("next"), { key: "a" })
        const failed = logger.entries.filter((entry) => entry.message === "Sequent: the dead-letter handler failed")
        assert.deepStrictEqual(gaveUp, Exit.fail("gone"))
        assert.strictEqual(next, "next")
        assert.strictEqual(failed.length, 1)
        assert.strictEqual(failed[0]!.level, "ERROR")
        assert.include(failed[0]!.cause, "dead-letter store down")
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))
})

describe("deadLetter handlers that fail or need services", () => {
  it.effect("a handler that fails with a typed error is logged at Error and ignored: the lane moves on", () =>
    Effect.suspend(() => {
      const logger = recordingLogger()
      return Effect.gen(function*() {
        const sequent = yield* Sequent.make({
          retry: Schedule.recurs(0),
          deadLetter: () => Effect.fail(new StoreDown())
        })
        const gaveUp = yield* Effect.exit(sequent.submit(Effect.fail("gone"), { key: "a" }))
        const next = yield* sequent.submit(Effect.succeed("next"), { key: "a" })
        const failed = logger.entries.filter((entry) => entry.message === "Sequent: the dead-letter handler failed")
        assert.deepStrictEqual(gaveUp, Exit.fail("gone"))
        assert.strictEqual(next, "next")
        assert.deepStrictEqual(failed.map((entry) => entry.level), ["ERROR"])
        assert.include(failed[0]!.cause, "StoreDown")
      }).pipe(Effect.scoped, Effect.provide(logger.layer))
    }))

  it.effect("a handler runs with the services of the layer's context, not those of the task's caller", () =>
    Effect.gen(function*() {
      const layer = Sequent.layer({
        retry: Schedule.recurs(0),
        deadLetter: (giveUp) => Effect.flatMap(LetterBox, (box) => Effect.sync(() => box.push(giveUp)))
      })
      expectTypeOf(layer).toEqualTypeOf<Layer.Layer<Sequent, never, LetterBox>>()
      const layerBox: Array<GiveUp> = []
      const callerBox: Array<GiveUp> = []
      const exit = yield* Effect.exit(Sequent.submit(Effect.fail("gone"), { key: "a" })).pipe(
        Effect.provideService(LetterBox, callerBox),
        Effect.provide(layer.pipe(Layer.provide(Layer.succeed(LetterBox, layerBox))))
      )
      assert.deepStrictEqual(exit, Exit.fail("gone"))
      assert.deepStrictEqual(layerBox.map(({ attempts, key }) => ({ attempts, key })), [{ attempts: 1, key: "a" }])
      assert.deepStrictEqual(callerBox, [])
    }))

  it("what a handler requires is what make and layer require, durable ones too; without one they require nothing", () => {
    const handler = (giveUp: GiveUp) => Effect.flatMap(LetterBox, (box) => Effect.sync(() => box.push(giveUp)))
    expectTypeOf(Sequent.make({ deadLetter: handler }))
      .toEqualTypeOf<Effect.Effect<Sequent.Service, never, Scope.Scope | LetterBox>>()
    expectTypeOf(Sequent.make()).toEqualTypeOf<Effect.Effect<Sequent.Service, never, Scope.Scope>>()
    expectTypeOf(Sequent.layer({ retry: Schedule.recurs(1) })).toEqualTypeOf<Layer.Layer<Sequent>>()
    expectTypeOf(SequentLive).toEqualTypeOf<Layer.Layer<Sequent>>()
    expectTypeOf(Durable.layer({ deadLetter: handler }))
      .toEqualTypeOf<Layer.Layer<DurableSequent, JournalError, Journal | TaskHandlers | LetterBox>>()
    expectTypeOf(Durable.layer()).toEqualTypeOf<Layer.Layer<DurableSequent, JournalError, Journal | TaskHandlers>>()
    // the old name of the handler's argument is the same type
    expectTypeOf<DeadLetter>().toEqualTypeOf<GiveUp>()
    assert.isTrue(Layer.isLayer(Sequent.layer({ deadLetter: handler })))
  })
})

describe("onGiveUp", () => {
  it.scoped("\"continue\" (the default): the lane goes on with its next task right after a give-up", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({
        retry: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(1)))
      })
      const gone = failing(10)
      const next = failing(0)
      yield* sequent.schedule(gone.task, { key: "a" })
      yield* sequent.schedule(next.task, { key: "a" })
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(gone.times, [0, 1_000])
      assert.deepStrictEqual(next.times, [1_000])
    }))

  it.scoped("\"halt\": after a give-up the lane starts nothing, keeps accepting, and goes on in order after resume(key); other lanes run on", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(1), onGiveUp: "halt" })
      const ran: Array<string> = []
      const run = (name: string) => Effect.sync(() => ran.push(name))
      yield* sequent.schedule(Effect.fail("gone"), { key: "a" })
      yield* sequent.schedule(run("a1"), { key: "a" })
      assert.deepStrictEqual(
        yield* Effect.exit(sequent.submit(Effect.fail("also gone"), { key: "b" })),
        Exit.fail("also gone")
      )
      yield* sequent.schedule(run("a2"), { key: "a" })
      yield* sequent.schedule(run("b1"), { key: "b" })
      yield* sequent.submit(run("c1"), { key: "c" })
      yield* settle()
      assert.deepStrictEqual(ran, ["c1"], "a and b are halted, c is not")
      assert.deepStrictEqual(yield* Effect.all([sequent.sizeOf("a"), sequent.sizeOf("b")]), [2, 1])
      yield* sequent.resume("a")
      yield* sequent.submit(run("a3"), { key: "a" })
      assert.deepStrictEqual(ran, ["c1", "a1", "a2", "a3"], "a goes on in order; b is still halted")
      yield* sequent.resume("b")
      yield* sequent.flush
      assert.deepStrictEqual(ran, ["c1", "a1", "a2", "a3", "b1"])
    }))

  it.scoped("\"halt\": a lane halted with nothing queued holds a later task until resume; resume() with no key lifts every halt", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.recurs(0), onGiveUp: "halt" })
      const ran: Array<string> = []
      yield* Effect.exit(sequent.submit(Effect.fail("gone"), { key: "a" }))
      yield* Effect.exit(sequent.submit(Effect.fail("gone")))
      yield* sequent.schedule(Effect.sync(() => ran.push("a")), { key: "a" })
      yield* sequent.schedule(Effect.sync(() => ran.push("default")))
      yield* settle()
      assert.deepStrictEqual(ran, [])
      yield* sequent.resume()
      yield* sequent.flush
      assert.sameMembers(ran, ["a", "default"])
    }))
})
