/**
 * The proof that Sequent replays writes to a Redis that goes down.
 *
 * Real sockets, a real private `redis-server`, real failures: a fault proxy
 * refuses, cuts and stalls connections, and Redis itself is stopped and
 * restarted. Each test checks that Redis ends up holding every write exactly
 * once, in order, and prints its figures.
 *
 * These tests use `it.scopedLive` because the live clock and real sockets are
 * the point. Sleeps only space out injected faults; every wait on progress is
 * event-driven (a progress count the tasks publish) and bounded by a timeout.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import {
  makeReplayClient,
  makeStats,
  type ReplayClient,
  type ReplayStats,
  type StreamState,
  valueOf,
  whileConnecting,
  writeTask
} from "../../examples/redis-replay.js"
import { Sequent } from "../../src/index.js"
import * as FaultProxy from "./support/FaultProxy.js"
import * as RedisServer from "./support/RedisServer.js"

// -----------------------------------------------------------------------------
// Helpers
// -----------------------------------------------------------------------------

/** Exponential from 10 ms, jittered, capped at 200 ms: fast recovery for tests. */
const testRetry = Schedule.exponential("10 millis").pipe(
  Schedule.union(Schedule.spaced("200 millis")),
  Schedule.jittered
)

const sequentLayer = (concurrency = 1) => Sequent.layer({ retry: testRetry, concurrency, closeGracePeriod: "1 second" })

/**
 * Sequent logs every failed attempt as a warning; these tests make hundreds on
 * purpose and count them in `ReplayStats` instead.
 */
const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) => Logger.withMinimumLogLevel(self, LogLevel.Error)

const now = Clock.currentTimeMillis

/**
 * How far a stream has got: the tasks publish each completed write, and the
 * test waits (event-driven, bounded) for a given count. Cheaper per write than
 * a `SubscriptionRef` stream, which would slow the stream it measures.
 */
interface Progress {
  readonly get: Effect.Effect<number>
  readonly set: (n: number) => Effect.Effect<void>
  readonly add: (n: number) => Effect.Effect<void>
  /** Waits until the count reaches `target`; returns at once if it has. */
  readonly awaitAtLeast: (target: number, within?: Duration.DurationInput) => Effect.Effect<void, Error>
}

/**
 * `last` is the stream's final write: a wait for more than it ends once the
 * stream has ended (a fault healed as the stream finished waits for nothing).
 */
const makeProgress = (last = Number.POSITIVE_INFINITY) =>
  Effect.sync((): Progress => {
    let value = 0
    let waiters: Array<{ readonly target: number; readonly deferred: Deferred.Deferred<void> }> = []
    const publish = (n: number) =>
      Effect.sync(() => {
        value = n
        if (waiters.length === 0) return
        const due = waiters.filter((waiter) => waiter.target <= n)
        if (due.length === 0) return
        waiters = waiters.filter((waiter) => waiter.target > n)
        for (const waiter of due) Deferred.unsafeDone(waiter.deferred, Exit.void)
      })
    return {
      get: Effect.sync(() => value),
      set: publish,
      add: (n) => Effect.suspend(() => publish(value + n)),
      awaitAtLeast: (wanted, within = "60 seconds") =>
        Effect.suspend(() => {
          const target = Math.min(wanted, last)
          if (value >= target) return Effect.void
          const deferred = Deferred.unsafeMake<void>(FiberId.none)
          waiters.push({ target, deferred })
          return Deferred.await(deferred).pipe(
            Effect.timeoutFail({
              duration: within,
              onTimeout: () =>
                new Error(
                  `progress stayed at ${value}, below ${target}, for ${Duration.format(Duration.decode(within))}`
                )
            })
          )
        })
    }
  })

/** A write task that also publishes how far the stream has got. */
const trackedWrite = (
  client: ReplayClient,
  stream: string,
  n: number,
  stats: ReplayStats,
  progress: Progress
) => writeTask(client, stream, n, valueOf(n), stats).pipe(Effect.tap(() => progress.set(n)))

