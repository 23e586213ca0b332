import { Effect } from "effect"
import { Sequent, SequentLive } from "effect-sequent"

const program = Effect.gen(function*() {
  for (const n of [1, 2, 3]) {
    yield* Sequent.schedule(Effect.log(`write ${n}`))
  }
  // the layer's scope closes when the program ends: it flushes, so all three run
})

Effect.runPromise(program.pipe(Effect.provide(SequentLive)))
