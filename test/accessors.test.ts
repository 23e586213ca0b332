import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { Sequent, SequentClosedError, SequentLive, SequentOptionError } from "../src/index.js"
import { record } from "./support.js"

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}

describe("static accessors", () => {
  it.effect("Sequent.schedule returns before its task runs, and the task runs with the caller's services", () =>
    Effect.gen(function*() {
      const seen = yield* Ref.make<ReadonlyArray<string>>([])
      let ranBeforeReturn = false
      yield* Effect.gen(function*() {
        const task = Effect.flatMap(Greeting, (greeting) => record(seen, greeting))
        yield* Sequent.schedule(task).pipe(Effect.provideService(Greeting, "hello"))
        ranBeforeReturn = (yield* Ref.get(seen)).length > 0
        yield* Sequent.schedule(task, { key: "b" }).pipe(Effect.provideService(Greeting, "bonjour"))
        yield* Sequent.flush
      }).pipe(Effect.provide(SequentLive))
      assert.isFalse(ranBeforeReturn, "not run inside the schedule call")
      assert.deepStrictEqual(yield* Ref.get(seen), ["hello", "bonjour"])
    }))

  it.effect("Sequent.schedule fails as the service's schedule does: invalid options, then a closed executor", () =>
    Effect.gen(function*() {
      const [invalid, closed] = yield* Effect.gen(function*() {
        const invalid = yield* Effect.flip(Sequent.schedule(Effect.void, { timeout: 0 }))
        yield* Sequent.flush
        return [invalid, yield* Effect.flip(Sequent.schedule(Effect.void))] as const
      }).pipe(Effect.provide(SequentLive))
      assert.instanceOf(invalid, SequentOptionError)
      assert.strictEqual(invalid._tag === "SequentOptionError" ? invalid.option : undefined, "timeout")
      assert.deepStrictEqual(closed, new SequentClosedError({ state: "flushing" }))
    }))

  it.effect("Sequent.submit waits for the task's outcome: its value, or its error once it gives up", () =>
    Effect.gen(function*() {
      const [value, error] = yield* Effect.gen(function*() {
        const value = yield* Sequent.submit(Effect.map(Greeting, (greeting) => `${greeting}!`)).pipe(
          Effect.provideService(Greeting, "hello")
        )
        const error = yield* Effect.flip(Sequent.submit(Effect.fail("down")))
        return [value, error] as const
      }).pipe(Effect.provide(Sequent.layer({ retry: Schedule.recurs(0) })))
      assert.strictEqual(value, "hello!")
      assert.strictEqual(error, "down")
    }))

  it.effect("a service in context whose methods are its own (a wrapper around a built one) is called as it is", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const wrapped = Layer.scoped(
        Sequent,
        Effect.map(Sequent.make(), (sequent): Sequent.Service => ({
          ...sequent,
          schedule: (task, options) => {
            calls.push(`schedule ${options?.key ?? "(default)"}`)
            return sequent.schedule(task, options)
          },
          submit: (task, options) => {
            calls.push("submit")
            return sequent.submit(task, options)
          }
        }))
      )
      const ran: Array<number> = []
      const submitted = yield* Effect.gen(function*() {
        yield* Sequent.schedule(Effect.sync(() => ran.push(1)))
        yield* Sequent.schedule(Effect.sync(() => ran.push(2)), { key: "a" })
        return yield* Sequent.submit(Effect.sync(() => ran.push(3)))
      }).pipe(Effect.provide(wrapped))
      assert.deepStrictEqual(
        calls,
        ["schedule (default)", "schedule a", "submit"],
        "every call went through the wrapper"
      )
      assert.deepStrictEqual(ran, [1, 2, 3])
      assert.strictEqual(submitted, 3)
    }))
})
