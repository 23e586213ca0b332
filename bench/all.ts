/**
 * `npm run bench`: the core suite, then the observability cost, lanes, and
 * fairness (`--quick` for a smoke run of each).
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const flags = process.argv.slice(2)
const quick = flags.includes("--quick")
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const run = (file: string, args: ReadonlyArray<string>) =>
  execFileSync(process.execPath, ["--import", "tsx", here(file), ...args], { stdio: "inherit" })

run("./run.ts", flags)
run("./observability.ts", quick ? ["--n=20000", "--runs=1"] : [])
run("./lanes.ts", quick ? ["--n=20000", "--runs=1"] : [])
run("./fairness.ts", quick ? ["--n=100000", "--runs=1"] : [])
