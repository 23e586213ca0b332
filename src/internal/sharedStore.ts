/**
 * The durable store on a shared journal (`PgJournal` with `sharing`): many
 * instances append to one journal, and each runs the lanes of the shards it
 * owns (see `pgShared.ts` for the locks and the fence).
 *
 * - `schedule` appends, wherever the lane runs, and counts nothing here: the
 *   task is the owner's once it is committed. An owner learns of new records
 *   by reading its shards after their cursors, when woken (its own appends,
 *   a NOTIFY from another instance's) or every `poll`.
 * - Completions, attempts and dead letters are written on the lock session,
 *   under the permit that also guards every change of ownership, and only for
 *   a job whose shard this instance still owns in the epoch it read the job
 *   in. A write whose session failed loses every shard: the session may be
 *   gone, and with it the locks.
 * - A lost shard's lanes are evicted from the executor at once, and its
 *   running tasks are interrupted; the shard is read again only once they
 *   have ended, so one lane never runs two tasks here.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { JournalEntry, JournalError } from "../Journal.js"
import { SequentDuplicateTaskError, SequentStoppedError } from "../SequentError.js"
import { makeBatcher } from "./batcher.js"
import { type JournalStore, laneOf, persist, type Tasks } from "./durableStore.js"
import type { Job } from "./lane.js"
import * as Pg from "./pgShared.js"
import type { Intake } from "./store.js"
import type { Waiter } from "./waiter.js"

const keyOf = (lane: string): string | undefined => lane === "" ? undefined : lane

/** Milliseconds between two reads of the halted lanes when nothing says one was lifted. */
const haltsEvery = 1_000

/** Records read at most per look at the journal. */
const fetchLimit = 5_000

/** One ownership of a shard: from taking its lock to losing or releasing it. */
interface Epoch {
  readonly shard: number
  alive: boolean
  /** The largest seq read from the shard in this epoch. */
  after: number
  /** Whether the shard's halted lanes have been read in this epoch. */
  haltsRead: boolean
  /** The shard's lanes halted here: by the journal's halts, or by a give-up of this epoch. */
  readonly halted: Set<string>
  /** Attempts of this epoch's tasks still running. */
  running: number
  /** The fibers of those attempts, interrupted when the epoch ends. */
  readonly tasks: Set<Fiber.RuntimeFiber<unknown, unknown>>
  /** The shard's earlier epochs here with tasks still running: the shard is read only once those have ended. */
  readonly previous: Epoch | undefined
  /** The lanes this epoch handed to the executor. */
  readonly lanes: Set<string>
}

interface Held {
  readonly epoch: Epoch
  readonly job: Job
  readonly lane: string
}

/** The lock session: a connection reserved for as long as it lives. */
interface Session {
  readonly run: Pg.Run
  readonly scope: Scope.CloseableScope
}

/** A `submit` waiting for its task to be read here. */
interface Pending {
  readonly waiter: Waiter
  readonly shard: number
}

/** Why a task of a lost shard stops: its lane is evicted, so no one sees this but the task. */
const moved = new SequentStoppedError({ attempts: 0 })

/** The shared store's state. Plain and mutable; every change is one synchronous step. */
class Shares {
  intake: Intake = undefined as unknown as Intake
  session: Session | undefined = undefined
  active = false
  readonly owned = new Map<number, Epoch>()
  readonly last = new Map<number, Epoch>()
  readonly held = new Map<number, Held>()
  readonly waiters = new Map<string, Pending>()
  /** Statements on the client's pool: reads and appends, which need no fence. */
  readonly pool: Pg.Run
  /** When the last look at the shards succeeded (the heartbeat is at most `heartbeat` older). */
  lastLook = 0
  /** Whether a resume elsewhere asked for the halted lanes to be read again, and when they last were. */
  haltsDue = false
  haltsReadAt = 0

