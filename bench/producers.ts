/**
 * Many producers: P fibers (Effect.forEach, concurrency "unbounded") each schedule K trivial tasks;
 * then flush. Each task checks it is the next of ITS producer's tasks (per-producer order).
 * Run with --producers=100 --per=10000 and --producers=1 --per=1000000; the orchestrator
 * reports the ratio. Effect-world implementations only (the Promise queues have no fibers).
 * Child: node --import tsx --expose-gc bench/producers.ts --impl=<name> --producers=P --per=K [--repeat=R]
 */
import { Effect, type Scope } from "effect"
import { loadImpl } from "./impls/index.js"
import type { EffectExecutor } from "./impls/types.js"
import { intArg, main, parseArgs, ProducerCheck, repeated, settledHeap, stopwatch } from "./shared.js"

const pass = (
  make: Effect.Effect<EffectExecutor, unknown, Scope.Scope>,
  producers: number,
  per: number
) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const executor = yield* make
    const check = new ProducerCheck(producers)
    const producer = (p: number) =>
      Effect.gen(function*() {
        for (let j = 0; j < per; j++) yield* executor.schedule(Effect.sync(() => check.see(p, j)))
      })
    const ids = Array.from({ length: producers }, (_, p) => p)
    const elapsed = yield* executor.within(Effect.gen(function*() {
      const stop = stopwatch()
      yield* Effect.forEach(ids, producer, { concurrency: "unbounded", discard: true })
      yield* executor.flush
      return stop()
    }))
    check.verify(per)
    return elapsed
  })))

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  if (impl.kind !== "effect") throw new Error(`${impl.name}: producers needs an Effect-world implementation`)
  const producers = intArg(args, "producers", 100)
  const per = intArg(args, "per", 10_000)
  const warmup = intArg(args, "warmup", 50_000)
  if (warmup > 0) await pass(impl.make(), Math.min(producers, warmup), Math.max(1, Math.floor(warmup / producers)))
  return repeated(intArg(args, "repeat", 1), async () => {
    settledHeap()
    const { cpuMs, ms } = await pass(impl.make(), producers, per)
    const n = producers * per
    return { impl: impl.name, producers, per, n, ms, cpuMs, tasksPerSec: n / (ms / 1000) }
  })
})
