/**
 * A randomized soak of a shared PostgreSQL journal: three worker processes and two producer
 * processes (instances too, running their share of the lanes) on one journal, with kill -9 of
 * random instances (one or two at a time) each restarted once its shards are owned again, and
 * tasks that fail a drawn number of times before they succeed (`test/fixtures/sharedInstance.ts`).
 *
 *   SEQUENT_SOAK_SECONDS=300 SEQUENT_SOAK_SEED=123 npx vitest run --config vitest.integration.config.ts shared-soak
 *
 * The seed (printed; random unless given) draws the failures, a pure function of the seed and
 * the task, and the faults: the progress before each, how many instances and which of the live
 * ones. Which are live at a draw depends on the machine's timing, so a replay repeats the
 * failures exactly and the faults as far as timing allows; each kill is printed. Faults follow
 * progress, not the clock: the next kill comes after a drawn number of attempts more, and each
 * restart once the killed one's shards are owned by the others; the duration bounds only how
 * long the faults go on. At the end, once the producers have stopped and every task has run:
 * every accepted task (its `schedule` returned) succeeded; per lane, first runs in schedule
 * order; a task ran again only as its lane's head, in flight when it moved; nothing was
 * dead-lettered. Takeover times are printed.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { makeRun, url } from "./support/PgTables.js"
import {
  checkRuns,
  eventually,
  fair,
  type Instance,
  journalTables,
  kill,
  SHARDS,
  startInstance,
  sum
} from "./support/SharedInstances.js"

const run = makeRun("w")
afterAll(() => run.dropAll())

const SECONDS = Number(process.env["SEQUENT_SOAK_SECONDS"] ?? 40)
const SEED = Number(process.env["SEQUENT_SOAK_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
const WORKERS = ["w0", "w1", "w2"]
const PRODUCERS = ["p0", "p1"]
const LANES_EACH = 12

/** mulberry32: a small seeded PRNG, so that a seed replays the same decisions. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return {
    next: () => {
      a = (a + 0x6d2b79f5) >>> 0
      let t = a
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    },
    int(from: number, to: number) {
      return from + Math.floor(this.next() * (to - from + 1))
    }
  }
}

type Random = ReturnType<typeof prng>

/** One slot of the soak: an instance name, its current incarnation, and for a producer its lanes. */
interface Slot {
  readonly role: string
  readonly lanes: string | undefined
  incarnation: number
  instance: Instance
  /** The round a producer starts from: after every round an earlier incarnation started. */
  from: number
  /** Ready, and not being killed or restarted. */
  live: boolean
}

const nameOf = (slot: Slot) => `${slot.role}.${slot.incarnation}`