  constructor(
    readonly sharing: Pg.Sharing,
    readonly fiberId: FiberId.FiberId,
    readonly clock: Clock.Clock,
    readonly wakeFetch: () => void,
    /** Open while the last look is recent; closed by whoever finds it stale, opened by the next look. */
    readonly fresh: Effect.Latch,
    readonly wakeShards: () => void
  ) {
    this.pool = (text, params) => sharing.sql.unsafe(text, params)
  }

  /**
   * Whether this instance can trust that it still owns its shards: its last
   * look is younger than half of `hungAfter`. After a pause (SIGSTOP, a
   * frozen VM) the clock has moved on and it is not, so nothing new starts
   * before a look has checked the lock session; the others may have ended
   * it meanwhile.
   */
  isFresh(): boolean {
    return this.clock.unsafeCurrentTimeMillis() - this.lastLook < this.config.hungAfter / 2
  }

  /** Waits until a look has confirmed the session, when the last one is too old. */
  readonly confirmed: Effect.Effect<void> = Effect.suspend(() => {
    if (this.isFresh()) return Effect.void
    this.fresh.unsafeClose()
    this.wakeShards()
    return this.fresh.await
  })

  looked(): void {
    const wasFresh = this.isFresh()
    this.lastLook = this.clock.unsafeCurrentTimeMillis()
    this.fresh.unsafeOpen()
    if (!wasFresh) this.wakeFetch()
  }

  get config() {
    return this.sharing.statements.config
  }

  acquire(shard: number): void {
    // the earlier epochs whose tasks still run: a chain only as long as those are
    let previous = this.last.get(shard)
    while (previous !== undefined && previous.running === 0) previous = previous.previous
    const epoch: Epoch = {
      shard,
      alive: true,
      after: 0,
      haltsRead: false,
      halted: new Set(),
      running: 0,
      tasks: new Set(),
      previous,
      lanes: new Set()
    }
    this.owned.set(shard, epoch)
    this.last.set(shard, epoch)
  }

  /** Gives up a shard here: its lanes leave the executor, its tasks stop, its waiters are answered. */
  lose(epoch: Epoch): void {
    if (!epoch.alive) return
    epoch.alive = false
    this.owned.delete(epoch.shard)
    for (const lane of epoch.lanes) this.intake.evict(keyOf(lane))
    for (const [seq, held] of this.held) if (held.epoch === epoch) this.held.delete(seq)
    for (const fiber of epoch.tasks) fiber.unsafeInterruptAsFork(this.fiberId)
    for (const [id, pending] of this.waiters) {
      if (pending.shard !== epoch.shard) continue
      this.waiters.delete(id)
      pending.waiter.done(Exit.fail(moved))
    }
  }

  loseAll(): Session | undefined {
    for (const epoch of Array.from(this.owned.values())) this.lose(epoch)
    const session = this.session
    this.session = undefined
    return session
  }

  /** Whether a write for `job` may commit: its shard is still owned in the epoch it was read in. */
  owns(job: Job): boolean {
    const held = this.held.get(job.seq)
    return held !== undefined && held.job === job && held.epoch.alive
  }

  /** A give-up that halts its lane: remembered, so that a resume elsewhere lifts it here. */
  gaveUp(job: Job, halt: boolean): void {
    const held = this.held.get(job.seq)
    if (halt && held !== undefined && held.job === job && held.epoch.alive) held.epoch.halted.add(held.lane)
  }

  finished(job: Job): void {
    const held = this.held.get(job.seq)
    if (held !== undefined && held.job === job) this.held.delete(job.seq)
  }

  /**
   * The task of a record, stopped when its epoch ends; the epoch counts it
   * while it runs. It runs in a fiber of its own, which `lose` interrupts: one
   * fork per task, where racing it against the epoch's end would take two.
   */
  guarded(epoch: Epoch, task: Effect.Effect<unknown, unknown>): Effect.Effect<unknown, unknown> {
    const confirmedTask = Effect.zipRight(this.confirmed, task)
    const ended = Effect.sync(() => {
      epoch.running--
      if (!epoch.alive && epoch.running === 0) this.wakeFetch()
    })
    return Effect.suspend(() => {
      if (!epoch.alive) return Effect.fail(moved)
      epoch.running++
      return Effect.ensuring(Effect.flatMap(Effect.fork(confirmedTask), (fiber) => awaitTask(epoch, fiber)), ended)
    })
  }

