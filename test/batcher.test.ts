import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import { makeBatcher } from "../src/internal/batcher.js"

/**
 * A write that records its batches; the first write waits for `release`, so
 * the test can line callers up behind it.
 */
const makeGatedWrite = Effect.gen(function*() {
  const batches: Array<ReadonlyArray<number>> = []
  const started = yield* Deferred.make<void>()
  const release = yield* Deferred.make<void>()
  const write = (items: ReadonlyArray<number>) =>
    Effect.gen(function*() {
      batches.push(items)
      if (batches.length === 1) {
        yield* Deferred.succeed(started, undefined)
        yield* Deferred.await(release)
      }
      return items.map((n) => n * 10)
    })
  return { batches, started, release, write } as const
})

/** Forks `offer(item)` and returns once the caller is parked on its result. */
const offerInBackground = <O, E>(offer: (item: number) => Effect.Effect<O, E>, item: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(offer(item))
    while ((yield* Fiber.status(fiber))._tag !== "Suspended") {
      yield* Effect.yieldNow()
    }
    return fiber
  })

describe("makeBatcher", () => {
  it.scoped("items offered while a write is in flight share the next write, in arrival order", () =>
    Effect.gen(function*() {
      const { batches, release, started, write } = yield* makeGatedWrite
      const offer = yield* makeBatcher(write)
      const first = yield* Effect.fork(offer(1))
      yield* Deferred.await(started)
      const rest = yield* Effect.forEach([2, 3, 4], (n) => offerInBackground(offer, n))
      yield* Deferred.succeed(release, undefined)
      const results = yield* Fiber.join(Fiber.all([first, ...rest]))
      assert.deepStrictEqual(results, [10, 20, 30, 40])
      assert.deepStrictEqual(batches, [[1], [2, 3, 4]])
    }))

  it.scoped("maxBatch splits the waiting items into consecutive writes, keeping their order", () =>
    Effect.gen(function*() {
      const { batches, release, started, write } = yield* makeGatedWrite
      const offer = yield* makeBatcher(write, { maxBatch: 2 })
      const first = yield* Effect.fork(offer(0))
      yield* Deferred.await(started)
      const rest = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => offerInBackground(offer, n))
      yield* Deferred.succeed(release, undefined)
      const results = yield* Fiber.join(Fiber.all([first, ...rest]))
      assert.deepStrictEqual(results, [0, 10, 20, 30, 40, 50])
      assert.deepStrictEqual(batches, [[0], [1, 2], [3, 4], [5]])
    }))

  it.scoped("a caller alone gets a write of its own", () =>
    Effect.gen(function*() {
      const batches: Array<ReadonlyArray<string>> = []
      const offer = yield* makeBatcher((items: ReadonlyArray<string>) =>
        Effect.sync(() => {
          batches.push(items)
          return items.map((s) => s.toUpperCase())
        })
      )
      assert.strictEqual(yield* offer("a"), "A")
      assert.strictEqual(yield* offer("b"), "B")
      assert.deepStrictEqual(batches, [["a"], ["b"]])
    }))

  it.scoped("a failed write fails every caller of that batch, and the next batch is written", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const batches: Array<ReadonlyArray<number>> = []
      const offer = yield* makeBatcher((items: ReadonlyArray<number>) =>
        Effect.gen(function*() {
          batches.push(items)
          if (batches.length === 1) {
            yield* Deferred.succeed(started, undefined)
            yield* Deferred.await(release)
          }
          if (items.includes(3)) return yield* Effect.fail(`disk full (${items.join(",")})`)
          return items
        })
      )
      const first = yield* Effect.fork(offer(1))
      yield* Deferred.await(started)
      const failing = yield* Effect.forEach([2, 3], (n) => offerInBackground(offer, n))
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual(yield* Fiber.join(first), 1)
      for (const fiber of failing) {
        assert.deepStrictEqual(yield* Effect.flip(Fiber.join(fiber)), "disk full (2,3)")
      }
      assert.strictEqual(yield* offer(4), 4)
      assert.deepStrictEqual(batches, [[1], [2, 3], [4]])
    }))

  it.scoped("a caller that stops waiting does not disturb the others; its item is still written", () =>
    Effect.gen(function*() {
      const { batches, release, started, write } = yield* makeGatedWrite
      const offer = yield* makeBatcher(write)
      const first = yield* Effect.fork(offer(1))
      yield* Deferred.await(started)
      const [leaving, staying] = yield* Effect.forEach([2, 3], (n) => offerInBackground(offer, n))
      yield* Fiber.interrupt(leaving)
      yield* Deferred.succeed(release, undefined)
      assert.strictEqual(yield* Fiber.join(first), 10)
      assert.strictEqual(yield* Fiber.join(staying), 30)
      assert.strictEqual(yield* offer(4), 40)
      assert.deepStrictEqual(batches, [[1], [2, 3], [4]])
    }))

  it.scoped("a write that answers with the wrong number of results is a defect for its callers", () =>
    Effect.gen(function*() {
      const offer = yield* makeBatcher((_: ReadonlyArray<number>) => Effect.succeed([] as ReadonlyArray<number>))
      const exit = yield* Effect.exit(offer(1))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause))
    }))

  it.effect("closing the scope interrupts the callers of the in-flight write, the waiting callers and later offers", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const offer = yield* makeBatcher((_: ReadonlyArray<number>) =>
        Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
      ).pipe(Scope.extend(scope))
      const inFlight = yield* Effect.fork(offer(1))
      yield* Deferred.await(started)
      const waiting = yield* Effect.forEach([2, 3], (n) => offerInBackground(offer, n))
      yield* Scope.close(scope, Exit.void)
      for (const fiber of [inFlight, ...waiting]) {
        const exit = yield* Fiber.await(fiber)
        assert.isTrue(Exit.isInterrupted(exit))
      }
      assert.isTrue(Exit.isInterrupted(yield* Effect.exit(offer(4))))
    }))

  it.effect("with `closed`, closing the scope answers those callers and later offers with it instead", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const started = yield* Deferred.make<void>()
      const offer = yield* makeBatcher(
        (_: ReadonlyArray<number>) => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never),
        { closed: Effect.fail("closed" as const) }
      ).pipe(Scope.extend(scope))
      const inFlight = yield* Effect.fork(offer(1))
      yield* Deferred.await(started)
      const waiting = yield* offerInBackground(offer, 2)
      yield* Scope.close(scope, Exit.void)
      for (const fiber of [inFlight, waiting]) {
        assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.fail("closed" as const))
      }
      assert.deepStrictEqual(yield* Effect.exit(offer(3)), Exit.fail("closed" as const))
    }))
})
