import { assert, describe, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import * as TaskKind from "../src/TaskKind.js"

class SendMail extends Schema.TaggedClass<SendMail>()("SendMail", { to: Schema.String }) {}
/** Another kind under the same tag, with another schema. */
class SendMailToo extends Schema.TaggedClass<SendMailToo>()("SendMail", { address: Schema.Number }) {}
class Other extends Schema.TaggedClass<Other>()("Other", {}) {}

describe("TaskKind.make", () => {
  it("refuses two different kinds with the same tag with TaskKindError naming the tag", () => {
    assert.throws(() => TaskKind.make(SendMail, Other, SendMailToo), TaskKind.TaskKindError, "\"SendMail\"")
    try {
      TaskKind.make(SendMail, SendMailToo)
      assert.fail("TaskKind.make accepted two kinds with one tag")
    } catch (error) {
      assert.instanceOf(error, TaskKind.TaskKindError)
      assert.strictEqual(error._tag, "TaskKindError")
      assert.strictEqual(error.tag, "SendMail")
      assert.include(error.message, "two different task kinds have this tag")
    }
  })

  it("accepts the same kind given twice", () => {
    const kinds = TaskKind.make(SendMail, Other, SendMail)
    assert.deepStrictEqual(kinds.kinds.map((kind) => kind._tag), ["SendMail", "Other", "SendMail"])
  })

  it("refuses a tag that a journal cannot store", () => {
    class Nul extends Schema.TaggedClass<Nul>()("Bad\u0000Tag", {}) {}
    class Lone extends Schema.TaggedClass<Lone>()(`Bad${"🦀".slice(0, 1)}`, {}) {}
    assert.throws(() => TaskKind.make(Nul), TaskKind.TaskKindError, "a NUL character")
    assert.throws(() => TaskKind.make(Lone), TaskKind.TaskKindError, "a lone UTF-16 surrogate")
  })
})
