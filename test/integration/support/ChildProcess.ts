/**
 * A TypeScript program run as a child process (`node --import tsx`), its
 * stdout read line by line into a queue (`undefined` once it closes) and its
 * stderr kept for failure messages. The caller decides how it ends. With
 * `stdin: true` the child reads what `send` writes, one line each.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"

export interface Child {
  readonly child: ChildProcess
  readonly lines: Queue.Queue<string | undefined>
  readonly stderr: () => string
  /** Writes one line to the child's stdin (when spawned with `stdin: true`; a closed stdin drops it). */
  readonly send: (line: string) => Effect.Effect<void>
}

export const spawnTsx = (
  file: string,
  args: ReadonlyArray<unknown>,
  options?: { readonly stdin?: boolean }
): Effect.Effect<Child> =>
  Effect.map(Queue.unbounded<string | undefined>(), (lines) => {
    const child = spawn(process.execPath, ["--import", "tsx", file, ...args.map(String)], {
      stdio: [options?.stdin === true ? "pipe" : "ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stderr!.on("data", (chunk) => {
      stderr += String(chunk)
    })
    // a child killed while the parent writes: the write fails with EPIPE, which is no error here
    child.stdin?.on("error", () => {})
    const reader = createInterface({ input: child.stdout! })
    reader.on("line", (line) => Queue.unsafeOffer(lines, line))
    reader.on("close", () => Queue.unsafeOffer(lines, undefined))
    const send = (line: string) =>
      Effect.sync(() => {
        if (child.stdin?.writable === true) child.stdin.write(`${line}\n`)
      })
    return { child, lines, stderr: () => stderr, send }
  })
