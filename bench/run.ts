/**
 * Benchmark orchestrator: `npm run bench [-- --quick] [-- --only=<impl|scenario>[,...]] [-- --runs=N] [-- --micro]`.
 *
 * Compiles src/ and bench/ with tsc (tsconfig.bench.json, into .tmp/bench-js), then runs every
 * (scenario, implementation) pair in child processes
 * (`node --expose-gc .tmp/bench-js/bench/<scenario>.js --impl=<name> ...`): throughput, memory,
 * user and eventloop in a fresh process per run, interleaving the implementations from run to run
 * (memory children two at a time); latency, producers and retry in one process per row that
 * measures every run (`--repeat`). Reads the `RESULT <json>` lines the children print; prints
 * Markdown tables (min / median / max over runs) and the targets; writes the raw results to
 * .tmp/bench-results.json. A child whose correctness check fails (a task ran twice, out of order
 * or never) or that crashes makes the whole run exit non-zero, loudly.
 *
 * Scenarios: throughput, memory, latency (schedule-to-start, and Sequent's submit round trip),
 * producers, retry (hand-timed loops), micro (mitata), user (bench/user.ts: as a user writes it,
 * Sequent against p-queue) and eventloop (bench/eventloop.ts: a timer's gaps and the loop's delay
 * during a burst). Sequent has two rows where its two paths differ: `sequent` (the static
 * accessors in a provided program, the headline) and `sequent-service` (the service's methods).
 */
import { spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import os from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { compileBenchmarks } from "./compile.js"
import { implNames } from "./impls/index.js"
import { median, parseArgs, type Spread, spread } from "./shared.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const root = resolve(benchDir, "..")

const scenarios = ["throughput", "memory", "latency", "producers", "retry", "micro", "user", "eventloop"] as const
type Scenario = (typeof scenarios)[number]

const args = parseArgs()
const quick = args["quick"] === "true"
const withMicro = args["micro"] === "true"
const only = (args["only"] ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
for (const name of only) {
  if (!(implNames as ReadonlyArray<string>).includes(name) && !(scenarios as ReadonlyArray<string>).includes(name)) {
    console.error(
      `--only: unknown name ${name}; implementations: ${implNames.join(", ")}; scenarios: ${scenarios.join(", ")}`
    )
    process.exit(1)
  }
}
const onlyImpls = only.filter((s) => (implNames as ReadonlyArray<string>).includes(s))
const onlyScenarios = only.filter((s) => (scenarios as ReadonlyArray<string>).includes(s))
const runs = args["runs"] !== undefined ? Number(args["runs"]) : quick ? 1 : 5

const sequentAvailable = existsSync(join(root, "src", "index.ts"))
const impls = implNames.filter((name) =>
  (onlyImpls.length === 0 || onlyImpls.includes(name)) && (name !== "sequent" || sequentAvailable)
)
const wanted = (s: Scenario) =>
  // micro (mitata, about 40 s) runs with --micro (as `npm run bench:all` does) or --only=micro, never with --quick
  onlyScenarios.length > 0 ? onlyScenarios.includes(s) : s !== "micro" || (withMicro && !quick)

/** Sizes per scenario: the full suite and the --quick smoke. */
const size = quick
  ? {
    n: 100_000,
    memN: 100_000,
    samples: 1_000,
    warmupSamples: 200,
    producers: 100,
    per: 1_000,
    kEffect: 2_000,
    kPromise: 30,
    userN: 30_000,
    loopN: 100_000,
    loopOthersN: 20_000
  }
  : {
    n: 1_000_000,
    memN: 1_000_000,
    samples: 10_000,
    warmupSamples: 1_000,
    producers: 100,
    per: 10_000,
    kEffect: 20_000,
    kPromise: 300,
    userN: 300_000,
    loopN: 1_000_000,
    loopOthersN: 200_000
  }

/**
 * Runs of the reference implementations (everything but Sequent) where they take most of the
 * suite's time: their throughput is steady from run to run, and their memory figure does not
 * vary at all. Sequent's rows get every run.
 */
const referenceRuns: Partial<Record<Scenario, number>> = { throughput: 3, memory: 1, eventloop: 1 }
const isSequent = (impl: string) => impl === "sequent" || impl === "sequent-service"
const runsOf = (scenario: Scenario, impl: string) =>
  isSequent(impl)
    ? (scenario === "eventloop" ? Math.min(runs, 3) : runs)
    : Math.min(runs, referenceRuns[scenario] ?? runs)

/** The event-loop scenario's rows: each task kind, and for Sequent the same build with the yielding off. */
const loopTasks = ["trivial", "promise"] as const
const loopRow = (impl: string, task: string, yielding: boolean) => `${impl} ${task}${yielding ? "" : ", yielding off"}`

interface Job {
  readonly scenario: Scenario
  readonly impl: string
  /** the table row: the implementation, or a variant of it */
  readonly row: string
  readonly args: ReadonlyArray<string>
  readonly run: number
}

/**
 * Throughput and memory get a fresh process for every run. The other scenarios run once per
 * implementation, measuring all their runs in that one process (`--repeat`), which saves a
 * process start-up (≈1.5 s with tsx) per run.
 */
const repeatedScenarios: ReadonlyArray<Scenario> = ["latency", "producers", "retry"]

const jobsFor = (scenario: Scenario, run: number): Array<Job> => {
  const out: Array<Job> = []
  if (repeatedScenarios.includes(scenario) && run > 1) return out
  const repeat = repeatedScenarios.includes(scenario) ? [`--repeat=${runs}`] : []
  for (const impl of impls) {
    if (run > runsOf(scenario, impl)) continue
    const job = (row: string, extra: ReadonlyArray<string>) =>
      out.push({ scenario, impl, row, run, args: [`--impl=${impl}`, ...extra, ...repeat] })
    const isEffect = impl === "effect-loop" || impl === "sequent"
    // the service method's row is beside the accessor's where the two paths differ: throughput and latency
    if (impl === "sequent-service" && scenario !== "throughput" && scenario !== "latency") continue
    switch (scenario) {
      case "throughput":
        job(impl, [`--n=${size.n}`])
        break
      case "memory":
        job(impl, [`--n=${size.memN}`])
        break
      case "latency":
        job(impl, [`--samples=${size.samples}`, `--warmup=${size.warmupSamples}`])
        if (impl === "sequent") {
          job("sequent submit", [`--samples=${size.samples}`, `--warmup=${size.warmupSamples}`, "--mode=submit"])
        }
        break
      case "user":
        if (impl === "sequent" || impl === "p-queue") job(impl, [`--n=${size.userN}`])
        break
      case "eventloop":
        if (impl === "await-loop") break
        for (const task of loopTasks) {
          const n = impl === "sequent" ? size.loopN : size.loopOthersN
          job(loopRow(impl, task, true), [`--task=${task}`, `--n=${n}`])
          // the same build with the yielding off, in the same run, for its cost
          if (impl === "sequent") job(loopRow(impl, task, false), [`--task=${task}`, `--n=${n}`, "--yield=off"])
        }
        break
      case "producers":
        // the target concerns Sequent alone
        if (impl === "sequent") {
          job(`${impl} ×1`, [`--producers=1`, `--per=${size.producers * size.per}`])
          job(`${impl} ×${size.producers}`, [`--producers=${size.producers}`, `--per=${size.per}`])
        }
        break
      case "retry":
        job(impl, [`--k=${isEffect ? size.kEffect : size.kPromise}`])
        if (impl === "sequent") job("sequent +logs", [`--k=${size.kEffect}`, "--logs=format"])
        break
      case "micro":
        if (run === 1) job(impl, [])
        break
    }
  }
  return out
}

const jobs: Array<Job> = []
for (let run = 1; run <= runs; run++) {
  for (const scenario of scenarios) {
    if (!wanted(scenario)) continue
    for (const job of jobsFor(scenario, run)) jobs.push(job)
  }
}

// ---- run the children ---------------------------------------------------------------------

type Result = Record<string, unknown>
const results = new Map<string, Array<Result>>() // key: scenario/row
const failures: Array<string> = []
const key = (scenario: Scenario, row: string) => `${scenario}/${row}`

const cpuModel = (() => {
  try {
    const m = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))
    return m?.[1] ?? os.cpus()[0]?.model ?? "unknown"
  } catch {
    return os.cpus()[0]?.model ?? "unknown"
  }
})()
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ")
const loadAtStart = load()
const srcAtStart = srcVersion()
const started = Date.now()