  /** The epochs whose shard can be read now: owned, and with no task of an earlier epoch still running. */
  readable(): Array<Epoch> {
    const out: Array<Epoch> = []
    for (const epoch of this.owned.values()) if (drained(epoch.previous)) out.push(epoch)
    return out
  }
}

/**
 * Waits for a task's fiber, which the epoch interrupts when it ends: the task
 * then fails with `moved`. Interrupted itself, it interrupts the task.
 */
const awaitTask = (epoch: Epoch, fiber: Fiber.RuntimeFiber<unknown, unknown>) => {
  // the epoch may have ended since the fork
  if (epoch.alive) epoch.tasks.add(fiber)
  else fiber.unsafeInterruptAsFork(fiber.id())
  return Fiber.await(fiber).pipe(
    Effect.onInterrupt(() => Fiber.interrupt(fiber)),
    Effect.ensuring(Effect.sync(() => epoch.tasks.delete(fiber))),
    Effect.flatMap((exit) =>
      Exit.isFailure(exit) && !epoch.alive && Cause.isInterruptedOnly(exit.cause) ? Effect.fail(moved) : exit
    )
  )
}

/** Whether no task of `epoch` or of an epoch before it still runs. */
const drained = (epoch: Epoch | undefined): boolean => {
  for (let at = epoch; at !== undefined; at = at.previous) if (at.running > 0) return false
  return true
}

/** Runs `text` on the session, or fails as a lost session would when there is none. */
const onSession = (shares: Shares, use: (run: Pg.Run) => Effect.Effect<unknown, SqlError>) =>
  shares.session === undefined ? Effect.void : Effect.asVoid(use(shares.session.run))

/** Ends a session: its locks first (a live session goes back to the pool), then the connection. */
const closeSession = (session: Session | undefined): Effect.Effect<void> =>
  session === undefined ? Effect.void : session.run(`SELECT pg_advisory_unlock_all()`, []).pipe(
    Effect.timeout(Duration.seconds(2)),
    Effect.ignore,
    Effect.zipRight(Scope.close(session.scope, Exit.void))
  )

const openSession = (shares: Shares, instance: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const connection = yield* Effect.onError(
      Scope.extend(shares.sharing.sql.reserve, scope),
      () => Scope.close(scope, Exit.void)
    )
    const run: Pg.Run = <A extends object>(text: string, params: ReadonlyArray<unknown>) =>
      connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<A>, SqlError>
    const session: Session = { run, scope }
    yield* Effect.onError(Pg.heartbeat(run, shares.sharing.statements, instance), () => closeSession(session))
    return session
  })

/** Shuffles the free shards, so that instances starting together try different ones. */
const shuffled = (free: Array<number>) => Effect.map(Random.shuffle(free), (chunk) => Array.from(chunk))

/**
 * One look at the shards, on the lock session, under the permit: heartbeat,
 * survey, then end hung instances, release the excess, take a fair share.
 */
