/**
 * Side by side against a baseline commit: `npx tsx bench/compare.ts [--ref=d189ad6] [--rounds=5]
 * [--n=1000000] [--only=throughput,latency,memory,user]`.
 *
 * Extracts src/ of `--ref` (default `d189ad6`) with `git archive` into .tmp/baseline/<commit>/,
 * puts the current bench/ beside it (so both builds are measured by the same code), and compiles
 * both the way `npm run bench` compiles src/ (tsconfig.bench.json). Then, for `--rounds` rounds,
 * runs every measurement once on each build, the builds alternating which goes first, each in a
 * fresh child process:
 *  - throughput: 1M trivial tasks, through the accessor (`yield* Sequent.schedule`) and through
 *    the service method (`sequent.schedule`);
 *  - latency: idle schedule-to-start, p50 and p99, and the `submit` round trip (accessor path);
 *  - memory: retained bytes per queued task;
 *  - user: 300,000 tasks as a user writes them (bench/user.ts), fresh process, no warm-up.
 * Prints the medians of both builds and their ratio (current / baseline), with the load average
 * of every round; CPU time beside wall time, since the machine may be shared.
 *
 * `--ref=HEAD` compares the working tree with the last commit: an A/B of uncommitted changes.
 */
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs"
import { createRequire } from "node:module"
import os from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { intArg, median, parseArgs } from "./shared.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const args = parseArgs()
const ref = args["ref"] ?? "d189ad6"
const rounds = intArg(args, "rounds", 5)
const n = intArg(args, "n", 1_000_000)
const only = (args["only"] ?? "throughput,latency,memory,user").split(",")
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(" ")

const run = (command: string, argv: ReadonlyArray<string>, cwd = root) =>
  spawnSync(command, argv, { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })

