/**
 * The durable API's types, checked by `npm run check` (tsc compiles test/):
 * every `expectTypeOf` must hold and every `@ts-expect-error` line must stay an
 * error, or the check fails. Vitest does not run this file; `vitest
 * --typecheck` would.
 */
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import { expectTypeOf } from "vitest"
import { type DurableScheduleError, DurableSequent } from "../src/Durable.js"
import type { SequentEvent, SequentStatus } from "../src/Observability.js"
import type {
  SequentDuplicateTaskError,
  SequentFalseError,
  SequentOutcomeError,
  SequentStoppedError
} from "../src/SequentError.js"
import * as TaskKind from "../src/TaskKind.js"

class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", { order: Schema.String }) {}
class Charge extends Schema.TaggedRequest<Charge>()("Charge", {
  payload: { order: Schema.String },
  success: Schema.Struct({ receipt: Schema.String, at: Schema.Date }),
  failure: CardDeclined
}) {}
class Check extends Schema.TaggedRequest<Check>()("Check", {
  payload: {},
  success: Schema.Boolean,
  failure: Schema.Never
}) {}
class SendMail extends Schema.TaggedClass<SendMail>()("SendMail", { to: Schema.String }) {}
class Other extends Schema.TaggedClass<Other>()("Other", {}) {}

const Tasks = TaskKind.make(Charge, Check, SendMail)
const Typed = DurableSequent.typed(Tasks)

type Receipt = { readonly receipt: string; readonly at: Date }
type RequestErrors = DurableScheduleError | SequentStoppedError | SequentOutcomeError | SequentDuplicateTaskError

// a TaggedRequest kind's submit is typed by its schemas
expectTypeOf(Typed.submit(new Charge({ order: "o-1" }))).toEqualTypeOf<
  Effect.Effect<Receipt, CardDeclined | RequestErrors, DurableSequent>
>()
expectTypeOf(DurableSequent.submit(new Charge({ order: "o-1" }))).toEqualTypeOf<
  Effect.Effect<Receipt, CardDeclined | RequestErrors, DurableSequent>
>()
// a success type that admits `false` adds SequentFalseError, as an in-memory submit does
expectTypeOf(Typed.submit(new Check())).toEqualTypeOf<
  Effect.Effect<boolean, RequestErrors | SequentFalseError, DurableSequent>
>()
// a TaggedClass kind's submit succeeds with void, and its handler may fail with anything
expectTypeOf(Typed.submit(new SendMail({ to: "ada" }))).toEqualTypeOf<Effect.Effect<void, unknown, DurableSequent>>()
expectTypeOf(DurableSequent.submit(new SendMail({ to: "ada" }))).toEqualTypeOf<
  Effect.Effect<void, unknown, DurableSequent>
>()
// the service's submit has the same types
declare const service: DurableSequent.Service
expectTypeOf(service.submit(new Charge({ order: "o-1" }))).toEqualTypeOf<
  Effect.Effect<Receipt, CardDeclined | RequestErrors>
>()

// @ts-expect-error Other is not one of Tasks' kinds
Typed.submit(new Other())

// well-typed handlers: the request's handler succeeds and fails with its schemas' types, the class's returns anything
class Gateway extends Effect.Tag("test/Gateway")<Gateway, { readonly receipt: Effect.Effect<string> }>() {}
const handlers = Tasks.handlers({
  Charge: (charge) =>
    charge.order === "" ?
      Effect.fail(new CardDeclined({ order: charge.order })) :
      Effect.map(Gateway.receipt, (receipt) => ({ receipt, at: new Date(0) })),
  Check: () => Effect.succeed(true),
  SendMail: (mail) => Effect.succeed(mail.to.length)
})
expectTypeOf(handlers).toEqualTypeOf<Layer.Layer<TaskKind.TaskHandlers, never, Gateway>>()

Tasks.handlers({
  // @ts-expect-error the success must be a Receipt
  Charge: () => Effect.succeed({ receipt: 1, at: new Date(0) }),
  Check: () => Effect.succeed(true),
  SendMail: () => Effect.void
})
Tasks.handlers({
  // @ts-expect-error the failure must be a CardDeclined
  Charge: () => Effect.fail("declined"),
  Check: () => Effect.succeed(true),
  SendMail: () => Effect.void
})
Tasks.handlers({
  Charge: () => Effect.succeed({ receipt: "r", at: new Date(0) }),
  // @ts-expect-error Check's failure schema is Never: its handler cannot fail
  Check: () => Effect.fail(new CardDeclined({ order: "" })),
  SendMail: () => Effect.fail("anything")
})
// @ts-expect-error every kind needs a handler
Tasks.handlers({ Charge: () => Effect.succeed({ receipt: "r", at: new Date(0) }), SendMail: () => Effect.void })

// a kind whose result schemas need services is rejected: its outcome could not be encoded without them
class Needs extends Effect.Tag("test/Needs")<Needs, {}>() {}
const NeedsService = Schema.declare((u): u is string => typeof u === "string").pipe(
  Schema.transformOrFail(Schema.String, {
    decode: (s) => Effect.as(Needs, s),
    encode: (s) => Effect.as(Needs, s)
  })
)
class Contextual extends Schema.TaggedRequest<Contextual>()("Contextual", {
  payload: {},
  success: NeedsService,
  failure: Schema.Never
}) {}
// @ts-expect-error the success schema needs the Needs service
TaskKind.make(Contextual)

// the statics of Sequent, with DurableSequent as the requirement
expectTypeOf(DurableSequent.size).toEqualTypeOf<Effect.Effect<number, never, DurableSequent>>()
expectTypeOf(DurableSequent.sizeOf).toEqualTypeOf<(key: string) => Effect.Effect<number, never, DurableSequent>>()
expectTypeOf(DurableSequent.laneCount).toEqualTypeOf<Effect.Effect<number, never, DurableSequent>>()
expectTypeOf(DurableSequent.status).toEqualTypeOf<Effect.Effect<SequentStatus, never, DurableSequent>>()
expectTypeOf(DurableSequent.events).toEqualTypeOf<Stream.Stream<SequentEvent, never, DurableSequent>>()
expectTypeOf(DurableSequent.subscribe).toEqualTypeOf<
  Effect.Effect<Queue.Dequeue<SequentEvent>, never, DurableSequent | Scope.Scope>
>()
expectTypeOf(DurableSequent.pause).toEqualTypeOf<(key?: string) => Effect.Effect<void, never, DurableSequent>>()
expectTypeOf(DurableSequent.resume).toEqualTypeOf<(key?: string) => Effect.Effect<void, never, DurableSequent>>()
expectTypeOf(DurableSequent.flush).toEqualTypeOf<Effect.Effect<void, never, DurableSequent>>()
expectTypeOf(DurableSequent.stop).toEqualTypeOf<Effect.Effect<void, never, DurableSequent>>()
