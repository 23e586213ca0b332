/**
 * The caller of `submit`, waiting for its task's outcome.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"

/**
 * Settled once, by the executor, with how the task ended. Cheaper than a
 * `Deferred` on the path of every `submit`: one object and the caller's
 * `Effect.async` callback, where a `Deferred` is several objects and a
 * canceler per wait. A caller interrupted while it waits stops waiting; the
 * task still runs, and the runtime ignores the late outcome.
 *
 * @internal
 */
export class Waiter {
  private exit: Exit.Exit<unknown, unknown> | undefined = undefined
  private resume: ((effect: Effect.Effect<unknown, unknown>) => void) | undefined = undefined

  /** Settles the waiter; a second outcome is ignored. */
  done(exit: Exit.Exit<unknown, unknown>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const resume = this.resume
    if (resume !== undefined) {
      this.resume = undefined
      resume(exit)
    }
  }

  /** Waits for the outcome (for one caller). */
  await(): Effect.Effect<unknown, unknown> {
    return Effect.async((resume) => {
      if (this.exit !== undefined) resume(this.exit)
      else this.resume = resume
    })
  }
}
