/**
 * The durable executor: the executor on a journal-backed store, with task
 * kinds as data. `schedule` encodes the task and offers it with its journal
 * entry; everything after that is the executor's and the store's.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { DurableScheduleError, DurableSequent, DurableTask, DurableTaskOptions } from "../Durable.js"
import type { Journal, JournalEntry, JournalError, JournalRecord } from "../Journal.js"
import type { SequentOptions } from "../Sequent.js"
import { SequentInvalidTaskError } from "../SequentError.js"
import type { AnyTaskKind, TaskHandlers } from "../TaskKind.js"
import * as JournalStore from "./durableStore.js"
import type { Executor } from "./executor.js"
import { control, makeExecutor } from "./sequent.js"
import { Waiter } from "./waiter.js"

type Handlers = TaskHandlers["Type"]

/** The task a stored record runs, or why it cannot: its kind is gone, or its payload no longer decodes. */
const decoder = (handlers: Handlers) => (record: JournalRecord): Either.Either<Effect.Effect<unknown, unknown>, string> => {
  const kind = handlers.kinds.get(record.tag)
  if (kind === undefined) return Either.left(`no task kind ${record.tag} is registered`)
  return Either.try({ try: () => JSON.parse(record.payload) as unknown, catch: (error) => `${error}` }).pipe(
    Either.flatMap((json) =>
      Either.mapLeft(
        ParseResult.decodeUnknownEither(kind)(json),
        (error) => `the payload no longer decodes as ${record.tag}: ${ParseResult.TreeFormatter.formatIssueSync(error)}`
      )
    ),
    Either.map((task) => handlers.handle(task as DurableTask))
  )
}

/**
 * Encodes a task with its kind's schema into the JSON text the journal keeps.
 * A synchronous encoder per kind is built on first use: `Schema.encode` would
 * look the parser up and build an effect for every task. When it cannot answer
 * (the task does not encode, or its schema encodes asynchronously), the
 * effectful encoder does the work, and gives the error.
 */
const encoder = () => {
  const encoders = new Map<AnyTaskKind, (task: DurableTask) => Either.Either<unknown, unknown>>()
  const encoderOf = (kind: AnyTaskKind) => {
    let encode = encoders.get(kind)
    if (encode === undefined) {
      encode = ParseResult.encodeUnknownEither(kind)
      encoders.set(kind, encode)
    }
    return encode
  }
  return (kind: AnyTaskKind, task: DurableTask): Effect.Effect<string, SequentInvalidTaskError> => {
    const encoded = encoderOf(kind)(task)
    if (Either.isRight(encoded)) return Effect.succeed(JSON.stringify(encoded.right))
    return Schema.encode(kind)(task).pipe(
      Effect.map((value) => JSON.stringify(value)),
      Effect.mapError((error) => new SequentInvalidTaskError({ tag: task._tag, reason: error.message }))
    )
  }
}

/** Ids for tasks scheduled without one: unique to this executor's life. */
const autoIds = Effect.map(
  Effect.all([Random.nextInt, Random.nextInt]),
  ([a, b]) => {
    const prefix = a.toString(36) + b.toString(36)
    let counter = 0
    return () => `auto:${prefix}:${++counter}`
  }
)

const kindOf = (handlers: Handlers, task: DurableTask): Either.Either<AnyTaskKind, SequentInvalidTaskError> => {
  const kind = typeof task === "object" && task !== null ? handlers.kinds.get(task._tag) : undefined
  return kind === undefined
    ? Either.left(new SequentInvalidTaskError({ tag: String(task?._tag), reason: "it is not a registered task kind" }))
    : Either.right(kind)
}

/** The durable `schedule`: encodes the task, then offers it with its journal entry. */
const scheduler = (
  executor: Executor<JournalEntry, JournalError>,
  handlers: Handlers,
  clock: Clock.Clock,
  nextId: () => string
) => {
  const encode = encoder()
  const policy = executor.config.policy
  const offerEncoded = (
    task: DurableTask,
    options: DurableTaskOptions | undefined,
    waiter: Waiter | undefined,
    payload: string
  ) => {
    const entry: JournalEntry = {
      id: options?.id ?? nextId(),
      lane: JournalStore.laneOf(options?.key),
      tag: task._tag,
      payload,
      scheduledAt: clock.unsafeCurrentTimeMillis()
    }
    return executor.offer(options?.key, handlers.handle(task), handlers.context, policy, waiter, entry)
  }
  return (
    task: DurableTask,
    options: DurableTaskOptions | undefined,
    waiter: Waiter | undefined
  ): Effect.Effect<void, DurableScheduleError> =>
    Effect.suspend(() => {
      const kind = kindOf(handlers, task)
      if (Either.isLeft(kind)) return Effect.fail(kind.left)
      return Effect.flatMap(encode(kind.right, task), (payload) => offerEncoded(task, options, waiter, payload))
    }) as Effect.Effect<void, DurableScheduleError>
}

/**
 * A durable executor on `journal`, running the kinds of `handlers`. Pending
 * tasks are loaded first and run before new ones, per lane in their original
 * order.
 *
 * @internal
 */
export const make = (
  options: SequentOptions,
  journal: Journal.Service,
  handlers: Handlers
): Effect.Effect<DurableSequent.Service, JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const store = yield* JournalStore.make(journal, { decode: decoder(handlers), context: handlers.context }, clock)
    const executor = yield* makeExecutor(options, store)
    yield* store.restore
    const schedule = scheduler(executor, handlers, clock, yield* autoIds)
    const base = control(executor)
    return {
      ...base,
      schedule: (task, options) => schedule(task, options, undefined),
      submit: (task, options) =>
        Effect.suspend(() => {
          const waiter = new Waiter()
          return Effect.zipRight(schedule(task, options, waiter), waiter.await())
        }),
      deadLetters: journal.deadLetters,
      // the journal forgets the halt first, so that once resume returns a restart finds the lane resumed
      resume: (key) => Effect.zipRight(store.unhalt(key), base.resume(key)),
      redrive: store.redrive,
      discard: journal.discard
    }
  })
