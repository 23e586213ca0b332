import { assert, it } from "@effect/vitest"
import { Clock, Effect, Fiber, TestClock } from "effect"
import { Sequent } from "effect-sequent"

it.scoped("retries at 0, 10, 30 and 70 ms", () =>
  Effect.gen(function*() {
    const sequent = yield* Sequent.make()
    const times: Array<number> = []
    const task = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      times.push(now)
      return times.length < 4 ? Effect.fail("down") : Effect.succeed("ok")
    })
    const result = yield* Effect.fork(sequent.submit(task))
    yield* TestClock.adjust("1 second") // virtual time: the test takes no real time
    assert.strictEqual(yield* Fiber.join(result), "ok")
    assert.deepStrictEqual(times, [0, 10, 30, 70])
  }).pipe(Effect.withRandomFixed([0.5]))) // a fixed Random makes the jitter neutral
