/**
 * The mark a shared journal carries (`PgJournal` with `sharing`): how the
 * durable executor builds its store on it. The journal's public type stays
 * `Journal.Service`; the mark is a non-enumerable symbol property, and its
 * store comes with the journal, so the root entry point never loads the SQL
 * modules a shared journal is made of.
 *
 * @internal
 */
import type * as Clock from "effect/Clock"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Journal, JournalError } from "../Journal.js"
import type { JournalStore, Tasks } from "./durableStore.js"

/** @internal */
export const SharingTypeId: unique symbol = Symbol.for("effect-sequent/PgJournal/Sharing")

/**
 * One lane of a shared journal, as an operator sees it.
 *
 * @internal
 */
export interface LaneView {
  readonly lane: string
  readonly shard: number
  /** Its pending tasks. */
  readonly pending: number
  /** The id of the task at its head, and the attempts that task has failed so far. */
  readonly headId: string
  readonly headAttempts: number
  /** The id of the instance that owns the lane's shard now, if one does. */
  readonly owner: string | undefined
  /** Whether a give-up halted the lane (see `onGiveUp: "halt"`). */
  readonly halted: boolean
  /** Whether the lane is paused (`pause(key)` on any instance), until a `resume`. */
  readonly paused: boolean
}

/** @internal */
export interface SharedMode {
  /** The durable store on the shared journal: it runs the lanes of the shards this instance owns. */
  readonly makeStore: (tasks: Tasks, clock: Clock.Clock) => Effect.Effect<JournalStore, never, Scope.Scope>
  /** Every lane with pending tasks, journal-wide. */
  readonly lanes: Effect.Effect<ReadonlyArray<LaneView>, JournalError>
}

/** A copy of `journal` marked with its shared mode. */
export const withSharing = (journal: Journal.Service, mode: SharedMode): Journal.Service => {
  const marked = { ...journal }
  Object.defineProperty(marked, SharingTypeId, { value: mode, enumerable: false })
  return marked
}

/** The shared mode of a journal, if it has one. */
export const sharingOf = (journal: Journal.Service): SharedMode | undefined =>
  (journal as { readonly [SharingTypeId]?: SharedMode })[SharingTypeId]