/** Schedules writes `1..writes` in order, then waits for all of them. */
const writeAll = (
  client: ReplayClient,
  stream: string,
  writes: number,
  stats: ReplayStats,
  progress: Progress
) =>
  Effect.gen(function*() {
    for (let n = 1; n <= writes; n++) {
      yield* Sequent.schedule(trackedWrite(client, stream, n, stats, progress))
    }
    yield* Sequent.flush
  })

/** The index of the first value that is not write `i + 1`, or -1 when the list is exactly `1..writes`. */
const firstMismatch = (values: ReadonlyArray<string>, writes: number): number => {
  const length = Math.max(values.length, writes)
  for (let i = 0; i < length; i++) {
    if (values[i] !== valueOf(i + 1)) return i
  }
  return -1
}

/**
 * Asserts that Redis holds exactly writes `1..writes` of the stream, in order,
 * so no write was lost, reordered or applied twice; and that each write's task
 * completed once, as "applied" or, when an earlier attempt's reply was lost
 * after Redis had run it, as "already applied".
 */
const checkStream = (stream: string, state: StreamState, writes: number, stats: ReplayStats) => {
  const mismatch = firstMismatch(state.values, writes)
  assert.strictEqual(
    mismatch,
    -1,
    `stream ${stream}: value ${mismatch} is ${state.values[mismatch]}, expected ${valueOf(mismatch + 1)}`
  )
  assert.strictEqual(state.values.length, writes)
  assert.strictEqual(state.last, writes)
  assert.strictEqual(stats.applied + stats.alreadyApplied, writes, "each write's task completed exactly once")
  assert.strictEqual(stats.gaps, 0, "no write arrived before the one it follows")
  // Every "already applied" a task saw is a refusal the script counted; the
  // script may count more (a refusal whose reply was lost in turn).
  assert.isAtLeast(state.duplicates, stats.alreadyApplied)
}

const readStream = (client: ReplayClient, stream: string) => whileConnecting(client.read(stream))

/** Random, sorted fault points in `[from, to]`, at least `gap` writes apart. */
const pickPoints = (count: number, from: number, to: number, gap: number) =>
  Effect.gen(function*() {
    const span = Math.floor((to - from - gap * (count - 1)) / count)
    const points: Array<number> = []
    for (let i = 0; i < count; i++) {
      const start = from + i * (span + gap)
      points.push(start + (yield* Random.nextIntBetween(0, span)))
    }
    return points
  })

type FaultKind = "cut" | "outage" | "stall" | "restart" | "crash"

interface FaultReport {
  readonly kind: FaultKind
  readonly detail: string
  readonly atWrite: number
  readonly heldMs: number
  readonly failedAttempts: number
  readonly recoveryMs: number
}

/**
 * Holds a fault for `heldMs` (the only sleep: it spaces the fault), heals it,
 * then measures the time from the heal to the next completed write.
 */
const injectFault = <E>(options: {
  readonly kind: FaultKind
  readonly detail?: string | undefined
  readonly heldMs: number
  readonly begin: Effect.Effect<unknown, E>
  readonly heal: Effect.Effect<unknown, E>
  readonly progress: Progress
  readonly stats: ReplayStats
}) =>
  Effect.gen(function*() {
    const atWrite = yield* options.progress.get
    const failedBefore = options.stats.failedAttempts
    yield* options.begin
    if (options.heldMs > 0) yield* Effect.sleep(Duration.millis(options.heldMs))
    yield* options.heal
    const healedAt = yield* now
    const reached = yield* options.progress.get
    yield* options.progress.awaitAtLeast(reached + 1)
    const report: FaultReport = {
      kind: options.kind,
      detail: options.detail ?? "",
      atWrite,
      heldMs: options.heldMs,
      failedAttempts: options.stats.failedAttempts - failedBefore,
      recoveryMs: (yield* now) - healedAt
    }
    return report
  })

