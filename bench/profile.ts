/**
 * CPU profile of ONE measured Sequent pass, for finding what the time is made of. The V8 profiler
 * (the one behind `node --cpu-prof`) is started through node:inspector right before the timed part
 * and stopped right after it, so module loading and warm-up are not in the profile. Writes the
 * .cpuprofile (open it in Chrome DevTools) and prints self time by function and by file.
 *
 *   npx tsx bench/profile.ts throughput [--n=1000000] [--out=.tmp/throughput.cpuprofile]
 *   npx tsx bench/profile.ts latency    [--n=10000]
 *   npx tsx bench/profile.ts retry      [--n=20000]
 *
 * Sequent is loaded through tsx here, so anonymous functions in src/ show as `file:1`; compile src/
 * with tsc and point the import at the output for exact lines.
 */
import { Context, Deferred, Effect, Layer, Logger, LogLevel, Schedule } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { dirname } from "node:path"
import { Sequent, SequentLive } from "../src/index.js"
import { intArg, now, OrderCheck, parseArgs } from "./shared.js"

type Scenario = "throughput" | "latency" | "retry"
const args = parseArgs(process.argv.slice(3))
const scenario = process.argv[2] as Scenario
if (!["throughput", "latency", "retry"].includes(scenario)) {
  console.error("usage: npx tsx bench/profile.ts <throughput|latency|retry> [--n=N] [--out=file]")
  process.exit(1)
}
const n = intArg(args, "n", scenario === "throughput" ? 1_000_000 : scenario === "latency" ? 10_000 : 20_000)
const out = args["out"] ?? `.tmp/${scenario}.cpuprofile`

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const session = new Session()
session.connect()
await session.post("Profiler.enable")
await session.post("Profiler.setSamplingInterval", { interval: 100 })
let profile: Profile | undefined
const start = Effect.promise(() => session.post("Profiler.start"))
const stop = Effect.promise(async () => {
  profile = (await session.post("Profiler.stop")).profile as unknown as Profile
})

const withSequent = <A>(layer: Layer.Layer<Sequent>, body: (s: Sequent.Service) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(Layer.build(layer), (ctx) => body(Context.get(ctx, Sequent)))).pipe(
      Logger.withMinimumLogLevel(LogLevel.Error)
    )
  )

const bodies: Record<Scenario, () => Promise<unknown>> = {
  throughput: () =>
    withSequent(SequentLive, (s) =>
      Effect.gen(function*() {
        const check = new OrderCheck("sequent")
        yield* start
        const t0 = now()
        for (let i = 0; i < n; i++) yield* s.schedule(Effect.sync(() => check.see(i)))
        yield* s.flush
        const ms = now() - t0
        yield* stop
        check.verify(n)
        return { tasksPerSec: Math.round(n / (ms / 1000)) }
      })),
  latency: () =>
    withSequent(SequentLive, (s) =>
      Effect.gen(function*() {
        let startedAt = 0
        const us: Array<number> = []
        for (let k = 0; k < 1000 + n; k++) {
          if (k === 1000) yield* start
          const done = yield* Deferred.make<void>()
          const task = Effect.suspend(() => {
            startedAt = now()
            return Deferred.succeed(done, undefined)
          })
          const t0 = now()
          yield* s.schedule(task)
          yield* Deferred.await(done)
          if (k >= 1000) us.push((startedAt - t0) * 1000)
        }
        yield* stop
        us.sort((a, b) => a - b)
        return { p50: us[us.length >> 1], p99: us[Math.floor(us.length * 0.99)] }
      })),
  retry: () =>
    withSequent(Sequent.layer({ retry: Schedule.forever }), (s) =>
      Effect.gen(function*() {
        const failure = Effect.fail(new Error("transient failure"))
        let attempts = 0
        yield* start
        const t0 = now()
        for (let i = 0; i < n; i++) {
          let mine = 0
          yield* s.schedule(Effect.suspend(() => (attempts++, ++mine > 3 ? Effect.void : failure)))
        }
        yield* s.flush
        const ms = now() - t0
        yield* stop
        if (attempts !== 4 * n) throw new Error(`${attempts} attempts for ${n} tasks`)
        return { usPerTask: (ms * 1000) / n }
      }))
}

console.log(scenario, JSON.stringify(await bodies[scenario]()))
if (profile === undefined) throw new Error("no profile was taken")
mkdirSync(dirname(out), { recursive: true })
writeFileSync(out, JSON.stringify(profile))

// ---- summary: self time by function and by file ------------------------------------------
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfByFunction = new Map<string, number>()
const selfByFile = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const t = profile!.timeDeltas[i] ?? 0
  const frame = byId.get(id)!.callFrame
  if (frame.functionName === "dispatch" && frame.url === "") return // the inspector's own Profiler.stop call
  const file = frame.url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|bench)\//, "$1/")
  const fn = `${frame.functionName || "(anonymous)"}  ${file}${file ? `:${frame.lineNumber + 1}` : ""}`
  total += t
  selfByFunction.set(fn, (selfByFunction.get(fn) ?? 0) + t)
  selfByFile.set(file || frame.functionName, (selfByFile.get(file || frame.functionName) ?? 0) + t)
})
const show = (title: string, m: Map<string, number>, top: number) => {
  console.log(`--- ${title}`)
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${k}`)
  }
}
console.log(`profile: ${out} (${(total / 1000).toFixed(0)} ms sampled)`)
show("self time by function", selfByFunction, 25)
show("self time by file", selfByFile, 15)
