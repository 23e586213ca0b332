/** (2) p-queue with concurrency 1. */
import PQueue from "p-queue"
import type { Impl, PromiseExecutor } from "./types.js"

const make = (): PromiseExecutor => {
  const queue = new PQueue({ concurrency: 1 })
  return {
    add: (task) => void queue.add(task),
    run: (task) => queue.add(task),
    idle: () => queue.onIdle()
  }
}

export const impl: Impl = { kind: "promise", name: "p-queue", label: "p-queue (concurrency 1)", make }
