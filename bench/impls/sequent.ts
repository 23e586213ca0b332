/**
 * (5) Sequent: built from `SequentLive` (or `Sequent.layer({ retry })` when a retry policy is
 * given); tasks go in with `schedule`, `flush` waits for all of them.
 */
import { Context, Effect, Layer } from "effect"
import { Sequent, SequentLive } from "../../src/index.js"
import type { EffectExecutor, Impl, RetryPolicy } from "./types.js"

const make = (retry?: RetryPolicy) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(retry === undefined ? SequentLive : Sequent.layer({ retry }))
    const sequent = Context.get(context, Sequent)
    const executor: EffectExecutor = {
      schedule: (task) => sequent.schedule(task),
      submit: (task) => sequent.submit(task),
      flush: sequent.flush
    }
    return executor
  })

export const impl: Impl = { kind: "effect", name: "sequent", label: "Sequent (SequentLive)", make }
