/**
 * Builds an executor on a store: decodes its options, wires the executor to
 * its observer and its fibers, and closes it with its scope. `Sequent.make`
 * is this on the in-memory store; `Durable.make` on a journal-backed one.
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { metrics } from "../Observability.js"
import type { ScheduleError, Sequent, SequentOptions, TaskOptions } from "../Sequent.js"
import { type SequentClosedError, type SequentFullError, SequentOptionError } from "../SequentError.js"
import { Executor } from "./executor.js"
import { noMetrics, Observer } from "./observer.js"
import { type Config, decodeExecutorOptions, defaultRetry, type ExecutorSettings, taskPolicy } from "./options.js"
import * as Store from "./store.js"
import { Waiter } from "./waiter.js"

/** Effect's built-in tracer, to tell whether another one is installed. */
const builtInTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

const makeObserver = <R>(settings: ExecutorSettings<R>) =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const tracer = yield* Effect.tracer
    const traced = settings.spans === "auto" ? tracer !== builtInTracer : settings.spans
    const sink = settings.metrics ? metrics(settings.name) : noMetrics
    return new Observer(sink, settings.laneMetrics, settings.eventBuffer, clock, traced ? tracer : undefined)
  })

/**
 * The executor's view of its settings. The `deadLetter` handler gets the
 * services of the context the executor is built in, not those of the last task.
 */
const configOf = <R>(settings: ExecutorSettings<R>, context: Context.Context<R>): Config => {
  const handler = settings.deadLetter
  return {
    name: settings.name,
    policy: { retry: settings.retry, timeout: undefined, isRetryable: undefined },
    concurrency: settings.concurrency,
    capacity: settings.capacity,
    onFull: settings.onFull,
    onGiveUp: settings.onGiveUp,
    deadLetter: handler === undefined
      ? undefined
      : (giveUp) => Effect.mapInputContext(handler(giveUp), (_: Context.Context<never>) => context),
    attemptLogLevel: settings.attemptLogLevel,
    grace: settings.closeGracePeriod,
    yieldToEventLoop: settings.yieldToEventLoop
  }
}

/**
 * Closing the scope flushes for at most the grace period, then stops, logging
 * a warning with the number of tasks dropped, if any, then ends the
 * executor's fibers. Closed by one of its own tasks, it stops at once, as
 * `stop` from a task does, and ends the fibers without waiting for them.
 */
const closeWithScope = <Entry, E>(
  executor: Executor<Entry, E>,
  grace: Duration.Duration,
  closeFibers: Effect.Effect<void>
) =>
  Effect.addFinalizer(() =>
    Effect.gen(function*() {
      if (yield* executor.calledFromTask) {
        // a task closes the scope: it cannot wait for the queue it is part of, nor for its own fiber
        yield* executor.stop
        return yield* Effect.asVoid(Effect.forkDaemon(closeFibers))
      }
      // finalizers run uninterruptibly: the flush must be made interruptible for the timeout to end it
      yield* Effect.timeoutOption(Effect.interruptible(executor.flush), grace)
      const dropped = yield* executor.stop
      if (dropped > 0) {
        yield* Effect.logWarning(
          `Sequent: closed after a ${Duration.format(grace)} grace period with ${dropped} task(s) dropped`
        )
      }
      yield* closeFibers
    })
  )

/**
 * An executor on `store`, running until the scope closes. Invalid options are
 * a programming error: the effect dies with a `SequentOptionError`.
 */
export const makeExecutor = <Entry, E, R>(
  options: SequentOptions<R>,
  store: Store.Store<Entry, E>
): Effect.Effect<Executor<Entry, E>, never, Scope.Scope | R> =>
  Effect.gen(function*() {
    const settings = yield* Effect.orDie(decodeExecutorOptions(options, defaultRetry))
    const config = configOf(settings, yield* Effect.context<R>())
    const observer = yield* makeObserver(settings)
    // a scope of their own, not a child of the executor's: only `closeWithScope` closes it, and from
    // inside a task it must not wait for them (an empty set before then holds nothing to close)
    const fiberScope = yield* Scope.make()
    const fibers = yield* Scope.extend(FiberSet.make<void, never>(), fiberScope)
    const run = yield* FiberSet.runtime(fibers)<never>()
    const interruptAll = Effect.asVoid(FiberSet.clear(fibers))
    const executor = new Executor(
      config,
      store,
      observer,
      run,
      yield* Effect.clock,
      interruptAll,
      yield* Effect.fiberId
    )
    yield* closeWithScope(executor, config.grace, Scope.close(fiberScope, Exit.void))
    return executor
  })

/**
 * Offers `task` with `context`, the caller's, under the policy its options
 * give it. What `schedule` and `submit` do, once they have the caller's context.
 */
