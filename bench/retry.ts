/**
 * Retry path: K tasks that each fail their first 3 attempts and then succeed, retried with zero
 * delay. Effect world: Schedule.forever (Sequent.layer({ retry: Schedule.forever }); the bare loop
 * with the same schedule). Promise world: p-retry { retries: 3, minTimeout: 0, factor: 1 } around
 * an async function (the floor: a plain await loop over pRetry; p-queue / fastq: pRetry inside
 * each queued task). All K are scheduled up front, then flush. Reports µs per task.
 * Every attempt checks no other task started in between; every task must take exactly 4 attempts.
 * Effect-world runs hide Sequent's per-attempt WARN logs unless --logs=format (see logs.ts).
 * Child: node --import tsx --expose-gc bench/retry.ts --impl=<name> [--k=...] [--logs=off|format] [--repeat=R]
 * (R measured runs after one warm-up, one RESULT line each)
 */
import { Effect, Schedule } from "effect"
import pRetry from "p-retry"
import { loadImpl } from "./impls/index.js"
import type { Impl } from "./impls/types.js"
import { type LogMode, parseLogMode, withLogs } from "./logs.js"
import { FAILURES, pRetryOptions } from "./retry-options.js"
import {
  CheckError,
  type Elapsed,
  intArg,
  main,
  OrderCheck,
  parseArgs,
  repeated,
  settledHeap,
  stopwatch
} from "./shared.js"

const boom = new Error("transient failure")

const pass = async (impl: Impl, k: number, logs: LogMode): Promise<Elapsed> => {
  const check = new OrderCheck(impl.name)
  const attempts = new Uint8Array(k)
  let interleaved = 0
  /** true when this attempt should succeed */
  const attempt = (i: number): boolean => {
    if (i !== check.expected) interleaved++
    return ++attempts[i]! > FAILURES
  }
  let elapsed: Elapsed
  switch (impl.kind) {
    case "floor": {
      const task = (i: number) => async () => {
        if (!attempt(i)) throw boom
        check.see(i)
      }
      const stop = stopwatch()
      for (let i = 0; i < k; i++) await pRetry(task(i), pRetryOptions)
      elapsed = stop()
      break
    }
    case "promise": {
      const executor = impl.make()
      const task = (i: number) => async () => {
        if (!attempt(i)) throw boom
        check.see(i)
      }
      const stop = stopwatch()
      for (let i = 0; i < k; i++) executor.add(() => pRetry(task(i), pRetryOptions))
      await executor.idle()
      elapsed = stop()
      break
    }
    case "effect": {
      const failure = Effect.fail(boom)
      elapsed = await Effect.runPromise(
        Effect.scoped(Effect.gen(function*() {
          const executor = yield* impl.make(Schedule.forever)
          return yield* executor.within(Effect.gen(function*() {
            const stop = stopwatch()
            for (let i = 0; i < k; i++) {
              yield* executor.schedule(Effect.suspend(() => attempt(i) ? Effect.sync(() => check.see(i)) : failure))
            }
            yield* executor.flush
            return stop()
          }))
        })).pipe(withLogs(logs))
      )
      break
    }
  }
  check.verify(k)
  if (interleaved > 0) {
    throw new CheckError(`${impl.name}: ${interleaved} attempts ran while another task was unfinished`)
  }
  for (let i = 0; i < k; i++) {
    if (attempts[i] !== FAILURES + 1) throw new CheckError(`${impl.name}: task ${i} took ${attempts[i]} attempts`)
  }
  return elapsed
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  // p-retry waits on a setTimeout(0) (≈1 ms) per retry, so the Promise side needs far fewer tasks.
  const k = intArg(args, "k", impl.kind === "effect" ? 20_000 : 300)
  const logs = parseLogMode(args["logs"])
  await pass(impl, Math.max(1, Math.floor(k / 10)), logs)
  return repeated(intArg(args, "repeat", 1), async () => {
    settledHeap()
    const { cpuMs, ms } = await pass(impl, k, logs)
    return { impl: impl.name, logs, k, ms, cpuMs, usPerTask: (ms * 1000) / k, cpuUsPerTask: (cpuMs * 1000) / k }
  })
})
