/**
 * The durable executor survives SIGKILL: real worker processes
 * (`test/fixtures/durableWorker.ts`) on one SQLite journal are killed at chosen
 * points and started again, and the backend's record shows that every task ran,
 * lanes kept their order, and only the tasks in flight at a kill ran twice.
 *
 * `it.scopedLive`: real processes on the live clock are the point. The parent
 * never sleeps: it kills a worker on reading one of the markers the worker
 * prints to stdout, and starts the next once the killed one has exited (its
 * journal lock goes with it).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { spawnTsx } from "./support/ChildProcess.js"

const TASKS = 10_000
const LANES = 100
const CONCURRENCY = 8

const fixture = fileURLToPath(new URL("../fixtures/durableWorker.ts", import.meta.url))

/** Where to kill a worker: on the `nth` stdout line that starts with `marker`. */
interface KillPoint {
  readonly point: string
  readonly marker: string
  readonly nth: number
}

const killPoints: ReadonlyArray<KillPoint> = [
  { point: "during scheduling, as an append transaction is about to run", marker: "appending", nth: 30 },
  { point: "during a retry (a failed attempt committed, its backoff running)", marker: "retrying", nth: 200 },
  // a completion transaction commits up to CONCURRENCY tasks: the thousands left by then take more than 500 of them
  { point: "while running, as a completion transaction is about to run", marker: "completing", nth: 500 },
  { point: "on restart, right after the pending tasks were restored", marker: "restored", nth: 1 },
  { point: "at the first completion commit after a restart", marker: "completing", nth: 1 }
]

interface Worker {
  readonly child: ChildProcess
  readonly pid: number
  /** stdout, line by line; `undefined` once stdout is closed. */
  readonly lines: Queue.Queue<string | undefined>
  readonly stderr: () => string
}

interface Files {
  readonly journal: string
  readonly log: string
  readonly watermark: string
}

/** Starts a worker that prints the given markers; it is killed with the scope if still alive. */
const startWorker = (
  files: Files,
  seed: number,
  markers: ReadonlyArray<string>
): Effect.Effect<Worker, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.map(
      spawnTsx(fixture, [
        files.journal,
        files.log,
        files.watermark,
        seed,
        TASKS,
        LANES,
        CONCURRENCY,
        markers.join(",")
      ]),
      (worker) => ({ ...worker, pid: worker.child.pid! })
    ),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Reads stdout until the `nth` line starting with `marker`, calling `seen` on every line. */
const readUntil = (worker: Worker, marker: string, nth: number, seen: (line: string) => void) =>
  Effect.gen(function*() {
    let count = 0
    while (true) {
      const line = yield* Queue.take(worker.lines)
      if (line === undefined) {
        return yield* Effect.dieMessage(
          `worker ${worker.pid} closed stdout before the line "${marker}" #${nth} (${count} seen):\n${worker.stderr()}`
        )
      }
      seen(line)
      if (line.startsWith(marker) && ++count === nth) return line
    }
  })

const awaitExit = (child: ChildProcess) =>
  Effect.async<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })

interface Run {
  readonly pid: number
  readonly point: string | undefined
  readonly killedAt: string | undefined
  readonly restored: string | undefined
  readonly millis: number
}

/** One line of the backend log: a write that reached the backend, and the worker that sent it. */
interface Delivery {
  readonly lane: number
  readonly seq: number
  readonly pid: number
}

const readLog = (file: string): ReadonlyArray<Delivery> =>
  readFileSync(file, "utf8").split("\n").filter((line) => line !== "").map((line) => {
    const [lane, seq, pid] = line.split(" ").map(Number)
    return { lane: lane!, seq: seq!, pid: pid! }
  })

