/**
 * Durable benchmark: Sequent's durable executor against @effect/sql's
 * `SqlPersistedQueue` and an @effect/cluster `SingleRunner`, all on SQLite
 * (WAL, `synchronous = NORMAL`), every task a no-op that succeeds at once; and,
 * when PostgreSQL answers (`SEQUENT_PG_URL`, or postgres://root@127.0.0.1:5432/test),
 * Sequent's shared PostgreSQL journal (two worker processes and a producer
 * process) against a single owner of a PostgreSQL journal, an
 * @effect/cluster runner pair and (installed on first use, see below) pg-boss's
 * `key_strict_fifo` queue on PostgreSQL, in the same run.
 *
 * Each case runs in its own child process (`node
 * .tmp/bench-js/bench/durable/<impl>.js ...`, compiled first as the core
 * suite's children are, see `bench/compile.ts`) on a fresh database in a fresh temporary
 * directory, `--runs` times, the cases interleaved from run to run so that
 * background load spreads over all of them. Every child checks that each task
 * ran exactly once and in order (per lane / entity) and that the store holds
 * no unfinished work at the end; a failed check or a crash fails the run.
 *
 * Prints the machine and its load (`uptime`) before and after, a table of
 * tasks/s (min / median / max) with CPU time, and the ratios of Sequent's
 * medians to the others'; with PostgreSQL, then the time `PgJournal.lanes`
 * takes on journals of 10,000 and 100,000 lanes. Raw results go to
 * `.tmp/durable-bench-results.json`.
 *
 * Run: node --import tsx bench/durable/run.ts [--quick] [--runs=N] [--only=sequent,sql-persisted-queue,cluster,pg,cluster-pg,pg-boss]
 */
import { execSync, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import os from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { compileBenchmarks } from "../compile.js"
import { parseArgs, type Result, type Spread, spread } from "./shared.js"

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, "..", "..")

const impls = ["sequent", "sql-persisted-queue", "cluster", "pg", "cluster-pg", "pg-boss"] as const
type Impl = (typeof impls)[number]

const args = parseArgs()
const quick = args["quick"] === "true"
const runs = args["runs"] !== undefined ? Number(args["runs"]) : quick ? 1 : 3
const only = (args["only"] ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0)
for (const name of only) {
  if (!(impls as ReadonlyArray<string>).includes(name)) {
    console.error(`--only: unknown implementation ${name}; known: ${impls.join(", ")}`)
    process.exit(1)
  }
}
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`--runs must be a positive integer, got ${args["runs"]}`)
  process.exit(1)
}

const compiled = join(compileBenchmarks(root), "bench", "durable")
const script = (name: string) => join(compiled, `${name}.js`)

/** Sequent gets N = 20,000; the other two are several times slower per task, so they get fewer. */
const size = quick
  ? { sequent: 2_000, sequential: 1_000, other: 300, oneLane: 1_000 }
  : { sequent: 20_000, sequential: 5_000, other: 2_000, oneLane: 5_000 }

interface Case {
  /** the row's key, for the ratios */
  readonly id: string
  readonly impl: Impl
  readonly args: ReadonlyArray<string>
}

