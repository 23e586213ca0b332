/**
 * Option checks: an executor option that is out of range or of the wrong kind
 * makes `make` and `layer` die with a `SequentOptionError` naming it, for the
 * in-memory and the durable executor alike; a task option that is refused
 * fails `schedule` and `submit` with one, and the task is not accepted. The
 * bad values are cast: a JavaScript caller passes them without a cast.
 */
import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import {
  Durable,
  type DurableOptions,
  DurableSequent,
  Journal,
  Sequent,
  SequentOptionError,
  type SequentOptions,
  TaskKind,
  type TaskOptions
} from "../src/index.js"

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write)
const DurableDeps = Layer.merge(Tasks.handlers({ Write: () => Effect.void }), Journal.layerMemory)

const defectOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.dieOption(exit.cause)) : undefined

type Build = (options: SequentOptions) => Effect.Effect<Exit.Exit<unknown, unknown>>

/** Each constructor, built with `options` and used once: how it ended. */
const builds: ReadonlyArray<readonly [string, Build]> = [
  ["Sequent.make", (options) => Effect.exit(Effect.scoped(Sequent.make(options)))],
  ["Sequent.layer", (options) => Effect.exit(Effect.provide(Sequent.size, Sequent.layer(options)))],
  ["Durable.make", (options) => Effect.exit(Effect.scoped(Effect.provide(Durable.make(options), DurableDeps)))],
  [
    "Durable.layer",
    (options) =>
      Effect.exit(Effect.provide(
        Effect.flatMap(DurableSequent, (sequent) => sequent.size),
        Durable.layer(options).pipe(Layer.provide(DurableDeps))
      ))
  ]
]

/** Options of both executors that are refused: the option named, the options, the reason given. */
const refusedByBoth: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
  ["closeGracePeriod", { closeGracePeriod: "abc" }, `expected a non-negative duration, got "abc"`],
  ["closeGracePeriod", { closeGracePeriod: -1 }, "expected a non-negative duration, got -1"],
  ["closeGracePeriod", { closeGracePeriod: Number.NaN }, "expected a non-negative duration, got NaN"],
  ["closeGracePeriod", { closeGracePeriod: "-5 seconds" }, `expected a non-negative duration, got "-5 seconds"`],
  ["closeGracePeriod", { closeGracePeriod: [1, Number.NaN] }, "expected a non-negative duration, got [1, NaN]"],
  ["onGiveUp", { onGiveUp: "explode" }, `expected "continue" or "halt", got "explode"`],
  ["retry", { retry: 5 }, "expected a Schedule, got 5"],
  ["retry", { retry: () => Schedule.forever }, "expected a Schedule, got a function"],
  ["concurrency", { concurrency: 0 }, `expected a whole number >= 1 or "unbounded", got 0`],
  ["concurrency", { concurrency: "many" }, `expected a whole number >= 1 or "unbounded", got "many"`],
  ["eventBuffer", { eventBuffer: 0 }, "expected a whole number >= 1, got 0"],
  ["name", { name: 5 }, "expected a string, got 5"],
  ["metrics", { metrics: "yes" }, `expected a boolean, got "yes"`],
  ["laneMetrics", { laneMetrics: 1 }, "expected a boolean, got 1"],
  ["spans", { spans: "sometimes" }, `expected a boolean or "auto", got "sometimes"`],
  ["deadLetter", { deadLetter: "a handler" }, `expected a function, got "a handler"`],
  [
    "attemptLogLevel",
    { attemptLogLevel: "warning" },
    `expected one of "Fatal", "Error", "Warning", "Info", "Debug", "Trace", "None", got "warning"`
  ],
  [
    "attemptLogLevel",
    { attemptLogLevel: "All" },
    `expected one of "Fatal", "Error", "Warning", "Info", "Debug", "Trace", "None", got "All"`
  ]
]

/** Options only the in-memory executor has, refused in their own right. */
const refusedInMemory: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
  ["onFull", { onFull: "explode" }, `expected "wait" or "fail", got "explode"`],
  ["capacity", { capacity: 0 }, "expected a whole number >= 1, got 0"],
  ["capacity", { capacity: 1.5 }, "expected a whole number >= 1, got 1.5"]
]

/** What a durable executor refuses whatever its value: it has no capacity. */
const refusedInDurableMode: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
  ["capacity", { capacity: 10 }, "a durable executor has no capacity: its journal holds every task"],
  ["onFull", { onFull: "wait" }, "a durable executor has no capacity: its journal holds every task"]
]

const expectRefused = (defect: unknown, option: string, reason: string, what: string) => {
  assert.instanceOf(defect, SequentOptionError, what)
  assert.deepStrictEqual(
    { option: (defect as SequentOptionError).option, message: (defect as SequentOptionError).message },
    { option, message: `invalid option ${option}: ${reason}` },
    what
  )
}