const look = (shares: Shares, instance: string, clock: Clock.Clock, beat: { at: number }) =>
  Effect.gen(function*() {
    const s = shares.sharing.statements
    if (shares.session === undefined) {
      shares.session = yield* openSession(shares, instance)
      beat.at = clock.unsafeCurrentTimeMillis()
    }
    const run = shares.session.run
    const now = clock.unsafeCurrentTimeMillis()
    if (now - beat.at >= s.config.heartbeat) {
      yield* Pg.heartbeat(run, s, instance)
      beat.at = now
    }
    const seen = yield* Pg.survey(run, s)
    const order = yield* shuffled(Array.from({ length: s.config.shards }, (_, i) => i))
    const rank = new Map(order.map((shard, i) => [shard, i]))
    const holding = !shares.active || !shares.intake.accepting
    const plan = Pg.plan(seen, s.config.shards, new Set(shares.owned.keys()), (free) =>
      free.sort((a, b) =>
        rank.get(a)! - rank.get(b)!
      ), holding ? "hold" : "share")
    for (const hung of plan.terminate) {
      yield* endHung(run, s, hung)
    }
    if (plan.forget.length > 0) {
      yield* Pg.forget(run, s, plan.forget)
    }
    if (plan.release.length > 0) {
      for (const shard of plan.release) {
        shares.lose(shares.owned.get(shard)!)
      }
      yield* Pg.release(run, s, plan.release)
    }
    if (plan.take.length > 0) {
      const taken = yield* Pg.take(run, s, plan.take)
      for (const shard of taken) {
        shares.acquire(shard)
      }
      if (taken.length > 0) {
        shares.wakeFetch()
      }
    }
    shares.looked()
  })

/**
 * Ends the session of an instance that missed its heartbeats. Without the
 * privilege to (a superuser, the same role, or `pg_signal_backend`), the
 * statement fails on a session that is fine: it is logged, and the hung
 * instance's shards stay where they are until it dies or comes back.
 */
const endHung = (run: Pg.Run, s: Pg.Statements, hung: { readonly id: string; readonly pid: number }) =>
  Effect.zipRight(
    Effect.logWarning(`Sequent: instance ${hung.id} missed its heartbeats, ending its session`),
    Effect.catchAll(Pg.terminate(run, s, hung), (error) =>
      Effect.logWarning(`Sequent: could not end the session of instance ${hung.id}`, error))
  )

/**
 * Brings the halts of the readable shards in line with the journal's: halts
 * the lanes a shard has just been taken with, and lifts the halts another
 * instance lifted (`resume` anywhere). Reads the table when a shard has not
 * read it yet, when woken by a resume's NOTIFY, and at most `haltsEvery`
 * apart otherwise (for a client without LISTEN).
 */
const readHalts = (shares: Shares, epochs: ReadonlyArray<Epoch>) =>
  Effect.gen(function*() {
    const now = shares.clock.unsafeCurrentTimeMillis()
    const due = shares.haltsDue || now - shares.haltsReadAt >= haltsEvery
    if (!due && epochs.every((epoch) => epoch.haltsRead)) return
    shares.haltsDue = false
    shares.haltsReadAt = now
    const s = shares.sharing.statements
    const halted = new Set(yield* Pg.haltedLanes(shares.pool, s))
    for (const epoch of epochs) {
      if (!epoch.alive) continue
      for (const lane of epoch.halted) {
        if (halted.has(lane)) continue
        epoch.halted.delete(lane)
        shares.intake.unhalt(keyOf(lane))
      }
      if (epoch.haltsRead) continue
      epoch.haltsRead = true
      for (const lane of halted) {
        if (Pg.shardOf(lane, s.config.shards) !== epoch.shard) continue
        epoch.lanes.add(lane)
        epoch.halted.add(lane)
        shares.intake.halt(keyOf(lane))
      }
    }
  })

/** Hands a record read in `epoch` to the executor, or dead-letters one that cannot run. */
const hold = (shares: Shares, tasks: Tasks, clock: Clock.Clock, epoch: Epoch, record: Pg.SharedRecord) =>
  Effect.matchEffect(tasks.decode(record), {
    onFailure: (reason) =>
      Effect.zipRight(
        Effect.logError(`Sequent: stored task ${record.id} is dead-lettered: ${reason}`),
        onSession(shares, (run) =>
          Pg.deadLetter(run, shares.sharing.statements, {
            seq: record.seq,
            attempts: record.attempts,
            reason,
            failedAt: clock.unsafeCurrentTimeMillis()
          }, false))
      ),
    onSuccess: (task) =>
      Effect.sync(() => {
        const intake = shares.intake
        const pending = shares.waiters.get(record.id)
        if (pending !== undefined) shares.waiters.delete(record.id)
        const job = intake.job(shares.guarded(epoch, task), tasks.context, intake.config.policy, pending?.waiter)
        job.attempts = record.attempts
        job.seq = record.seq
        shares.held.set(record.seq, { epoch, job, lane: record.lane })
        epoch.lanes.add(record.lane)
        intake.restore(keyOf(record.lane), job)
      })
  })

