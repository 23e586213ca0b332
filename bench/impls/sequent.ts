/**
 * (5) Sequent through its static accessors, as the README and every example write it:
 * `yield* Sequent.schedule(task)` in a program provided with `SequentLive` (or
 * `Sequent.layer({ retry })` when a retry policy is given). The headline row.
 */
import { Context, Effect, Layer } from "effect"
import { Sequent, SequentLive } from "../../src/index.js"
import type { EffectExecutor, Impl, RetryPolicy } from "./types.js"

/**
 * `BENCH_YIELD=off` in the environment builds every Sequent with `yieldToEventLoop: false`: for
 * telling the cost of the event-loop turns from the rest (a build without the option ignores it).
 */
const yieldingOff = process.env["BENCH_YIELD"] === "off"
// spread, not written in the literal: a baseline build whose options lack it still type-checks
const noYielding = { yieldToEventLoop: false }

/** The layer a scenario asks for. */
export const layerFor = (retry?: RetryPolicy): Layer.Layer<Sequent> =>
  yieldingOff
    ? Sequent.layer({ ...noYielding, ...(retry === undefined ? {} : { retry }) })
    : retry === undefined
    ? SequentLive
    : Sequent.layer({ retry })

const make = (retry?: RetryPolicy) =>
  Effect.map(Layer.build(layerFor(retry)), (context): EffectExecutor => ({
    within: (program) => Effect.provide(program, context),
    // these need `Sequent`, which `within` provides: every scenario runs them inside it
    schedule: (task) => Sequent.schedule(task) as Effect.Effect<void, unknown>,
    submit: (task) => Sequent.submit(task) as Effect.Effect<unknown, unknown>,
    flush: Sequent.flush as Effect.Effect<void>
  }))

export const impl: Impl = { kind: "effect", name: "sequent", label: "Sequent (accessors, SequentLive)", make }

/** The service taken from the built layer: for the `sequent-service` row. */
export const service = (retry?: RetryPolicy) =>
  Effect.map(Layer.build(layerFor(retry)), (context): EffectExecutor => {
    const sequent = Context.get(context, Sequent)
    return {
      within: (program) => program,
      schedule: (task) => sequent.schedule(task),
      submit: (task) => sequent.submit(task),
      flush: sequent.flush
    }
  })