describe("executor options", () => {
  for (const [name, build] of builds) {
    const durable = name.startsWith("Durable")
    const cases = [...refusedByBoth, ...(durable ? refusedInDurableMode : refusedInMemory)]
    it.effect(`${name} dies with a SequentOptionError naming each refused option`, () =>
      Effect.gen(function*() {
        for (const [option, options, reason] of cases) {
          const exit = yield* build(options as SequentOptions)
          expectRefused(defectOf(exit), option, reason, `${name}(${JSON.stringify(options)})`)
        }
      }))

    it.effect(`${name} accepts the edge values of each option`, () =>
      Effect.gen(function*() {
        const accepted: ReadonlyArray<SequentOptions> = [
          { closeGracePeriod: 0 },
          { closeGracePeriod: Duration.infinity },
          { closeGracePeriod: [0, 0] },
          { concurrency: "unbounded" },
          { concurrency: 1 },
          { attemptLogLevel: "None" },
          { spans: false },
          { name: "" },
          { retry: Schedule.stop },
          ...(durable ? [] : [{ capacity: 1, onFull: "fail" } as const])
        ]
        for (const options of accepted) {
          assert.isTrue(Exit.isSuccess(yield* build(options)), `${name}(${JSON.stringify(options)})`)
        }
      }))
  }

  it.effect("a value that is not an options object is refused as `options`", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Sequent.make(5 as unknown as SequentOptions)))
      expectRefused(defectOf(exit), "options", "expected an object, got 5", "Sequent.make(5)")
    }))

  it("the durable options leave capacity and onFull out of their type", () => {
    expectTypeOf<keyof DurableOptions>().toEqualTypeOf<Exclude<keyof SequentOptions, "capacity" | "onFull">>()
    // @ts-expect-error capacity is not a durable option
    const options: DurableOptions = { capacity: 10 }
    assert.strictEqual(options.closeGracePeriod, undefined)
  })
})

describe("task options", () => {
  const refused: ReadonlyArray<readonly [string, Record<string, unknown>, string]> = [
    ["retry", { retry: 5 }, "expected a Schedule, got 5"],
    ["isRetryable", { isRetryable: "yes" }, `expected a function, got "yes"`],
    ["timeout", { timeout: 0 }, "expected a positive duration, got 0"],
    ["timeout", { timeout: -1 }, "expected a positive duration, got -1"],
    ["timeout", { timeout: Number.NaN }, "expected a positive duration, got NaN"],
    ["timeout", { timeout: "soon" }, `expected a positive duration, got "soon"`],
    ["key", { key: 5 }, "expected a string, got 5"],
    ["key", { key: null }, "expected a string, got null"],
    ["key", { key: 5, timeout: "1 second" }, "expected a string, got 5"]
  ]

  it.scoped("schedule and submit fail with a SequentOptionError naming each refused option; the task is not accepted", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      let ran = 0
      const task = Effect.sync(() => ran++)
      for (const [option, options, reason] of refused) {
        const verbs: ReadonlyArray<readonly [string, (options: TaskOptions) => Effect.Effect<unknown, unknown>]> = [
          ["schedule", (options) => sequent.schedule(task, options)],
          ["submit", (options) => sequent.submit(task, options)]
        ]
        for (const [verb, run] of verbs) {
          const error = yield* Effect.flip(run(options as TaskOptions))
          expectRefused(error, option, reason, `${verb}(task, ${JSON.stringify(options)})`)
        }
      }
      assert.strictEqual(yield* sequent.size, 0)
      yield* sequent.flush
      assert.strictEqual(ran, 0)
    }))

  it.scoped("a value that is not an options object is refused as `options`", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const error = yield* Effect.flip(sequent.schedule(Effect.void, "a" as unknown as TaskOptions))
      expectRefused(error, "options", `expected an object, got "a"`, "schedule(task, \"a\")")
    }))

  it.scoped("valid task options are accepted, an explicit undefined included", () =>
    Effect.gen(function*() {
      const sequent = yield* Sequent.make()
      const results = yield* Effect.all([
        sequent.submit(Effect.succeed(1), { key: "a" }),
        sequent.submit(Effect.succeed(2), { key: undefined, retry: undefined, timeout: undefined }),
        sequent.submit(Effect.succeed(3), { retry: Schedule.recurs(1), isRetryable: () => true, timeout: "1 second" }),
        sequent.submit(Effect.succeed(4), { timeout: Duration.infinity })
      ])
      assert.deepStrictEqual(results, [1, 2, 3, 4])
    }))
})
