/** (3) fastq's promise API with concurrency 1; the worker just calls the task thunk. */
import fastq from "fastq"
import type { Impl, PromiseExecutor } from "./types.js"

type Thunk = () => unknown

const worker = (task: Thunk): Promise<unknown> => Promise.resolve(task())

const make = (): PromiseExecutor => {
  const queue = fastq.promise<unknown, Thunk, unknown>(worker, 1)
  return {
    add: (task) => void queue.push(task),
    run: (task) => queue.push(task),
    idle: () => queue.drained()
  }
}

export const impl: Impl = { kind: "promise", name: "fastq", label: "fastq promise (concurrency 1)", make }
