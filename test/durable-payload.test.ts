/**
 * Durable payloads: a task is stored as JSON text, and its handler receives
 * the task decoded from that text, in the process that scheduled it exactly
 * as after a restart. A task that JSON cannot give back is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Durable from "../src/Durable.js"
import { DurableSequent, type DurableTask } from "../src/Durable.js"
import { Journal, makeMemory } from "../src/Journal.js"
import { SequentInvalidTaskError } from "../src/SequentError.js"
import * as TaskKind from "../src/TaskKind.js"

class Anything extends Schema.TaggedClass<Anything>()("Anything", { value: Schema.Unknown }) {}
class Num extends Schema.TaggedClass<Num>()("Num", { n: Schema.Number }) {}
class Opt extends Schema.TaggedClass<Opt>()("Opt", { n: Schema.Number, label: Schema.optional(Schema.String) }) {}
class Typed extends Schema.TaggedClass<Typed>()("Typed", { big: Schema.BigInt, at: Schema.Date }) {}
/** Encodes "s" as "xs" and refuses to decode a text that starts with "x": its stored form never decodes. */
const OneWay = Schema.transformOrFail(Schema.String, Schema.String, {
  strict: true,
  decode: (text, _, ast) =>
    text.startsWith("x")
      ? ParseResult.fail(new ParseResult.Type(ast, text, "starts with x"))
      : ParseResult.succeed(text),
  encode: (text) => ParseResult.succeed(`x${text}`)
})
class Broken extends Schema.TaggedClass<Broken>()("Broken", { text: OneWay }) {}
/** Decodes to upper case: a task comes back from its stored form other than it was scheduled. */
const Upper = Schema.transform(Schema.String, Schema.String, {
  strict: true,
  decode: (text) => text.toUpperCase(),
  encode: (text) => text
})
class Shout extends Schema.TaggedClass<Shout>()("Shout", { text: Upper }) {}

const Tasks = TaskKind.make(Anything, Num, Opt, Typed, Broken, Shout)

/** A durable executor on `journal` whose handlers push every task they receive to `seen`. */
const executor = (journal: Journal.Service, seen: Array<unknown>) => {
  const record = (task: unknown) => Effect.sync(() => seen.push(task))
  return Layer.build(
    Durable.layer().pipe(
      Layer.provide(
        Tasks.handlers({ Anything: record, Num: record, Opt: record, Typed: record, Broken: record, Shout: record })
      ),
      Layer.provide(Layer.succeed(Journal, journal))
    )
  ).pipe(Effect.map((context) => context.unsafeMap.get(DurableSequent.key) as DurableSequent.Service))
}

const cycle: Record<string, unknown> = { name: "loop" }
cycle["self"] = cycle

describe("durable payloads", () => {
  it.scoped("a task JSON cannot store faithfully is refused with SequentInvalidTaskError saying why, never a defect, and nothing is stored", () =>
    Effect.gen(function*() {
      const journal = yield* makeMemory
      const sequent = yield* executor(journal, [])
      const refused: ReadonlyArray<readonly [DurableTask, string]> = [
        [new Anything({ value: 10n }), "it cannot be written as JSON: Do not know how to serialize a BigInt"],
        [new Anything({ value: cycle }), "it cannot be written as JSON: Converting circular structure"],
        [new Num({ n: NaN }), "JSON cannot hold its encoded form: .n is NaN"],
        [new Num({ n: Infinity }), ".n is Infinity"],
        [new Anything({ value: { deep: [1, -Infinity] } }), ".value.deep[1] is -Infinity"],
        [new Anything({ value: new Map([["a", 1]]) }), ".value is a Map"],
        [new Anything({ value: new Date(0) }), ".value is a Date"],
        [new Anything({ value: [1, undefined] }), ".value[1] is undefined"],
        [new Anything({ value: { f: () => 1 } }), ".value.f is a function"],
        [new Broken({ text: "a" }), "its stored form does not decode: "]
      ]
      for (const [task, reason] of refused) {
        const exit = yield* Effect.exit(sequent.schedule(task))
        assert.isTrue(Exit.isFailure(exit) && !Cause.isDie(exit.cause), `${reason}: ${exit}`)
        const error = yield* Effect.flip(sequent.schedule(task))
        assert.instanceOf(error, SequentInvalidTaskError)
        assert.include(error.message, reason)
      }
      assert.deepStrictEqual(yield* journal.pending, [], "nothing was written")
    }))

  it.scoped("the handler receives in-process exactly the task a restarted process receives", () =>
    Effect.gen(function*() {
      const tasks: ReadonlyArray<DurableTask> = [
        new Opt({ n: 1, label: undefined }),
        new Num({ n: -0 }),
        new Anything({ value: { dropped: undefined, kept: [1, "a", null, { deep: true }] } }),
        new Typed({ big: 12345678901234567890n, at: new Date(1_700_000_000_000) }),
        new Shout({ text: "quiet" })
      ]

      const inProcess: Array<unknown> = []
      const first = yield* executor(yield* makeMemory, inProcess)
      yield* Effect.forEach(tasks, (task) => first.schedule(task))
      yield* first.flush

      const journal = yield* makeMemory
      yield* Effect.scoped(Effect.gen(function*() {
        const before = yield* executor(journal, [])
        yield* before.pause()
        yield* Effect.forEach(tasks, (task) => before.schedule(task))
        yield* before.stop
      }))
      const restored: Array<unknown> = []
      const after = yield* executor(journal, restored)
      yield* after.flush

      assert.strictEqual(restored.length, tasks.length)
      assert.deepStrictEqual(inProcess, restored)
      const [opt, num, anything, typed, shout] = inProcess as [Opt, Num, Anything, Typed, Shout]
      assert.isFalse("label" in opt, "an undefined optional field is absent, as in its stored form")
      assert.isTrue(Object.is(num.n, 0), "-0 is stored, and received, as 0")
      assert.deepStrictEqual(anything.value, { kept: [1, "a", null, { deep: true }] })
      assert.instanceOf(typed, Typed)
      assert.strictEqual(typed.big, 12345678901234567890n)
      assert.instanceOf(typed.at, Date)
      assert.strictEqual(shout.text, "QUIET", "the handler receives the task decoded from its stored form")
    }))
})
