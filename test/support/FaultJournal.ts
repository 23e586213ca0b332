/**
 * A `Journal` that fails on command, for fault tests: it wraps a real journal
 * and makes a chosen operation fail, either
 *
 * - `"before"` the call reaches the inner journal: nothing is written, the
 *   caller gets a `JournalError`; or
 * - `"after"` the inner call has succeeded (committed): the write happened,
 *   but its reply is lost, and the caller gets a `JournalError`;
 *
 * for the next `times` calls (`failNext`), or until `heal` (`failAlways`).
 * A fault may also be a defect instead of a `JournalError` (a driver that
 * throws), to check that nothing a journal raises goes unhandled.
 *
 * @example
 * ```ts
 * const test = Effect.gen(function*() {
 *   const control = yield* FaultJournal.FaultControl
 *   control.failNext("complete", "after") // the next completion commits, but its caller hears a failure
 *   // ... schedule, then check what ran and what the journal holds
 * }).pipe(Effect.provide(Durable.layer().pipe(Layer.provideMerge(FaultJournal.layer(Journal.layerMemory)))))
 * ```
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Journal, JournalError } from "../../src/Journal.js"

/** The operations of a journal that can be made to fail. */
export type Operation = keyof Journal.Service

/** Every operation, in the order of `Journal.Service`. */
export const operations: ReadonlyArray<Operation> = [
  "append",
  "attemptFailed",
  "complete",
  "deadLetter",
  "haltedLanes",
  "unhalt",
  "pending",
  "deadLetters",
  "redrive",
  "discard"
]

/** When an injected fault strikes: before the inner call (nothing happens), or after it succeeded (its reply is lost). */
export type Timing = "before" | "after"

/** What an injected fault is: a typed `JournalError`, or a defect (a driver that throws). */
export type FaultKind = "error" | "defect"

/** The switchboard of a fault journal. Its methods take effect at once; call them from anywhere. */
export interface Control {
  /** The next `times` calls of `operation` fail (`"after"`: the next `times` that succeed lose their reply). */
  readonly failNext: (operation: Operation, timing: Timing, times?: number, kind?: FaultKind) => void
  /** Every call of `operation` fails, until `heal`. */
  readonly failAlways: (operation: Operation, timing: Timing, kind?: FaultKind) => void
  /** Stops failing `operation`, or every operation. */
  readonly heal: (operation?: Operation) => void
  /** How many calls of `operation` reached the fault journal. */
  readonly calls: (operation: Operation) => number
  /** How many faults were injected into calls of `operation`. */
  readonly injected: (operation: Operation) => number
  /** Waits until `operation` has had `count` faults injected in all (default: one more than now). */
  readonly awaitInjected: (operation: Operation, count?: number) => Effect.Effect<void>
}

/** The control of the fault journal in context. */
export class FaultControl
  extends Context.Tag("effect-sequent/test/FaultJournal/FaultControl")<FaultControl, Control>()
{}

interface Armed {
  readonly timing: Timing
  readonly kind: FaultKind
  /** Faults left to inject; `Infinity` until healed. */
  left: number
}

/** The fault journal over `inner`, and its control. */
export const make = (inner: Journal.Service): { readonly journal: Journal.Service; readonly control: Control } => {
  const armed = new Map<Operation, Armed>()
  const calls = new Map<Operation, number>()
  const injected = new Map<Operation, number>()
  const waiters: Array<{ readonly operation: Operation; readonly count: number; readonly resume: () => void }> = []

  /** Takes one fault of `timing` armed for `operation`, if there is one left. */
  const take = (operation: Operation, timing: Timing): Armed | undefined => {
    const fault = armed.get(operation)
    if (fault === undefined || fault.timing !== timing || fault.left <= 0) return undefined
    fault.left--
    if (fault.left <= 0) armed.delete(operation)
    const count = (injected.get(operation) ?? 0) + 1
    injected.set(operation, count)
    for (let i = waiters.length - 1; i >= 0; i--) {
      const waiter = waiters[i]!
      if (waiter.operation === operation && waiter.count <= count) {
        waiters.splice(i, 1)
        waiter.resume()
      }
    }
    return fault
  }

  const failure = (operation: Operation, fault: Armed): Effect.Effect<never, JournalError> => {
    const message = `injected fault: ${operation} failed ${
      fault.timing === "before" ? "before reaching" : "after"
    } the journal`
    return fault.kind === "error" ? Effect.fail(new JournalError({ reason: message })) : Effect.die(new Error(message))
  }

  /** `call`, with the faults armed for `operation`. */
  const faulty = <A, E>(operation: Operation, call: () => Effect.Effect<A, E>): Effect.Effect<A, E | JournalError> =>
    Effect.suspend(() => {
      calls.set(operation, (calls.get(operation) ?? 0) + 1)
      const before = take(operation, "before")
      if (before !== undefined) return failure(operation, before)
      return Effect.flatMap(call(), (value) => {
        const after = take(operation, "after")
        return after === undefined ? Effect.succeed(value) : failure(operation, after)
      })
    })

  const journal: Journal.Service = {
    append: (entries) => faulty("append", () => inner.append(entries)),
    attemptFailed: (seq, attempts) => faulty("attemptFailed", () => inner.attemptFailed(seq, attempts)),
    complete: (seqs) => faulty("complete", () => inner.complete(seqs)),
    deadLetter: (seq, reason, failedAt, haltLane) =>
      faulty("deadLetter", () => inner.deadLetter(seq, reason, failedAt, haltLane)),
    haltedLanes: faulty("haltedLanes", () => inner.haltedLanes),
    unhalt: (lane) => faulty("unhalt", () => inner.unhalt(lane)),
    pending: faulty("pending", () => inner.pending),
    deadLetters: faulty("deadLetters", () => inner.deadLetters),
    redrive: (id) => faulty("redrive", () => inner.redrive(id)),
    discard: (id) => faulty("discard", () => inner.discard(id))
  }

  const control: Control = {
    failNext: (operation, timing, times = 1, kind = "error") => {
      armed.set(operation, { timing, kind, left: times })
    },
    failAlways: (operation, timing, kind = "error") => {
      armed.set(operation, { timing, kind, left: Infinity })
    },
    heal: (operation) => {
      if (operation === undefined) armed.clear()
      else armed.delete(operation)
    },
    calls: (operation) => calls.get(operation) ?? 0,
    injected: (operation) => injected.get(operation) ?? 0,
    awaitInjected: (operation, count) =>
      Effect.async<void>((resume) => {
        const target = count ?? (injected.get(operation) ?? 0) + 1
        if ((injected.get(operation) ?? 0) >= target) return resume(Effect.void)
        const waiter = { operation, count: target, resume: () => resume(Effect.void) }
        waiters.push(waiter)
        return Effect.sync(() => {
          const index = waiters.indexOf(waiter)
          if (index >= 0) waiters.splice(index, 1)
        })
      })
  }
  return { journal, control }
}

/**
 * The fault journal over the journal `inner` builds, with its `FaultControl`.
 * Every build wraps a new inner journal.
 */
export const layer = <E, R>(inner: Layer.Layer<Journal, E, R>): Layer.Layer<Journal | FaultControl, E, R> =>
  Layer.effectContext(
    Effect.map(Journal, (journal) => {
      const faults = make(journal)
      return Context.make(Journal, faults.journal).pipe(Context.add(FaultControl, faults.control))
    })
  ).pipe(Layer.provide(inner))
