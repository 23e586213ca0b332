/**
 * What a shared-journal instance remembers of the tasks it appended: per
 * lane the last seq, forgotten when the task ends here, or when a look at the
 * journal finds it gone; looks come due as the lanes pile up, so an instance
 * scheduling to ever new keys run elsewhere does not remember every one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { Appended } from "../src/internal/appended.js"

/** A journal in which every seq of `pending` is still there. */
const journalWith = (pending: ReadonlySet<number>) => {
  const asked: Array<ReadonlyArray<number>> = []
  const stillPending = (seqs: ReadonlyArray<number>) =>
    Effect.sync(() => {
      asked.push(seqs)
      return seqs.filter((seq) => pending.has(seq))
    })
  return { asked, stillPending }
}

describe("Appended", () => {
  it("keeps the last seq per lane and forgets a lane when that task ends here", () => {
    const appended = new Appended()
    appended.appended("a", 1)
    appended.appended("a", 3)
    appended.appended("a", 2)
    appended.appended("b", 4)
    appended.ended("a", 1)
    assert.strictEqual(appended.size, 2)
    appended.ended("a", 3)
    assert.strictEqual(appended.size, 1)
  })

  it.effect("comes due at 1024 lanes; a look forgets the ended ones, and the next comes due at twice what is left", () =>
    Effect.gen(function*() {
      const appended = new Appended()
      for (let i = 0; i < 1023; i++) appended.appended(`k${i}`, i + 1)
      assert.isFalse(appended.lookDue)
      appended.appended("k1023", 1024)
      assert.isTrue(appended.lookDue)
      // 600 of the 1024 still pending elsewhere
      const journal = journalWith(new Set(Array.from({ length: 600 }, (_, i) => i + 1)))
      yield* appended.look(journal.stillPending)
      assert.strictEqual(appended.size, 600)
      assert.isFalse(appended.lookDue)
      for (let i = 0; i < 599; i++) appended.appended(`n${i}`, 2000 + i)
      assert.isFalse(appended.lookDue)
      appended.appended("n599", 2599)
      assert.isTrue(appended.lookDue)
      assert.strictEqual(journal.asked.length, 1)
      assert.strictEqual(journal.asked[0]!.length, 1024)
    }))

  it.effect("a lane appended to again while a look is out keeps its newer seq", () =>
    Effect.gen(function*() {
      const appended = new Appended()
      appended.appended("a", 1)
      appended.appended("b", 2)
      const asked = yield* Deferred.make<void>()
      const answer = yield* Deferred.make<void>()
      // nothing is pending any more when the journal answers
      const looking = yield* Effect.fork(appended.look(() =>
        Deferred.succeed(asked, undefined).pipe(
          Effect.zipRight(Deferred.await(answer)),
          Effect.as([] as ReadonlyArray<number>)
        )
      ))
      yield* Deferred.await(asked)
      appended.appended("a", 5)
      yield* Deferred.succeed(answer, undefined)
      yield* Fiber.join(looking)
      // "b" ended; "a"'s task 5 was not asked about and is still remembered
      assert.strictEqual(appended.size, 1)
      appended.ended("a", 1)
      assert.strictEqual(appended.size, 1)
      appended.ended("a", 5)
      assert.strictEqual(appended.size, 0)
    }))
})
