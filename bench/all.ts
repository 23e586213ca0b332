/**
 * `npm run bench`: the core suite (bench/run.ts: Sequent against a plain await loop, p-queue,
 * fastq and a bare Effect loop), then fairness and backlog (bench/fairness.ts).
 * `npm run bench:all` (`--all`) adds the mitata micro figures to the core suite, then the
 * observability cost, lanes, and the durable suite.
 * Other flags go to the core suite; `--quick` makes every part a smoke run.
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const all = process.argv.includes("--all")
const flags = process.argv.slice(2).filter((flag) => flag !== "--all")
const quick = flags.includes("--quick")
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const run = (file: string, args: ReadonlyArray<string>) =>
  execFileSync(process.execPath, ["--import", "tsx", here(file), ...args], { stdio: "inherit" })

run("./run.ts", all ? [...flags, "--micro"] : flags)
run("./fairness.ts", quick ? ["--n=100000", "--runs=1"] : [])
if (all) {
  run("./observability.ts", quick ? ["--n=20000", "--runs=1"] : [])
  run("./lanes.ts", quick ? ["--n=20000", "--runs=1"] : [])
  run("./durable/run.ts", quick ? ["--quick"] : [])
}
