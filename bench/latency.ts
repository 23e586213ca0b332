/**
 * Idle latency, schedule-to-start: with the executor idle, schedule ONE task that stamps
 * performance.now() when it starts; the clock starts just before the schedule call. Wait for the
 * task to finish, repeat. Reports percentiles in µs (after a short warm-up that is not recorded).
 * With `--mode=submit` (Effect world), the round trip instead: from just before `submit` of a task
 * that stamps its start to the moment `submit` returns with its outcome.
 * Child: node --import tsx --expose-gc bench/latency.ts --impl=<name> [--samples=10000] [--warmup=1000] [--mode=start|submit] [--repeat=R]
 * (R runs, each on a fresh executor with its own warm-up; one RESULT line each)
 */
import { Deferred, Effect } from "effect"
import { loadImpl } from "./impls/index.js"
import type { Impl } from "./impls/types.js"
import { CheckError, intArg, main, now, parseArgs, percentile, repeated } from "./shared.js"

/** One run: `warmup` unrecorded samples, then `samples` recorded ones, on a fresh executor. */
const measure = async (impl: Impl, samples: number, warmup: number, mode: "start" | "submit") => {
  const total = warmup + samples
  const us = new Float64Array(total)
  let startedAt = NaN
  let runs = 0
  const stamp = () => {
    startedAt = now()
    runs++
  }
  switch (impl.kind) {
    case "floor": {
      const task = async () => stamp()
      for (let k = 0; k < total; k++) {
        startedAt = NaN
        const t0 = now()
        await task()
        us[k] = (startedAt - t0) * 1000
      }
      break
    }
    case "promise": {
      const executor = impl.make()
      for (let k = 0; k < total; k++) {
        startedAt = NaN
        const t0 = now()
        await executor.run(stamp)
        us[k] = (startedAt - t0) * 1000
      }
      await executor.idle()
      break
    }
    case "effect": {
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const executor = yield* impl.make()
        yield* executor.within(Effect.gen(function*() {
          const stamping = Effect.sync(stamp)
          for (let k = 0; k < total && mode === "submit"; k++) {
            startedAt = NaN
            const t0 = now()
            yield* executor.submit(stamping)
            us[k] = Number.isNaN(startedAt) ? NaN : (now() - t0) * 1000
          }
          for (let k = 0; k < total && mode === "start"; k++) {
            const done = yield* Deferred.make<void>()
            const task = Effect.suspend(() => {
              stamp()
              return Deferred.succeed(done, undefined)
            })
            startedAt = NaN
            const t0 = now()
            yield* executor.schedule(task)
            yield* Deferred.await(done)
            us[k] = (startedAt - t0) * 1000
          }
          yield* executor.flush
        }))
      })))
      break
    }
  }
  if (runs !== total) throw new CheckError(`${impl.name}: ${runs} of ${total} latency tasks ran`)
  const measured = us.subarray(warmup)
  if (measured.some((x) => !Number.isFinite(x) || x < 0)) {
    throw new CheckError(`${impl.name}: a task did not stamp its start`)
  }
  const asc = Float64Array.from(measured).sort()
  let sum = 0
  for (const x of asc) sum += x
  return {
    impl: impl.name,
    mode,
    samples,
    p50: percentile(asc, 0.5),
    p90: percentile(asc, 0.9),
    p99: percentile(asc, 0.99),
    p999: percentile(asc, 0.999),
    max: asc[asc.length - 1],
    mean: sum / asc.length
  }
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  const samples = intArg(args, "samples", 10_000)
  const warmup = intArg(args, "warmup", 1_000)
  const mode = args["mode"] ?? "start"
  if (mode !== "start" && mode !== "submit") throw new Error(`--mode must be start or submit, got ${mode}`)
  if (mode === "submit" && impl.kind !== "effect") throw new Error(`--mode=submit needs an Effect-world implementation`)
  return repeated(intArg(args, "repeat", 1), () => measure(impl, samples, warmup, mode))
})
