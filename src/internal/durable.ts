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
import type * as Scope from "effect/Scope"
import type {
  DurableOptions,
  DurableScheduleError,
  DurableSequent,
  DurableTask,
  DurableTaskOptions
} from "../Durable.js"
import { type Journal, type JournalEntry, JournalError, type JournalRecord } from "../Journal.js"
import { SequentInvalidTaskError } from "../SequentError.js"
import type { AnyTaskKind, TaskHandlers } from "../TaskKind.js"
import { make as makeCodec } from "./codec.js"
import * as JournalStore from "./durableStore.js"
import type { Executor } from "./executor.js"
import { lifeId } from "./lifeId.js"
import { refuseInDurableMode } from "./options.js"
import { makeCodec as makeOutcomeCodec, outcome } from "./outcome.js"
import { control, makeExecutor } from "./sequent.js"
import { sharingOf } from "./sharing.js"
import { invalidIdOrKey } from "./taskInput.js"
import { Waiter } from "./waiter.js"

type Handlers = TaskHandlers["Type"]
type Codec = ReturnType<typeof makeCodec>

/**
 * Ids for tasks scheduled without one. An id outlives its executor's life in
 * the journal (a pending task, a dead letter), and a task whose id the journal
 * holds is not stored again: so each life has a prefix of its own.
 */
const autoIds = (clock: Clock.Clock) =>
  Effect.map(lifeId(clock), (prefix) => {
    let counter = 0
    return () => `auto:${prefix}:${++counter}`
  })

/** The single-owner journals a durable executor of this process runs on (see `claim`). */
const claimed = new WeakSet<Journal.Service>()

/**
 * Takes a journal with one owner for one executor, until its scope closes
 * (a stopped executor's store may still be writing); fails while another
 * executor has it. Two would each restore and run every pending task: each
 * task twice, and no order within a lane. (Each executor on a shared journal
 * is an instance of its own.)
 */
const claim = (journal: Journal.Service) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      if (!claimed.has(journal)) return Effect.sync(() => claimed.add(journal))
      return Effect.fail(
        new JournalError({
          reason: "another durable executor runs on this journal: give each executor a journal of its own " +
            "(its own SQLite file, or its own tablePrefix), or close the other's scope first"
        })
      )
    }),
    () => Effect.sync(() => claimed.delete(journal))
  )

/**
 * The task a handler makes. A handler that throws instead of returning an
 * effect fails its task as a defect, attempt after attempt, like an effect
 * that dies: a stored task must never stop its executor from starting.
 */
const handle = (handlers: Handlers, task: { readonly _tag: string }): Effect.Effect<unknown, unknown> => {
  try {
    return handlers.handle(task)
  } catch (defect) {
    return Effect.die(defect)
  }
}

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
  codec: Codec,
  clock: Clock.Clock,
  nextId: () => string
) => {
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
    return executor.offer(options?.key, handle(handlers, task), handlers.context, policy, waiter, entry)
  }
  return (
    task: DurableTask,
    options: DurableTaskOptions | undefined,
    waiter: Waiter | undefined
  ): Effect.Effect<void, DurableScheduleError> =>
    Effect.suspend(() => {
      const kind = kindOf(handlers, task)
      if (Either.isLeft(kind)) return Effect.fail(kind.left)
      const invalid = invalidIdOrKey(task._tag, options?.id, options?.key)
      if (invalid !== undefined) return Effect.fail(invalid)
      // the handler gets the task a restart would decode from its stored form (internal/codec.ts)
      return Effect.flatMap(
        codec.encode(kind.right, task),
        (stored) => offerEncoded(stored.task, options, waiter, stored.payload)
      )
    }) as Effect.Effect<void, DurableScheduleError>
}

/**
 * A durable executor on `journal`, running the kinds of `handlers`. Pending
 * tasks are loaded first and run before new ones, per lane in their original
 * order.
 *
 * @internal
 */
export const make = <R>(
  options: DurableOptions<R>,
  journal: Journal.Service,
  handlers: Handlers
): Effect.Effect<DurableSequent.Service, JournalError, Scope.Scope | R> =>
  Effect.gen(function*() {
    yield* Effect.orDie(refuseInDurableMode(options))
    const clock = yield* Effect.clock
    const codec = makeCodec(handlers.kinds)
    // an `Either` stays one, so that a store can queue a record decoded at once without an effect of its own
    const decode = (record: JournalRecord) => {
      const decoded = codec.decode(record.tag, record.payload)
      return JournalStore.isEither(decoded)
        ? Either.map(decoded, (task) => handle(handlers, task))
        : Effect.map(decoded, (task) => handle(handlers, task))
    }
    const tasks = { decode, context: handlers.context, outcomes: makeOutcomeCodec(handlers.kinds) }
    const sharing = sharingOf(journal)
    if (sharing === undefined) yield* claim(journal)
    // a shared journal (PgJournal with `sharing`) runs only the lanes of the shards this instance owns
    const store = sharing === undefined
      ? yield* JournalStore.make(journal, tasks, clock)
      : yield* sharing.makeStore(tasks, clock)
    // Off unless asked for: every `schedule` already waits for its append to commit, which paces
    // the producers, and turns of the event loop split the journal's group commits.
    const yieldToEventLoop = options.yieldToEventLoop ?? false
    const executor = yield* makeExecutor({ ...options, yieldToEventLoop }, store)
    yield* store.restore
    const schedule = scheduler(executor, handlers, codec, clock, yield* autoIds(clock))
    const base = control(executor)
    return {
      ...base,
      schedule: (task, options) => schedule(task, options, undefined),
      submit: (task, options) =>
        Effect.suspend(() => {
          const waiter = new Waiter()
          return Effect.zipRight(
            schedule(task, options, waiter),
            Effect.flatMap(Effect.exit(waiter.await()), (exit) => outcome(handlers.kinds, task, exit))
          )
        }),
      deadLetters: journal.deadLetters,
      // no durable task has the key "" (see `invalidIdOrKey`), and the journal names the default lane so
      pause: (key) => key === "" ? Effect.void : store.pause(key),
      // the journal forgets the halt first, so that once resume returns a restart finds the lane resumed
      resume: (key) => key === "" ? Effect.void : Effect.zipRight(store.unhalt(key), base.resume(key)),
      redrive: store.redrive,
      discard: journal.discard
    }
  })
