import { Effect, Schedule } from "effect"
import { Sequent } from "effect-sequent"

const program = Effect.gen(function*() {
  // submit waits for the outcome: the task's value...
  const value = yield* Sequent.submit(Effect.succeed(42))
  // ...or its last error, once a finite retry schedule gives up
  const error = yield* Effect.flip(Sequent.submit(Effect.fail("rejected"), { retry: Schedule.recurs(2) }))
  yield* Effect.log(`value ${value}, error ${error}`)
})

Effect.runPromise(program.pipe(Effect.provide(Sequent.layer())))
