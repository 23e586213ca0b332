import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
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

  it.effect("a service in context whose schedule is its own (a wrapper around a built one) is called as it is", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      const wrapped = Layer.scoped(
        Sequent,
        Effect.map(Sequent.make(), (sequent): Sequent.Service => ({
          ...sequent,
          schedule: (task, options) => {
            calls.push(options?.key ?? "(default)")
            return sequent.schedule(task, options)
          }
        }))
      )
      const ran: Array<number> = []
      yield* Effect.gen(function*() {
        yield* Sequent.schedule(Effect.sync(() => ran.push(1)))
        yield* Sequent.schedule(Effect.sync(() => ran.push(2)), { key: "a" })
        yield* Sequent.flush
      }).pipe(Effect.provide(wrapped))
      assert.deepStrictEqual(calls, ["(default)", "a"], "every schedule went through the wrapper")
      assert.deepStrictEqual(ran, [1, 2])
    }))
})
