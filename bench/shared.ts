/**
 * Helpers shared by the benchmark children and the orchestrator: argument parsing,
 * statistics, the in-order/exactly-once checkers, GC + heap sampling, and the JSON hand-off
 * (a child prints one line `RESULT <json>` on stdout per measured run).
 */
import { performance } from "node:perf_hooks"

export const now = (): number => performance.now()

export interface Elapsed {
  /** wall-clock milliseconds */
  readonly ms: number
  /** CPU milliseconds of the whole process (user + system, all threads, GC helpers included) */
  readonly cpuMs: number
}

/**
 * Starts a wall-clock + CPU-time stopwatch. CPU time is reported next to wall time because the
 * benchmark machine may be shared: it is far less sensitive to other processes than wall time.
 */
export const stopwatch = (): () => Elapsed => {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  return () => {
    const ms = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    return { ms, cpuMs: (cpu.user + cpu.system) / 1000 }
  }
}

/** `--key=value` flags from argv (numbers are parsed when they look numeric). */
export const parseArgs = (argv: ReadonlyArray<string> = process.argv.slice(2)): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const arg of argv) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(arg)
    if (m !== null) out[m[1]!] = m[2] ?? "true"
  }
  return out
}

export const intArg = (args: Record<string, string>, name: string, fallback: number): number => {
  const v = args[name]
  if (v === undefined) return fallback
  const n = Number(v.replace(/_/g, ""))
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`)
  return n
}

/** Ends the child with one machine-readable line per result for the orchestrator. */
export const emit = (result: unknown): void => {
  for (const one of Array.isArray(result) ? result : [result]) process.stdout.write(`RESULT ${JSON.stringify(one)}\n`)
}

/**
 * Runs `measure` `times` times in this process, one after the other, and collects the results:
 * for the scenarios that need no fresh process per run (everything but throughput and memory),
 * so that the suite does not pay a process start-up per run.
 */
export const repeated = async <A>(times: number, measure: () => Promise<A>): Promise<Array<A>> => {
  const results: Array<A> = []
  for (let i = times; i > 0; i--) results.push(await measure())
  return results
}

/** Runs a child's main function; any error (including a failed check) exits non-zero. */
export const main = (fn: () => Promise<unknown>, watchdogMs = 240_000): void => {
  const watchdog = setTimeout(() => {
    process.stderr.write(`benchmark child timed out after ${watchdogMs} ms (a task never ran?)\n`)
    process.exit(3)
  }, watchdogMs)
  watchdog.unref()
  fn().then(
    (result) => {
      emit(result)
      process.exit(0)
    },
    (error: unknown) => {
      process.stderr.write(
        `\nBENCHMARK CHECK FAILED: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`
      )
      process.exit(2)
    }
  )
}

export class CheckError extends Error {}

/**
 * Checks that tasks 0..n-1 ran exactly once each and in order: every task calls `see(i)`,
 * which must be called with 0, 1, 2, ... and nothing else. `verify(n)` throws otherwise.
 */
export class OrderCheck {
  expected = 0
  errors = 0
  first = ""
  constructor(readonly label = "tasks") {}
  see(i: number): void {
    if (i !== this.expected) {
      if (this.errors++ === 0) this.first = `task ${i} ran when task ${this.expected} was expected`
      this.expected = i + 1
    } else {
      this.expected++
    }
  }
  verify(n: number): void {
    if (this.errors > 0) {
      throw new CheckError(`${this.label}: ${this.errors} out-of-order/duplicate runs; first: ${this.first}`)
    }
    if (this.expected !== n) throw new CheckError(`${this.label}: ${this.expected} of ${n} tasks ran`)
  }
}

/** Per-producer order check: producer p's j-th task must be the j-th of p's tasks to run. */
export class ProducerCheck {
  readonly next: Int32Array
  errors = 0
  first = ""
  constructor(readonly producers: number) {
    this.next = new Int32Array(producers)
  }
  see(p: number, j: number): void {
    const expected = this.next[p]!
    if (j !== expected && this.errors++ === 0) this.first = `producer ${p}: task ${j} ran when ${expected} was expected`
    this.next[p] = j + 1
  }
  verify(perProducer: number): void {
    if (this.errors > 0) throw new CheckError(`${this.errors} out-of-order runs; first: ${this.first}`)
    for (let p = 0; p < this.producers; p++) {
      if (this.next[p] !== perProducer) {
        throw new CheckError(`producer ${p}: ${this.next[p]} of ${perProducer} tasks ran`)
      }
    }
  }
}

const gcFn = (globalThis as { gc?: () => void }).gc

/** Full GC (needs `node --expose-gc`), then heapUsed in bytes. */
export const settledHeap = (): number => {
  if (gcFn === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) gcFn()
  return process.memoryUsage().heapUsed
}

// ---- statistics ---------------------------------------------------------------------------

export const sorted = (xs: ReadonlyArray<number>): Array<number> => [...xs].sort((a, b) => a - b)

/** Nearest-rank percentile of an ascending array (q in 0..1). */
export const percentile = (asc: ArrayLike<number>, q: number): number => {
  if (asc.length === 0) return NaN
  const rank = Math.min(asc.length - 1, Math.max(0, Math.ceil(q * asc.length) - 1))
  return asc[rank]!
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = sorted(xs)
  if (s.length === 0) return NaN
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export interface Spread {
  readonly min: number
  readonly median: number
  readonly max: number
}

export const spread = (xs: ReadonlyArray<number>): Spread => {
  const s = sorted(xs)
  return { min: s[0] ?? NaN, median: median(s), max: s[s.length - 1] ?? NaN }
}
