/**
 * Throughput: N trivial tasks that succeed at once (each checks it is the next index in order),
 * all scheduled up front, then flush / wait for idle. Reports elapsed ms and tasks/s.
 * Child: node --import tsx --expose-gc bench/throughput.ts --impl=<name> [--n=1000000] [--warmup=50000]
 */
import { Effect } from "effect"
import { loadImpl } from "./impls/index.js"
import type { Impl } from "./impls/types.js"
import { type Elapsed, intArg, main, OrderCheck, parseArgs, settledHeap, stopwatch } from "./shared.js"

/** One timed pass of `n` tasks; returns the elapsed time (throws if a task ran twice, late or never). */
export const throughputPass = async (impl: Impl, n: number): Promise<Elapsed> => {
  const check = new OrderCheck(impl.name)
  let elapsed: Elapsed
  switch (impl.kind) {
    case "floor": {
      const task = async (i: number) => check.see(i)
      const stop = stopwatch()
      for (let i = 0; i < n; i++) await task(i)
      elapsed = stop()
      break
    }
    case "promise": {
      const executor = impl.make()
      const stop = stopwatch()
      for (let i = 0; i < n; i++) executor.add(() => check.see(i))
      await executor.idle()
      elapsed = stop()
      break
    }
    case "effect": {
      elapsed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const executor = yield* impl.make()
        return yield* executor.within(Effect.gen(function*() {
          const stop = stopwatch()
          for (let i = 0; i < n; i++) yield* executor.schedule(Effect.sync(() => check.see(i)))
          yield* executor.flush
          return stop()
        }))
      })))
      break
    }
  }
  check.verify(n)
  return elapsed
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  const n = intArg(args, "n", 1_000_000)
  const warmup = intArg(args, "warmup", Math.min(50_000, n))
  if (warmup > 0) await throughputPass(impl, warmup)
  settledHeap()
  const { cpuMs, ms } = await throughputPass(impl, n)
  return { impl: impl.name, n, ms, cpuMs, tasksPerSec: n / (ms / 1000), tasksPerCpuSec: n / (cpuMs / 1000) }
})
