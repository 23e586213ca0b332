/**
 * The durable journal: the storage port behind durable mode.
 *
 * A journal keeps every task that has been accepted but not yet finished, in
 * one global order (`seq`), so that a restarted process can pick up exactly
 * where the previous one stopped. Tasks that exhausted their retries are moved
 * to a dead-letter table, from which they can be redriven.
 *
 * This module holds the port (the `Journal` tag and its records), an in-memory
 * implementation for tests, and the errors. Durable backends live in their own
 * modules: `SqliteJournal` and `PgJournal`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * What `append` stores: one encoded task.
 *
 * - `id`: the task's identity; while a task with this id is pending or
 *   dead-lettered, appending the same id again is a no-op.
 * - `lane`: the lane the task runs in; `""` is the default lane.
 * - `tag`: the task kind, used to find its handler and schema.
 * - `payload`: the JSON text of the encoded task.
 * - `scheduledAt`: when the task was scheduled, in epoch milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface JournalEntry {
  readonly id: string
  readonly lane: string
  readonly tag: string
  readonly payload: string
  readonly scheduledAt: number
}

/**
 * A pending entry as the journal stores it: its global position `seq` and the
 * number of attempts that have failed so far.
 *
 * @since 0.1.0
 * @category models
 */
export interface JournalRecord extends JournalEntry {
  readonly seq: number
  readonly attempts: number
}

/**
 * A record that failed for good, with the reason and the time it was
 * dead-lettered (epoch milliseconds). It keeps the `seq` it had while pending.
 *
 * @since 0.1.0
 * @category models
 */
export interface DeadLetter extends JournalRecord {
  readonly reason: string
  readonly failedAt: number
}

/**
 * The outcome of appending one entry: its `seq`, and whether it was stored
 * now (`true`) or was already pending or dead-lettered (`false`, with the
 * existing record's `seq`).
 *
 * @since 0.1.0
 * @category models
 */
