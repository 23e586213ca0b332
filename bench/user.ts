/**
 * As a user writes it: a fresh process, no warm-up, N tasks that share one task value.
 *  - sequent: `Effect.gen` that does `yield* Sequent.schedule(task)` N times, then
 *    `yield* Sequent.flush`, run with `Effect.runPromise(program.pipe(Effect.provide(SequentLive)))`.
 *  - p-queue: `new PQueue({ concurrency: 1 })`, `queue.add(fn)` N times with one shared async
 *    function, then `await queue.onIdle()`.
 * The clock covers everything from just before `runPromise` (the layer's build included) or the
 * queue's construction to the end. Every task must run exactly once.
 * Child: node --expose-gc .tmp/bench-js/bench/user.js --impl=<sequent|p-queue> [--n=300000]
 */
import { Effect } from "effect"
import PQueue from "p-queue"
import { Sequent, SequentLive } from "../src/index.js"
import { CheckError, intArg, main, parseArgs, stopwatch } from "./shared.js"

export const userImpls = ["sequent", "p-queue"] as const

const sequent = async (n: number, see: () => void) => {
  const task = Effect.sync(see)
  const program = Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* Sequent.schedule(task)
    yield* Sequent.flush
  })
  await Effect.runPromise(program.pipe(Effect.provide(SequentLive)))
}

const pQueue = async (n: number, see: () => void) => {
  const queue = new PQueue({ concurrency: 1 })
  const fn = async () => see()
  for (let i = 0; i < n; i++) void queue.add(fn)
  await queue.onIdle()
}

const args = parseArgs()
main(async () => {
  const impl = args["impl"] ?? ""
  const n = intArg(args, "n", 300_000)
  let ran = 0
  const see = () => void ran++
  const run = impl === "sequent" ? sequent : impl === "p-queue" ? pQueue : undefined
  if (run === undefined) throw new Error(`--impl must be one of ${userImpls.join(", ")}, got ${impl}`)
  const stop = stopwatch()
  await run(n, see)
  const { cpuMs, ms } = stop()
  if (ran !== n) throw new CheckError(`${impl}: ${ran} of ${n} tasks ran`)
  return { impl, n, ms, cpuMs, tasksPerSec: n / (ms / 1000), tasksPerCpuSec: n / (cpuMs / 1000) }
})
