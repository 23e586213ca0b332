/**
 * Shared helpers for the test suites: a logger that records, tasks that
 * record when they run, and temporary directories that do not outlive a test.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export interface LogEntry {
  readonly level: LogLevel.LogLevel["label"]
  readonly message: string
  readonly cause: string
  readonly annotations: Record<string, unknown>
}

/** A logger that keeps every entry, and the layer that installs it in place of the default one. */
export const recordingLogger = () => {
  const entries: Array<LogEntry> = []
  const logger = Logger.make<unknown, void>(({ annotations, cause, logLevel, message }) => {
    entries.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  return { entries, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** A task that appends `value` to `log` and succeeds. */
export const record = <A>(log: Ref.Ref<ReadonlyArray<A>>, value: A) => Ref.update(log, (entries) => [...entries, value])

/**
 * A task that fails its first `failures` attempts, recording the clock time of
 * every attempt in `times`.
 */
export const failing = (failures: number, times: Array<number> = []) => {
  let attempts = 0
  const task = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    times.push(now)
    attempts++
    return attempts <= failures ? Effect.fail(`failure ${attempts}`) : Effect.succeed(attempts)
  })
  return { task, times, attempts: () => attempts }
}

/**
 * Yields `times` times, letting every other ready fiber (workers, timers) run as
 * far as it can before a test checks that something did not happen.
 */
export const settle = (times = 50) => Effect.repeatN(Effect.yieldNow(), times - 1)

/** A fresh directory in the OS temp dir, named `prefix` and a random tail, removed with its contents when the scope closes. */
export const makeTempDir = (prefix: string): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => mkdtempSync(join(tmpdir(), prefix))),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

const holderFixture = fileURLToPath(new URL("./fixtures/holdSqliteJournal.ts", import.meta.url))

/**
 * Runs `test/fixtures/holdSqliteJournal.ts` in a process of its own, holding the SQLite journal
 * `filename` until the scope closes (it is then killed); resolves once it says `ready`.
 */
export const spawnSqliteHolder = (filename: string): Effect.Effect<ChildProcess, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["--import", "tsx", holderFixture, filename], { stdio: ["ignore", "pipe", "pipe"] })
    ),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  ).pipe(
    Effect.tap((child) =>
      Effect.async<void, Error>((resume) => {
        let stdout = ""
        let stderr = ""
        child.stdout!.on("data", (chunk) => {
          stdout += String(chunk)
          if (stdout.includes("ready")) resume(Effect.void)
        })
        child.stderr!.on("data", (chunk) => {
          stderr += String(chunk)
        })
        child.once("exit", (code) => resume(Effect.fail(new Error(`holder exited with ${code}: ${stderr}`))))
      })
    )
  )
