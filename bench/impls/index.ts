/** Loads an implementation by name (dynamically, so a missing src/ only breaks the Sequent runs). */
import type { Impl } from "./types.js"

export const implNames = ["await-loop", "p-queue", "fastq", "effect-loop", "sequent", "sequent-service"] as const
export type ImplName = (typeof implNames)[number]

export const loadImpl = async (name: string): Promise<Impl> => {
  switch (name) {
    case "await-loop":
      return (await import("./await-loop.js")).impl
    case "p-queue":
      return (await import("./p-queue.js")).impl
    case "fastq":
      return (await import("./fastq.js")).impl
    case "effect-loop":
      return (await import("./effect-loop.js")).impl
    case "sequent":
      return (await import("./sequent.js")).impl
    case "sequent-service":
      return (await import("./sequent-service.js")).impl
    default:
      throw new Error(`unknown implementation ${name}; expected one of ${implNames.join(", ")}`)
  }
}