const allCases: ReadonlyArray<Case> = [
  { id: "sequent-concurrent", impl: "sequent", args: [`--n=${size.sequent}`, "--mode=concurrent", "--producers=64"] },
  {
    id: "sequent-lanes",
    impl: "sequent",
    args: [`--n=${size.sequent}`, "--mode=concurrent", "--producers=64", "--lanes=64"]
  },
  // the same with the event-loop turns on (a durable executor's default is off)
  {
    id: "sequent-lanes-yielding",
    impl: "sequent",
    args: [`--n=${size.sequent}`, "--mode=concurrent", "--producers=64", "--lanes=64", "--yield=on"]
  },
  { id: "sequent-sequential", impl: "sequent", args: [`--n=${size.sequential}`, "--mode=sequential"] },
  // the best single-lane case again at the others' N, so that a ratio at equal N is there too
  {
    id: "sequent-concurrent-same-n",
    impl: "sequent",
    args: [`--n=${size.other}`, "--mode=concurrent", "--producers=64"]
  },
  { id: "sql-persisted-queue", impl: "sql-persisted-queue", args: [`--n=${size.other}`] },
  { id: "cluster-1", impl: "cluster", args: [`--n=${size.other}`, "--entities=1"] },
  { id: "cluster-64", impl: "cluster", args: [`--n=${size.other}`, "--entities=64"] },
  // PostgreSQL: the shared journal (two worker processes, one producer process) against a single owner
  { id: "pg-shared-lanes", impl: "pg", args: [`--n=${size.sequent}`, "--role=shared", "--lanes=64"] },
  { id: "pg-single-lanes", impl: "pg", args: [`--n=${size.sequent}`, "--role=single", "--lanes=64"] },
  { id: "pg-shared-one-lane", impl: "pg", args: [`--n=${size.oneLane}`, "--role=shared", "--lanes=1"] },
  { id: "pg-single-one-lane", impl: "pg", args: [`--n=${size.oneLane}`, "--role=single", "--lanes=1"] },
  { id: "cluster-pg-64", impl: "cluster-pg", args: [`--n=${size.other}`, "--entities=64", "--runners=2"] },
  { id: "pg-boss-64", impl: "pg-boss", args: [`--n=${size.other}`, "--lanes=64", "--workers=2"] }
]

/** The cases on PostgreSQL run only when it answers (SEQUENT_PG_URL, or the default url). */
const onPostgres = (c: Case) => c.impl === "pg" || c.impl === "cluster-pg" || c.impl === "pg-boss"
const pgAnswers = (): boolean =>
  spawnSync(process.execPath, [script("pg"), "--role=probe"], {
    cwd: root,
    timeout: 30_000
  }).status === 0
const wanted = allCases.filter((c) => only.length === 0 || only.includes(c.impl))
const pgSkipped = wanted.some(onPostgres) && !pgAnswers()
if (pgSkipped) {
  console.error(
    `PostgreSQL does not answer at ${process.env["SEQUENT_PG_URL"] ?? "the default url"}: skipping its cases`
  )
}
/**
 * pg-boss 12 needs Node >= 22.12 and is no dependency of this package (Node 20
 * is what the package supports): it runs from PGBOSS_DIR, by default
 * `.tmp/pg-boss`, a directory with pg-boss@12.38.0 and node@22.23.3 installed
 * (the npm package `node` brings a Node 22 binary). When the directory has
 * none, the first run installs them there; without the registry, the case is
 * skipped.
 */
const pgBossDir = process.env["PGBOSS_DIR"] ?? join(root, ".tmp", "pg-boss")
const pgBossNode = join(pgBossDir, "node_modules", ".bin", "node")

const installPgBoss = (): boolean => {
  console.error(`pg-boss: installing pg-boss@12.38.0 and node@22.23.3 into ${pgBossDir} (once)`)
  mkdirSync(pgBossDir, { recursive: true })
  const manifest = { private: true, allowScripts: { node: true } }
  writeFileSync(join(pgBossDir, "package.json"), JSON.stringify(manifest, null, 2))
  const installed = spawnSync(
    "npm",
    ["install", "--save-exact", "--no-audit", "--no-fund", "pg-boss@12.38.0", "node@22.23.3"],
    { cwd: pgBossDir, stdio: ["ignore", "ignore", "inherit"] }
  )
  return installed.status === 0 && existsSync(pgBossNode)
}

const pgBossWanted = wanted.some((c) => c.impl === "pg-boss") && !pgSkipped
const pgBossSkipped = pgBossWanted && !existsSync(pgBossNode) && !installPgBoss()
if (pgBossSkipped) console.error(`pg-boss: could not install it into ${pgBossDir}: skipping its case`)
const cases = wanted.filter((c) => !(pgSkipped && onPostgres(c)) && !(pgBossSkipped && c.impl === "pg-boss"))