const proxyFault = (
  kind: "cut" | "outage" | "stall",
  proxy: FaultProxy.FaultProxy,
  progress: Progress,
  stats: ReplayStats
) =>
  Effect.gen(function*() {
    const heldMs = kind === "cut" ? 0 : yield* Random.nextIntBetween(1_000, 2_001)
    const how = (yield* Random.nextBoolean) ? "close-listener" as const : "reset" as const
    const [begin, heal] = kind === "cut"
      ? [proxy.cut, Effect.void]
      : kind === "outage"
      ? [Effect.zipRight(proxy.refuse(how), proxy.cut), proxy.accept]
      : [proxy.stall, proxy.resume]
    const detail = kind === "outage"
      ? (how === "reset" ? "refuse by reset + cut" : "refuse by closed listener + cut")
      : ""
    return yield* injectFault({ kind, detail, heldMs, begin, heal, progress, stats })
  })

const printFaults = (faults: ReadonlyArray<FaultReport>) =>
  faults.map((f, i) =>
    `  fault ${i + 1}: ${f.kind.padEnd(7)} at write ${String(f.atWrite).padStart(6)}, held ${
      String(f.heldMs).padStart(4)
    } ms, ${String(f.failedAttempts).padStart(3)} failed attempts, recovered ${f.recoveryMs} ms after heal${
      f.detail === "" ? "" : ` (${f.detail})`
    }`
  ).join("\n")

const summary = (title: string, lines: ReadonlyArray<string>) => console.log([`\n[${title}]`, ...lines].join("\n"))

const statsLines = (stats: ReplayStats, writes: number, duplicates: number, elapsedMs: number) => [
  `  writes:           ${writes} in ${elapsedMs} ms (${Math.round(writes / (elapsedMs / 1000))}/s)`,
  `  attempts:         ${stats.attempts} (${stats.failedAttempts} failed, retried by Sequent)`,
  `  already applied:  ${stats.alreadyApplied} (lost replies; the Lua script refused ${duplicates} duplicates)`,
  `  applied:          ${stats.applied}, gaps: ${stats.gaps}`
]

const gc: (() => void) | undefined = (() => {
  const global = globalThis as { gc?: () => void }
  if (typeof global.gc === "function") return global.gc
  setFlagsFromString("--expose-gc")
  const exposed: unknown = runInNewContext("gc")
  return typeof exposed === "function" ? exposed as () => void : undefined
})()

const heapUsed = Effect.sync(() => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
})

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

// -----------------------------------------------------------------------------
// Tests
// -----------------------------------------------------------------------------

