/**
 * Memory: retained heap bytes per queued task — the queue's own overhead, not the task's.
 * The worker is parked on a first task that waits on a gate; then N tasks that all share ONE
 * pre-built task value are enqueued; full GC before and after; (heapUsed delta) / N.
 * The gate is then opened and every task must run exactly once (counted).
 * For the floor (no queue) the "queue" is a plain array of pending thunks drained by an await loop.
 * Child: node --import tsx --expose-gc bench/memory.ts --impl=<name> [--n=1000000]
 */
import { Deferred, Effect } from "effect"
import { loadImpl } from "./impls/index.js"
import { CheckError, intArg, main, parseArgs, settledHeap } from "./shared.js"

interface Sample {
  readonly before: number
  readonly after: number
  readonly ran: number
}

const args = parseArgs()
main(async () => {
  const impl = await loadImpl(args["impl"] ?? "")
  const n = intArg(args, "n", 1_000_000)
  let ran = 0
  let sample: Sample
  switch (impl.kind) {
    case "floor": {
      const shared = async () => void ran++
      const pending: Array<() => Promise<void>> = []
      const before = settledHeap()
      for (let i = 0; i < n; i++) pending.push(shared)
      const after = settledHeap()
      for (let i = 0; i < pending.length; i++) await pending[i]!()
      sample = { before, after, ran }
      break
    }
    case "promise": {
      const executor = impl.make()
      let open!: () => void
      const gate = new Promise<void>((resolve) => (open = resolve))
      let started = false
      executor.add(() => {
        started = true
        return gate
      })
      while (!started) await new Promise((resolve) => setImmediate(resolve))
      const shared = () => void ran++
      const before = settledHeap()
      for (let i = 0; i < n; i++) executor.add(shared)
      const after = settledHeap()
      open()
      await executor.idle()
      sample = { before, after, ran }
      break
    }
    case "effect": {
      sample = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const executor = yield* impl.make()
        return yield* executor.within(Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          let started = false
          yield* executor.schedule(Effect.suspend(() => {
            started = true
            return Deferred.await(gate)
          }))
          while (!started) yield* Effect.yieldNow()
          const shared = Effect.sync(() => void ran++)
          const before = settledHeap()
          for (let i = 0; i < n; i++) yield* executor.schedule(shared)
          const after = settledHeap()
          yield* Deferred.succeed(gate, undefined)
          yield* executor.flush
          return { before, after, ran }
        }))
      })))
      break
    }
  }
  if (sample.ran !== n) throw new CheckError(`${impl.name}: ${sample.ran} of ${n} shared tasks ran`)
  const delta = sample.after - sample.before
  return { impl: impl.name, n, bytes: delta, bytesPerTask: delta / n }
})
