/**
 * Durable task kinds. A closure cannot be stored, so a durable task is data: an
 * instance of a task kind, run by the handler that is registered for its kind.
 *
 * A kind is one of two kinds of class:
 *
 * - a `Schema.TaggedClass`: its handler may return anything; its result is
 *   ignored, and `submit` succeeds with `void`;
 * - a `Schema.TaggedRequest`, with a success and a failure schema: its handler
 *   must succeed and fail with their types, and `submit` answers with the
 *   handler's outcome after a round trip through those schemas (encoded, then
 *   decoded), so a caller sees what a caller in another process would see.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import { unstorableText } from "./internal/taskInput.js"
import type {
  SequentDuplicateTaskError,
  SequentFalseError,
  SequentOutcomeError,
  SequentStoppedError
} from "./SequentError.js"

/**
 * Any task kind: a schema of a tagged class with no requirements of its own.
 * A `Schema.TaggedRequest` kind also has the schemas of its handler's success
 * and failure, which must need no services either.
 *
 * @since 0.1.0
 * @category models
 */
export interface AnyTaskKind extends Schema.Schema<any, any, never> {
  readonly _tag: string
  readonly success?: ResultSchema | undefined
  readonly failure?: ResultSchema | undefined
}

/**
 * A schema of a handler's success or failure: any types (`Schema.Never`
 * included), no services.
 *
 * @since 0.1.0
 * @category models
 */
export type ResultSchema =
  | Schema.Schema<any, any, never>
  | Schema.Schema<any, never, never>
  | Schema.Schema<never, any, never>
  | Schema.Schema<never, never, never>

/**
 * What a `submit` of the task `T` succeeds with: the success type of a
 * `Schema.TaggedRequest` kind, `void` for a `Schema.TaggedClass` one.
 *
 * @since 0.1.0
 * @category models
 */
export type SuccessOf<T> = T extends Schema.WithResult<infer A, infer _I, infer _E, infer _EI, infer _R> ? A : void

/**
 * How the handler of the task `T` may fail: the failure type of a
 * `Schema.TaggedRequest` kind, anything for a `Schema.TaggedClass` one.
 *
 * @since 0.1.0
 * @category models
 */
export type FailureOf<T> = T extends Schema.WithResult<infer _A, infer _I, infer E, infer _EI, infer _R> ? E : unknown

/**
 * What a `submit` of the task `T` can fail with besides its handler's failure
 * and the scheduling errors: `SequentStoppedError` (stopped before it
 * finished), `SequentFalseError` where the success type admits `false` (an
 * attempt that returns `false` fails, as in every executor), and, for a
 * `Schema.TaggedRequest` kind, `SequentOutcomeError` and
 * `SequentDuplicateTaskError`.
 *
 * @since 0.1.0
 * @category models
 */
export type OutcomeError<T> =
  | SequentStoppedError
  | (false extends SuccessOf<T> ? SequentFalseError : never)
  | (T extends Schema.WithResult<infer _A, infer _I, infer _E, infer _EI, infer _R> ?
    SequentOutcomeError | SequentDuplicateTaskError :
    never)

/**
 * The handler of the kind `K`: a `Schema.TaggedRequest` kind's handler
 * succeeds and fails with the kind's success and failure types; a
 * `Schema.TaggedClass` kind's handler may return anything.
 *
 * @since 0.1.0
 * @category models
 */
export type Handler<K extends AnyTaskKind, R> = (
  task: Schema.Schema.Type<K>
) => Schema.Schema.Type<K> extends Schema.WithResult<infer A, infer _I, infer E, infer _EI, infer _R>
  ? Effect.Effect<A, E, R>
  : Effect.Effect<unknown, unknown, R>

/**
 * A handler for every kind in `Kinds`, keyed by the kind's tag.
 *
 * @since 0.1.0
 * @category models
 */
export type Handlers<Kinds extends ReadonlyArray<AnyTaskKind>, R> = {
  readonly [K in Kinds[number] as K["_tag"]]: Handler<K, R>
}

/**
 * The registered kinds and their handlers, with the services the handlers
 * were given when their layer was built: a task restored after a restart runs
 * with the same services as a new one.
 *
 * @since 0.1.0
 * @category tags
 */
