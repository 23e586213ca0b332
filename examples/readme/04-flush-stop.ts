import { Effect } from "effect"
import { Sequent } from "effect-sequent"

const program = Effect.scoped(Effect.gen(function*() {
  const graceful = yield* Sequent.make()
  yield* graceful.schedule(Effect.log("runs: flush waits for it"))
  yield* graceful.flush

  const immediate = yield* Sequent.make()
  yield* immediate.schedule(Effect.never.pipe(Effect.onInterrupt(() => Effect.log("interrupted by stop"))))
  yield* immediate.schedule(Effect.log("never runs: stop drops it"))
  yield* Effect.yieldNow()
  yield* immediate.stop // returns once the running task's finalizers have run
  const refused = yield* Effect.flip(immediate.schedule(Effect.void))
  yield* Effect.log(refused.message)
}))

Effect.runPromise(program)
