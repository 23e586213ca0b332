/**
 * The original Go library's own three tests, ported one for one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { Sequent } from "../src/index.js"
import { record } from "./support.js"

describe("the Go library's tests", () => {
  it.scoped("four tasks, the first blocked until released; after flush the results arrive 1, 2, 3, 4", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const results = yield* Ref.make<ReadonlyArray<number>>([])
      const release = yield* Deferred.make<void>()
      yield* sequent.schedule(Effect.zipRight(Deferred.await(release), record(results, 1)))
      yield* sequent.schedule(record(results, 2))
      yield* sequent.schedule(record(results, 3))
      yield* sequent.schedule(record(results, 4))
      assert.deepStrictEqual(yield* Ref.get(results), [])
      yield* Deferred.succeed(release, undefined)
      yield* sequent.flush
      assert.deepStrictEqual(yield* Ref.get(results), [1, 2, 3, 4])
    }))

  it.scoped("two tasks failing until their 20th and 10th attempts, zero backoff: all of the first's attempts come first", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make({ retry: Schedule.forever })
      const attempts = yield* Ref.make<ReadonlyArray<string>>([])
      const failUntil = (name: string, success: number) => {
        let attempt = 0
        return Effect.suspend(() => {
          attempt++
          return Effect.zipRight(record(attempts, `${name}${attempt}`), Effect.succeed(attempt >= success))
        })
      }
      yield* sequent.schedule(failUntil("a", 20))
      yield* sequent.schedule(failUntil("b", 10))
      yield* sequent.flush
      const expected = [
        ...Array.from({ length: 20 }, (_, i) => `a${i + 1}`),
        ...Array.from({ length: 10 }, (_, i) => `b${i + 1}`)
      ]
      assert.deepStrictEqual(yield* Ref.get(attempts), expected)
    }))

  it.scoped("five tasks; after three have run, stop: the fourth and fifth never report", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const reports = yield* Queue.unbounded<number>()
      const third = yield* Deferred.make<void>()
      for (const i of [1, 2, 3, 4, 5]) {
        yield* sequent.schedule(
          i === 3
            ? Effect.zipRight(
              Queue.offer(reports, i),
              Effect.zipRight(Deferred.succeed(third, undefined), Effect.never)
            )
            : Queue.offer(reports, i)
        )
      }
      yield* Deferred.await(third)
      yield* sequent.stop
      assert.deepStrictEqual(Array.from(yield* Queue.takeAll(reports)), [1, 2, 3])
    }))
})
