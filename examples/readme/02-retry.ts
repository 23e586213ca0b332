import { Duration, Effect, Schedule } from "effect"
import { Sequent } from "effect-sequent"

// up to 5 retries, 100 ms apart then doubling, each jittered, never more than 2 s apart
const retry = Schedule.exponential("100 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.seconds(2))),
  Schedule.intersect(Schedule.recurs(5))
)

let calls = 0
const flaky = Effect.suspend(() => ++calls < 3 ? Effect.fail("backend down") : Effect.log(`done after ${calls} calls`))

const program = Effect.gen(function*() {
  yield* Sequent.schedule(flaky)
  yield* Sequent.flush
})

Effect.runPromise(program.pipe(Effect.provide(Sequent.layer({ retry }))))
