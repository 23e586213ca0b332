/**
 * Evicting a lane, and lifting a halt the journal no longer has: what the executor does when a shared journal moves a lane's shard to another
 * instance. A lane no worker is on is dropped at once (its waiters get SequentStoppedError); a
 * lane whose task is running is dropped when that attempt ends (the shared store interrupts it);
 * either way the key's next tasks start on a fresh lane.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { Executor } from "../src/internal/executor.js"
import { makeExecutor } from "../src/internal/sequent.js"
import { memory, type Store } from "../src/internal/store.js"
import { Waiter } from "../src/internal/waiter.js"
import { SequentStoppedError } from "../src/SequentError.js"
import { settle } from "./support.js"

/** Offers `task` on the lane of `options.key`, under the executor's policy, with the caller's context. */
const offer = (
  executor: Executor<void, never>,
  task: Effect.Effect<unknown, unknown>,
  options: { readonly key: string } | undefined,
  waiter: Waiter | undefined,
  entry: void
): Effect.Effect<void, unknown> =>
  Effect.withFiberRuntime<void, unknown>((fiber) =>
    executor.offer(
      options?.key,
      task,
      fiber.currentContext as Context.Context<unknown>,
      executor.config.policy,
      waiter,
      entry
    )
  )

const setup = Effect.gen(function*() {
  const executor = yield* makeExecutor<void, never, never>(
    { concurrency: 4, closeGracePeriod: 0 },
    memory as Store<void, never>
  )
  const log: Array<string> = []
  const schedule = (name: string, key: string | undefined, waiter?: Waiter, gate?: Deferred.Deferred<void>) =>
    offer(
      executor,
      Effect.zipRight(gate === undefined ? Effect.void : Deferred.await(gate), Effect.sync(() => log.push(name))),
      key === undefined ? undefined : { key },
      waiter,
      undefined
    ) as Effect.Effect<void, unknown>
  return { executor, log, schedule }
})

describe("evict", () => {
  it.scoped("a running lane is dropped when its attempt ends, and not counted after; the key starts afresh", () =>
    Effect.gen(function*() {
      const { executor, log, schedule } = yield* setup
      const gate = yield* Deferred.make<void>()
      const head = new Waiter()
      const queued = new Waiter()
      yield* schedule("head", "k", head, gate)
      yield* schedule("queued", "k", queued)
      yield* settle()
      executor.evict("k")
      yield* schedule("fresh", "k")
      yield* settle()
      assert.deepStrictEqual(log, ["fresh"], "the key's new task runs on a fresh lane")
      assert.strictEqual(executor.size, 2, "the evicted lane is counted until its attempt ends")
      yield* Deferred.succeed(gate, undefined)
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(head.await())), "the running task finished")
      const dropped = yield* Effect.exit(queued.await())
      assert.deepStrictEqual(dropped, Exit.fail(new SequentStoppedError({ attempts: 0 })))
      assert.deepStrictEqual(log, ["fresh", "head"])
      assert.strictEqual(executor.size, 0)
    }))

  it.scoped("a failing task of an evicted lane is not retried: its waiter gets SequentStoppedError", () =>
    Effect.gen(function*() {
      const { executor } = yield* setup
      const gate = yield* Deferred.make<void>()
      const waiter = new Waiter()
      yield* offer(
        executor,
        Effect.zipRight(Deferred.await(gate), Effect.fail("moved")),
        { key: "k" },
        waiter,
        undefined
      )
      yield* settle()
      executor.evict("k")
      yield* Deferred.succeed(gate, undefined)
      const exit = yield* Effect.exit(waiter.await())
      assert.deepStrictEqual(exit, Exit.fail(new SequentStoppedError({ attempts: 1 })))
      assert.strictEqual(executor.size, 0)
    }))

  it.scoped("a ready lane is dropped at once, even while the executor is paused; the default lane is replaced too", () =>
    Effect.gen(function*() {
      const { executor, log, schedule } = yield* setup
      executor.pause(undefined)
      const waiter = new Waiter()
      yield* schedule("before", undefined, waiter)
      executor.evict(undefined)
      const exit = yield* Effect.exit(waiter.await())
      assert.isTrue(Exit.isFailure(exit))
      yield* schedule("after", undefined)
      executor.resume(undefined)
      yield* settle()
      assert.deepStrictEqual(log, ["after"])
    }))

  it.scoped("unhalt lifts a lane's halt, not its pause", () =>
    Effect.gen(function*() {
      const { executor, log, schedule } = yield* setup
      executor.halt("h")
      executor.halt("p")
      executor.pause("p")
      yield* schedule("h", "h")
      yield* schedule("p", "p")
      yield* settle()
      assert.deepStrictEqual(log, [])
      executor.unhalt("h")
      executor.unhalt("p")
      yield* settle()
      assert.deepStrictEqual(log, ["h"], "the paused lane stays paused")
    }))
})