/**
 * Reads the new records of the readable shards and queues them, until a read
 * comes back short of the limit. A record is queued only if its shard is
 * still owned in the epoch that asked for it.
 */
const fetchAll = (shares: Shares, tasks: Tasks, clock: Clock.Clock): Effect.Effect<void, SqlError> =>
  Effect.gen(function*() {
    if (!shares.active || !shares.intake.accepting || !shares.isFresh()) return
    const epochs = shares.readable()
    if (epochs.length === 0) return
    yield* readHalts(shares, epochs)
    const asked = new Map(epochs.map((epoch) => [epoch.shard, epoch]))
    const cursors = epochs.map((epoch) => [epoch.shard, epoch.after] as const)
    const records = yield* Pg.fetch(shares.pool, shares.sharing.statements, cursors, fetchLimit)
    for (const record of records) {
      const epoch = asked.get(record.shard)!
      if (!epoch.alive || !shares.intake.accepting || record.seq <= epoch.after) continue
      epoch.after = record.seq
      yield* Effect.catchAll(
        hold(shares, tasks, clock, epoch, record),
        (error) => Effect.logWarning(`Sequent: could not dead-letter stored task ${record.id}`, error)
      )
    }
    if (records.length === fetchLimit) yield* fetchAll(shares, tasks, clock)
  })

/** Waits for `latch` to open, or `millis`, then closes it for the next wait. */
const wakeOrPoll = (latch: Effect.Latch, millis: number) =>
  Effect.zipRight(Effect.timeoutOption(latch.await, Duration.millis(millis)), latch.close)

/** Follows the journal's NOTIFY channel: a release wakes the shard loop, an append its shards' owner. */
const follow = (shares: Shares, wakeShards: () => void) =>
  Option.match(shares.sharing.listen, {
    onNone: () => Effect.void,
    onSome: (listen) =>
      listen(shares.sharing.statements.channel).pipe(
        Stream.runForEach((payload) =>
          Effect.sync(() => {
            if (payload === "free") return wakeShards()
            if (payload === "*") return shares.wakeFetch()
            if (payload === "halts") {
              shares.haltsDue = true
              return shares.wakeFetch()
            }
            if (payload.split(",").some((shard) => shares.owned.has(Number(shard)))) shares.wakeFetch()
          })
        ),
        Effect.tapErrorCause((cause) => Effect.logDebug("Sequent: journal LISTEN failed, retrying", cause)),
        Effect.retry(Schedule.spaced(Duration.seconds(1))),
        Effect.ignore
      )
  })

/** An offered task on its way into the journal. */
interface Appending {
  readonly entry: JournalEntry
  readonly job: Job
  readonly waiter: Waiter | undefined
}

/** Answers one appended task: counts it out here (its owner counts it), and settles or keeps its waiter. */
const appended = (shares: Shares, appending: Appending, inserted: boolean) => {
  const { entry, job, waiter } = appending
  shares.intake.release(job, Exit.void)
  const shard = Pg.shardOf(entry.lane, shares.config.shards)
  if (waiter !== undefined && shares.waiters.get(entry.id)?.waiter === waiter) {
    if (!inserted) {
      shares.waiters.delete(entry.id)
      waiter.done(Exit.fail(new SequentDuplicateTaskError({ tag: entry.tag, id: entry.id })))
    } else if (!shares.owned.has(shard)) {
      // the task runs on another instance: this one cannot see its outcome
      shares.waiters.delete(entry.id)
      waiter.done(Exit.fail(moved))
    }
  }
  if (inserted && shares.owned.has(shard)) shares.wakeFetch()
}

