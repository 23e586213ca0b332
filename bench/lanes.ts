/**
 * Lanes: throughput of N trivial tasks spread over K keys (task i goes to key
 * i % K) at concurrency 1, 8 and "unbounded", scheduled up front, then flush.
 * Each run checks that every key's tasks ran exactly once, in order.
 *
 * Orchestrator: node --import tsx bench/lanes.ts [--n=200000] [--runs=3]
 * Child:        node --import tsx bench/lanes.ts --child --keys=<k> --concurrency=<c> --n=<n>
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Sequent } from "../src/index.js"
import { CheckError, intArg, main, parseArgs, stopwatch } from "./shared.js"

const child = (keys: number, concurrency: number | "unbounded", n: number) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const sequent = yield* Sequent.make({ concurrency })
    const next = new Int32Array(keys)
    let errors = 0
    const elapsed = stopwatch()
    for (let i = 0; i < n; i++) {
      const key = i % keys
      const seq = Math.floor(i / keys)
      yield* sequent.schedule(
        Effect.sync(() => {
          if (next[key] !== seq) errors++
          next[key] = seq + 1
        }),
        { key: `k${key}` }
      )
    }
    yield* sequent.flush
    const { cpuMs, ms } = elapsed()
    const ran = next.reduce((sum, count) => sum + count, 0)
    if (errors > 0 || ran !== n) throw new CheckError(`${errors} out-of-order runs, ${ran} of ${n} ran`)
    return { keys, concurrency, n, ms, cpuMs, tasksPerSec: n / (ms / 1000), lanesLeft: yield* sequent.laneCount }
  })))

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const args = parseArgs()
if (args["child"] !== undefined) {
  const concurrency = args["concurrency"] === "unbounded" ? "unbounded" : intArg(args, "concurrency", 1)
  main(() => child(intArg(args, "keys", 1), concurrency, intArg(args, "n", 200_000)))
} else {
  const n = intArg(args, "n", 200_000)
  const runs = intArg(args, "runs", 3)
  const self = fileURLToPath(import.meta.url)
  const keyCounts = [1, 100, 100_000]
  const concurrencies = ["1", "8", "unbounded"]
  console.log(`### Lanes: ${n.toLocaleString("en")} tasks over K keys, tasks/s (median of ${runs}; min / max)\n`)
  console.log(`| keys | ${concurrencies.map((c) => `concurrency ${c}`).join(" | ")} |`)
  console.log(`| ---: | ${concurrencies.map(() => "---:").join(" | ")} |`)
  for (const keys of keyCounts) {
    const cells: Array<string> = []
    for (const concurrency of concurrencies) {
      const samples: Array<number> = []
      for (let run = 0; run < runs; run++) {
        const out = execFileSync(
          process.execPath,
          ["--import", "tsx", self, "--child", `--keys=${keys}`, `--concurrency=${concurrency}`, `--n=${n}`],
          { encoding: "utf8" }
        )
        const line = out.split("\n").find((l) => l.startsWith("RESULT "))!
        samples.push(JSON.parse(line.slice(7)).tasksPerSec)
      }
      const fmt = (v: number) => `${Math.round(v / 1000)}k`
      cells.push(`**${fmt(median(samples))}** (${fmt(Math.min(...samples))} / ${fmt(Math.max(...samples))})`)
    }
    console.log(`| ${keys.toLocaleString("en")} | ${cells.join(" | ")} |`)
  }
}