const offerIn = <Entry, E>(
  executor: Executor<Entry, E>,
  task: Effect.Effect<unknown, unknown, unknown>,
  options: TaskOptions<any> | undefined,
  waiter: Waiter | undefined,
  entry: Entry,
  context: Context.Context<unknown>
): Effect.Effect<void, SequentClosedError | SequentFullError | SequentOptionError | E> => {
  const base = executor.config.policy
  if (options === undefined) return executor.offer(undefined, task, context, base, waiter, entry)
  const policy = taskPolicy(options, base)
  return policy instanceof SequentOptionError
    ? Effect.fail(policy)
    : executor.offer(options.key, task, context, policy, waiter, entry)
}

/**
 * The in-memory `schedule`: offers `task` with the caller's context (taken
 * now), under the policy its options give it.
 */
const schedule = (
  executor: Executor<void, never>,
  task: Effect.Effect<unknown, unknown, unknown>,
  options: TaskOptions<any> | undefined
): Effect.Effect<void, SequentClosedError | SequentFullError | SequentOptionError> =>
  Effect.withFiberRuntime((fiber) =>
    offerIn(executor, task, options, undefined, undefined, fiber.currentContext as Context.Context<unknown>)
  )

/** `submit` once it has the caller's context: offers the task with a waiter, then waits. */
const submitIn = (
  executor: Executor<void, never>,
  task: Effect.Effect<unknown, unknown, unknown>,
  options: TaskOptions<any> | undefined,
  context: Context.Context<unknown>
): Effect.Effect<unknown, unknown> => {
  const waiter = new Waiter()
  const offered = offerIn(executor, task, options, waiter, undefined, context)
  // the in-memory store's offer is done when it returns: wait at once
  return offered === Store.nothing ? waiter.await() : Effect.zipRight(offered, waiter.await())
}

/** The parts of the service that do not depend on how tasks are offered. */
export const control = <Entry, E>(executor: Executor<Entry, E>) => {
  const subscribe = executor.observer.subscribe
  return {
    flush: executor.flush,
    stop: Effect.asVoid(executor.stop),
    size: Effect.sync(() => executor.size),
    sizeOf: (key: string) => Effect.sync(() => executor.sizeOf(key)),
    pause: (key?: string) => Effect.sync(() => executor.pause(key)),
    resume: (key?: string) => Effect.sync(() => executor.resume(key)),
    laneCount: Effect.sync(() => executor.laneCount),
    status: Effect.sync(() => executor.status()),
    events: Stream.unwrapScoped(Effect.map(subscribe, Stream.fromQueue)),
    subscribe,
    metrics: metrics(executor.config.name)
  }
}

/**
 * The key under which a service built by `make` marks its own `schedule` with
 * its executor, so that the static accessor can offer to it directly: one
 * step of the run loop where a lookup of the service and then a call of its
 * method take four. A service whose `schedule` is not the one `make` built
 * (a test double, a wrapper) is called as it is.
 */
const executorKey: unique symbol = Symbol.for("effect-sequent/Sequent/executor")

interface Marked {
  readonly [executorKey]?: Executor<void, never>
}

const mark = <F extends Function>(f: F, executor: Executor<void, never>): F =>
  Object.assign(f, { [executorKey]: executor })

/**
 * `Sequent.schedule`: finds the service in the caller's context and offers to
 * it, in one step.
 */
export const accessSchedule = <I>(
  tag: Context.Tag<I, Sequent.Service>,
  task: Effect.Effect<unknown, unknown, unknown>,
  options: TaskOptions<any> | undefined
): Effect.Effect<void, unknown, unknown> =>
  Effect.withFiberRuntime((fiber) => {
    const context = fiber.currentContext as Context.Context<unknown>
    const service = Context.unsafeGet(context, tag)
    const executor = (service.schedule as Marked)[executorKey]
    return executor === undefined
      ? service.schedule(task, options)
      : offerIn(executor, task, options, undefined, undefined, context)
  })

/** `Sequent.submit`, as `Sequent.schedule` is built. */
export const accessSubmit = <I>(
  tag: Context.Tag<I, Sequent.Service>,
  task: Effect.Effect<unknown, unknown, unknown>,
  options: TaskOptions<any> | undefined
): Effect.Effect<unknown, unknown, unknown> =>
  Effect.withFiberRuntime((fiber) => {
    const context = fiber.currentContext as Context.Context<unknown>
    const service = Context.unsafeGet(context, tag)
    const executor = (service.submit as Marked)[executorKey]
    return executor === undefined ? service.submit(task, options) : submitIn(executor, task, options, context)
  })

/** The in-memory executor's service. */
export const make = <R = never>(
  options: SequentOptions<R> = {}
): Effect.Effect<Sequent.Service, never, Scope.Scope | R> =>
  Effect.map(makeExecutor(options, Store.memory), (executor): Sequent.Service => ({
    ...control(executor),
    schedule: mark(
      (task, options) => schedule(executor, task, options) as Effect.Effect<void, never>,
      executor
    ),
    submit: mark(
      (task, options) =>
        Effect.withFiberRuntime((fiber) =>
          submitIn(executor, task, options, fiber.currentContext as Context.Context<unknown>) as Effect.Effect<
            never,
            ScheduleError<{}>
          >
        ),
      executor
    )
  }))
