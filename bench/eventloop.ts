/**
 * The event loop while a backlog drains: N tasks scheduled up front in a tight loop, then flush /
 * idle (for Sequent: `yield* Sequent.schedule(task)` then `yield* Sequent.flush` in a program
 * provided with the layer). From the first schedule to the end of the drain, a 1 ms
 * `setInterval` in the same process records the gaps between its ticks (the last gap ends with
 * the drain, so a timer that never fires shows the whole drain as one gap), and
 * `perf_hooks.monitorEventLoopDelay` (1 ms resolution) records the loop's delay.
 *
 * Tasks: `trivial` (each checks it is the next in order) or `promise` (each first awaits an
 * already resolved promise: `await resolved` in the Promise world, `Effect.promise(() => resolved)`
 * in the Effect world).
 *
 * Rows: p-queue, fastq, effect-loop, sequent; `--impl=sequent --yield=off` builds the executor with
 * `yieldToEventLoop: false`, the same build with the yielding switched off.
 * Child: node --expose-gc .tmp/bench-js/bench/eventloop.js --impl=<name> --task=<trivial|promise>
 *        [--n=1000000] [--warmup=50000] [--yield=on|off] [--repeat=R]
 */
import { Effect } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Sequent } from "../src/index.js"
import { loadImpl } from "./impls/index.js"
import type { Impl } from "./impls/types.js"
import {
  CheckError,
  intArg,
  main,
  now,
  OrderCheck,
  parseArgs,
  percentile,
  repeated,
  settledHeap,
  stopwatch
} from "./shared.js"

type TaskKind = "trivial" | "promise"

/** Watches the event loop from `start()` until the returned `stop()`. */
const watch = () => {
  const gaps: Array<number> = []
  const delay = monitorEventLoopDelay({ resolution: 1 })
  let last = 0
  let timer: ReturnType<typeof setInterval> | undefined
  return {
    start: () => {
      delay.enable()
      last = now()
      timer = setInterval(() => {
        const t = now()
        gaps.push(t - last)
        last = t
      }, 1)
    },
    stop: () => {
      const end = now()
      clearInterval(timer)
      delay.disable()
      gaps.push(end - last)
      const asc = Float64Array.from(gaps).sort()
      return {
        ticks: gaps.length - 1,
        gapP50Ms: percentile(asc, 0.5),
        gapP99Ms: percentile(asc, 0.99),
        gapMaxMs: asc[asc.length - 1]!,
        delayP99Ms: delay.percentile(99) / 1e6,
        delayMaxMs: delay.max / 1e6,
        delayMeanMs: delay.mean / 1e6
      }
    }
  }
}

const resolved = Promise.resolve()

const sequentLayer = (yielding: boolean) => Sequent.layer(yielding ? {} : { yieldToEventLoop: false })

/** One burst of `n` tasks, watched; throws if a task ran twice, late or never. */
const burst = async (impl: Impl, kind: TaskKind, n: number, yielding: boolean) => {
  const check = new OrderCheck(impl.name)
  const watcher = watch()
  let elapsed
  switch (impl.kind) {
    case "floor":
      throw new Error("eventloop: the await loop has no queue")
    case "promise": {
      const executor = impl.make()
      const task = kind === "trivial"
        ? (i: number) => () => check.see(i)
        : (i: number) => async () => {
          await resolved
          check.see(i)
        }
      watcher.start()
      const stop = stopwatch()
      for (let i = 0; i < n; i++) executor.add(task(i))
      await executor.idle()
      elapsed = stop()
      break
    }
    case "effect": {
      const task = kind === "trivial"
        ? (i: number) => Effect.sync(() => check.see(i))
        : (i: number) => Effect.zipRight(Effect.promise(() => resolved), Effect.sync(() => check.see(i)))
      if (impl.name === "sequent") {
        // as a user writes it: the accessor, in a program provided with the layer
        elapsed = await Effect.runPromise(
          Effect.gen(function*() {
            watcher.start()
            const stop = stopwatch()
            for (let i = 0; i < n; i++) yield* Sequent.schedule(task(i))
            yield* Sequent.flush
            return stop()
          }).pipe(Effect.provide(sequentLayer(yielding)))
        )
      } else {
        elapsed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const executor = yield* impl.make()
          return yield* executor.within(Effect.gen(function*() {
            watcher.start()
            const stop = stopwatch()
            for (let i = 0; i < n; i++) yield* executor.schedule(task(i))
            yield* executor.flush
            return stop()
          }))
        })))
      }
      break
    }
  }
  const loop = watcher.stop()
  check.verify(n)
  return { ...elapsed, ...loop }
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  const kind = (args["task"] ?? "trivial") as TaskKind
  if (kind !== "trivial" && kind !== "promise") throw new CheckError(`--task must be trivial or promise, got ${kind}`)
  const yielding = (args["yield"] ?? "on") !== "off"
  if (!yielding && impl.name !== "sequent") throw new Error("--yield=off is a Sequent option")
  const n = intArg(args, "n", 1_000_000)
  const warmup = intArg(args, "warmup", Math.min(50_000, n))
  if (warmup > 0) await burst(impl, kind, warmup, yielding)
  return repeated(intArg(args, "repeat", 1), async () => {
    settledHeap()
    const result = await burst(impl, kind, n, yielding)
    return {
      impl: impl.name,
      task: kind,
      yielding,
      n,
      ...result,
      tasksPerSec: n / (result.ms / 1000),
      tasksPerCpuSec: n / (result.cpuMs / 1000)
    }
  })
})
