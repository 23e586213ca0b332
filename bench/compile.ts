/**
 * The benchmarks' children run compiled, as an application runs in production: tsc writes src/
 * and bench/ to .tmp/bench-js with tsconfig.bench.json, and node_modules resolves from there as
 * from bench/. Under tsx each child would spend about a second more starting up, and its code
 * would run with esbuild's `keepNames` helpers: every closure created on a hot path also gets a
 * `defineProperty` call, a cost no user's build pays.
 */
import { spawnSync } from "node:child_process"
import { createRequire } from "node:module"
import { join } from "node:path"

/** Compiles the benchmarks under `root` and returns the directory of the output; exits when tsc fails. */
export const compileBenchmarks = (root: string): string => {
  const require = createRequire(import.meta.url)
  const tsc = spawnSync(process.execPath, [
    require.resolve("typescript/bin/tsc"),
    "-p",
    join(root, "tsconfig.bench.json")
  ], {
    cwd: root,
    encoding: "utf8"
  })
  if (tsc.status !== 0) {
    console.error(`compiling the benchmarks failed:\n${tsc.stdout}${tsc.stderr}`)
    process.exit(1)
  }
  return join(root, ".tmp", "bench-js")
}
