/**
 * A TypeScript program run as a child process (`node --import tsx`), its
 * stdout read line by line into a queue (`undefined` once it closes) and its
 * stderr kept for failure messages. The caller decides how it ends.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"

export interface Child {
  readonly child: ChildProcess
  readonly lines: Queue.Queue<string | undefined>
  readonly stderr: () => string
}

export const spawnTsx = (file: string, args: ReadonlyArray<unknown>): Effect.Effect<Child> =>
  Effect.map(Queue.unbounded<string | undefined>(), (lines) => {
    const child = spawn(process.execPath, ["--import", "tsx", file, ...args.map(String)], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stderr = ""
    child.stderr!.on("data", (chunk) => {
      stderr += String(chunk)
    })
    const reader = createInterface({ input: child.stdout! })
    reader.on("line", (line) => Queue.unsafeOffer(lines, line))
    reader.on("close", () => Queue.unsafeOffer(lines, undefined))
    return { child, lines, stderr: () => stderr }
  })
