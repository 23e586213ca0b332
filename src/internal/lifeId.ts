/**
 * An id for one life of something this process starts (an executor, an
 * instance of a shared journal) that no other life takes: the ids it leaves in
 * a journal (task ids, an instance's id) outlive it.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"

/** The lives this process has started. */
let lives = 0

/**
 * Tells lives apart by the clock and by chance, and within one process by a
 * count: a test may fix both the clock and `Random`, and start one life after
 * another.
 *
 * @internal
 */
export const lifeId = (clock: Clock.Clock): Effect.Effect<string> =>
  Effect.map(
    Effect.all([Random.nextInt, Random.nextInt]),
    ([a, b]) => [clock.unsafeCurrentTimeMillis(), a >>> 0, b >>> 0, ++lives].map((n) => n.toString(36)).join(".")
  )
