/**
 * The webhook example of the README's Lanes section (examples/lanes.ts), run on
 * the test clock against its stand-in endpoints.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as TestClock from "effect/TestClock"
import { deliverAll, standInEndpoints } from "../examples/lanes.js"

const delivered = (received: ReadonlyArray<string>, customer: string) =>
  received.filter((id) => id.startsWith(`${customer}-`))

describe("examples/lanes.ts", () => {
  it.effect("delivers each customer's events in order, retrying globex in place; initech's rejected event is dead-lettered and its lane held until resumed", () =>
    Effect.gen(function*() {
      const standIn = yield* standInEndpoints
      const run = yield* Effect.fork(
        deliverAll("https://hooks.example", standIn.fix).pipe(Effect.provide(standIn.layer))
      )
      yield* TestClock.adjust("1 minute")
      const { deadLetters, held } = yield* Fiber.join(run)

      assert.deepStrictEqual(delivered(standIn.received, "acme"), [
        "acme-inv1-created",
        "acme-inv1-paid",
        "acme-inv2-created",
        "acme-inv2-paid"
      ])
      assert.deepStrictEqual(delivered(standIn.received, "globex"), [
        "globex-inv1-created",
        "globex-inv1-paid",
        "globex-inv2-created",
        "globex-inv2-paid"
      ])
      assert.deepStrictEqual(deadLetters.map(({ attempts, key }) => ({ key, attempts })), [{
        key: "initech",
        attempts: 1
      }])
      assert.strictEqual(held, 3, "initech's later events were held while its lane was halted")
      assert.deepStrictEqual(delivered(standIn.received, "initech"), [
        "initech-inv1-paid",
        "initech-inv2-created",
        "initech-inv2-paid"
      ])
    }).pipe(Effect.withRandomFixed([0.5]), Logger.withMinimumLogLevel(LogLevel.None)))
})