/**
 * Appends a batch in one transaction. When the write fails, the journal says
 * which ids it holds: those count as appended, the rest fail.
 */
const appendBatch = (shares: Shares) => (batch: ReadonlyArray<Appending>) =>
  Effect.suspend(() => {
    for (const { entry, waiter } of batch) {
      if (waiter !== undefined) {
        shares.waiters.set(entry.id, { waiter, shard: Pg.shardOf(entry.lane, shares.config.shards) })
      }
    }
    return shares.sharing.journal.append(batch.map((appending) => appending.entry))
  }).pipe(
    Effect.map((results) =>
      results.map((result, index): Exit.Exit<void, JournalError> => {
        appended(shares, batch[index]!, result.inserted)
        return Exit.void
      })
    ),
    Effect.catchAll((error) =>
      Effect.map(
        persist(
          "append check",
          Pg.storedSeqs(
            shares.pool,
            shares.sharing.statements,
            batch.map((a) => a.entry.id)
          )
        ),
        (rows) => {
          const stored = new Set(rows.map((row) => row.id))
          return batch.map((appending): Exit.Exit<void, JournalError> => {
            if (stored.has(appending.entry.id)) {
              appended(shares, appending, true)
              return Exit.void
            }
            if (shares.waiters.get(appending.entry.id)?.waiter === appending.waiter) {
              shares.waiters.delete(appending.entry.id)
            }
            shares.intake.release(appending.job, Exit.void)
            return Exit.fail(error)
          })
        }
      )
    )
  )

/** Fenced writes: on the lock session, under the permit, only for the jobs this instance still owns. */
const fencing = (shares: Shares, permit: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>) =>
<A>(
  jobs: ReadonlyArray<Job>,
  write: (run: Pg.Run, jobs: ReadonlyArray<Job>) => Effect.Effect<A, SqlError>
): Effect.Effect<void, SqlError> =>
  permit(Effect.suspend(() => {
    const session = shares.session
    const owned = jobs.filter((job) => shares.owns(job))
    if (owned.length === 0 || session === undefined) return Effect.void
    // the session may be gone, and its locks with it: stop counting any shard as ours
    return Effect.asVoid(Effect.tapError(write(session.run, owned), () => closeSession(shares.loseAll())))
  }))

/** Hands every shard back on a clean shutdown, forgets this instance's heartbeat, and ends the session. */
const shutdown = (shares: Shares, instance: string) =>
  Effect.suspend(() => {
    const shards = Array.from(shares.owned.keys())
    const session = shares.loseAll()
    if (session === undefined) return Effect.void
    const s = shares.sharing.statements
    return Pg.release(session.run, s, shards).pipe(
      Effect.zipRight(Pg.forget(session.run, s, [instance])),
      Effect.timeout(Duration.seconds(5)),
      Effect.ignore,
      Effect.zipRight(closeSession(session))
    )
  })

/** The steps of a task the executor has the store write: fenced, each retried until it is written or dropped. */
const taskSteps = (
  shares: Shares,
  fenced: ReturnType<typeof fencing>,
  clock: Clock.Clock
): Effect.Effect<Pick<JournalStore, "attemptFailed" | "complete" | "giveUp">, never, Scope.Scope> =>
  Effect.gen(function*() {
    const s = shares.sharing.statements
    const complete = yield* makeBatcher((jobs: ReadonlyArray<Job>) =>
      Effect.as(
        fenced(jobs, (run, owned) => Pg.complete(run, s, owned.map((job) => job.seq))),
        jobs.map(() => undefined)
      )
    )
    const finished = (job: Job) => Effect.sync(() => shares.finished(job))
    return {
      attemptFailed: (job) =>
        persist("attempt", fenced([job], (run) => Pg.attemptFailed(run, s, job.seq, job.attempts))),
      complete: (job) => Effect.zipRight(persist("complete", complete(job)), finished(job)),
      giveUp: (job, cause, halt) =>
        persist(
          "dead letter",
          fenced([job], (run) =>
            Pg.deadLetter(run, s, {
              seq: job.seq,
              attempts: job.attempts,
              reason: Cause.pretty(cause),
              failedAt: clock.unsafeCurrentTimeMillis()
            }, halt))
        ).pipe(Effect.zipRight(Effect.sync(() => shares.gaveUp(job, halt))), Effect.zipRight(finished(job)))
    }
  })

