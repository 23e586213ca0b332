/**
 * Per-op micro figures with mitata (one child per implementation):
 *  - roundtrip: enqueue ONE trivial task and await its outcome, 100 times in a row per mitata
 *    iteration (Effect world: `submit` inside one Effect.runPromise; Promise world: awaited add/push).
 *  - retry: ONE task that fails 3 times then succeeds with zero-delay retries, awaited, 10 per
 *    iteration (p-retry { retries: 3, minTimeout: 0, factor: 1 } vs Schedule.forever).
 * Reports ns per op (mitata's avg / p50 / p99 of an iteration, divided by the batch size).
 * Child: node --import tsx --expose-gc bench/micro.ts --impl=<name>
 */
import { Effect, Exit, Schedule, Scope } from "effect"
import { measure } from "mitata"
import pRetry from "p-retry"
import { loadImpl } from "./impls/index.js"
import type { EffectExecutor, RetryPolicy } from "./impls/types.js"
import { parseLogMode, withLogs } from "./logs.js"
import { FAILURES, pRetryOptions } from "./retry-options.js"
import { CheckError, main, parseArgs } from "./shared.js"

const ROUNDTRIP_BATCH = 100
const RETRY_BATCH = 10

const boom = new Error("transient failure")

interface PerOp {
  readonly avg: number
  readonly p50: number
  readonly p99: number
  readonly samples: number
}

const perOp = async (fn: () => Promise<unknown>, batch: number): Promise<PerOp> => {
  const stats = await measure(fn)
  return { avg: stats.avg / batch, p50: stats.p50 / batch, p99: stats.p99 / batch, samples: stats.samples.length }
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  const logs = parseLogMode(args["logs"])
  let ran = 0
  let attemptsTotal = 0
  const trivial = () => void ran++
  /** a fresh task that fails FAILURES times, then succeeds */
  const flaky = () => {
    let attempts = 0
    return (): boolean => {
      attemptsTotal++
      return ++attempts > FAILURES
    }
  }
  let roundtrip: PerOp
  let retry: PerOp
  switch (impl.kind) {
    case "floor": {
      const task = async () => trivial()
      roundtrip = await perOp(async () => {
        for (let i = 0; i < ROUNDTRIP_BATCH; i++) await task()
      }, ROUNDTRIP_BATCH)
      retry = await perOp(async () => {
        for (let i = 0; i < RETRY_BATCH; i++) {
          const attempt = flaky()
          await pRetry(async () => {
            if (!attempt()) throw boom
          }, pRetryOptions)
        }
      }, RETRY_BATCH)
      break
    }
    case "promise": {
      const executor = impl.make()
      roundtrip = await perOp(async () => {
        for (let i = 0; i < ROUNDTRIP_BATCH; i++) await executor.run(trivial)
      }, ROUNDTRIP_BATCH)
      retry = await perOp(async () => {
        for (let i = 0; i < RETRY_BATCH; i++) {
          const attempt = flaky()
          await executor.run(() =>
            pRetry(async () => {
              if (!attempt()) throw boom
            }, pRetryOptions)
          )
        }
      }, RETRY_BATCH)
      await executor.idle()
      break
    }
    case "effect": {
      const open = async (retryPolicy?: RetryPolicy) => {
        const scope = Effect.runSync(Scope.make())
        const executor: EffectExecutor = await Effect.runPromise(
          Scope.extend(impl.make(retryPolicy), scope).pipe(withLogs(logs))
        )
        return { executor, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
      }
      const plain = await open()
      const trivialEffect = Effect.sync(trivial)
      const roundtrips = plain.executor.within(Effect.gen(function*() {
        for (let i = 0; i < ROUNDTRIP_BATCH; i++) yield* plain.executor.submit(trivialEffect)
      }))
      roundtrip = await perOp(() => Effect.runPromise(roundtrips), ROUNDTRIP_BATCH)
      await plain.close()

      const retrying = await open(Schedule.forever)
      const failure = Effect.fail(boom)
      const retries = retrying.executor.within(Effect.gen(function*() {
        for (let i = 0; i < RETRY_BATCH; i++) {
          const attempt = flaky()
          yield* retrying.executor.submit(Effect.suspend(() => attempt() ? Effect.void : failure))
        }
      }))
      retry = await perOp(() => Effect.runPromise(retries), RETRY_BATCH)
      await retrying.close()
      break
    }
  }
  if (ran === 0 || attemptsTotal % (FAILURES + 1) !== 0) {
    throw new CheckError(
      `${impl.name}: ${ran} roundtrip tasks ran, ${attemptsTotal} retry attempts (not a multiple of ${FAILURES + 1})`
    )
  }
  return { impl: impl.name, logs, roundtrip, retry }
})
