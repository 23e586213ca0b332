/**
 * Observability cost: the same throughput run (N trivial tasks scheduled, then
 * flush) with metrics off, with the defaults (metrics on, no tracer, no
 * subscriber), with one event subscriber that reads everything, and with spans
 * on the built-in tracer. Each variant runs in its own child process; runs are
 * interleaved; medians of CPU time per task are compared with "off".
 *
 * Orchestrator: node --import tsx bench/observability.ts [--n=200000] [--runs=5]
 * Child:        node --import tsx bench/observability.ts --child --variant=<name> --n=<n>
 */
import { Effect, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Sequent, type SequentOptions } from "../src/index.js"
import { intArg, main, OrderCheck, parseArgs, stopwatch } from "./shared.js"

const variants: Record<
  string,
  { readonly label: string; readonly options: SequentOptions; readonly subscribe: boolean }
> = {
  off: { label: "metrics off, spans off (the floor)", options: { metrics: false, spans: false }, subscribe: false },
  default: { label: "defaults: metrics on, spans auto (no tracer)", options: {}, subscribe: false },
  subscriber: { label: "defaults + one event subscriber reading all", options: {}, subscribe: true },
  spans: { label: "defaults + spans on (built-in tracer)", options: { spans: true }, subscribe: false }
}

const child = (variant: string, n: number) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const { options, subscribe } = variants[variant]!
    const sequent = yield* Sequent.make(options)
    if (subscribe) yield* Effect.forkScoped(Stream.runDrain(sequent.events))
    const check = new OrderCheck(variant)
    const elapsed = stopwatch()
    for (let i = 0; i < n; i++) yield* sequent.schedule(Effect.sync(() => check.see(i)))
    yield* sequent.flush
    const { cpuMs, ms } = elapsed()
    check.verify(n)
    return { variant, n, ms, cpuMs, tasksPerSec: n / (ms / 1000), cpuUsPerTask: (cpuMs * 1000) / n }
  })))

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

const args = parseArgs()
if (args["child"] !== undefined) {
  main(() => child(args["variant"] ?? "default", intArg(args, "n", 200_000)))
} else {
  const n = intArg(args, "n", 200_000)
  const runs = intArg(args, "runs", 5)
  const self = fileURLToPath(import.meta.url)
  const results: Record<string, Array<{ tasksPerSec: number; cpuUsPerTask: number }>> = {}
  for (let run = 0; run < runs; run++) {
    const order = Object.keys(variants)
    if (run % 2 === 1) order.reverse()
    for (const variant of order) {
      const out = execFileSync(process.execPath, [
        "--import",
        "tsx",
        self,
        "--child",
        `--variant=${variant}`,
        `--n=${n}`
      ], {
        encoding: "utf8"
      })
      const line = out.split("\n").find((l) => l.startsWith("RESULT "))!
      ;(results[variant] ??= []).push(JSON.parse(line.slice(7)))
    }
  }
  const floor = median(results["off"]!.map((r) => r.cpuUsPerTask))
  console.log(`### Observability cost: ${n.toLocaleString("en")} tasks, ${runs} runs per variant (medians)\n`)
  console.log("| variant | tasks/s | CPU µs per task | CPU vs metrics off |")
  console.log("| --- | ---: | ---: | ---: |")
  for (const [variant, { label }] of Object.entries(variants)) {
    const rows = results[variant]!
    const cpu = median(rows.map((r) => r.cpuUsPerTask))
    const tps = median(rows.map((r) => r.tasksPerSec))
    console.log(
      `| ${label} | ${Math.round(tps).toLocaleString("en")} | ${cpu.toFixed(2)} | ${(cpu / floor).toFixed(2)}x |`
    )
  }
}
