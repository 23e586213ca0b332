/**
 * The demo, shortened: real sockets, a real HTTP backend that answers 503 and
 * then refuses connections, and Sequent carrying the writes through in order.
 *
 * `it.scopedLive` because the live clock and real sockets are the point. The
 * test never sleeps to wait for anything, and what it asserts does not depend
 * on timing. The outage starts inside the backend's request handler, right
 * after it records write 3 and before it answers. The backend answers 503
 * until it has turned away at least one write, so write 4 always fails at
 * least once. The demo returns once every write has gone through.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { demo } from "../examples/demo.js"

/** Exponential from 10 ms, capped at 50 ms: recovery within a few ms of the backend's return. */
const testRetry = Schedule.exponential("10 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(50)))
)

const shortDemo = demo({
  writes: 10,
  pace: "5 millis",
  outageAfter: 3,
  unavailableFor: "100 millis",
  refusedFor: "100 millis",
  retry: testRetry,
  log: () => Effect.void
})

describe("demo", () => {
  it.scopedLive(
    "the backend records every write once, in order, after answering 503 and refusing connections",
    () =>
      Effect.gen(function*() {
        const result = yield* shortDemo

        assert.deepStrictEqual(result.record, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        assert.isTrue(result.pass)
        assert.strictEqual(result.duplicates, 0)
        // only the write at the head when the backend went down was retried; the ones behind it waited
        assert.deepStrictEqual(result.retried, [4])
        assert.isAbove(result.failedAttempts, 0)
        assert.strictEqual(result.attempts, 10 + result.failedAttempts)
        // the outage ran its course: 503s, then refused connections, then back up
        const outage = result.outage
        assert(outage !== undefined, "the backend staged no outage")
        assert.isBelow(outage.startedAt, outage.refusingAt)
        assert.isBelow(outage.refusingAt, outage.endedAt)
      }),
    5_000
  )
})