const jsonPath = join(root, ".tmp", "bench-results.json")
function saveJson(): void {
  mkdirSync(dirname(jsonPath), { recursive: true })
  writeFileSync(
    jsonPath,
    JSON.stringify(
      { quick, runs, size, loadAtStart, loadNow: load(), results: Object.fromEntries(results), failures },
      null,
      2
    )
  )
}

if (!sequentAvailable) console.error("note: src/index.ts not found; Sequent is skipped")

const compiledDir = compileBenchmarks(root)
console.error(`running ${jobs.length} child processes (${runs} run(s)${quick ? ", --quick" : ""}) ...`)

/** Runs one child; resolves with its exit status and output. */
const runChild = (job: Job) =>
  new Promise<{ status: number | null; signal: string | null; error?: Error; stdout: string; stderr: string }>(
    (resolvePromise) => {
      const file = join(compiledDir, "bench", `${job.scenario}.js`)
      const child = spawn(process.execPath, ["--expose-gc", file, ...job.args], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 600_000
      })
      let stdout = ""
      let stderr = ""
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      child.on("error", (error) => resolvePromise({ status: null, signal: null, error, stdout, stderr }))
      child.on("close", (status, signal) => resolvePromise({ status, signal, stdout, stderr }))
    }
  )

const record = (job: Job, index: number, seconds: string, child: Awaited<ReturnType<typeof runChild>>) => {
  const lines = child.stdout.split("\n").filter((l) => l.startsWith("RESULT "))
  const label = `[${index + 1}/${jobs.length}] ${job.scenario} ${job.row} ${
    repeatedScenarios.includes(job.scenario) ? `${runs} run(s)` : `run ${job.run}`
  }`
  if (child.status !== 0 || lines.length === 0) {
    const why = child.error !== undefined ? String(child.error) : `exit ${child.status ?? child.signal}`
    const tail = child.stderr.trim().split("\n").slice(-15).join("\n")
    failures.push(`${label}: ${why}\n${tail}`)
    console.error(`${label} FAILED (${why}) after ${seconds}s\n${tail}`)
    return
  }
  const list = results.get(key(job.scenario, job.row)) ?? []
  for (const line of lines) list.push(JSON.parse(line.slice("RESULT ".length)) as Result)
  results.set(key(job.scenario, job.row), list)
  console.error(`${label} ok (${seconds}s)`)
  saveJson() // partial results survive an interrupted run
}

// Memory children run two at a time: a heap figure after a full GC does not depend on what
// else the machine does, and each memory child spends most of its time draining 1M tasks.
// Every other child runs alone, since its figure is a time.
for (let index = 0; index < jobs.length;) {
  const group = jobs[index]!.scenario === "memory" && jobs[index + 1]?.scenario === "memory" ? 2 : 1
  const t0 = Date.now()
  await Promise.all(
    jobs.slice(index, index + group).map((job, k) =>
      runChild(job).then((child) => record(job, index + k, ((Date.now() - t0) / 1000).toFixed(1), child))
    )
  )
  index += group
}

// ---- tables -------------------------------------------------------------------------------

const get = (scenario: Scenario, row: string) => results.get(key(scenario, row)) ?? []
const nums = (rs: ReadonlyArray<Result>, field: string) => rs.map((r) => r[field] as number)
const nested = (rs: ReadonlyArray<Result>, group: string, field: string) =>
  rs.map((r) => (r[group] as Record<string, number>)[field]!)

const fmtRate = (x: number) =>
  !Number.isFinite(x)
    ? "–"
    : x >= 1e6
    ? `${(x / 1e6).toFixed(2)}M`
    : x >= 1e3
    ? `${(x / 1e3).toFixed(0)}k`
    : x.toFixed(0)