/** Which Sequent row is set against which other row in the ratio table. */
const comparisons: ReadonlyArray<readonly [sequent: string, other: string, what: string]> = [
  ["sequent-concurrent", "sql-persisted-queue", "best single-lane Sequent vs the queue"],
  ["sequent-concurrent-same-n", "sql-persisted-queue", "the same, at equal N"],
  ["sequent-sequential", "sql-persisted-queue", "like for like: one awaited producer, one lane/consumer"],
  ["sequent-concurrent", "cluster-1", "best single-lane Sequent vs one entity"],
  ["sequent-concurrent-same-n", "cluster-1", "the same, at equal N"],
  ["sequent-sequential", "cluster-1", "like for like: one awaited producer, one lane/entity"],
  ["sequent-lanes", "cluster-64", "64 lanes vs 64 entities (64 producers each)"]
]

const uptime = (): string => {
  try {
    return execSync("uptime", { encoding: "utf8" }).trim()
  } catch {
    return `loadavg ${os.loadavg().map((l) => l.toFixed(2)).join(", ")}`
  }
}

interface Failure {
  readonly id: string
  readonly run: number
  readonly reason: string
  /** The child ran past its time limit and was killed. */
  readonly hung?: boolean
}

/**
 * How long a child may run before it counts as hung: every case takes well
 * under a minute here, but an @effect/cluster child has been seen to hang
 * until killed (once in a full run), so a hang costs minutes, not the run.
 */
const childLimitMs = 5 * 60_000