describe("Sequent replays writes to Redis", () => {
  it.scopedLive("10,000 writes through three 1-2 s outages (refuse + cut) land exactly once, in order", () =>
    Effect.gen(function*() {
      const writes = 10_000
      // Durability across a server stop is the restart test's concern; here an
      // fsync per write would only slow the stream down.
      const server = yield* RedisServer.make({ appendfsync: "everysec" })
      const proxy = yield* FaultProxy.make({ targetPort: server.port })
      const client = yield* makeReplayClient(`redis://127.0.0.1:${proxy.port}`)
      const stream = "test:outages"
      yield* whileConnecting(client.reset(stream))
      const stats = makeStats()
      const progress = yield* makeProgress(writes)
      const points = yield* pickPoints(3, 1_000, 9_000, 1_500)

      const startedAt = yield* now
      const writer = yield* Effect.fork(writeAll(client, stream, writes, stats, progress))
      const faults: Array<FaultReport> = []
      for (const point of points) {
        yield* progress.awaitAtLeast(point)
        faults.push(yield* proxyFault("outage", proxy, progress, stats))
      }
      yield* Fiber.join(writer).pipe(
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => new Error("writer hung") })
      )
      const elapsed = (yield* now) - startedAt

      const state = yield* readStream(client, stream)
      const proxyStats = yield* proxy.stats
      summary("outages through the proxy", [
        ...statsLines(stats, writes, state.duplicates, elapsed),
        `  proxy:            ${proxyStats.accepted} connections accepted, ${proxyStats.cut} cut, ${proxyStats.refused} refused on arrival`,
        printFaults(faults)
      ])
      checkStream(stream, state, writes, stats)
      assert.strictEqual(faults.length, 3)
      for (const fault of faults) {
        assert.isAbove(fault.failedAttempts, 0, `the outage at write ${fault.atWrite} interrupted the stream`)
      }
    }).pipe(Effect.provide(sequentLayer()), quiet))

  it.scopedLive("10,000 writes while Redis restarts (SIGTERM, then a SIGKILL crash) land exactly once, in order", () =>
    Effect.gen(function*() {
      const writes = 10_000
      const server = yield* RedisServer.make({ appendfsync: "always" })
      const client = yield* makeReplayClient(server.url)
      const observer = yield* makeReplayClient(server.url)
      const stream = "test:restarts"
      yield* whileConnecting(client.reset(stream))
      const stats = makeStats()
      const progress = yield* makeProgress(writes)
      const points = yield* pickPoints(2, 1_500, 8_500, 3_000)
      const signals = ["SIGTERM", "SIGKILL"] as const

      const startedAt = yield* now
      const writer = yield* Effect.fork(writeAll(client, stream, writes, stats, progress))
      const faults: Array<FaultReport> = []
      const survived: Array<string> = []
      for (const [i, point] of points.entries()) {
        const signal = signals[i]!
        yield* progress.awaitAtLeast(point)
        const heldMs = yield* Random.nextIntBetween(1_000, 2_001)
        let confirmed = 0
        faults.push(
          yield* injectFault({
            kind: signal === "SIGTERM" ? "restart" : "crash",
            heldMs,
            begin: progress.get.pipe(
              Effect.tap((n) =>
                Effect.sync(() => {
                  confirmed = n
                })
              ),
              Effect.zipRight(server.stop(signal))
            ),
            heal: Effect.gen(function*() {
              yield* server.start
              // Every write confirmed before the stop is still there.
              const state = yield* whileConnecting(observer.read(stream))
              assert.isAtLeast(state.last, confirmed, `Redis lost confirmed writes across the ${signal}`)
              survived.push(
                `  after ${signal}: ${confirmed} writes confirmed before the stop, ${state.last} found after it`
              )
            }),
            progress,
            stats
          })
        )
      }
      yield* Fiber.join(writer).pipe(
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => new Error("writer hung") })
      )
      const elapsed = (yield* now) - startedAt

      const state = yield* readStream(client, stream)
      summary("Redis restarts (AOF, appendfsync always)", [
        ...statsLines(stats, writes, state.duplicates, elapsed),
        `  server starts:    ${server.process.starts}`,
        ...survived,
        printFaults(faults)
      ])
      checkStream(stream, state, writes, stats)
      assert.strictEqual(server.process.starts, 3)
      for (const fault of faults) {
        assert.isAbove(fault.failedAttempts, 0, `the ${fault.kind} at write ${fault.atWrite} interrupted the stream`)
      }
    }).pipe(Effect.provide(sequentLayer()), quiet))

  it.scopedLive("soak: continuous writes with a random fault every few seconds lose nothing, keep order, and free memory", () =>
    Effect.gen(function*() {
      const soakMs = Number(process.env["SOAK_SECONDS"] ?? 60) * 1_000
      const server = yield* RedisServer.make({ appendfsync: "everysec" })
      const proxy = yield* FaultProxy.make({ targetPort: server.port })
      const client = yield* makeReplayClient(`redis://127.0.0.1:${proxy.port}`)
      const stream = "test:soak"
      yield* whileConnecting(client.reset(stream))
      const stats = makeStats()
      const progress = yield* makeProgress()
      const stop = yield* Deferred.make<void>()

      const sizeBefore = yield* Sequent.size
      const heapBefore = yield* heapUsed
      const startedAt = yield* now

      // The producer schedules writes without pause; every 100th is submitted,
      // which waits for it and so for all before it: the queue stays bounded.
      const producer = yield* Effect.fork(Effect.gen(function*() {
        let n = 0
        let maxSize = 0
        while (!(yield* Deferred.isDone(stop)) && n < 10_000_000) {
          n++
          const task = trackedWrite(client, stream, n, stats, progress)
          if (n % 100 === 0) {
            maxSize = Math.max(maxSize, yield* Sequent.size)
            yield* Sequent.submit(task)
          } else {
            yield* Sequent.schedule(task)
          }
        }
        // A last task in the same lane finishes after every write before it.
        yield* Sequent.submit(Effect.void)
        return { writes: n, maxSize }
      }))

      const kinds = ["cut", "outage", "stall"] as const
      const faults: Array<FaultReport> = []
      // A fault every 2-4 s, the last one starting at least 6 s before the end.
      while (true) {
        const pause = yield* Random.nextIntBetween(2_000, 4_001)
        if ((yield* now) + pause - startedAt > soakMs - 6_000) break
        yield* Effect.sleep(Duration.millis(pause))
        const kind = kinds[yield* Random.nextIntBetween(0, kinds.length)]!
        faults.push(yield* proxyFault(kind, proxy, progress, stats))
      }
      const lastFaultHealedAt = yield* now
      // Keep writing, fault-free, until the soak time is up.
      const left = soakMs - (lastFaultHealedAt - startedAt)
      if (left > 0) yield* Effect.sleep(Duration.millis(left))
      const stoppedAt = yield* now
      yield* Deferred.succeed(stop, undefined)
      const { maxSize, writes } = yield* Fiber.join(producer).pipe(
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => new Error("producer hung") })
      )
      const drainedAt = yield* now
      const sizeAfter = yield* Sequent.size
      const heapAfter = yield* heapUsed

      const state = yield* readStream(client, stream)
      const byKind = kinds.map((kind) => {
        const of = faults.filter((f) => f.kind === kind)
        const recovery = of.map((f) => f.recoveryMs)
        return `  ${kind.padEnd(7)} x${of.length}: recovery max ${Math.max(0, ...recovery)} ms, mean ${
          of.length === 0 ? 0 : Math.round(recovery.reduce((a, b) => a + b, 0) / of.length)
        } ms`
      })
      summary(`soak (${soakMs / 1000} s)`, [
        ...statsLines(stats, writes, state.duplicates, drainedAt - startedAt),
        `  faults:           ${faults.length}`,
        ...byKind,
        `  Sequent size:     ${sizeBefore} at start, at most ${maxSize} while writing, ${sizeAfter} after the last fault + drain`,
        `  last fault:       healed at +${lastFaultHealedAt - startedAt} ms; writing stopped at +${
          stoppedAt - startedAt
        } ms, drained ${drainedAt - stoppedAt} ms later`,
        `  heap used:        ${mb(heapBefore)} at start, ${mb(heapAfter)} after drain${
          gc === undefined ? " (no gc available)" : " (after gc)"
        }`,
        printFaults(faults)
      ])
      checkStream(stream, state, writes, stats)
      assert.isAtLeast(faults.length, Math.floor(soakMs / 10_000))
      assert.strictEqual(sizeBefore, 0)
      assert.strictEqual(sizeAfter, 0)
      assert.isBelow(heapAfter, heapBefore * 2 + 20 * 1024 * 1024)
    }).pipe(Effect.provide(sequentLayer()), quiet))

  it.scopedLive("lanes: 99 keys keep completing while one key's Redis refuses connections for 10 s", () =>
    Effect.gen(function*() {
      const keys = 100
      const perKey = 100
      const concurrency = 8
      const outageMs = 10_000
      const server = yield* RedisServer.make({ appendfsync: "everysec" })
      const badProxy = yield* FaultProxy.make({ targetPort: server.port })
      const client = yield* makeReplayClient(server.url)
      const badClient = yield* makeReplayClient(`redis://127.0.0.1:${badProxy.port}`)
      const streams = Array.from({ length: keys }, (_, k) => `test:lane:${k}`)
      const bad = 0
      yield* whileConnecting(Effect.forEach(streams, (stream) => client.reset(stream), { discard: true }))
      // Both clients are connected before the outage begins.
      yield* whileConnecting(badClient.read(streams[bad]!))

      const stats = streams.map(() => makeStats())
      const goodApplied = yield* makeProgress()
      const badProgress = yield* makeProgress()
      const goodTotal = (keys - 1) * perKey

      // The bad key's Redis refuses connections (and its open one is cut)
      // before any write is scheduled.
      yield* badProxy.refuse()
      yield* badProxy.cut
      const outageStartedAt = yield* now

      const writer = yield* Effect.fork(Effect.gen(function*() {
        for (let n = 1; n <= perKey; n++) {
          for (let k = 0; k < keys; k++) {
            const stream = streams[k]!
            const task = k === bad
              ? trackedWrite(badClient, stream, n, stats[k]!, badProgress)
              : writeTask(client, stream, n, valueOf(n), stats[k]!).pipe(
                Effect.tap(() => goodApplied.add(1))
              )
            yield* Sequent.schedule(task, { key: stream })
          }
        }
        yield* Sequent.flush
      }))

      // The other 99 keys progress during the outage: checkpoints at a
      // quarter, half, three quarters and all of their writes.
      const checkpoints: Array<string> = []
      for (const fraction of [0.25, 0.5, 0.75, 1]) {
        yield* goodApplied.awaitAtLeast(Math.ceil(goodTotal * fraction))
        const at = (yield* now) - outageStartedAt
        const badApplied = yield* badProgress.get
        const sizeOfBad = yield* Sequent.sizeOf(streams[bad]!)
        checkpoints.push(
          `  ${
            fraction * 100
          }% of the 99 good keys' writes done at +${at} ms; bad key: ${badApplied} applied, ${sizeOfBad} waiting, ${
            stats[bad]!.failedAttempts
          } failed attempts`
        )
        assert.isTrue(badProxy.server.isRefusing, "the outage is still on")
        assert.strictEqual(badApplied, 0, "the bad key made no progress during its outage")
        // The writer goes at the workers' pace once a backlog builds, so before the end it may still be
        // scheduling; the bad key's write comes first in each round, so once the good keys are done every
        // one of its writes has been scheduled, and all of them still wait.
        if (fraction === 1) assert.strictEqual(sizeOfBad, perKey, "the bad key's writes wait in its lane")
      }
      const goodDoneMs = (yield* now) - outageStartedAt
      for (let k = 0; k < keys; k++) {
        if (k !== bad) assert.strictEqual(stats[k]!.applied, perKey, `key ${k} completed during the outage`)
      }

      // The outage lasts 10 s in all; then the bad key's Redis accepts again.
      const remaining = outageMs - ((yield* now) - outageStartedAt)
      if (remaining > 0) yield* Effect.sleep(Duration.millis(remaining))
      const failedDuringOutage = stats[bad]!.failedAttempts
      yield* badProxy.accept
      const healedAt = yield* now
      yield* badProgress.awaitAtLeast(1, "30 seconds")
      const recoveryMs = (yield* now) - healedAt
      yield* Fiber.join(writer).pipe(
        Effect.timeoutFail({ duration: "120 seconds", onTimeout: () => new Error("writer hung") })
      )
      const badDoneMs = (yield* now) - healedAt

      const states = yield* Effect.forEach(streams, (stream) => readStream(client, stream))
      const duplicates = states.map((state) => state.duplicates)
      const total = stats.reduce((sum, s) => ({
        attempts: sum.attempts + s.attempts,
        failed: sum.failed + s.failedAttempts
      }), { attempts: 0, failed: 0 })
      summary("lanes", [
        `  keys:             ${keys} x ${perKey} writes, concurrency ${concurrency}, outage of key ${bad} for ${outageMs} ms`,
        ...checkpoints,
        `  good keys:        all ${goodTotal} writes done ${goodDoneMs} ms into the outage`,
        `  bad key:          ${failedDuringOutage} failed attempts during the outage; first write ${recoveryMs} ms after heal, all ${perKey} done ${badDoneMs} ms after heal`,
        `  attempts:         ${total.attempts} for ${
          keys * perKey
        } writes (${total.failed} failed), duplicates refused ${duplicates.reduce((a, b) => a + b, 0)}`
      ])
      states.forEach((state, k) => checkStream(streams[k]!, state, perKey, stats[k]!))
      assert.isAbove(failedDuringOutage, 10, "the bad key kept retrying during its outage")
    }).pipe(Effect.provide(sequentLayer(8)), quiet))
})