export class TaskHandlers extends Context.Tag("effect-sequent/TaskHandlers")<TaskHandlers, {
  readonly kinds: ReadonlyMap<string, AnyTaskKind>
  readonly handle: (task: { readonly _tag: string }) => Effect.Effect<unknown, unknown>
  readonly context: Context.Context<unknown>
}>() {}

/**
 * A set of task kinds: the type of what a durable executor accepts, and the
 * way to register their handlers.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskKinds<Kinds extends ReadonlyArray<AnyTaskKind>> {
  readonly kinds: Kinds
  /**
   * The layer that registers a handler for every kind. Each handler's
   * requirements `R` are taken from this layer's context.
   */
  readonly handlers: <R>(handlers: Handlers<Kinds, R>) => Layer.Layer<TaskHandlers, never, R>
}

/**
 * The value of a task kind in `Kinds`.
 *
 * @since 0.1.0
 * @category models
 */
export type TaskOf<K extends TaskKinds<any>> = K extends TaskKinds<infer Kinds> ? Schema.Schema.Type<Kinds[number]>
  : never

/**
 * Registers task kinds: `Schema.TaggedClass` kinds, `Schema.TaggedRequest`
 * kinds, or both.
 *
 * Throws `TaskKindError` (it is called where the kinds are defined, once) when
 * two different kinds have the same tag, which would leave the task of one to
 * the handler and schema of the other, or when a tag contains a NUL
 * character or a lone UTF-16 surrogate, which a journal cannot store. The
 * same kind given twice counts once.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { TaskKind } from "effect-sequent"
 *
 * class SendMail extends Schema.TaggedClass<SendMail>()("SendMail", { to: Schema.String }) {}
 * class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", {}) {}
 * class Charge extends Schema.TaggedRequest<Charge>()("Charge", {
 *   payload: { cents: Schema.Int },
 *   success: Schema.Struct({ receipt: Schema.String }),
 *   failure: CardDeclined
 * }) {}
 *
 * const Tasks = TaskKind.make(SendMail, Charge)
 * const HandlersLive = Tasks.handlers({
 *   SendMail: (task) => Effect.log(`mail to ${task.to}`),
 *   Charge: (task) => task.cents > 100_000 ? Effect.fail(new CardDeclined()) : Effect.succeed({ receipt: "r-1" })
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <const Kinds extends ReadonlyArray<AnyTaskKind>>(...kinds: Kinds): TaskKinds<Kinds> => {
  const byTag = byTagOf(kinds)
  return {
    kinds,
    handlers: <R>(handlers: Handlers<Kinds, R>) =>
      Layer.effect(
        TaskHandlers,
        Effect.map(Effect.context<R>(), (context) => {
          const table = handlers as unknown as Record<string, (task: unknown) => Effect.Effect<unknown, unknown, R>>
          return {
            kinds: byTag,
            handle: (task) => table[task._tag]!(task) as Effect.Effect<unknown, unknown>,
            context: context as Context.Context<unknown>
          }
        })
      )
  }
}

/** The kinds by tag; throws `TaskKindError` for a tag that is taken by another kind, or that a journal cannot store. */
const byTagOf = (kinds: ReadonlyArray<AnyTaskKind>): ReadonlyMap<string, AnyTaskKind> => {
  const byTag = new Map<string, AnyTaskKind>()
  for (const kind of kinds) {
    const known = byTag.get(kind._tag)
    if (known !== undefined && known !== kind) {
      throw new TaskKindError({ tag: kind._tag, reason: "two different task kinds have this tag" })
    }
    const unstorable = unstorableText(kind._tag)
    if (unstorable !== undefined) throw new TaskKindError({ tag: kind._tag, reason: `the tag contains ${unstorable}` })
    byTag.set(kind._tag, kind)
  }
  return byTag
}

/**
 * `TaskKind.make` was given kinds it cannot register: two different kinds
 * with the same tag, or a tag that a journal cannot store.
 *
 * @since 0.1.0
 * @category errors
 */
export class TaskKindError extends Data.TaggedError("TaskKindError")<{
  readonly tag: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot register task kind ${JSON.stringify(this.tag)}: ${this.reason}`
  }
}