describe("durable executor across SIGKILL", () => {
  it.scopedLive(
    "10,000 tasks over 100 lanes, worker killed 5 times: every task runs, lanes keep their order," +
      " only tasks in flight at a kill run twice",
    () =>
      Effect.gen(function*() {
        const dir = mkdtempSync(join(tmpdir(), "sequent-crash-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
        const files: Files = {
          journal: join(dir, "journal.db"),
          log: join(dir, "backend.log"),
          watermark: join(dir, "scheduled-upto")
        }
        const startedAt = yield* Clock.currentTimeMillis
        const runs: Array<Run> = []

        /** Runs a worker until `kill` (then SIGKILL), or to the end when there is none. */
        const run = (seed: number, kill: KillPoint | undefined) =>
          Effect.scoped(Effect.gen(function*() {
            const began = yield* Clock.currentTimeMillis
            const markers = kill === undefined ? ["restored"] : ["restored", kill.marker]
            const worker = yield* startWorker(files, seed, markers)
            let restored: string | undefined
            const seen = (line: string) => {
              if (line.startsWith("restored")) restored = line
            }
            let killedAt: string | undefined
            if (kill === undefined) {
              const drained = yield* readUntil(worker, "drained", 1, seen)
              assert.strictEqual(drained, "drained 0 0", "no task is left pending or dead-lettered")
              assert.deepStrictEqual(yield* awaitExit(worker.child), { code: 0, signal: null }, worker.stderr())
            } else {
              killedAt = yield* readUntil(worker, kill.marker, kill.nth, seen)
              worker.child.kill("SIGKILL")
              assert.strictEqual((yield* awaitExit(worker.child)).signal, "SIGKILL")
            }
            const millis = (yield* Clock.currentTimeMillis) - began
            runs.push({ pid: worker.pid, point: kill?.point, killedAt, restored, millis })
          }))

        for (const [index, kill] of killPoints.entries()) yield* run(index + 1, kill)
        yield* run(killPoints.length + 1, undefined)
        const elapsed = (yield* Clock.currentTimeMillis) - startedAt

        // ---------------------------------------------------------------------
        // The backend's record
        // ---------------------------------------------------------------------
        const log = readLog(files.log)
        const runOf = new Map(runs.map((run, index) => [run.pid, index]))
        const killed = new Set(runs.filter((run) => run.point !== undefined).map((run) => run.pid))

        // every task whose schedule returned (here: every task) ran to success
        const watermark = new Set(readFileSync(files.watermark, "utf8").split("\n").filter((l) => l !== "").map(Number))
        assert.strictEqual(watermark.size, TASKS, "every schedule returned, in the end")
        const byTask = new Map<string, Array<number>>()
        log.forEach((delivery, index) => {
          assert.isTrue(runOf.has(delivery.pid), `line ${index + 1} comes from a worker of this test`)
          const key = `${delivery.lane}:${delivery.seq}`
          const lines = byTask.get(key)
          if (lines === undefined) byTask.set(key, [index])
          else lines.push(index)
        })
        for (let i = 0; i < TASKS; i++) {
          const key = `${i % LANES}:${Math.floor(i / LANES)}`
          assert.isTrue(byTask.has(key), `task ${key} (scheduled) reached the backend`)
        }
        assert.strictEqual(byTask.size, TASKS, "no task the test did not schedule")

        // per lane, first runs are in schedule order
        const firstRuns = new Map<number, Array<number>>()
        const firsts = Array.from(byTask.values(), (lines) => lines[0]!).sort((a, b) => a - b)
        for (const index of firsts) {
          const { lane, seq } = log[index]!
          const seqs = firstRuns.get(lane) ?? []
          seqs.push(seq)
          firstRuns.set(lane, seqs)
        }
        for (let lane = 0; lane < LANES; lane++) {
          assert.deepStrictEqual(
            firstRuns.get(lane),
            Array.from({ length: TASKS / LANES }, (_, seq) => seq),
            `lane ${lane}: first runs in schedule order`
          )
        }

        // duplicates: a later run of a task is caused by the kill of the worker of
        // the run before it, and that run was the task in flight in its lane: the
        // last line that worker wrote for the lane
        const lastLineOf = new Map<string, number>()
        log.forEach((delivery, index) => lastLineOf.set(`${delivery.pid}:${delivery.lane}`, index))
        const duplicates = new Map<number, number>(runs.map((run) => [run.pid, 0]))
        for (const [key, lines] of byTask) {
          for (let k = 1; k < lines.length; k++) {
            const before = log[lines[k - 1]!]!
            const again = log[lines[k]!]!
            assert.isTrue(killed.has(before.pid), `task ${key} ran again only after worker ${before.pid} was killed`)
            assert.notStrictEqual(again.pid, before.pid, `task ${key} ran twice in worker ${before.pid}`)
            assert.strictEqual(
              lastLineOf.get(`${before.pid}:${before.lane}`),
              lines[k - 1],
              `task ${key} was in flight in lane ${before.lane} when worker ${before.pid} was killed`
            )
            duplicates.set(before.pid, duplicates.get(before.pid)! + 1)
          }
        }
        for (const pid of killed) {
          assert.isAtMost(duplicates.get(pid)!, CONCURRENCY, `worker ${pid}: at most ${CONCURRENCY} tasks in flight`)
        }

        // ---------------------------------------------------------------------
        // The figures
        // ---------------------------------------------------------------------
        const totalDuplicates = log.length - TASKS
        const report = [
          `durable crash test: ${TASKS} tasks, ${LANES} lanes, concurrency ${CONCURRENCY},` +
          ` backend failing 20% of attempts`,
          ...runs.map((run, index) => {
            const lines = log.filter((delivery) => delivery.pid === run.pid).length
            const [, pending, failing] = (run.restored ?? "restored ? ?").split(" ")
            const head = `  run ${index + 1} (pid ${run.pid}, ${(run.millis / 1000).toFixed(1)} s,` +
              ` restored ${pending} pending tasks, ${failing} with failed attempts; ${lines} deliveries)`
            return run.point === undefined
              ? `${head}: ran to the end`
              : `${head}: SIGKILL ${run.point}, on "${run.killedAt}"; ${duplicates.get(run.pid)} task(s) ran again`
          }),
          `  kills ${killed.size}, deliveries ${log.length}, duplicates ${totalDuplicates}` +
          ` (per kill: ${Array.from(killed, (pid) => duplicates.get(pid)).join(", ")})`,
          `  total ${(elapsed / 1000).toFixed(1)} s`
        ].join("\n")
        console.log(report)
        assert.strictEqual(totalDuplicates, Array.from(duplicates.values()).reduce((a, b) => a + b, 0))
      }),
    180_000
  )
})
