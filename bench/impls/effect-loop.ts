/**
 * (4) The bare Effect loop: `Queue.unbounded` + one forked worker doing `Queue.take` then
 * `Effect.retry(task, Schedule.exponential("10 millis").pipe(Schedule.jittered))`.
 * `submit` enqueues the task followed by completing a Deferred, then awaits it;
 * `flush` enqueues a sentinel task that completes a Deferred and waits for it.
 */
import { Deferred, Effect, Queue, Schedule } from "effect"
import type { EffectExecutor, EffectTask, Impl, RetryPolicy } from "./types.js"

const defaultRetry: RetryPolicy = Schedule.exponential("10 millis").pipe(Schedule.jittered)

const make = (retry: RetryPolicy = defaultRetry) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<EffectTask>()
    yield* Effect.forkScoped(
      Effect.forever(Effect.flatMap(Queue.take(queue), (task) => Effect.retry(task, retry)))
    )
    const executor: EffectExecutor = {
      within: (program) => program,
      schedule: (task) => Queue.offer(queue, task),
      submit: (task) =>
        Effect.flatMap(
          Deferred.make<unknown, unknown>(),
          (done) =>
            Effect.zipRight(
              Queue.offer(queue, Effect.flatMap(task, (a) => Deferred.succeed(done, a))),
              Deferred.await(done)
            )
        ),
      flush: Effect.flatMap(
        Deferred.make<void>(),
        (done) => Effect.zipRight(Queue.offer(queue, Deferred.succeed(done, undefined)), Deferred.await(done))
      )
    }
    return executor
  })

export const impl: Impl = { kind: "effect", name: "effect-loop", label: "bare Effect loop (Queue + retry)", make }