/** A producer incarnation that was killed: tasks of its last round may have committed unaccepted. */
interface Killed {
  readonly role: string
  readonly lastRound: number
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0

type Tables = Effect.Effect.Success<ReturnType<typeof journalTables>>

/** What the faults did, and what the killed instances had accepted. */
interface Faults {
  readonly accepted: Set<string>
  readonly killed: Array<Killed>
  readonly takeovers: Array<number>
  kills: number
}

/**
 * Kills `victims` with SIGKILL, waits until the others own every shard (the takeover), and
 * restarts each in the background: it counts as live again once it is ready (and, a producer,
 * producing again after every round an earlier incarnation started).
 */
const killAndRestart = (
  t: Tables,
  faults: Faults,
  victims: ReadonlyArray<Slot>,
  start: (slot: Slot) => Effect.Effect<Instance, never, Scope.Scope>
) =>
  Effect.gen(function*() {
    const gone = new Set(victims.map(nameOf))
    // of 16 shards among 5 instances one may own none: its kill takes nothing over
    const owned = sum(new Map(Array.from(yield* t.ownersByName).filter(([name]) => gone.has(name))))
    const killedAt = yield* t.now
    for (const slot of victims) {
      slot.live = false
      yield* kill(slot.instance)
      faults.kills++
      const record = slot.instance.record
      record.accepted.forEach((task) => faults.accepted.add(task))
      if (slot.lanes === undefined) continue
      faults.killed.push({ role: slot.role, lastRound: record.lastRound })
      slot.from = Math.max(slot.from, record.lastRound + 1)
    }
    yield* eventually(
      "every shard owned by the others",
      Effect.map(t.ownersByName, (o) => sum(o) === SHARDS && Array.from(o.keys()).every((name) => !gone.has(name)))
    )
    const took = (yield* t.now) - killedAt
    if (owned > 0) faults.takeovers.push(took)
    console.log(`soak: kill -9 ${Array.from(gone).join(", ")} (${owned} shards): owned again in ${Math.round(took)} ms`)
    for (const slot of victims) {
      slot.incarnation++
      yield* Effect.forkScoped(Effect.gen(function*() {
        slot.instance = yield* start(slot)
        // a producer goes on after the round it had in flight: that one may have committed unaccepted
        if (slot.lanes !== undefined) yield* slot.instance.send(`produce ${slot.from}`)
        slot.live = true
      }))
    }
  })

/** Faults for `SECONDS`: after a drawn number of attempts more, one or two live instances killed, at least two left. */
const faultsFor = (
  t: Tables,
  random: Random,
  slots: ReadonlyArray<Slot>,
  start: (slot: Slot) => Effect.Effect<Instance, never, Scope.Scope>
) =>
  Effect.gen(function*() {
    const faults: Faults = { accepted: new Set(), killed: [], takeovers: [], kills: 0 }
    const began = Date.now()
    while (Date.now() - began < SECONDS * 1_000) {
      const runs = yield* t.runCount
      const progress = random.int(20, 400)
      yield* eventually(`${progress} more attempts`, Effect.map(t.runCount, (c) => c >= runs + progress))
      const live = slots.filter((slot) => slot.live)
      const victims = pick(random, live, Math.min(random.next() < 0.25 ? 2 : 1, live.length - 2))
      if (victims.length > 0) yield* killAndRestart(t, faults, victims, start)
    }
    yield* eventually("every instance restarted", Effect.sync(() => slots.every((slot) => slot.live)))
    return faults
  })

/** Stops the producers, waits for every task to run, and judges the run log. */
const verdictOf = (t: Tables, faults: Faults, producers: ReadonlyArray<Slot>) =>
  Effect.gen(function*() {
    for (const slot of producers) yield* slot.instance.send("stop")
    yield* eventually(
      "the producers stopped",
      Effect.sync(() => producers.every((slot) => slot.instance.record.produced !== undefined))
    )
    for (const slot of producers) slot.instance.record.accepted.forEach((task) => faults.accepted.add(task))
    yield* eventually("every task run", Effect.map(t.pending, (c) => c === 0), Duration.minutes(3))
    assert.strictEqual(yield* t.deadLetters, 0)
    const inFlight = (task: string) =>
      faults.killed.some((k) => task.startsWith(`${k.role}-`) && task.endsWith(`:${k.lastRound}`))
    return checkRuns(yield* t.runs, faults.accepted, inFlight)
  })

describe("shared PostgreSQL journal, randomized soak", () => {
  it.scopedLive(`workers and producers killed and restarted at random for ${SECONDS} s: every accepted task runs, in order`, () =>
    Effect.gen(function*() {
      console.log(`soak: seed ${SEED} (replay with SEQUENT_SOAK_SEED=${SEED}), faults for ${SECONDS} s`)
      const random = prng(SEED)
      const prefix = run.fresh()
      const t = yield* journalTables(prefix)
      const start = (slot: Slot) =>
        startInstance(prefix, nameOf(slot), { lanes: slot.lanes, failSeed: SEED, roundMs: 40 })
      const slots: Array<Slot> = []
      for (const role of [...WORKERS, ...PRODUCERS]) {
        const lanes = PRODUCERS.includes(role) ? `${role}:${LANES_EACH}` : undefined
        const slot = { role, lanes, incarnation: 0, from: 0, live: true } as Slot
        slot.instance = yield* start(slot)
        slots.push(slot)
      }
      yield* eventually("a fair share each", Effect.map(t.owners, (owners) => fair(owners, slots.length)))
      const producers = slots.filter((slot) => slot.lanes !== undefined)
      for (const slot of producers) yield* slot.instance.send("produce 0")
      const began = Date.now()
      const faults = yield* faultsFor(t, random, slots, start)
      const verdict = yield* verdictOf(t, faults, producers)
      const { takeovers } = faults
      console.log(
        `soak: seed ${SEED}, ${Math.round((Date.now() - began) / 1000)} s, ${faults.kills} kills; ` +
          `${takeovers.length} takeovers, min ${Math.round(Math.min(...takeovers))} / median ` +
          `${Math.round(median(takeovers))} / max ${Math.round(Math.max(...takeovers))} ms; ` +
          `${verdict.ran} tasks (${faults.accepted.size} accepted), ` +
          `${verdict.attempts} attempts (${verdict.failedAttempts} failed), ${verdict.reruns.length} ran again ` +
          `(${verdict.reruns.filter(([, first, again]) => first === again).length} on the same instance), ` +
          `${verdict.unaccepted.length} ran unaccepted`
      )
      assert.isAbove(faults.kills, 0)
      assert.isAbove(verdict.failedAttempts, 0, "no task failed: the retries went untested")
      assert.isAtLeast(faults.accepted.size, LANES_EACH * PRODUCERS.length * 10)
    }).pipe(Effect.provide(PgClient.layer({ url }))))
})

/** `count` distinct slots drawn with `random`. */
const pick = (random: Random, slots: ReadonlyArray<Slot>, count: number) => {
  const left = [...slots]
  const out: Array<Slot> = []
  while (out.length < count) out.push(left.splice(random.int(0, left.length - 1), 1)[0]!)
  return out
}
