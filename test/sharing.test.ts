/**
 * The pure parts of the shared PostgreSQL journal: the shard of a lane, and what one look at the
 * shards decides (take, release, end a hung instance, forget a gone one). The processes and the
 * database are covered by test/integration/shared-pg.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import { plan, sessionMoved, shardOf, type Survey } from "../src/internal/pgShared.js"

const me = 100
const identity = (free: Array<number>) => free
const instance = (pid: number, fresh = true, connected = true) => ({ id: `i${pid}`, pid, fresh, connected })
const locks = (pid: number, shards: ReadonlyArray<number>) => shards.map((shard) => ({ shard, pid }))
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

describe("shardOf", () => {
  it("is the same for a lane every time, and within the shard count", () => {
    for (const lane of ["", "a", "user-42", "\u00e9t\u00e9", "x".repeat(1000)]) {
      const shard = shardOf(lane, 64)
      assert.strictEqual(shardOf(lane, 64), shard)
      assert.isTrue(Number.isInteger(shard) && shard >= 0 && shard < 64)
    }
  })

  it("spreads 10,000 lanes over 16 shards within 20% of an even share", () => {
    const counts = new Array<number>(16).fill(0)
    for (let i = 0; i < 10_000; i++) counts[shardOf(`lane-${i}`, 16)]!++
    for (const count of counts) assert.isTrue(Math.abs(count - 625) < 125, `a shard has ${count} lanes`)
  })
})

describe("plan", () => {
  it("alone, an instance takes every free shard", () => {
    const survey: Survey = { me, instances: [instance(me)], locks: [] }
    assert.deepStrictEqual(plan(survey, 16, new Set(), identity, "share").take, range(0, 16))
  })

  it("an instance owning every shard releases the excess to a second live instance", () => {
    const survey: Survey = { me, instances: [instance(me), instance(200)], locks: locks(me, range(0, 16)) }
    const decided = plan(survey, 16, new Set(range(0, 16)), identity, "share")
    assert.deepStrictEqual(decided.release, range(8, 16))
    assert.deepStrictEqual(decided.take, [])
  })

  it("an instance whose session is gone counts for nothing: its share is taken at once, and it is forgotten", () => {
    const survey: Survey = { me, instances: [instance(me), instance(200, true, false)], locks: locks(me, range(0, 8)) }
    const decided = plan(survey, 16, new Set(range(0, 8)), identity, "share")
    assert.deepStrictEqual(decided.take, range(8, 16))
    assert.deepStrictEqual(decided.forget, ["i200"])
  })

  it("an instance whose heartbeat is stale while it holds shards has its session ended", () => {
    const survey: Survey = {
      me,
      instances: [instance(me), instance(200, false, true)],
      locks: [...locks(me, range(0, 8)), ...locks(200, range(8, 16))]
    }
    const decided = plan(survey, 16, new Set(range(0, 8)), identity, "share")
    assert.deepStrictEqual(decided.terminate.map((i) => i.pid), [200])
    // its shards are still locked until its backend exits: nothing to take yet
    assert.deepStrictEqual(decided.take, [])
  })

  it("flushing, an instance keeps more than its share but takes free shards up to it: the tasks it waits for may be there", () => {
    // a third instance left, and its shards are free; this one holds 0-6 of 16, one other instance is live
    const survey: Survey = { me, instances: [instance(me), instance(200)], locks: locks(me, range(0, 7)) }
    assert.deepStrictEqual(plan(survey, 16, new Set(range(0, 7)), identity, "take").take, [7])
    const alone: Survey = { me, instances: [instance(me)], locks: locks(me, range(0, 12)) }
    assert.deepStrictEqual(plan(alone, 16, new Set(range(0, 12)), identity, "take").take, range(12, 16))
    const above: Survey = { me, instances: [instance(me), instance(200)], locks: locks(me, range(0, 12)) }
    assert.deepStrictEqual(plan(above, 16, new Set(range(0, 12)), identity, "take").release, [])
  })

  it("holding (not started, or handing over), an instance takes and releases nothing, but still ends hung ones", () => {
    const survey: Survey = {
      me,
      instances: [instance(me), instance(200), instance(300, false, true)],
      locks: [...locks(me, range(0, 16)), ...locks(300, [16])]
    }
    const decided = plan(survey, 32, new Set(range(0, 16)), identity, "hold")
    assert.deepStrictEqual([decided.take, decided.release], [[], []])
    assert.deepStrictEqual(decided.terminate.map((i) => i.pid), [300])
  })

  it("takes free shards in the order given, no more than its fair share", () => {
    const survey: Survey = { me, instances: [instance(me), instance(200), instance(300)], locks: locks(200, [0, 1]) }
    const decided = plan(survey, 16, new Set(), (free) => [...free].reverse(), "share")
    assert.deepStrictEqual(decided.take, [15, 14, 13, 12, 11, 10])
  })
})

describe("sessionMoved", () => {
  it("is nothing while the heartbeat names the backend the survey ran on", () => {
    const survey: Survey = { me, instances: [instance(me), instance(200)], locks: [] }
    assert.isUndefined(sessionMoved(survey, `i${me}`))
  })

  it("names a transaction-mode pooler when the session's heartbeat and survey ran on two backends", () => {
    const survey: Survey = { me: 300, instances: [instance(me), instance(200)], locks: [] }
    const why = sessionMoved(survey, `i${me}`)
    assert.include(why, "two server backends (100, then 300)")
    assert.include(why, "pooler in transaction mode")
  })
})
