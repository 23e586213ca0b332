/**
 * Group commit: callers offer one item each, and the items that arrive while
 * a write is in flight go out together in the next write.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"

/**
 * A caller parked on its item. `resume` is the caller's `Effect.async`
 * callback (cheaper than a `Deferred` per item on this hot path); the runtime
 * ignores a resume after the caller has gone.
 */
interface Waiter<I, O, E> {
  readonly item: I
  readonly resume: (effect: Effect.Effect<O, E>) => void
}

/**
 * Options of `makeBatcher`.
 *
 * - `maxBatch`: the most items one write receives (default 1000); the rest
 *   wait for the next write.
 * - `closed`: what a caller still waiting, or offering, gets once the scope
 *   has closed (default: interruption).
 *
 * @internal
 */
export interface BatcherOptions<E> {
  readonly maxBatch?: number | undefined
  readonly closed?: Effect.Effect<never, E> | undefined
}

/**
 * Returns an `offer` function over `write`.
 *
 * - One write is in flight at a time, so batches are written in arrival order,
 *   and items within a batch keep their arrival order.
 * - Items offered while a write is in flight are written together by the next
 *   write (up to `maxBatch`).
 * - Each caller gets the output at its item's index; if the write fails (or
 *   answers with the wrong number of outputs), every caller of that batch gets
 *   that failure.
 * - An offered item is written even if its caller stops waiting.
 * - When the scope closes, the writer stops and every caller still waiting,
 *   and every later offer, gets `closed` (is interrupted by default); no
 *   caller hangs.
 *
 * @internal
 */
export const makeBatcher = <I, O, E>(
  write: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<O>, E>,
  options?: BatcherOptions<E> | undefined
): Effect.Effect<(item: I) => Effect.Effect<O, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const maxBatch = Math.max(1, Math.floor(options?.maxBatch ?? 1000))
    const closedWith: Effect.Effect<O, E> = options?.closed ?? Effect.interrupt
    let buffer: Array<Waiter<I, O, E>> = []
    let inFlight: ReadonlyArray<Waiter<I, O, E>> = []
    let closed = false
    const wake = yield* Effect.makeLatch(false)

    // Added before the writer is forked, so it runs after the writer has been
    // interrupted: nothing else touches `buffer` or `inFlight` by then.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        const waiting = [...inFlight, ...buffer]
        inFlight = []
        buffer = []
        for (const waiter of waiting) waiter.resume(closedWith)
      })
    )

    const settle = (batch: ReadonlyArray<Waiter<I, O, E>>, exit: Exit.Exit<ReadonlyArray<O>, E>) =>
      Effect.sync(() => {
        if (Exit.isFailure(exit)) {
          const failure = Effect.failCause(exit.cause)
          for (const waiter of batch) waiter.resume(failure)
        } else if (exit.value.length !== batch.length) {
          const defect = Effect.dieMessage(
            `Batch write returned ${exit.value.length} results for ${batch.length} items`
          )
          for (const waiter of batch) waiter.resume(defect)
        } else {
          for (let i = 0; i < batch.length; i++) batch[i].resume(Effect.succeed(exit.value[i]))
        }
      })

    yield* Effect.gen(function*() {
      while (true) {
        yield* wake.await
        const batch = buffer.length <= maxBatch ? buffer : buffer.splice(0, maxBatch)
        if (batch === buffer) buffer = []
        if (buffer.length === 0) wake.unsafeClose()
        if (batch.length === 0) continue
        inFlight = batch
        const exit = yield* Effect.exit(write(batch.map((waiter) => waiter.item)))
        yield* settle(batch, exit)
        inFlight = []
      }
    }).pipe(Effect.forkScoped)

    return (item: I): Effect.Effect<O, E> =>
      Effect.async<O, E>((resume) => {
        if (closed) return resume(closedWith)
        buffer.push({ item, resume })
        wake.unsafeOpen()
      })
  })
