/**
 * The children of a durable benchmark child that runs its tasks in worker
 * processes (PostgreSQL): what each worker ran, its report on stdout, and the
 * check over every worker's report.
 *
 * A worker prints `ready` once it is built, takes `start` (the clock starts:
 * its CPU time is counted from here) and `report` (it prints `REPORT <json>`
 * and exits) from its stdin.
 */
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { CheckError } from "./shared.js"

export const pgUrl = process.env["SEQUENT_PG_URL"] ?? "postgres://root@127.0.0.1:5432/test"

/** What one worker ran: task i belongs to group i % groups (a producer, an entity), whose tasks run in order. */
export interface Report {
  readonly count: ReadonlyArray<number>
  readonly errors: number
  readonly first: string
  readonly cpuMs: number
}

export class Runs {
  readonly next: Int32Array
  readonly count: Int32Array
  errors = 0
  first = ""
  private cpu0 = process.cpuUsage()
  constructor(readonly groups: number) {
    this.next = Int32Array.from({ length: groups }, (_, g) => g)
    this.count = new Int32Array(groups)
  }
  see(i: number): void {
    const g = i % this.groups
    if (i !== this.next[g] && this.errors++ === 0) this.first = `task ${i} ran when ${this.next[g]} was expected`
    this.next[g] = i + this.groups
    this.count[g]++
  }
  start(): void {
    this.cpu0 = process.cpuUsage()
  }
  report(): Report {
    const cpu = process.cpuUsage(this.cpu0)
    return {
      count: Array.from(this.count),
      errors: this.errors,
      first: this.first,
      cpuMs: (cpu.user + cpu.system) / 1000
    }
  }
}

/**
 * Every task 0..n-1 ran exactly once and in order per group: each worker saw
 * its groups' tasks in order from the first, every group's tasks ran on one
 * worker only, and they add up to the group's share of n.
 */
export const verifyReports = (reports: ReadonlyArray<Report>, groups: number, n: number, unit: string) =>
  Effect.suspend(() => {
    for (const r of reports) {
      if (r.errors > 0) {
        return Effect.fail(new CheckError(`${r.errors} out-of-order or repeated runs; first: ${r.first}`))
      }
    }
    for (let g = 0; g < groups; g++) {
      const expected = Math.floor((n - 1 - g) / groups) + 1
      const on = reports.filter((r) => r.count[g]! > 0)
      const ran = on.reduce((sum, r) => sum + r.count[g]!, 0)
      if (on.length > 1) return Effect.fail(new CheckError(`${unit} ${g}'s tasks ran on ${on.length} workers`))
      if (ran !== expected) return Effect.fail(new CheckError(`${unit} ${g}: ${ran} of ${expected} tasks ran`))
    }
    return Effect.void
  })

/**
 * This script again as a worker process (`args` tell it which), its lines on
 * stdout one at a time. It exits by itself after its report (writing its
 * `--cpu-prof`, if asked for); one that has not 5 s after the scope closes is
 * killed.
 */
export const startWorker = (args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
        stdio: ["pipe", "pipe", "inherit"]
      })
      const queue: Array<string> = []
      const waiting: Array<(line: string) => void> = []
      createInterface({ input: child.stdout }).on("line", (line) => {
        const w = waiting.shift()
        if (w !== undefined) w(line)
        else queue.push(line)
      })
      const nextLine = Effect.async<string>((resume) => {
        const line = queue.shift()
        if (line !== undefined) resume(Effect.succeed(line))
        else waiting.push((l) => resume(Effect.succeed(l)))
      })
      const send = (line: string) => child.stdin.write(`${line}\n`)
      const report = Effect.suspend(() => {
        send("report")
        return Effect.flatMap(nextLine, (line) =>
          line.startsWith("REPORT ")
            ? Effect.succeed(JSON.parse(line.slice("REPORT ".length)) as Report)
            : Effect.fail(new CheckError(`a worker said ${line} instead of its report`)))
      })
      return { child, nextLine, send, report }
    }),
    ({ child }) =>
      Effect.async<void>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
        const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
        child.on("exit", () => {
          clearTimeout(timer)
          resume(Effect.void)
        })
      })
  )

/**
 * A worker's side: prints `ready`, then answers `start` and `report` from its
 * stdin; resolves after the report. A worker whose stdin closes first has
 * lost its parent (killed, or past its time limit): it exits rather than
 * linger with nobody to report to.
 */
export const serveReports = (runs: Runs) =>
  Effect.async<void>((resume) => {
    let reported = false
    createInterface({ input: process.stdin }).on("line", (line) => {
      if (line === "start") runs.start()
      if (line !== "report") return
      reported = true
      process.stdout.write(`REPORT ${JSON.stringify(runs.report())}\n`)
      resume(Effect.void)
    }).on("close", () => {
      if (!reported) process.exit(1)
    })
    process.stdout.write("ready\n")
  })