/** The loop that looks at the shards every `poll`, or when woken. A failed look loses every shard. */
const shardLoop = (
  shares: Shares,
  instance: string,
  clock: Clock.Clock,
  permit: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>,
  latch: Effect.Latch
) => {
  const beat = { at: 0 }
  const once = permit(look(shares, instance, clock, beat)).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.logWarning(
        "Sequent: the journal's lock session failed; this instance owns no shard until it has a new one",
        cause
      ).pipe(Effect.zipRight(permit(Effect.suspend(() => closeSession(shares.loseAll())))))
    )
  )
  return Effect.forever(Effect.zipRight(once, wakeOrPoll(latch, shares.config.poll)))
}

/** The loop that reads the owned shards when woken, or every `poll`. */
const fetchLoop = (shares: Shares, tasks: Tasks, clock: Clock.Clock, latch: Effect.Latch) => {
  const once = fetchAll(shares, tasks, clock).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logWarning("Sequent: reading the shared journal failed, retrying", cause)
    )
  )
  return Effect.forever(Effect.zipRight(wakeOrPoll(latch, shares.config.poll), once))
}

/** An id for this instance, unique to its life. */
const instanceId = Effect.map(
  Effect.all([Random.nextInt, Random.nextInt]),
  ([a, b]) => `${(a >>> 0).toString(36)}${(b >>> 0).toString(36)}`
)

/**
 * The shared store. Its loops start now, but it takes no shard before
 * `restore` (the executor is built by then). On a clean shutdown it keeps its
 * shards while the executor flushes, then hands them all back at once.
 *
 * @internal
 */
export const make = (
  sharing: Pg.Sharing,
  tasks: Tasks,
  clock: Clock.Clock
): Effect.Effect<JournalStore, never, Scope.Scope> =>
  Effect.gen(function*() {
    const fetchLatch = yield* Effect.makeLatch(false)
    const shardLatch = yield* Effect.makeLatch(false)
    const shares = new Shares(
      sharing,
      yield* Effect.fiberId,
      clock,
      () => fetchLatch.unsafeOpen(),
      yield* Effect.makeLatch(false),
      () => shardLatch.unsafeOpen()
    )
    const instance = yield* instanceId
    const permit = (yield* Effect.makeSemaphore(1)).withPermits(1)
    // added first, so it runs last: after the executor has flushed and the loops have stopped
    yield* Effect.addFinalizer(() => permit(shutdown(shares, instance)))
    yield* Effect.forkScoped(shardLoop(shares, instance, clock, permit, shardLatch))
    yield* Effect.forkScoped(fetchLoop(shares, tasks, clock, fetchLatch))
    yield* Effect.forkScoped(follow(shares, shares.wakeShards))
    const append = yield* makeBatcher(appendBatch(shares))
    const store: JournalStore = {
      accept: (intake) => {
        shares.intake = intake
        return (_key, task, context, policy, waiter, entry) =>
          Effect.flatten(append({ entry, waiter, job: intake.job(task, context, policy, undefined) }))
      },
      ...(yield* taskSteps(shares, fencing(shares, permit), clock)),
      restore: Effect.sync(() => {
        shares.active = true
        shardLatch.unsafeOpen()
      }),
      redrive: (id) => Effect.asVoid(Effect.tap(sharing.journal.redrive(id), () => shares.wakeFetch())),
      unhalt: (key) => persist("resume", sharing.journal.unhalt(key === undefined ? undefined : laneOf(key)))
    }
    return store
  })
