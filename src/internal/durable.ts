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
import * as Random from "effect/Random"
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
import { refuseInDurableMode } from "./options.js"
import { makeCodec as makeOutcomeCodec, outcome } from "./outcome.js"
import { control, makeExecutor } from "./sequent.js"
import { sharingOf } from "./sharing.js"
import { invalidIdOrKey } from "./taskInput.js"
import { Waiter } from "./waiter.js"

type Handlers = TaskHandlers["Type"]
type Codec = ReturnType<typeof makeCodec>

/** How many durable executors this process has started: part of their ids, see `autoIds`. */
let lives = 0

/**
 * Ids for tasks scheduled without one. An id outlives its executor's life in
 * the journal (a pending task, a dead letter), and a task whose id the journal
 * holds is not stored again: so no two lives may share a prefix. It tells them
 * apart by the clock and by chance, and within one process by a count (a test
 * may fix both the clock and `Random`, and start one life after another).
 */
const autoIds = (clock: Clock.Clock) =>
  Effect.map(Effect.all([Random.nextInt, Random.nextInt]), ([a, b]) => {
    const prefix = [clock.unsafeCurrentTimeMillis(), a >>> 0, b >>> 0, ++lives].map((n) => n.toString(36)).join(".")
    let counter = 0
    return () => `auto:${prefix}:${++counter}`
  })

/** An executor's hold on its journal: taken before the executor is built, free again once it has stopped. */
interface Claim {
  executor: { readonly hasStopped: boolean } | undefined
}

/** The journals the durable executors of this process run on (see `claim`). */
const claims = new WeakMap<Journal.Service, Claim>()

/**
 * Takes `journal` for one executor, until it stops or its scope closes; fails
 * while another executor runs on it. Two would each restore and run every
 * pending task: each task twice, and no order within a lane.
 */
const claim = (journal: Journal.Service) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const held = claims.get(journal)
      if (held !== undefined && held.executor?.hasStopped !== true) {
        return Effect.fail(
          new JournalError({
            reason: "another durable executor runs on this journal: give each executor a journal of its own " +
              "(its own SQLite file, or its own tablePrefix)"
          })
        )
      }
      const taken: Claim = { executor: undefined }
      claims.set(journal, taken)
      return Effect.succeed(taken)
    }),
    (taken) =>
      Effect.sync(() => {
        // a later executor's claim stays
        if (claims.get(journal) === taken) claims.delete(journal)
      })
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
    const claimed = yield* claim(journal)
    const clock = yield* Effect.clock
    const codec = makeCodec(handlers.kinds)
    // an `Either` stays one, so that a store can queue a record decoded at once without an effect of its own
    const decode = (record: JournalRecord) => {
      const decoded = codec.decode(record.tag, record.payload)
      return JournalStore.isEither(decoded)
        ? Either.map(decoded, (task) => handlers.handle(task))
        : Effect.map(decoded, (task) => handlers.handle(task))
    }
    const tasks = { decode, context: handlers.context, outcomes: makeOutcomeCodec(handlers.kinds) }
    const sharing = sharingOf(journal)
    // a shared journal (PgJournal with `sharing`) runs only the lanes of the shards this instance owns
    const store = sharing === undefined
      ? yield* JournalStore.make(journal, tasks, clock)
      : yield* sharing.makeStore(tasks, clock)
    // Off unless asked for: every `schedule` already waits for its append to commit, which paces
    // the producers, and turns of the event loop split the journal's group commits.
    const yieldToEventLoop = options.yieldToEventLoop ?? false
    const executor = yield* makeExecutor({ ...options, yieldToEventLoop }, store)
    // once it has stopped, it runs nothing more: another may take the journal while this one's scope lives on
    claimed.executor = executor
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
      pause: store.pause,
      // the journal forgets the halt first, so that once resume returns a restart finds the lane resumed
      resume: (key) => Effect.zipRight(store.unhalt(key), base.resume(key)),
      redrive: store.redrive,
      discard: journal.discard
    }
  })