export interface AppendResult {
  readonly seq: number
  readonly inserted: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export declare namespace Journal {
  /**
   * The journal's operations. Every implementation (memory, SQLite,
   * PostgreSQL) has exactly these semantics:
   *
   * - `append` stores a batch in one transaction and answers in input order.
   *   `seq` is one global, strictly increasing order over every record ever
   *   appended (or redriven); a `seq` is never reused. An id that is already
   *   pending or dead-lettered is not stored again (`inserted: false` with the
   *   existing `seq`); an id repeated inside one batch is stored once, the
   *   first occurrence wins. Once a record completes it is deleted, so its id
   *   may be appended again and gets a new `seq` (BullMQ `jobId` semantics:
   *   ids deduplicate live work, not history).
   * - `attemptFailed` records the number of failed attempts of a pending record.
   * - `complete` deletes pending records, in one transaction.
   * - `deadLetter` moves a pending record to the dead-letter table atomically,
   *   keeping its `seq` and attempts; with `haltLane`, it records its lane as
   *   halted in the same transaction. The SQL journals store a NUL character
   *   of `reason` as U+FFFD (PostgreSQL cannot store it).
   * - `haltedLanes` lists the lanes recorded as halted; `unhalt` forgets one
   *   lane's halt, or every lane's when given `undefined`.
   * - `pending` and `deadLetters` list the records in `seq` order.
   * - `redrive` moves a dead letter back to pending with a new `seq` (so it
   *   runs after everything already in its lane) and zero attempts; it fails
   *   with `JournalNotFoundError` when no dead letter has that id.
   * - `discard` deletes a dead letter for good and answers with it, so its id
   *   may be scheduled again; it fails with `JournalNotFoundError` when no dead
   *   letter has that id.
   *
   * `attemptFailed`, `complete` and `deadLetter` ignore a `seq` that is not
   * pending, so replaying them is harmless.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    readonly append: (
      entries: ReadonlyArray<JournalEntry>
    ) => Effect.Effect<ReadonlyArray<AppendResult>, JournalError>
    readonly attemptFailed: (seq: number, attempts: number) => Effect.Effect<void, JournalError>
    readonly complete: (seqs: ReadonlyArray<number>) => Effect.Effect<void, JournalError>
    readonly deadLetter: (
      seq: number,
      reason: string,
      failedAt: number,
      haltLane?: boolean
    ) => Effect.Effect<void, JournalError>
    readonly haltedLanes: Effect.Effect<ReadonlyArray<string>, JournalError>
    readonly unhalt: (lane: string | undefined) => Effect.Effect<void, JournalError>
    readonly pending: Effect.Effect<ReadonlyArray<JournalRecord>, JournalError>
    readonly deadLetters: Effect.Effect<ReadonlyArray<DeadLetter>, JournalError>
    readonly redrive: (id: string) => Effect.Effect<JournalRecord, JournalError | JournalNotFoundError>
    readonly discard: (id: string) => Effect.Effect<DeadLetter, JournalError | JournalNotFoundError>
  }
}

/**
 * The journal port. Provide it with `Journal.layerMemory` (tests, no
 * durability), `SqliteJournal.layer` or `PgJournal.layer`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Journal } from "effect-sequent"
 *
 * const program = Effect.gen(function*() {
 *   const journal = yield* Journal
 *   const [result] = yield* journal.append([
 *     { id: "mail-1", lane: "", tag: "SendMail", payload: "{\"to\":\"a@b.c\"}", scheduledAt: 0 }
 *   ])
 *   yield* journal.complete([result.seq])
 * })
 *
 * Effect.runPromise(Effect.provide(program, Journal.layerMemory))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class Journal extends Context.Tag("effect-sequent/Journal")<Journal, Journal.Service>() {
  /**
   * An in-memory journal with the same semantics as the durable ones. Every
   * build of the layer starts empty.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerMemory: Layer.Layer<Journal> = Layer.sync(Journal, () => unsafeMakeMemory())
}

/**
 * Builds an empty in-memory journal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Journal.Service> = Effect.sync(() => unsafeMakeMemory())

/**
 * An in-memory journal; the same layer as `Journal.layerMemory`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Journal> = Journal.layerMemory

/**
 * The in-memory journal's records. Map iteration follows insertion, and a
 * record is always inserted with a seq larger than every seq before it, so
 * `pending` is kept in seq order.
 */
class MemoryRecords {
  private lastSeq = 0
  readonly pending = new Map<number, JournalRecord>()
  private readonly pendingIds = new Map<string, number>()
  readonly dead = new Map<number, DeadLetter>()
  private readonly deadIds = new Map<string, number>()
  readonly halted = new Set<string>()

  insert(entry: JournalEntry): JournalRecord {
    const { id, lane, payload, scheduledAt, tag } = entry
    const record: JournalRecord = { seq: ++this.lastSeq, id, lane, tag, payload, scheduledAt, attempts: 0 }
    this.pending.set(record.seq, record)
    this.pendingIds.set(record.id, record.seq)
    return record
  }

  append(entry: JournalEntry): AppendResult {
    const existing = this.pendingIds.get(entry.id) ?? this.deadIds.get(entry.id)
    if (existing !== undefined) return { seq: existing, inserted: false }
    return { seq: this.insert(entry).seq, inserted: true }
  }

  /** Removes the pending record `seq`, and answers with it. */
  take(seq: number): JournalRecord | undefined {
    const record = this.pending.get(seq)
    if (record === undefined) return undefined
    this.pending.delete(seq)
    this.pendingIds.delete(record.id)
    return record
  }

  deadLetter(seq: number, reason: string, failedAt: number, haltLane: boolean | undefined): void {
    const record = this.take(seq)
    if (record === undefined) return
    this.dead.set(seq, { ...record, reason, failedAt })
    this.deadIds.set(record.id, seq)
    if (haltLane === true) this.halted.add(record.lane)
  }

  /** Removes the dead letter of `id` and answers with it. */
  takeDeadLetter(id: string): Effect.Effect<DeadLetter, JournalNotFoundError> {
    const seq = this.deadIds.get(id)
    if (seq === undefined) return Effect.fail(new JournalNotFoundError({ id }))
    const letter = this.dead.get(seq)!
    this.dead.delete(seq)
    this.deadIds.delete(id)
    return Effect.succeed(letter)
  }
}

const unsafeMakeMemory = (): Journal.Service => {
  const records = new MemoryRecords()
  return Journal.of({
    append: (entries) => Effect.sync(() => entries.map((entry) => records.append(entry))),
    attemptFailed: (seq, attempts) =>
      Effect.sync(() => {
        const record = records.pending.get(seq)
        if (record !== undefined) records.pending.set(seq, { ...record, attempts })
      }),
    complete: (seqs) =>
      Effect.sync(() => {
        for (const seq of seqs) records.take(seq)
      }),
    deadLetter: (seq, reason, failedAt, haltLane) =>
      Effect.sync(() => records.deadLetter(seq, reason, failedAt, haltLane)),
    haltedLanes: Effect.sync(() => Array.from(records.halted).sort()),
    unhalt: (lane) =>
      Effect.sync(() => {
        if (lane === undefined) records.halted.clear()
        else records.halted.delete(lane)
      }),
    pending: Effect.sync(() => Array.from(records.pending.values())),
    deadLetters: Effect.sync(() => Array.from(records.dead.values()).sort((a, b) => a.seq - b.seq)),
    redrive: (id) => Effect.map(Effect.suspend(() => records.takeDeadLetter(id)), (letter) => records.insert(letter)),
    discard: (id) => Effect.suspend(() => records.takeDeadLetter(id))
  })
}

/**
 * The journal's storage failed: it could not be opened or migrated, or a
 * read or write did not go through. `reason` says what was being done;
 * `cause` is the underlying error.
 *
 * @since 0.1.0
 * @category errors
 */
export class JournalError extends Data.TaggedError("JournalError")<{
  readonly reason: string
  readonly cause?: unknown
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.cause === undefined ? this.reason : `${this.reason}: ${causeMessage(this.cause)}`
  }
}

/**
 * `redrive` or `discard` was asked for an id that has no dead letter.
 *
 * @since 0.1.0
 * @category errors
 */
export class JournalNotFoundError extends Data.TaggedError("JournalNotFoundError")<{
  readonly id: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `No dead letter with id ${JSON.stringify(this.id)} in the journal`
  }
}

/**
 * Another process (or another layer in this process) holds the journal. A
 * journal has a single owner at a time; the lock is released when its owner's
 * scope closes or its process dies.
 *
 * @since 0.1.0
 * @category errors
 */
export class JournalLockedError extends Data.TaggedError("JournalLockedError")<{
  readonly resource: string
  readonly cause?: unknown
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `The journal ${this.resource} is held by another process`
  }
}

const causeMessage = (cause: unknown): string => {
  if (cause instanceof Error) {
    const inner = (cause as { readonly cause?: unknown }).cause
    return inner instanceof Error && inner.message !== cause.message
      ? `${cause.message} (${inner.message})`
      : cause.message
  }
  return String(cause)
}