const runCase = (c: Case, run: number): Result | Failure => {
  const [command, argv] = c.impl === "pg-boss"
    ? [pgBossNode, [join("bench", "durable", "pg-boss.mjs"), ...c.args]]
    : [process.execPath, [script(c.impl), ...c.args]]
  const child = spawnSync(command, argv, {
    cwd: root,
    env: { ...process.env, PGBOSS_DIR: pgBossDir },
    encoding: "utf8",
    timeout: childLimitMs,
    maxBuffer: 64 * 1024 * 1024
  })
  const line = child.stdout?.split("\n").find((l) => l.startsWith("RESULT "))
  if (child.status !== 0 || line === undefined) {
    const reason = child.error !== undefined
      ? String(child.error)
      : `exit ${child.status ?? child.signal}: ${(child.stderr ?? "").trim().split("\n").slice(-15).join("\n")}${
        line === undefined ? `\nstdout: ${(child.stdout ?? "").trim().split("\n").slice(-5).join("\n")}` : ""
      }`
    return { id: c.id, run, reason, hung: (child.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT" }
  }
  return JSON.parse(line.slice("RESULT ".length)) as Result
}

const isFailure = (r: Result | Failure): r is Failure => "reason" in r

const fmt = (x: number): string => Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "-"
const fmtSpread = (s: Spread): string => `${fmt(s.min)} / **${fmt(s.median)}** / ${fmt(s.max)}`
const ratio = (a: number, b: number, digits = 1): string =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(digits)}x` : "-"

const startedAt = new Date().toISOString()
const loadBefore = uptime()
console.log(`# Durable benchmark (${quick ? "quick" : "full"}, ${runs} run${runs === 1 ? "" : "s"} per case)`)
console.log()
console.log(
  `- machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${
    Math.round(os.totalmem() / 2 ** 30)
  } GiB, node ${process.version}, ${os.platform()} ${os.release()}`
)
console.log(`- started: ${startedAt}`)
console.log(`- load before: ${loadBefore}`)
console.log()

const results = new Map<string, Array<Result>>(cases.map((c) => [c.id, []]))
const failures: Array<Failure> = []
/** Children that hung and were run once more: reported, not counted as results. */
const hangs: Array<Failure> = []

/** Runs a case; a child that hangs is killed and run once more, and only a second hang fails the run. */
const runOnce = (c: Case, run: number): Result | Failure => {
  const first = runCase(c, run)
  if (!isFailure(first) || first.hung !== true) return first
  hangs.push(first)
  process.stderr.write(`HUNG after ${childLimitMs / 60_000} min, killed; running it once more ... `)
  return runCase(c, run)
}

for (let run = 0; run < runs; run++) {
  // rotate the starting case so no case always runs first (or last)
  for (let k = 0; k < cases.length; k++) {
    const c = cases[(k + run) % cases.length]!
    process.stderr.write(`run ${run + 1}/${runs} ${c.id} ${c.args.join(" ")} ... `)
    const r = runOnce(c, run)
    if (isFailure(r)) {
      failures.push(r)
      process.stderr.write(`FAILED\n${r.reason}\n`)
    } else {
      results.get(c.id)!.push(r)
      process.stderr.write(`${fmt(r.tasksPerSecond)} tasks/s (${uptime().replace(/^.*load/, "load")})\n`)
    }
  }
}
const loadAfter = uptime()

interface Row {
  readonly c: Case
  readonly rs: ReadonlyArray<Result>
  readonly tps: Spread
  readonly perCpuSecond: Spread
}
const rows: Array<Row> = cases.map((c) => {
  const rs = results.get(c.id)!
  return {
    c,
    rs,
    tps: spread(rs.map((r) => r.tasksPerSecond)),
    perCpuSecond: spread(rs.map((r) => r.n / (r.cpuMs / 1000)))
  }
})
const byId = new Map(rows.map((row) => [row.c.id, row]))

console.log(`- load after: ${loadAfter}`)
console.log()
console.log(
  "| implementation | mode | N | runs | tasks/s min / **median** / max | total ms (median) | enqueue ms (median) | CPU ms (median) | tasks per CPU-s (median) | check |"
)
console.log("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
for (const row of rows) {
  const first = row.rs[0]
  if (first === undefined) {
    console.log(`| ${row.c.impl} | ${row.c.args.join(" ")} | | 0 | FAILED | | | | | see below |`)
    continue
  }
  const med = (f: (r: Result) => number) => fmt(spread(row.rs.map(f)).median)
  console.log(
    `| ${row.c.impl} | ${first.mode} | ${fmt(first.n)} | ${row.rs.length} | ${fmtSpread(row.tps)} | ${
      med((r) => r.totalMs)
    } | ${med((r) => r.enqueueMs)} | ${med((r) => r.cpuMs)} | ${fmt(row.perCpuSecond.median)} | ${first.check} |`
  )
}

/** Prints a table of ratios, one row per pair of rows that both have results. */
const printRatios = (
  intro: string,
  head: ReadonlyArray<string>,
  pairs: ReadonlyArray<readonly [string, string, string]>,
  cells: (x: Row, y: Row, what: string) => ReadonlyArray<string>
) => {
  const shown = pairs.filter(([a, b]) => (byId.get(a)?.rs.length ?? 0) > 0 && (byId.get(b)?.rs.length ?? 0) > 0)
  if (shown.length === 0) return
  console.log()
  console.log(intro)
  console.log()
  console.log(`| ${head.join(" | ")} |`)
  console.log(`|${head.map((h) => h.startsWith("tasks") ? "--:" : "---").join("|")}|`)
  for (const [a, b, what] of shown) console.log(`| ${cells(byId.get(a)!, byId.get(b)!, what).join(" | ")} |`)
}

const label = (row: Row) => `${row.c.impl}: ${row.rs[0]?.mode ?? row.c.args.join(" ")}, N = ${fmt(row.rs[0]?.n ?? NaN)}`
printRatios(
  "Ratios of medians (Sequent / other): throughput, and tasks per CPU-second (less sensitive to other load on the machine).",
  ["Sequent", "other", "tasks/s", "tasks per CPU-s", "what"],
  comparisons,
  (x, y, what) => [
    label(x),
    label(y),
    ratio(x.tps.median, y.tps.median),
    ratio(x.perCpuSecond.median, y.perCpuSecond.median),
    what
  ]
)

/** The shared journal against a single owner, measured in the same run. */
const pgRatios: ReadonlyArray<readonly [string, string, what: string]> = [
  ["pg-shared-lanes", "pg-single-lanes", "shared / single owner, 64 lanes, 64 producers"],
  ["pg-shared-one-lane", "pg-single-one-lane", "shared / single owner, 1 lane, 64 producers"],
  ["pg-shared-lanes", "cluster-pg-64", "shared / @effect/cluster (2 runners), 64 lanes / entities"],
  ["pg-shared-lanes", "pg-boss-64", "shared / pg-boss key_strict_fifo (2 workers), 64 lanes / keys"]
]
printRatios(
  "PostgreSQL, ratios of medians:",
  ["what", "tasks/s", "tasks per CPU-s"],
  pgRatios,
  (x, y, what) => [what, ratio(x.tps.median, y.tps.median, 2), ratio(x.perCpuSecond.median, y.perCpuSecond.median, 2)]
)
const pgLanes = byId.get("pg-shared-lanes")
const pgSingle = byId.get("pg-single-lanes")
const pgOneLane = byId.get("pg-shared-one-lane")
if ((pgLanes?.rs.length ?? 0) > 0 || (pgOneLane?.rs.length ?? 0) > 0) {
  console.log()
  console.log(
    `Targets, shared mode: 64 lanes >= 5,000 tasks/s and >= 0.8x the single owner; median here ${
      fmt(pgLanes?.tps.median ?? NaN)
    } (${ratio(pgLanes?.tps.median ?? NaN, pgSingle?.tps.median ?? NaN, 2)} of ${
      fmt(pgSingle?.tps.median ?? NaN)
    }); 1 lane >= 800 tasks/s; median here ${fmt(pgOneLane?.tps.median ?? NaN)}.`
  )
}

const target = byId.get("sequent-concurrent")
if (target !== undefined && target.rs.length > 0) {
  console.log()
  console.log(
    `Target: Sequent durable >= 20,000 tasks/s; median here ${fmt(target.tps.median)} (64 producers, 1 lane), ${
      fmt(byId.get("sequent-lanes")?.tps.median ?? NaN)
    } (64 lanes).`
  )
}

/** The journal sizes `PgJournal.lanes` is read at: lanes, pending rows per lane, reads. */
const viewSizes: ReadonlyArray<readonly [number, number, number]> = quick
  ? [[10_000, 2, 1]]
  : [[10_000, 2, 5], [100_000, 2, 5], [100_000, 10, 3]]

/** Reads the operator's view at each size, in a child of its own (bench/durable/lanes-view.ts); prints its line. */
const readViews = () => {
  console.log()
  console.log("`PgJournal.lanes`, the operator's view of a shared journal (bench/durable/lanes-view.ts):")
  console.log()
  for (const [lanes, perLane, reads] of viewSizes) {
    const argv = [`--lanes=${lanes}`, `--per-lane=${perLane}`, `--reads=${reads}`]
    const child = spawnSync(process.execPath, [script("lanes-view"), ...argv], {
      cwd: root,
      encoding: "utf8",
      timeout: childLimitMs
    })
    const line = child.stdout?.split("\n").find((l) => l.startsWith("PgJournal.lanes"))
    if (child.status === 0 && line !== undefined) console.log(`- ${line}`)
    else {
      const reason = `exit ${child.status ?? child.signal}: ${
        (child.stderr ?? "").trim().split("\n").slice(-15).join("\n")
      }`
      failures.push({ id: `lanes-view ${argv.join(" ")}`, run: 0, reason })
    }
  }
}
if (wanted.some((c) => c.impl === "pg") && !pgSkipped) readViews()

mkdirSync(join(root, ".tmp"), { recursive: true })
writeFileSync(
  join(root, ".tmp", "durable-bench-results.json"),
  JSON.stringify(
    { startedAt, quick, runs, loadBefore, loadAfter, cases, results: Object.fromEntries(results), failures, hangs },
    null,
    2
  )
)

if (hangs.length > 0) {
  console.log()
  console.log(
    `## ${hangs.length} hung run${hangs.length === 1 ? "" : "s"}, killed after ${
      childLimitMs / 60_000
    } min and run once more`
  )
  for (const h of hangs) console.log(`\n### ${h.id}, run ${h.run + 1}\n\n\`\`\`\n${h.reason}\n\`\`\``)
}

if (failures.length > 0) {
  console.log()
  console.log(`## ${failures.length} FAILED run${failures.length === 1 ? "" : "s"}`)
  for (const f of failures) console.log(`\n### ${f.id}, run ${f.run + 1}\n\n\`\`\`\n${f.reason}\n\`\`\``)
  process.exit(1)
}