const tsc = (project: string) => {
  const require = createRequire(import.meta.url)
  return run(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", project])
}

/** The baseline's tree: its src/, today's bench/ and tsconfigs; compiled into its own .tmp/bench-js. */
const prepareBaseline = (): { readonly dir: string; readonly commit: string } => {
  const parsed = run("git", ["rev-parse", "--short", `${ref}^{commit}`])
  if (parsed.status !== 0) throw new Error(`--ref: ${parsed.stderr.trim()}`)
  const commit = parsed.stdout.trim()
  const dir = join(root, ".tmp", "baseline", commit)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const archive = run("sh", ["-c", `git archive ${commit} src | tar -x -C "${dir}"`])
  if (archive.status !== 0) throw new Error(`git archive failed: ${archive.stderr}`)
  cpSync(join(root, "bench"), join(dir, "bench"), { recursive: true })
  for (const file of ["tsconfig.json", "tsconfig.bench.json", "package.json"]) cpSync(join(root, file), join(dir, file))
  // node_modules resolves from the parent directories, as from the working tree's own build
  const compiled = tsc(join(dir, "tsconfig.bench.json"))
  // today's bench/ may use what the baseline lacks elsewhere; what this script runs must exist
  if (!existsSync(join(dir, ".tmp", "bench-js", "bench", "throughput.js"))) {
    throw new Error(`compiling the baseline failed:\n${compiled.stdout}${compiled.stderr}`)
  }
  if (compiled.status !== 0) {
    console.error(
      `note: the baseline compiled with type errors (its JS was written):\n${compiled.stdout.slice(0, 2000)}`
    )
  }
  return { dir, commit }
}

const compileCurrent = () => {
  const compiled = tsc(join(root, "tsconfig.bench.json"))
  if (compiled.status !== 0) throw new Error(`compiling the working tree failed:\n${compiled.stdout}${compiled.stderr}`)
}

type Row = Record<string, number>

/** One child: the last RESULT line it prints. */
const child = (buildDir: string, scenario: string, argv: ReadonlyArray<string>): Row => {
  const file = join(buildDir, ".tmp", "bench-js", "bench", `${scenario}.js`)
  const result = run(process.execPath, ["--expose-gc", file, ...argv], buildDir)
  const line = result.stdout.split("\n").filter((l) => l.startsWith("RESULT ")).pop()
  if (result.status !== 0 || line === undefined) {
    throw new Error(`${scenario} ${argv.join(" ")} failed in ${buildDir}:\n${result.stderr}`)
  }
  return JSON.parse(line.slice("RESULT ".length)) as Row
}

interface Measure {
  readonly name: string
  readonly scenario: string
  readonly argv: ReadonlyArray<string>
  /** the figures kept from the result, and whether higher is better */
  readonly fields: ReadonlyArray<readonly [string, "higher" | "lower"]>
}

const measures: ReadonlyArray<Measure> = [
  ...(only.includes("throughput")
    ? [
      {
        name: "throughput, accessor",
        scenario: "throughput",
        argv: ["--impl=sequent", `--n=${n}`],
        fields: [["tasksPerSec", "higher"], ["tasksPerCpuSec", "higher"]] as const
      },
      {
        name: "throughput, service method",
        scenario: "throughput",
        argv: ["--impl=sequent-service", `--n=${n}`],
        fields: [["tasksPerSec", "higher"], ["tasksPerCpuSec", "higher"]] as const
      }
    ]
    : []),
  ...(only.includes("latency")
    ? [
      {
        name: "idle latency µs",
        scenario: "latency",
        argv: ["--impl=sequent", "--samples=10000", "--warmup=1000"],
        fields: [["p50", "lower"], ["p99", "lower"]] as const
      },
      {
        name: "submit round trip µs",
        scenario: "latency",
        argv: ["--impl=sequent", "--mode=submit", "--samples=10000", "--warmup=1000"],
        fields: [["p50", "lower"], ["p99", "lower"]] as const
      }
    ]
    : []),
  ...(only.includes("memory")
    ? [{
      name: "memory",
      scenario: "memory",
      argv: ["--impl=sequent", `--n=${n}`],
      fields: [["bytesPerTask", "lower"]] as const
    }]
    : []),
  ...(only.includes("user")
    ? [{
      name: "as a user writes it, 300k",
      scenario: "user",
      argv: ["--impl=sequent", "--n=300000"],
      fields: [["tasksPerSec", "higher"], ["tasksPerCpuSec", "higher"]] as const
    }]
    : [])
]

const baseline = prepareBaseline()
compileCurrent()
const builds = [{ label: "current", dir: root }, { label: baseline.commit, dir: baseline.dir }] as const
const collected = new Map<string, Array<number>>()
const put = (key: string, value: number) => collected.set(key, [...(collected.get(key) ?? []), value])
const loads: Array<string> = [load()]

console.error(`comparing the working tree with ${ref} (${baseline.commit}): ${rounds} round(s), load ${load()}`)
for (let round = 0; round < rounds; round++) {
  for (const measure of measures) {
    const order = round % 2 === 0 ? builds : [...builds].reverse()
    for (const build of order) {
      const row = child(build.dir, measure.scenario, measure.argv)
      for (const [field] of measure.fields) put(`${measure.name}/${field}/${build.label}`, row[field]!)
    }
  }
  loads.push(load())
  console.error(`round ${round + 1}/${rounds} done, load ${load()}`)
}

const fmt = (x: number) => (x >= 1e5 ? `${(x / 1e3).toFixed(0)}k` : x >= 100 ? x.toFixed(0) : x.toFixed(2))
console.log(`## Working tree against ${ref} (${baseline.commit}), medians of ${rounds} alternating round(s)\n`)
console.log(`load average (1, 5, 15 min) at start and after each round: ${loads.join("; ")}\n`)
console.log(`| figure | current | ${baseline.commit} | current / ${baseline.commit} | better |`)
console.log("| --- | ---: | ---: | ---: | --- |")
for (const measure of measures) {
  for (const [field, direction] of measure.fields) {
    const current = median(collected.get(`${measure.name}/${field}/current`) ?? [])
    const base = median(collected.get(`${measure.name}/${field}/${baseline.commit}`) ?? [])
    const ratio = current / base
    const better = direction === "higher" ? ratio >= 1 : ratio <= 1
    console.log(
      `| ${measure.name}: ${field} | ${fmt(current)} | ${fmt(base)} | ${ratio.toFixed(3)} | ${
        better ? "current" : "baseline"
      } |`
    )
  }
}