const fmt = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "–")
const fmtMs = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "–")
const tri = (s: Spread, f: (x: number) => string) => `${f(s.min)} / **${f(s.median)}** / ${f(s.max)}`
const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
  [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`)
  ].join("\n")

const out: Array<string> = []
const print = (s = "") => out.push(s)

print(`## effect-sequent benchmarks`)
print()
print(
  `- machine: ${os.availableParallelism()} CPUs (${cpuModel}), ${
    (os.totalmem() / 2 ** 30).toFixed(0)
  } GiB RAM, ${os.platform()} ${os.release()}`
)
print(
  `- node ${process.version}; effect ${pkgVersion("effect")}, p-queue ${pkgVersion("p-queue")}, fastq ${
    pkgVersion("fastq")
  }, p-retry ${pkgVersion("p-retry")}, mitata ${pkgVersion("mitata")}`
)
const flagsText = process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""
print(
  `- command: \`tsx bench/run.ts${flagsText}\` (the core suite; \`npm run bench${
    flagsText ? " --" + flagsText : ""
  }\` runs it first); each throughput and memory run is a separate child process \`node --expose-gc .tmp/bench-js/bench/<scenario>.js\` (src/ and bench/ compiled by tsc first); latency, producers and retry measure all runs of a row in one child`
)
const srcAtEnd = srcVersion()
print(
  `- src: ${srcAtStart}${srcAtEnd === srcAtStart ? "" : `; **src/ changed during the run**, at the end: ${srcAtEnd}`}`
)
print(
  `- ${runs} run(s) per measurement (the reference implementations: ${
    Object.entries(referenceRuns).map(([s, r]) => `${r} in ${s}`).join(", ")
  }; Sequent: 3 in eventloop), implementations interleaved; cells read min / **median** / max over runs`
)
print(
  `- rows: \`sequent\` schedules as the README writes it, \`yield* Sequent.schedule(task)\` in a program provided with the layer (the headline); \`sequent-service\` calls \`sequent.schedule(task)\` on the service taken from the built layer`
)
print(
  `- load average at start: ${loadAtStart}; at end: ${load()}; wall time ${
    ((Date.now() - started) / 1000).toFixed(0)
  } s`
)
print()

const pqThroughput = median(nums(get("throughput", "p-queue"), "ms"))
const pqThroughputCpu = median(nums(get("throughput", "p-queue"), "cpuMs"))
if (wanted("throughput")) {
  print(`### 1. Throughput: ${size.n.toLocaleString("en-US")} trivial tasks, scheduled up front, then flush / idle`)
  print()
  print(table(
    [
      "implementation",
      "tasks/s (min / median / max)",
      "time ms (median)",
      "time vs p-queue",
      "tasks per CPU-s (median)",
      "CPU time vs p-queue"
    ],
    impls.filter((impl) => get("throughput", impl).length > 0).map((impl) => {
      const rs = get("throughput", impl)
      const ms = median(nums(rs, "ms"))
      const cpuMs = median(nums(rs, "cpuMs"))
      return [
        impl,
        tri(spread(nums(rs, "tasksPerSec")), fmtRate),
        fmtMs(ms),
        `${fmt(ms / pqThroughput)}x`,
        fmtRate(median(nums(rs, "tasksPerCpuSec"))),
        `${fmt(cpuMs / pqThroughputCpu)}x`
      ]
    })
  ))
  print(
    `\nCPU time = process user + system time over the same interval (all threads, so GC helper threads count); it is much less disturbed than wall time when the machine is shared.`
  )
  print()
}

if (wanted("memory")) {
  print(
    `### 2. Memory: retained heap bytes per queued task (${
      size.memN.toLocaleString("en-US")
    } tasks sharing one task value, worker parked on a gate)`
  )
  print()
  print(table(
    ["implementation", "bytes/task (min / median / max)", "total MB (median)"],
    impls.filter((impl) => get("memory", impl).length > 0).map((impl) => {
      const rs = get("memory", impl)
      return [impl, tri(spread(nums(rs, "bytesPerTask")), (x) => fmt(x, 1)), fmt(median(nums(rs, "bytes")) / 1e6, 1)]
    })
  ))
  print(`\nawait-loop: no queue exists; its row is a plain array of pending thunks (the floor).`)
  print()
}

if (wanted("latency")) {
  print(
    `### 3. Idle latency, schedule-to-start, µs (${
      size.samples.toLocaleString("en-US")
    } samples per run after ${size.warmupSamples} warm-up)`
  )
  print()
  print(table(
    ["implementation", "p50 (min / median / max)", "p99 (min / median / max)", "p99.9 (median)", "max (median)"],
    [...impls, "sequent submit"].filter((row) => get("latency", row).length > 0).map((impl) => {
      const rs = get("latency", impl)
      return [
        impl,
        tri(spread(nums(rs, "p50")), fmt),
        tri(spread(nums(rs, "p99")), fmt),
        fmt(median(nums(rs, "p999"))),
        fmt(median(nums(rs, "max")), 0)
      ]
    })
  ))
  print(
    `\n\`sequent submit\`: the round trip instead, from just before \`yield* Sequent.submit(task)\` to its return with the task's outcome.`
  )
  print()
}

if (wanted("producers")) {
  const effectImpls = impls.filter((i) => i === "sequent")
  print(
    `### 4. Many producers: ${size.producers} fibers × ${size.per.toLocaleString("en-US")} tasks vs 1 producer × ${
      (size.producers * size.per).toLocaleString("en-US")
    }`
  )
  print()
  print(table(
    [
      "implementation",
      "runs",
      "1 producer: ms (min / median / max)",
      `${size.producers} producers: ms (min / median / max)`,
      "ratio (median / median)",
      "CPU-time ratio"
    ],
    effectImpls.map((impl) => {
      const oneRs = get("producers", `${impl} ×1`)
      const manyRs = get("producers", `${impl} ×${size.producers}`)
      const one = nums(oneRs, "ms")
      const many = nums(manyRs, "ms")
      const cpuRatio = median(nums(manyRs, "cpuMs")) / median(nums(oneRs, "cpuMs"))
      return [
        impl,
        String(many.length),
        tri(spread(one), fmtMs),
        tri(spread(many), fmtMs),
        `${fmt(median(many) / median(one))}x`,
        `${fmt(cpuRatio)}x`
      ]
    })
  ))
  print(
    `\nSequent only: the target compares Sequent with itself (the Promise queues have no fibers). Each task checks per-producer order; all runs of a row are measured in one process, one after the other.`
  )
  print()
}

const pRetryPerTask = median(nums(get("retry", "await-loop"), "usPerTask"))
if (wanted("retry")) {
  print(`### 5. Retry path: each task fails 3 times then succeeds, zero-delay retries; µs per task`)
  print()
  const rows = impls.flatMap((impl) => (impl === "sequent" ? ["sequent", "sequent +logs"] : [impl]))
  print(table(
    [
      "implementation",
      "retry mechanism",
      "tasks per run",
      "µs/task (min / median / max)",
      "vs p-retry",
      "CPU µs/task (median)"
    ],
    rows.filter((row) => get("retry", row).length > 0).map((row) => {
      const rs = get("retry", row)
      const per = nums(rs, "usPerTask")
      const mechanism = row === "effect-loop" || row.startsWith("sequent")
        ? `Schedule.forever${row.endsWith("+logs") ? ", WARN logs formatted" : ""}`
        : "p-retry {retries: 3, minTimeout: 0, factor: 1}"
      return [
        row,
        mechanism,
        String(rs[0]?.["k"] ?? "–"),
        tri(spread(per), (x) => fmt(x, x < 100 ? 2 : 0)),
        `${fmt(median(per) / pRetryPerTask, 3)}x`,
        fmt(median(nums(rs, "cpuUsPerTask")), 1)
      ]
    })
  ))
  print(
    `\nawait-loop row = plain \`await pRetry(fn)\` loop (the p-retry reference). "sequent +logs" keeps Sequent's per-attempt WARN log (formatted, then discarded); the other Effect rows raise the log level to Error. p-retry's time is mostly idle: each retry waits on a \`setTimeout(0)\` (≥ 1 ms in Node), hence its low CPU time per task.`
  )
  print()
}

if (wanted("micro")) {
  print(`### 6. Micro (mitata, one child per implementation): per-op cost, ns`)
  print()
  print(table(
    [
      "implementation",
      "roundtrip: enqueue 1 + await it (avg / p50 / p99)",
      "retry path: 1 task, 3 failures (avg / p50 / p99)"
    ],
    impls.filter((impl) => get("micro", impl).length > 0).map((impl) => {
      const rs = get("micro", impl)
      const cell = (group: string) =>
        rs.length === 0 ? "–" : ["avg", "p50", "p99"].map((f) => fmt(nested(rs, group, f)[0]!, 0)).join(" / ")
      return [impl, cell("roundtrip"), cell("retry")]
    })
  ))
  print(
    `\nroundtrip: 100 sequential awaited tasks per mitata iteration (Effect world: \`submit\` inside one runPromise); retry: 10 per iteration.`
  )
  print()
}

if (wanted("user")) {
  const pqUser = median(nums(get("user", "p-queue"), "ms"))
  print(
    `### 7. As a user writes it: ${
      size.userN.toLocaleString("en-US")
    } tasks sharing one task value, a fresh process, no warm-up`
  )
  print()
  print(table(
    [
      "implementation",
      "tasks/s (min / median / max)",
      "time ms (median)",
      "time vs p-queue",
      "tasks per CPU-s (median)"
    ],
    ["sequent", "p-queue"].filter((row) => get("user", row).length > 0).map((row) => {
      const rs = get("user", row)
      const ms = median(nums(rs, "ms"))
      return [
        row,
        tri(spread(nums(rs, "tasksPerSec")), fmtRate),
        fmtMs(ms),
        `${fmt(ms / pqUser)}x`,
        fmtRate(median(nums(rs, "tasksPerCpuSec")))
      ]
    })
  ))
  print(
    `\nsequent: \`Effect.runPromise(program.pipe(Effect.provide(SequentLive)))\` where the program does \`yield* Sequent.schedule(task)\` for every task, then \`yield* Sequent.flush\`; p-queue: concurrency 1, \`queue.add(fn)\` with one shared async function, then \`await queue.onIdle()\`. The clock covers the layer's build (the queue's construction) too.`
  )
  print()
}

/** The event-loop rows that were measured, Sequent's first. */
const loopRows = () =>
  impls.flatMap((impl) => loopTasks.flatMap((task) => [loopRow(impl, task, true), loopRow(impl, task, false)]))
    .filter((row) => get("eventloop", row).length > 0)
if (wanted("eventloop")) {
  print(
    `### 8. The event loop during a burst: N tasks scheduled in a tight loop, then flush / idle; a 1 ms \`setInterval\` and \`monitorEventLoopDelay\` in the same process`
  )
  print()
  print(table(
    [
      "row",
      "N",
      "runs",
      "tasks/s (median)",
      "vs yielding off",
      "timer ticks (median)",
      "gap p50 / p99 / max ms (median)",
      "loop delay p99 / max ms (median)"
    ],
    loopRows().map((row) => {
      const rs = get("eventloop", row)
      const rate = median(nums(rs, "tasksPerSec"))
      const off = row.startsWith("sequent ") && !row.endsWith("yielding off")
        ? median(nums(get("eventloop", `${row}, yielding off`), "tasksPerSec"))
        : NaN
      return [
        row,
        (rs[0]?.["n"] as number | undefined)?.toLocaleString("en-US") ?? "–",
        String(rs.length),
        fmtRate(rate),
        Number.isFinite(off) ? `${fmt(rate / off)}x` : "–",
        fmt(median(nums(rs, "ticks")), 0),
        [median(nums(rs, "gapP50Ms")), median(nums(rs, "gapP99Ms")), median(nums(rs, "gapMaxMs"))].map((x) => fmt(x, 1))
          .join(" / "),
        [median(nums(rs, "delayP99Ms")), median(nums(rs, "delayMaxMs"))].map((x) => fmt(x, 1)).join(" / ")
      ]
    })
  ))
  print(
    `\nFrom the first schedule to the end of the drain. gap: between two ticks of the 1 ms timer (the last gap ends with the drain, so a timer that never fires shows the whole drain as one gap). promise: each task first awaits an already resolved promise. "yielding off": the same build with \`yieldToEventLoop: false\`, in the same run. The other implementations run ${
      size.loopOthersN.toLocaleString("en-US")
    } tasks: none of them lets the loop turn, so a longer burst would only be longer.`
  )
  print()
}

// ---- targets ------------------------------------------------------------------------------

if (impls.includes("sequent")) {
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "not measured" : ok ? "**met**" : "**missed**")
  const has = (s: Scenario, row: string) => wanted(s) && get(s, row).length > 0
  const seqRate = has("throughput", "sequent") ? median(nums(get("throughput", "sequent"), "tasksPerSec")) : NaN
  const seqTime = has("throughput", "sequent") ? median(nums(get("throughput", "sequent"), "ms")) : NaN
  const seqCpuRate = has("throughput", "sequent") ? median(nums(get("throughput", "sequent"), "tasksPerCpuSec")) : NaN
  const seqCpu = has("throughput", "sequent") ? median(nums(get("throughput", "sequent"), "cpuMs")) : NaN
  const oneCpu = median(nums(get("producers", "sequent ×1"), "cpuMs"))
  const manyCpu = median(nums(get("producers", `sequent ×${size.producers}`), "cpuMs"))
  const seqMem = has("memory", "sequent") ? median(nums(get("memory", "sequent"), "bytesPerTask")) : NaN
  const seqP50 = has("latency", "sequent") ? median(nums(get("latency", "sequent"), "p50")) : NaN
  const seqP99 = has("latency", "sequent") ? median(nums(get("latency", "sequent"), "p99")) : NaN
  const one = median(nums(get("producers", "sequent ×1"), "ms"))
  const many = median(nums(get("producers", `sequent ×${size.producers}`), "ms"))
  const seqRetry = has("retry", "sequent") ? median(nums(get("retry", "sequent"), "usPerTask")) : NaN
  const seqRetryLogs = has("retry", "sequent +logs") ? median(nums(get("retry", "sequent +logs"), "usPerTask")) : NaN
  const check = (x: number, ok: (x: number) => boolean) => (Number.isFinite(x) ? ok(x) : undefined)
  const median1 = (s: Scenario, row: string, field: string) => (has(s, row) ? median(nums(get(s, row), field)) : NaN)
  const serviceTime = median1("throughput", "sequent-service", "ms")
  const serviceRate = median1("throughput", "sequent-service", "tasksPerSec")
  const serviceCpu = median1("throughput", "sequent-service", "cpuMs")
  const serviceCpuRate = median1("throughput", "sequent-service", "tasksPerCpuSec")
  const userRate = median1("user", "sequent", "tasksPerSec")
  const userCpuRate = median1("user", "sequent", "tasksPerCpuSec")
  const userRatio = median1("user", "sequent", "ms") / median1("user", "p-queue", "ms")
  const userCpuRatio = median1("user", "sequent", "cpuMs") / median1("user", "p-queue", "cpuMs")
  const submitP50 = median1("latency", "sequent submit", "p50")
  const submitP99 = median1("latency", "sequent submit", "p99")
  const loopTargets = loopTasks.flatMap((task) => {
    const row = loopRow("sequent", task, true)
    const maxGap = median1("eventloop", row, "gapMaxMs")
    const p99Gap = median1("eventloop", row, "gapP99Ms")
    const cost = median1("eventloop", row, "tasksPerSec") /
      median1("eventloop", loopRow("sequent", task, false), "tasksPerSec")
    const cpuCost = median1("eventloop", row, "tasksPerCpuSec") /
      median1("eventloop", loopRow("sequent", task, false), "tasksPerCpuSec")
    return [
      [
        `${task} tasks: 1 ms timer's longest gap ≤ 25 ms`,
        `${fmt(maxGap, 1)} ms`,
        verdict(check(maxGap, (x) => x <= 25)),
        "–"
      ],
      [`${task} tasks: its p99 gap ≤ 10 ms`, `${fmt(p99Gap, 1)} ms`, verdict(check(p99Gap, (x) => x <= 10)), "–"],
      [
        `${task} tasks: throughput ≥ 0.9x yielding off`,
        `${fmt(cost)}x`,
        verdict(check(cost, (x) => x >= 0.9)),
        `${fmt(cpuCost)}x tasks/CPU-s`
      ]
    ]
  })
  print(`### Targets (Sequent, medians)`)
  print()
  print(table(["target", "measured", "verdict", "on CPU time instead"], [
    [
      "throughput ≥ 1M tasks/s (accessor, the headline)",
      `${fmtRate(seqRate)} tasks/s`,
      verdict(check(seqRate, (x) => x >= 1e6)),
      `${fmtRate(seqCpuRate)} tasks/CPU-s`
    ],
    [
      "… through the service method",
      `${fmtRate(serviceRate)} tasks/s`,
      verdict(check(serviceRate, (x) => x >= 1e6)),
      `${fmtRate(serviceCpuRate)} tasks/CPU-s`
    ],
    [
      "accessor within 1.1x of the service method's time",
      `${fmt(seqTime / serviceTime)}x`,
      verdict(check(seqTime / serviceTime, (x) => x <= 1.1)),
      `${fmt(seqCpu / serviceCpu)}x`
    ],
    [
      "time ≤ 0.2x p-queue",
      `${fmt(seqTime / pqThroughput)}x`,
      verdict(check(seqTime / pqThroughput, (x) => x <= 0.2)),
      `${fmt(seqCpu / pqThroughputCpu)}x`
    ],
    [
      `as a user writes it (${size.userN.toLocaleString("en-US")} tasks): ≥ 1M tasks/s`,
      `${fmtRate(userRate)} tasks/s`,
      verdict(check(userRate, (x) => x >= 1e6)),
      `${fmtRate(userCpuRate)} tasks/CPU-s`
    ],
    [
      "… and ≤ 0.2x p-queue's time",
      `${fmt(userRatio)}x`,
      verdict(check(userRatio, (x) => x <= 0.2)),
      `${fmt(userCpuRatio)}x`
    ],
    ["memory ≤ 64 B/task", `${fmt(seqMem, 1)} B`, verdict(check(seqMem, (x) => x <= 64)), "–"],
    ["idle latency p50 ≤ 3 µs", `${fmt(seqP50)} µs`, verdict(check(seqP50, (x) => x <= 3)), "–"],
    ["idle latency p99 ≤ 30 µs", `${fmt(seqP99)} µs`, verdict(check(seqP99, (x) => x <= 30)), "–"],
    [
      "submit round trip ≤ 2x schedule-to-start (p50)",
      `${fmt(submitP50)} µs (${fmt(submitP50 / seqP50)}x)`,
      verdict(check(submitP50 / seqP50, (x) => x <= 2)),
      "–"
    ],
    [
      "… (p99)",
      `${fmt(submitP99)} µs (${fmt(submitP99 / seqP99)}x)`,
      verdict(check(submitP99 / seqP99, (x) => x <= 2)),
      "–"
    ],
    [
      `${size.producers} producers ≤ 1.5x one producer`,
      `${fmt(many / one)}x`,
      verdict(check(many / one, (x) => x <= 1.5)),
      `${fmt(manyCpu / oneCpu)}x`
    ],
    [
      "retry path no slower than p-retry",
      `${fmt(seqRetry)} µs vs ${fmt(pRetryPerTask, 0)} µs (${fmt(seqRetry / pRetryPerTask, 4)}x)`,
      verdict(check(seqRetry / pRetryPerTask, (x) => x <= 1)),
      "–"
    ],
    [
      "… with WARN logs formatted",
      `${fmt(seqRetryLogs)} µs (${fmt(seqRetryLogs / pRetryPerTask, 4)}x)`,
      verdict(check(seqRetryLogs / pRetryPerTask, (x) => x <= 1)),
      "–"
    ],
    ...loopTargets
  ]))
  print()
} else if (!sequentAvailable) {
  print(`Sequent was skipped: src/index.ts does not exist yet.`)
}

if (failures.length > 0) {
  print(`### FAILURES`)
  print()
  for (const f of failures) print("```\n" + f + "\n```")
}

console.log(out.join("\n"))

saveJson()
console.error(`raw results: ${jsonPath}`)

if (failures.length > 0) {
  console.error(`\n${failures.length} BENCHMARK CHILD(REN) FAILED — see above.`)
  process.exit(1)
}

/** The commit under test, whether src/ differs from it, and a hash of src/'s contents. */
function srcVersion(): string {
  const git = (...a: Array<string>) => spawnSync("git", a, { cwd: root, encoding: "utf8" })
  const hash = createHash("sha1")
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else hash.update(path).update(readFileSync(path))
    }
  }
  walk(join(root, "src"))
  const contents = `src/ hash ${hash.digest("hex").slice(0, 10)}`
  const head = git("rev-parse", "--short", "HEAD")
  if (head.status !== 0) return contents
  const dirty = git("status", "--porcelain", "--", "src").stdout.trim().length > 0
  return `commit ${head.stdout.trim()}${dirty ? " + uncommitted changes" : ""}, ${contents}`
}

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")) as { version: string })
      .version
  } catch {
    return "?"
  }
}
