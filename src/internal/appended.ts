/**
 * What an instance of a shared journal appended and has not seen end: per
 * lane, the last seq it appended there. A flush waits for these; in a lane
 * tasks end in seq order, so the last one ends last.
 *
 * A task that ends here is forgotten at once. One that ends on another
 * instance is forgotten only when a look at the journal finds it gone, so
 * an instance that schedules to ever new keys, run by the others, looks
 * whenever it holds twice as many lanes as after its last look: the lanes
 * it remembers stay about twice those it has tasks pending in.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** Below this many lanes, no look is due: a look costs a query. */
const LOOK_AT_LEAST = 1024

/** @internal */
export class Appended {
  private readonly last = new Map<string, number>()
  private lookAbove = LOOK_AT_LEAST

  get size(): number {
    return this.last.size
  }

  /** A task appended to `lane` with `seq`. */
  appended(lane: string, seq: number): void {
    if (seq > (this.last.get(lane) ?? 0)) this.last.set(lane, seq)
  }

  /** A task of `lane` ended here. */
  ended(lane: string, seq: number): void {
    if (this.last.get(lane) === seq) this.last.delete(lane)
  }

  /** Whether enough lanes are remembered for a look at which have ended elsewhere. */
  get lookDue(): boolean {
    return this.last.size >= this.lookAbove
  }

  /**
   * Asks `pending` which of the remembered seqs are still in the journal and
   * forgets the lanes whose seq is not. A lane appended to again while the
   * question was out keeps its newer seq: the answer did not cover it.
   */
  look<E>(pending: (seqs: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<number>, E>): Effect.Effect<void, E> {
    return Effect.suspend(() => {
      const asked = Array.from(this.last)
      return Effect.map(pending(asked.map(([, seq]) => seq)), (still) => {
        const stillPending = new Set(still)
        for (const [lane, seq] of asked) if (!stillPending.has(seq)) this.ended(lane, seq)
        this.lookAbove = Math.max(LOOK_AT_LEAST, 2 * this.last.size)
      })
    })
  }
}
