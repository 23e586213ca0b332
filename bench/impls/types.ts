/**
 * The common shape of the implementations under test. There are two worlds:
 *  - Promise world (p-queue, fastq): tasks are thunks `() => unknown | Promise<unknown>`.
 *  - Effect world (bare Effect loop, Sequent): tasks are Effects, scheduled from inside an Effect
 *    program the way an Effect user would write it (`yield* executor.schedule(task)` in a loop).
 * The plain `await` loop (the floor) has no queue; each scenario spells it out by hand.
 */
import type { Effect, Schedule, Scope } from "effect"

export interface PromiseExecutor {
  /** Enqueue and return at once (the returned promise, if any, is dropped). */
  readonly add: (task: () => unknown) => void
  /** Enqueue and wait for that task's outcome. */
  readonly run: (task: () => unknown) => Promise<unknown>
  /** Resolves once every queued task has finished. */
  readonly idle: () => Promise<void>
}

export type EffectTask = Effect.Effect<unknown, unknown>

export interface EffectExecutor {
  /**
   * Runs the program that uses this executor: every scenario puts its whole Effect-world program
   * through it. The accessor path provides the executor's layer here, once, as a user's
   * `program.pipe(Effect.provide(SequentLive))` does; the others return the program as it is.
   */
  readonly within: <A, E>(program: Effect.Effect<A, E>) => Effect.Effect<A, E>
  /** Enqueue and return at once. */
  readonly schedule: (task: EffectTask) => Effect.Effect<unknown, unknown>
  /** Enqueue and wait for that task's outcome (used by the per-op micro benchmarks). */
  readonly submit: (task: EffectTask) => Effect.Effect<unknown, unknown>
  /** Wait for every queued task to finish. */
  readonly flush: Effect.Effect<unknown, unknown>
}

/** A retry policy for the Effect world; `undefined` means the implementation's default. */
export type RetryPolicy = Schedule.Schedule<unknown, unknown>

export type Impl =
  | { readonly kind: "floor"; readonly name: string; readonly label: string }
  | { readonly kind: "promise"; readonly name: string; readonly label: string; readonly make: () => PromiseExecutor }
  | {
    readonly kind: "effect"
    readonly name: string
    readonly label: string
    readonly make: (retry?: RetryPolicy) => Effect.Effect<EffectExecutor, unknown, Scope.Scope>
  }
