/**
 * Letting the event loop turn while a backlog drains.
 *
 * Effect runs ready fibers in microtasks, and its default scheduler lets a
 * macrotask in only after 2,048 turns in a row. A worker draining a backlog,
 * or a producer scheduling in a tight loop, would keep timers, I/O and every
 * other callback of the process waiting until the backlog is gone: a server
 * embedding the executor would miss its requests, and a task waiting on a
 * timer (its own `Effect.sleep`, a lane's backoff) would not run meanwhile.
 * So the executor gives the event loop a turn about once a millisecond of
 * work, judged on the clock readings it takes anyway, and a producer that
 * outruns the workers waits for the turns too (see `Turns`).
 *
 * Waiting for the event loop's next turn is the one thing here that asks the
 * platform: `setImmediate` (`setTimeout` where there is none) runs a callback
 * after the timers and I/O that are due. It is not time the executor acts on;
 * only the `Clock` says when a turn is due, so under `TestClock` a turn is
 * given only when the test moves the clock.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

/** Callbacks waiting for the next turn, in the order they asked. */
let waiting: Array<() => void> = []

const later: (callback: () => void) => void = typeof setImmediate === "function"
  ? (callback) => setImmediate(callback)
  : (callback) => setTimeout(callback, 0)

const turn = () => {
  const callbacks = waiting
  waiting = []
  for (const callback of callbacks) callback()
}

/** Runs `callback` in the event loop's next turn, after the timers and I/O that are due. */
export const nextTurn = (callback: () => void): void => {
  if (waiting.push(callback) === 1) later(turn)
}

/** Waits for the event loop's next turn: the timers and I/O that are due have run when it resumes. */
export const eventLoopTurn: Effect.Effect<void> = Effect.async<void>((resume) => nextTurn(() => resume(Effect.void)))

/** How long the executor keeps the event loop before it lets it turn: until the clock's millisecond changes. */
const HOLD_MILLIS = 1

/**
 * Past this many waiting tasks, a `schedule` call lets the event loop turn
 * first whenever the workers have finished a task since the last such wait,
 * so that a producer in a tight loop goes at the workers' pace. A producer
 * scheduling tasks that each await something outruns the worker many times
 * over, and a backlog of hundreds of thousands of tasks (each the producer's
 * own objects) survives the young generation of the garbage collector, where
 * copying it costs more than running the tasks, and pauses the whole process
 * for milliseconds at a time. When no task finishes (the workers are paused, in
 * backoff, or waiting on a long task), waiting would not help: `schedule` goes
 * on.
 */
const PACE_ABOVE = 2048

/**
 * When an executor's fibers let the event loop turn. Fed the clock readings
 * the executor takes for its tasks anyway, so that knowing how long it has
 * kept the loop costs no reading of its own.
 *
 * @internal
 */
export class Turns {
  /** When the executor's fibers last let the loop turn, and the last reading noted. */
  private since: number
  private last: number
  /** Tasks finished, and how many had when a `schedule` last waited for the workers' pace. */
  private progress = 0
  private pacedAt = 0
  /** Waits for the event loop's next turn; the executor's hold starts afresh then. */
  readonly letTurn: Effect.Effect<void>

  constructor(private readonly clock: Clock.Clock, private readonly enabled: boolean) {
    this.since = this.last = clock.unsafeCurrentTimeMillis()
    this.letTurn = Effect.async<void>((resume) =>
      nextTurn(() => {
        this.since = this.last = this.clock.unsafeCurrentTimeMillis()
        resume(Effect.void)
      })
    )
  }

  /** Notes a clock reading. */
  saw(now: number): void {
    this.last = now
  }

  /** Notes a finished task: the workers' progress. */
  finished(): void {
    this.progress++
  }

  /**
   * Notes a clock reading a worker took as a task finished; answers whether
   * the worker should let the loop turn before its next task.
   */
  overdue(now: number): boolean {
    this.last = now
    if (!this.enabled) return false
    // a clock set back starts the hold afresh
    if (now < this.since) this.since = now
    return now - this.since >= HOLD_MILLIS
  }

  /** Whether a `schedule` that finds `waiting` tasks accepted and unfinished should let the loop turn first. */
  beforeOffer(waiting: number): boolean {
    if (waiting === 0 || !this.enabled) return false
    if (this.overdue(this.last)) return true
    if (waiting <= PACE_ABOVE || this.progress === this.pacedAt) return false
    this.pacedAt = this.progress
    return true
  }
}
