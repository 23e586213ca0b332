/**
 * Fairness and backlog: how long another fiber waits for its turn while Sequent drains a burst,
 * and how far the backlog grows. A bystander fiber loops on `Effect.yieldNow()` and records the
 * time between its turns while one producer schedules N trivial tasks in a tight loop (reading
 * `size` after every 1,024th) and then flushes. Sequent's workers take longer turns
 * than Effect's default (see `WORKER_TURN` in src/internal/executor.ts); this is what that costs
 * the rest of the program.
 *
 * Run: node --import tsx bench/fairness.ts [--n=1000000] [--runs=3]
 */
import { Context, Effect, Fiber, Layer } from "effect"
import { Sequent, SequentLive } from "../src/index.js"
import { CheckError, intArg, now, parseArgs, percentile, repeated } from "./shared.js"

const args = parseArgs()
const n = intArg(args, "n", 1_000_000)

const measure = () =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const sequent = Context.get(yield* Layer.build(SequentLive), Sequent)
    const gaps: Array<number> = []
    let running = true
    let last = now()
    const bystander = yield* Effect.fork(Effect.gen(function*() {
      while (running) {
        yield* Effect.yieldNow()
        const t = now()
        gaps.push(t - last)
        last = t
      }
    }))
    let ran = 0
    let peak = 0
    const t0 = now()
    for (let i = 0; i < n; i++) {
      yield* sequent.schedule(Effect.sync(() => {
        ran++
      }))
      if (i % 1024 === 0) peak = Math.max(peak, yield* sequent.size)
    }
    yield* sequent.flush
    const ms = now() - t0
    running = false
    yield* Fiber.join(bystander)
    if (ran !== n) throw new CheckError(`${ran} of ${n} tasks ran`)
    const asc = Float64Array.from(gaps).sort()
    return {
      n,
      ms,
      peak,
      turns: asc.length,
      gapP50Ms: percentile(asc, 0.5),
      gapP99Ms: percentile(asc, 0.99),
      gapMaxMs: asc[asc.length - 1]
    }
  })))

const runs = await repeated(intArg(args, "runs", 3), measure)
const ms = (x: number) => x.toFixed(2)
console.log(
  `### Fairness and backlog: a bystander fiber's wait between turns, and the backlog, while ${
    n.toLocaleString("en-US")
  } tasks are scheduled in a tight loop and flushed\n`
)
console.log("| run | burst ms | backlog peak (tasks) | bystander turns | gap p50 ms | gap p99 ms | gap max ms |")
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
runs.forEach((r, i) =>
  console.log(
    `| ${i + 1} | ${r.ms.toFixed(0)} | ${r.peak} | ${r.turns} | ${ms(r.gapP50Ms)} | ${ms(r.gapP99Ms)} | ${
      ms(r.gapMaxMs)
    } |`
  )
)
console.log("\nbacklog peak: the largest `size` the producer saw, read after every 1,024th schedule.")
console.log()
