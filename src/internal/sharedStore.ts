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
 *   have ended, so one lane never runs two tasks here. A shard handed over on
 *   a rebalance goes gracefully: its running attempt may end and commit here
 *   first.
 * - A `submit`'s record names this instance; whoever ends the task keeps its
 *   outcome for it, in the statement that ends it, and this instance takes
 *   the outcomes kept for it (woken by NOTIFY, or every `poll`).
 * - `pause` is kept in the journal; every owner reads the halts and pauses
 *   of its shards. `flush` reads on until this instance's own tasks have
 *   ended wherever they ran, then hands every shard over and leaves.
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type JournalEntry, JournalError, JournalLockedError } from "../Journal.js"
import { SequentDuplicateTaskError, SequentOutcomeError, SequentStoppedError } from "../SequentError.js"
import { Appended } from "./appended.js"
import { makeBatcher } from "./batcher.js"
import { appendUnanswered, isEither, type JournalStore, laneOf, persist, type Tasks } from "./durableStore.js"
import { eventLoopTurn } from "./eventLoop.js"
import type { Job } from "./lane.js"
import { lifeId } from "./lifeId.js"
import * as Pg from "./pgShared.js"
import type { Intake } from "./store.js"
import type { Waiter } from "./waiter.js"

const keyOf = (lane: string): string | undefined => lane === "" ? undefined : lane

/** Milliseconds between two reads of the halted lanes when nothing says one was lifted. */
const haltsEvery = 1_000

/**
 * How long a shard being handed over on a rebalance waits for its running
 * attempt to end before its lock goes anyway (and the attempt is stopped).
 */
const releaseGrace = (config: Pg.SharingConfig) => Math.min(5_000, config.hungAfter / 2)

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
  /**
   * The shard's lanes blocked here, `true` for a pause: by the journal's
   * halts and pauses, or by a give-up of this epoch.
   */
  readonly halted: Map<string, boolean>
  /** Attempts of this epoch's tasks still running. */
  running: number
  /**
   * Attempts of this epoch that succeeded and whose completion is not written
   * yet: a shard handed over keeps its lock until they are, or its tasks would
   * run again where it goes.
   */
  committing: number
  /** The fibers of those attempts, interrupted when the epoch ends. */
  readonly tasks: Set<Fiber.RuntimeFiber<unknown, unknown>>
  /** The shard's earlier epochs here with tasks still running: the shard is read only once those have ended. */
  readonly previous: Epoch | undefined
  /** The lanes this epoch handed to the executor. */
  readonly lanes: Set<string>
  /** Once a rebalance hands the shard over: when its lock goes at the latest, if its attempts have not ended. */
  releaseBy: number | undefined
}

interface Held {
  readonly epoch: Epoch
  readonly job: Job
  readonly record: Pg.SharedRecord
}

/** The lock session: a connection reserved for as long as it lives. */
interface Session {
  readonly run: Pg.Run
  readonly scope: Scope.CloseableScope
}

/** A `submit` caller of this instance: the seq of its task once its append has answered (it is stored then). */
interface Awaiting {
  readonly waiter: Waiter
  readonly tag: string
  seq: number | undefined
}

/** Why a task of a lost shard stops: its lane is evicted, so no one sees this but the task. */
const moved = new SequentStoppedError({ attempts: 0 })

/** What a `submit` still waiting when the instance shuts down gets: no outcome can reach it any more. */
const shutDown = new SequentStoppedError({ attempts: 0 })

/** The shared store's state. Plain and mutable; every change is one synchronous step. */
class Shares {
  intake: Intake = undefined as unknown as Intake
  session: Session | undefined = undefined
  active = false
  readonly owned = new Map<number, Epoch>()
  readonly last = new Map<number, Epoch>()
  readonly held = new Map<number, Held>()
  /**
   * The `submit` callers of this instance, by task id, from their append
   * until their outcome: a job read here carries its caller's waiter, and an
   * outcome kept by another instance answers it.
   */
  readonly awaiting = new Map<string, Awaiting>()
  /**
   * Outcomes taken for callers whose append had not answered yet: whether one
   * is theirs, its seq tells once the append has answered.
   */
  readonly early = new Map<string, Pg.KeptOutcome>()
  /** Whether an outcome was kept for this instance since it last took them, and when it last did. */
  outcomesDue = false
  outcomesTakenAt = 0
  /** When the callers were last checked for an outcome that cannot come. */
  lostCheckedAt = 0
  /** Statements on the client's pool: reads and appends, which need no fence. */
  readonly pool: Pg.Run
  /**
   * When this instance sent the last heartbeat the server has confirmed: the
   * others judge it by that heartbeat, whatever looks came after.
   */
  beatAt = 0
  /**
   * Whether a look outlived `trustedUntil`: this instance gave up its shards
   * then, and ends the session once the look ends.
   */
  fenced = false
  /** What this instance appended and has not seen end: a flush waits for it. */
  readonly appended = new Appended()
  /** While a flush waits for this instance's tasks: the owned shards are still read. */
  draining = false
  /** Once a flush has seen this instance's tasks end: its shards are handed over as soon as it holds no task. */
  handingOver = false
  /** Whether the journal pauses every lane, as last read. */
  pausedAll = false
  /** Whether a resume elsewhere asked for the halted lanes to be read again, and when they last were. */
  haltsDue = false
  haltsReadAt = 0

  constructor(
    readonly instance: string,
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
   * Until when this instance can trust that it still owns its shards, by its
   * own clock. The others end its session once its last heartbeat is
   * `hungAfter` old; a look writes a new one once the last is `heartbeat`
   * old. So trust lasts `heartbeat` beyond that, plus half of the rest of
   * `hungAfter`: the other half is the margin in which this instance stops
   * its tasks before anyone can run them elsewhere.
   */
  trustedUntil(): number {
    return this.beatAt + this.config.heartbeat + this.trustMargin()
  }

  /** Half of what `hungAfter` leaves beyond a heartbeat: how far trust reaches past it, and how far short of `hungAfter` it ends. */
  trustMargin(): number {
    const { heartbeat, hungAfter } = this.config
    return (hungAfter - heartbeat) / 2
  }

  /**
   * Whether this instance can trust that it still owns its shards. After a
   * pause (SIGSTOP, a frozen VM) the clock has moved on and it cannot, so
   * nothing new starts before a look has checked the lock session; the
   * others may have ended it meanwhile.
   */
  isFresh(): boolean {
    return this.clock.unsafeCurrentTimeMillis() < this.trustedUntil()
  }

  /** Waits until a look has confirmed the session, when the last one is too old. */
  readonly confirmed: Effect.Effect<void> = Effect.suspend(() => {
    if (this.isFresh()) return Effect.void
    this.fresh.unsafeClose()
    this.wakeShards()
    return this.fresh.await
  })

  /** A look has confirmed the session; `wasFresh`, whether this instance still trusted it when the look began. */
  looked(wasFresh: boolean): void {
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
      halted: new Map(),
      running: 0,
      committing: 0,
      tasks: new Set(),
      previous,
      lanes: new Set(),
      releaseBy: undefined
    }
    this.owned.set(shard, epoch)
    this.last.set(shard, epoch)
  }

  /**
   * Gives up a shard here: its lanes leave the executor and its tasks stop.
   * Their callers keep waiting: the shard's next owner runs the tasks, and
   * keeps their outcomes for them.
   */
  lose(epoch: Epoch): void {
    if (!epoch.alive) return
    epoch.alive = false
    this.owned.delete(epoch.shard)
    for (const [seq, held] of this.held) {
      if (held.epoch !== epoch) continue
      held.job.waiter = undefined
      this.held.delete(seq)
    }
    for (const lane of epoch.lanes) this.intake.evict(keyOf(lane))
    for (const fiber of epoch.tasks) fiber.unsafeInterruptAsFork(this.fiberId)
  }

  private loseShards(): void {
    for (const epoch of Array.from(this.owned.values())) this.lose(epoch)
  }

  /** Gives up every shard while a look still runs on the session, which its end closes. Whether there were any. */
  fence(): boolean {
    if (this.owned.size === 0) return false
    this.fenced = true
    this.loseShards()
    return true
  }

  loseAll(): Session | undefined {
    this.loseShards()
    this.fenced = false
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
    if (halt && held !== undefined && held.job === job && held.epoch.alive) {
      held.epoch.halted.set(held.record.lane, false)
    }
  }

  /** Blocks a lane of `epoch` as the journal does: paused, or halted by a give-up. */
  block(epoch: Epoch, lane: string, paused: boolean): void {
    epoch.lanes.add(lane)
    epoch.halted.set(lane, paused)
    if (paused) this.intake.pause(keyOf(lane))
    else this.intake.halt(keyOf(lane))
  }

  /** Lifts a lane's pause or halt that the journal no longer has. */
  lift(epoch: Epoch, lane: string, paused: boolean): void {
    epoch.halted.delete(lane)
    if (paused) this.intake.resume(keyOf(lane))
    else this.intake.unhalt(keyOf(lane))
  }

  /**
   * Pauses or resumes every lane here, as the journal says. A resume of
   * every lane lifts every halt too, so the shards' halts are applied again
   * from the journal's on the same read.
   */
  pauseAll(paused: boolean): void {
    this.pausedAll = paused
    if (paused) return this.intake.pause(undefined)
    this.intake.resume(undefined)
    for (const epoch of this.owned.values()) epoch.halted.clear()
  }

  /** A pause asked for here, applied at once when this instance runs the lane (every lane with `undefined`). */
  pausedHere(key: string | undefined): void {
    if (key === undefined) {
      if (!this.pausedAll) this.pauseAll(true)
      return
    }
    const lane = laneOf(key)
    const epoch = this.owned.get(Pg.shardOf(lane, this.config.shards))
    if (epoch !== undefined && !epoch.halted.has(lane)) this.block(epoch, lane, true)
  }

  /** A job whose end is written: its caller, if it is here, is answered by the executor. */
  finished(job: Job): void {
    const held = this.held.get(job.seq)
    if (held === undefined || held.job !== job) return
    this.held.delete(job.seq)
    if (job.waiter !== undefined) this.awaiting.delete(held.record.id)
    this.appended.ended(held.record.lane, job.seq)
    if (this.handingOver && this.held.size === 0) this.wakeShards()
  }

  /** Whether a flush is over and this instance holds no task: it owns shards for nothing. */
  get handedOver(): boolean {
    return this.handingOver && this.held.size === 0
  }

  /** Whether a caller (here or elsewhere) waits for the outcome of `job`, as `outcomeFor` sees it. */
  awaited(job: Job): boolean {
    const held = this.held.get(job.seq)
    return held !== undefined && held.job === job && held.record.awaitedBy !== undefined
  }

  /**
   * The outcome to keep for the caller of a job, with its end; `undefined`
   * for a job nobody waits for. Kept even when the caller is here and the
   * executor answers it: the lane may be lost between the write and that
   * answer (which then never comes), and an outcome taken for a caller already
   * answered is dropped.
   */
  outcomeFor(job: Job, exit: () => Exit.Exit<unknown, unknown>, tasks: Tasks): Effect.Effect<Pg.Outcome | undefined> {
    const held = this.held.get(job.seq)
    const awaitedBy = held?.record.awaitedBy
    if (held === undefined || held.job !== job || awaitedBy === undefined) return Effect.succeed(undefined)
    const { id, tag } = held.record
    return Effect.map(tasks.outcomes.encode(tag, exit()), (text) => ({ id, awaitedBy, tag, exit: text }))
  }

  /**
   * The task of a record, stopped when its epoch ends; the epoch counts it
   * while it runs. It runs in a fiber of its own, which `lose` interrupts: one
   * fiber per task, where racing it against the epoch's end would take two.
   * The fiber starts at once, in this step, with this fiber's services and
   * refs (as a fork would give it): a task that ends in its first step needs
   * neither a turn of the scheduler to start nor a wait. The start and the
   * count are one uninterruptible step, so no interruption can come between
   * them; only the wait, and the task (which would inherit the step's flags),
   * can be interrupted.
   */
  guarded(epoch: Epoch, task: Effect.Effect<unknown, unknown>): Effect.Effect<unknown, unknown> {
    const confirmedTask = Effect.interruptible(Effect.zipRight(this.confirmed, task))
    return Effect.uninterruptible(Effect.flatMap(Effect.runtime<never>(), (runtime) => {
      if (!epoch.alive) return Effect.fail(moved)
      return awaitTask(this, epoch, Runtime.runFork(runtime, confirmedTask))
    }))
  }

  /** A task of `epoch` has ended: once none runs, the shard can be read again, or handed over. */
  ended(epoch: Epoch, fiber: Fiber.RuntimeFiber<unknown, unknown>, exit: Exit.Exit<unknown, unknown>): void {
    epoch.tasks.delete(fiber)
    epoch.running--
    this.succeeded(epoch, exit)
    if (epoch.running > 0) return
    if (!epoch.alive) this.wakeFetch()
    else if (epoch.releaseBy !== undefined) this.wakeShards()
  }

  /** Counts an attempt of `epoch` that succeeded until its completion is written (`false` is a failure). */
  succeeded(epoch: Epoch, exit: Exit.Exit<unknown, unknown>): void {
    if (Exit.isSuccess(exit) && exit.value !== false) epoch.committing++
  }

  /** The completion of `job` is written, or was not written because its shard is no longer owned here. */
  committed(job: Job): void {
    const held = this.held.get(job.seq)
    if (held === undefined || held.job !== job || held.epoch.committing === 0) return
    const epoch = held.epoch
    epoch.committing--
    if (epoch.releaseBy !== undefined && epoch.running === 0 && epoch.committing === 0) this.wakeShards()
  }

  /** The epochs whose shard can be read now: owned, not being handed over, and with no task of an earlier epoch still running. */
  readable(): Array<Epoch> {
    const out: Array<Epoch> = []
    for (const epoch of this.owned.values()) {
      if (epoch.releaseBy === undefined && drained(epoch.previous)) out.push(epoch)
    }
    return out
  }

  /**
   * Starts handing a shard over on a rebalance, gracefully: nothing more of
   * it is read or started here, its lanes leave the executor, and a task
   * running in it may end here (and commit) before the lock goes, so that it
   * does not run twice. Its callers wait on, for an outcome kept by whichever
   * instance runs their task.
   */
  beginRelease(epoch: Epoch, by: number): void {
    if (epoch.releaseBy !== undefined) return
    epoch.releaseBy = by
    for (const held of this.held.values()) if (held.epoch === epoch) held.job.waiter = undefined
    for (const lane of epoch.lanes) this.intake.evict(keyOf(lane))
  }

  /**
   * The shards being handed over whose lock can go now: their attempts have
   * ended and their completions are written, or the grace is over.
   */
  releasable(now: number): Array<Epoch> {
    const out: Array<Epoch> = []
    for (const epoch of this.owned.values()) {
      if (epoch.releaseBy === undefined) continue
      if ((epoch.running === 0 && epoch.committing === 0) || now >= epoch.releaseBy) out.push(epoch)
    }
    return out
  }
}

/** A task's end: interrupted because its epoch ended, it fails with `moved`. */
const endOf = (epoch: Epoch, exit: Exit.Exit<unknown, unknown>): Effect.Effect<unknown, unknown> =>
  Exit.isFailure(exit) && !epoch.alive && Cause.isInterruptedOnly(exit.cause) ? Effect.fail(moved) : exit

/**
 * The end of a task's fiber, started at once: at once for a task that has
 * already ended; otherwise the fiber counts in its epoch until it ends, and
 * this waits for it (the epoch interrupts it when it ends). Interrupted
 * itself, the wait interrupts the task. The wait is the one asynchronous
 * step, resumed by the fiber's end (no `Fiber.await` and finalizers of its
 * own per task).
 */
const awaitTask = (shares: Shares, epoch: Epoch, fiber: Fiber.RuntimeFiber<unknown, unknown>) => {
  const exit = fiber.unsafePoll()
  if (exit !== null) {
    shares.succeeded(epoch, exit)
    return endOf(epoch, exit)
  }
  epoch.running++
  epoch.tasks.add(fiber)
  // the epoch may have ended while the task took its first step
  if (!epoch.alive) fiber.unsafeInterruptAsFork(fiber.id())
  fiber.addObserver((end) => shares.ended(epoch, fiber, end))
  return Effect.interruptible(Effect.async<unknown, unknown>((resume) => {
    fiber.addObserver((end) => resume(endOf(epoch, end)))
    return Fiber.interrupt(fiber)
  }))
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
  session === undefined
    ? Effect.void
    : Effect.zipRight(
      Pg.bounded(session.run(`SELECT pg_advisory_unlock_all()`, []), 2_000),
      Scope.close(session.scope, Exit.void)
    )

/**
 * Has the server check, every second while a statement of the lock session
 * runs or waits, that this instance is still connected (PostgreSQL 14 and
 * later; older servers refuse it, and it is skipped). Without it, a killed
 * instance whose session was in a statement (waiting for a row lock, say)
 * would keep its shards until the statement ended or `hungAfter` passed.
 */
const checkClient = "SET client_connection_check_interval = 1000"

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
    const s = shares.sharing.statements
    yield* Effect.ignore(run(checkClient, []))
    yield* Effect.onError(
      Effect.zipRight(
        Effect.filterOrFail(Pg.holdMode(run, s), (held) =>
          held, () =>
          new JournalLockedError({ resource: `PostgreSQL tables ${s.mode[1]}* (held by a single owner)` })),
        Pg.heartbeat(run, s, instance)
      ),
      () =>
        closeSession(session)
    )
    return session
  })

/** Shuffles the free shards, so that instances starting together try different ones. */
const shuffled = (free: Array<number>) => Effect.map(Random.shuffle(free), (chunk) => Array.from(chunk))

/**
 * One look at the shards, on the lock session, under the permit: heartbeat,
 * survey, then end hung instances, release the excess, take a fair share.
 */
const look = (shares: Shares, instance: string, clock: Clock.Clock) =>
  Effect.gen(function*() {
    const s = shares.sharing.statements
    // after a flush, the instance leaves as a clean shutdown does: it no longer counts in anyone's fair share
    if (shares.handedOver) return yield* shutdown(shares, instance)
    const wasFresh = shares.isFresh()
    if (shares.session === undefined) {
      const opening = clock.unsafeCurrentTimeMillis()
      shares.session = yield* openSession(shares, instance)
      shares.beatAt = opening
    }
    const run = shares.session.run
    const now = clock.unsafeCurrentTimeMillis()
    if (now - shares.beatAt >= s.config.heartbeat) {
      yield* Pg.heartbeat(run, s, instance)
      shares.beatAt = now
    }
    const seen = yield* Pg.survey(run, s)
    const moved = Pg.sessionMoved(seen, instance)
    if (moved !== undefined) return yield* new JournalError({ reason: moved })
    const order = yield* shuffled(Array.from({ length: s.config.shards }, (_, i) => i))
    const rank = new Map(order.map((shard, i) => [shard, i]))
    const plan = Pg.plan(seen, s.config.shards, new Set(shares.owned.keys()), (free) =>
      free.sort((a, b) =>
        rank.get(a)! - rank.get(b)!
      ), shareMode(shares))
    for (const hung of plan.terminate) {
      yield* endHung(run, s, hung)
    }
    if (plan.forget.length > 0) {
      yield* Pg.forget(run, s, plan.forget)
    }
    for (const shard of plan.release) {
      shares.beginRelease(shares.owned.get(shard)!, now + releaseGrace(s.config))
    }
    const due = shares.releasable(now)
    if (due.length > 0) {
      for (const epoch of due) {
        shares.lose(epoch)
      }
      yield* Pg.release(
        run,
        s,
        due.map((epoch) =>
          epoch.shard
        )
      )
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
    shares.looked(wasFresh)
  })

/**
 * How this instance shares the shards: not started yet, or handing over, it
 * takes and releases nothing. Flushing, it keeps what it holds but still
 * takes free shards: the tasks it waits for may be in the shards of an
 * instance that has left, and no one else may be left to take them.
 */
const shareMode = (shares: Shares): Pg.ShareMode =>
  !shares.active ? "hold" : shares.intake.accepting ? "share" : shares.draining ? "take" : "hold"

/**
 * Waits until every task this instance appended before its flush has ended,
 * wherever it runs, and its `submit` callers have their outcomes: its shards
 * are still read meanwhile (the tasks may be in them). Then, once the
 * executor has finished what it holds, the instance hands its shards over and
 * leaves, as a clean shutdown does.
 */
const drain = (shares: Shares): Effect.Effect<void> => {
  const answered = Effect.zipRight(Effect.sleep(Duration.millis(shares.config.poll)), Effect.suspend(() => ended))
  const ended: Effect.Effect<void> = Effect.suspend(() => {
    if (shares.appended.size === 0) return shares.awaiting.size === 0 ? Effect.void : answered
    return persist("flush", lookAtAppended(shares)).pipe(
      Effect.zipRight(Effect.sleep(Duration.millis(shares.config.poll))),
      Effect.zipRight(ended)
    )
  })
  return Effect.suspend(() => {
    shares.draining = true
    shares.wakeFetch()
    return ended
  }).pipe(Effect.ensuring(Effect.sync(() => {
    shares.draining = false
    shares.handingOver = true
    shares.wakeShards()
  })))
}

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
 * Brings the halts and pauses of the readable shards in line with the
 * journal's: applies those of a shard just taken, and those set since
 * (`pause` anywhere), and lifts those lifted (`resume` anywhere). Reads them
 * when a shard has not read them yet, when woken by a NOTIFY, and at most
 * `haltsEvery` apart otherwise (for a client without LISTEN).
 */
const readHalts = (shares: Shares, epochs: ReadonlyArray<Epoch>) =>
  Effect.gen(function*() {
    const now = shares.clock.unsafeCurrentTimeMillis()
    const due = shares.haltsDue || now - shares.haltsReadAt >= haltsEvery
    if (!due && epochs.every((epoch) => epoch.haltsRead)) return
    shares.haltsDue = false
    shares.haltsReadAt = now
    const halts = yield* Pg.halts(shares.pool, shares.sharing.statements)
    if (halts.all !== shares.pausedAll) shares.pauseAll(halts.all)
    const byShard = new Map<number, Array<readonly [string, boolean]>>()
    for (const [lane, paused] of halts.lanes) {
      const shard = Pg.shardOf(lane, shares.config.shards)
      byShard.set(shard, [...(byShard.get(shard) ?? []), [lane, paused]])
    }
    for (const epoch of epochs) {
      if (!epoch.alive) continue
      epoch.haltsRead = true
      for (const [lane, paused] of epoch.halted) if (!halts.lanes.has(lane)) shares.lift(epoch, lane, paused)
      for (const [lane, paused] of byShard.get(epoch.shard) ?? []) {
        if (!epoch.halted.has(lane)) shares.block(epoch, lane, paused)
      }
    }
  })

/** What the caller waiting for a record that cannot run gets: a defect saying why (its kind or payload does not decode here). */
const undecodable = (tasks: Tasks, record: Pg.SharedRecord, reason: string): Effect.Effect<Pg.Outcome | undefined> => {
  const awaitedBy = record.awaitedBy
  if (awaitedBy === undefined) return Effect.succeed(undefined)
  const exit = Exit.die(new Error(`Sequent: stored task ${record.id} cannot run, and is dead-lettered: ${reason}`))
  return Effect.map(tasks.outcomes.encode(record.tag, exit), (text) => ({
    id: record.id,
    awaitedBy,
    tag: record.tag,
    exit: text
  }))
}

/** Dead-letters a record that cannot run, and answers the caller waiting for it. */
const deadLetterUndecodable = (
  shares: Shares,
  tasks: Tasks,
  clock: Clock.Clock,
  record: Pg.SharedRecord,
  reason: string
) =>
  Effect.zipRight(
    Effect.logError(`Sequent: stored task ${record.id} is dead-lettered: ${reason}`),
    Effect.flatMap(undecodable(tasks, record, reason), (outcome) =>
      onSession(shares, (run) =>
        Pg.deadLetter(
          run,
          shares.sharing.statements,
          { seq: record.seq, attempts: record.attempts, reason, failedAt: clock.unsafeCurrentTimeMillis() },
          false,
          outcome
        )))
  ).pipe(
    Effect.catchAll((error) => Effect.logWarning(`Sequent: could not dead-letter stored task ${record.id}`, error))
  )

/** Puts the task of a record read in `epoch` on its lane. */
const queue = (
  shares: Shares,
  tasks: Tasks,
  epoch: Epoch,
  record: Pg.SharedRecord,
  task: Effect.Effect<unknown, unknown>
) => {
  const intake = shares.intake
  const waiter = record.awaitedBy === shares.instance ? shares.awaiting.get(record.id)?.waiter : undefined
  const job = intake.job(shares.guarded(epoch, task), tasks.context, intake.config.policy, waiter)
  job.attempts = record.attempts
  job.seq = record.seq
  shares.held.set(record.seq, { epoch, job, record })
  epoch.lanes.add(record.lane)
  intake.restore(keyOf(record.lane), job)
}

/**
 * Hands a record read in `epoch` to the executor, or dead-letters one that
 * cannot run. A record whose decoding is done at once (an `Either`, as for
 * every synchronous schema) is queued at once, with no effect of its own:
 * only a dead letter, or a decoding that works asynchronously, gives an
 * effect to run before the next record.
 */
const hold = (
  shares: Shares,
  tasks: Tasks,
  clock: Clock.Clock,
  epoch: Epoch,
  record: Pg.SharedRecord
): Effect.Effect<void> | undefined => {
  const decoded = tasks.decode(record)
  if (!isEither(decoded)) {
    return Effect.matchEffect(decoded, {
      onFailure: (reason) => deadLetterUndecodable(shares, tasks, clock, record, reason),
      onSuccess: (task) => Effect.sync(() => queue(shares, tasks, epoch, record, task))
    })
  }
  if (Either.isLeft(decoded)) return deadLetterUndecodable(shares, tasks, clock, record, decoded.left)
  queue(shares, tasks, epoch, record, decoded.right)
  return undefined
}

/**
 * Reads the new records of the readable shards and queues them, until a read
 * comes back short of the limit. A record is queued only if its shard is
 * still owned in the epoch that asked for it.
 */
const fetchAll = (shares: Shares, tasks: Tasks, clock: Clock.Clock): Effect.Effect<void, SqlError> =>
  Effect.gen(function*() {
    if (!shares.active || !(shares.intake.accepting || shares.draining) || !shares.isFresh()) return
    const epochs = shares.readable()
    if (epochs.length === 0) return
    yield* readHalts(shares, epochs)
    const asked = new Map(epochs.map((epoch) => [epoch.shard, epoch]))
    const cursors = epochs.map((epoch) => [epoch.shard, epoch.after] as const)
    const records = yield* Pg.fetch(shares.pool, shares.sharing.statements, cursors, fetchLimit)
    for (const record of records) {
      const epoch = asked.get(record.shard)!
      if (!epoch.alive || epoch.releaseBy !== undefined || !(shares.intake.accepting || shares.draining)) continue
      if (record.seq <= epoch.after) continue
      epoch.after = record.seq
      const later = hold(shares, tasks, clock, epoch, record)
      if (later !== undefined) yield* later
    }
    if (records.length === fetchLimit) yield* fetchAll(shares, tasks, clock)
  })

/** Asks the journal which tasks this instance appended are still pending, and forgets the lanes of the others. */
const lookAtAppended = (shares: Shares): Effect.Effect<void, SqlError> =>
  shares.appended.look((seqs) => Pg.stillPending(shares.pool, shares.sharing.statements, seqs))

/** Forgets, when enough have piled up, the lanes whose last task appended here has ended elsewhere. */
const forgetEnded = (shares: Shares): Effect.Effect<void, SqlError> =>
  Effect.suspend(() => shares.appended.lookDue ? lookAtAppended(shares) : Effect.void)

/** Waits for `latch` to open, or `millis`, then closes it for the next wait. */
const wakeOrPoll = (latch: Effect.Latch, millis: number) =>
  Effect.zipRight(Effect.timeoutOption(latch.await, Duration.millis(millis)), latch.close)

/**
 * How often an instance checks that its LISTEN still hears the channel: it
 * pings itself, and a ping not heard by the next check means the connection
 * is gone. The client swallows the errors of its LISTEN connection, so a cut
 * one would otherwise leave the instance waking only on its polls, for good.
 */
const hearingEvery = Duration.seconds(2)

/** The LISTEN connection missed this instance's own ping. */
class NotHeard extends Data.TaggedError("NotHeard")<{}> {}

/** The LISTEN stream ended, which the client's never does while its connection lives. */
class StreamEnded extends Data.TaggedError("StreamEnded")<{}> {}

/** What a payload on the channel asks of this instance: a release wakes the shard loop, an append its shards' owner. */
const onPayload = (shares: Shares, wakeShards: () => void, payload: string): void => {
  if (payload === "free") return wakeShards()
  if (payload === "*") return shares.wakeFetch()
  if (payload === "halts") {
    shares.haltsDue = true
    return shares.wakeFetch()
  }
  if (payload.startsWith("outcome:")) {
    if (payload.slice(8) !== shares.instance) return
    shares.outcomesDue = true
    return shares.wakeFetch()
  }
  if (payload.split(",").some((shard) => shares.owned.has(Number(shard)))) shares.wakeFetch()
}

/**
 * Listens on the channel until the stream fails or ends, or a ping goes
 * unheard. The stream is not waited for once it loses: its UNLISTEN has no
 * timeout, which a stalled network never answers.
 */
const hearOnce = (
  shares: Shares,
  wakeShards: () => void,
  listen: (channel: string) => Stream.Stream<string, SqlError>
): Effect.Effect<never, SqlError | NotHeard | StreamEnded> =>
  Effect.suspend(() => {
    const s = shares.sharing.statements
    const ping = Pg.pingPayload(shares.instance)
    let heard = true
    const listening = listen(s.channel).pipe(
      Stream.runForEach((payload) =>
        Effect.sync(() => {
          if (payload === ping) heard = true
          else onPayload(shares, wakeShards, payload)
        })
      ),
      Effect.zipRight(Effect.fail(new StreamEnded()))
    )
    // a ping that could not be sent cannot be missed
    const check = Effect.suspend(() => {
      if (!heard) return Effect.fail(new NotHeard())
      heard = false
      return Pg.ping(shares.pool, s, shares.instance).pipe(Effect.catchAll(() => Effect.sync(() => heard = true)))
    })
    return Effect.raceFirst(
      Effect.disconnect(listening),
      Effect.forever(Effect.zipRight(Effect.sleep(hearingEvery), check))
    )
  })

/** Follows the journal's NOTIFY channel, listening again whenever it stops hearing. */
const follow = (shares: Shares, wakeShards: () => void) =>
  Option.match(shares.sharing.listen, {
    onNone: () => Effect.void,
    onSome: (listen) =>
      hearOnce(shares, wakeShards, listen).pipe(
        Effect.tapErrorCause((cause) =>
          Effect.logDebug("Sequent: journal LISTEN stopped hearing, listening again", cause)
        ),
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

/** Answers one appended task: counts it out here (its owner counts it); its caller waits for the outcome. */
const appended = (shares: Shares, appending: Appending, inserted: boolean, seq: number) => {
  const { entry, job, waiter } = appending
  shares.intake.release(job, Exit.void)
  if (inserted) shares.appended.appended(entry.lane, seq)
  const awaiting = shares.awaiting.get(entry.id)
  if (waiter !== undefined && awaiting?.waiter === waiter) {
    if (inserted) {
      awaiting.seq = seq
      if (shares.early.has(entry.id)) {
        shares.outcomesDue = true
        shares.wakeFetch()
      }
    } else {
      shares.awaiting.delete(entry.id)
      shares.early.delete(entry.id)
      waiter.done(Exit.fail(new SequentDuplicateTaskError({ tag: entry.tag, id: entry.id })))
    }
  }
  if (inserted && shares.owned.has(Pg.shardOf(entry.lane, shares.config.shards))) shares.wakeFetch()
}

/** A task not appended: un-counted, its caller forgotten; its `schedule` fails. */
const notAppended = (shares: Shares, appending: Appending) => {
  if (shares.awaiting.get(appending.entry.id)?.waiter === appending.waiter) {
    shares.awaiting.delete(appending.entry.id)
    shares.early.delete(appending.entry.id)
  }
  shares.intake.release(appending.job, Exit.void)
}

/**
 * After a failed append, which of `batch` the journal holds: a task another
 * caller had stored under the same id is a duplicate for a `submit`, which
 * would wait for an outcome kept for someone else.
 */
const storedAfterFailure = (shares: Shares, batch: ReadonlyArray<Appending>) => {
  const s = shares.sharing.statements
  const ids = batch.map((a) => a.entry.id)
  const awaited = batch.some((a) => a.waiter !== undefined)
  return persist(
    "append check",
    Effect.all([
      Pg.storedSeqs(shares.pool, s, ids),
      awaited ? Pg.awaitedBy(shares.pool, s, ids, shares.instance) : Effect.succeed([])
    ])
  ).pipe(Effect.map(([stored, ours]) => ({
    stored: new Map(stored.map((row) => [row.id, Number(row.seq)])),
    ours: new Set(ours.map((row) => row.id))
  })))
}

/**
 * Appends a batch in one transaction. When the write fails, the journal says
 * which ids it holds: those count as appended, the rest fail.
 */
const appendBatch = (shares: Shares) => (batch: ReadonlyArray<Appending>) =>
  Effect.suspend(() => {
    for (const { entry, waiter } of batch) {
      if (waiter !== undefined) shares.awaiting.set(entry.id, { waiter, tag: entry.tag, seq: undefined })
    }
    return shares.sharing.append(batch.map(({ entry, waiter }) => ({
      entry,
      awaitedBy: waiter === undefined ? undefined : shares.instance
    })))
  }).pipe(
    Effect.map((results) =>
      results.map((result, index): Exit.Exit<void, JournalError> => {
        appended(shares, batch[index]!, result.inserted, result.seq)
        return Exit.void
      })
    ),
    Effect.catchAll((error) =>
      Effect.map(storedAfterFailure(shares, batch), ({ ours, stored }) =>
        batch.map((appending): Exit.Exit<void, JournalError> => {
          const id = appending.entry.id
          const seq = stored.get(id)
          if (seq === undefined) {
            notAppended(shares, appending)
            return Exit.fail(error)
          }
          appended(shares, appending, appending.waiter === undefined || ours.has(id), seq)
          return Exit.void
        }))
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

/**
 * Hands every shard back on a clean shutdown, forgets this instance's
 * heartbeat (and the outcomes kept for it), and ends the session. A `submit`
 * still waiting fails: no outcome can reach it any more.
 */
const shutdown = (shares: Shares, instance: string) =>
  Effect.suspend(() => {
    for (const { waiter } of shares.awaiting.values()) waiter.done(Exit.fail(shutDown))
    shares.awaiting.clear()
    shares.early.clear()
    const shards = Array.from(shares.owned.keys())
    const session = shares.loseAll()
    if (session === undefined) return Effect.void
    const s = shares.sharing.statements
    return Pg.bounded(
      Effect.zipRight(Pg.release(session.run, s, shards), Pg.forget(session.run, s, [instance])),
      5_000
    )
      .pipe(Effect.zipRight(closeSession(session)))
  })

/** A completion on its way to the journal, with the outcome a caller elsewhere waits for. */
interface Completion {
  readonly job: Job
  readonly outcome: Pg.Outcome | undefined
}

/** The steps of a task the executor has the store write: fenced, each retried until it is written or dropped. */
const taskSteps = (
  shares: Shares,
  fenced: ReturnType<typeof fencing>,
  tasks: Tasks,
  clock: Clock.Clock
): Effect.Effect<Pick<JournalStore, "attemptFailed" | "complete" | "giveUp">, never, Scope.Scope> =>
  Effect.gen(function*() {
    const s = shares.sharing.statements
    const complete = yield* makeBatcher((batch: ReadonlyArray<Completion>) => {
      const outcomes = new Map(batch.map((c) => [c.job, c.outcome]))
      return Effect.as(
        fenced(batch.map((c) => c.job), (run, owned) =>
          Pg.completeAnswering(
            run,
            s,
            owned.map((job) => job.seq),
            owned.flatMap((job) => outcomes.get(job) ?? [])
          )),
        batch.map(() => undefined)
      )
    })
    const finished = (job: Job) => Effect.sync(() => shares.finished(job))
    return {
      attemptFailed: (job) =>
        persist("attempt", fenced([job], (run) => Pg.attemptFailed(run, s, job.seq, job.attempts))),
      complete: (job, value) => {
        const written = (outcome: Pg.Outcome | undefined) =>
          Effect.zipRight(
            persist("complete", complete({ job, outcome })),
            Effect.sync(() => {
              shares.committed(job)
              shares.finished(job)
            })
          )
        // most tasks have no caller waiting elsewhere: no outcome to encode, and no step for it
        return shares.awaited(job)
          ? Effect.flatMap(shares.outcomeFor(job, () => Exit.succeed(value), tasks), written)
          : written(undefined)
      },
      giveUp: (job, cause, halt) =>
        shares.outcomeFor(job, () => Exit.failCause(cause), tasks).pipe(
          Effect.flatMap((outcome) =>
            persist(
              "dead letter",
              fenced([job], (run) =>
                Pg.deadLetter(
                  run,
                  s,
                  {
                    seq: job.seq,
                    attempts: job.attempts,
                    reason: Cause.pretty(cause),
                    failedAt: clock.unsafeCurrentTimeMillis()
                  },
                  halt,
                  outcome
                ))
            )
          ),
          Effect.zipRight(Effect.sync(() => shares.gaveUp(job, halt))),
          Effect.zipRight(finished(job))
        )
    }
  })

/**
 * Takes the outcomes other instances kept for this one's `submit` callers,
 * and answers them: when told one was kept, and every `poll` while any caller
 * waits (a NOTIFY can be missed).
 */
const takeOutcomes = (shares: Shares, tasks: Tasks): Effect.Effect<void, SqlError> =>
  Effect.suspend(() => {
    const now = shares.clock.unsafeCurrentTimeMillis()
    if (shares.awaiting.size === 0) return Effect.void
    if (!shares.outcomesDue && now - shares.outcomesTakenAt < shares.config.poll) return Effect.void
    shares.outcomesDue = false
    shares.outcomesTakenAt = now
    return Effect.flatMap(Pg.takeOutcomes(shares.pool, shares.sharing.statements, shares.instance), (rows) => {
      const taken = [...shares.early.values(), ...rows]
      shares.early.clear()
      return Effect.forEach(taken, (row) => answerKept(shares, tasks, row), { discard: true })
    })
  })

/**
 * Answers the caller an outcome was kept for, if it is the outcome of the
 * caller's own task: not of an earlier task under the same id (answered
 * here, its outcome kept all the same), nor of a caller gone.
 */
const answerKept = (shares: Shares, tasks: Tasks, row: Pg.KeptOutcome): Effect.Effect<void> => {
  const awaiting = shares.awaiting.get(row.id)
  if (awaiting === undefined) return Effect.void
  if (awaiting.seq === undefined) {
    shares.early.set(row.id, row)
    return Effect.void
  }
  if (row.seq !== null && Number(row.seq) !== awaiting.seq) return Effect.void
  shares.awaiting.delete(row.id)
  return Effect.map(tasks.outcomes.decode(row.tag, row.exit), (exit) => awaiting.waiter.done(exit))
}

/** What a caller gets whose task ended with no outcome kept for it. */
const lostOutcome = (tag: string) =>
  new SequentOutcomeError({
    tag,
    outcome: "failure",
    reason:
      "the task ended while this instance was counted as gone (its lock session was cut), so its outcome was not kept"
  })

/**
 * Answers the callers whose task is neither pending nor answered: it ended
 * while this instance's heartbeat was missing (its session cut, and another
 * instance forgot it), so no outcome was kept for it. Read in one statement,
 * after the outcomes were taken, so a task that ends meanwhile is seen with
 * its outcome. Every `haltsEvery` while callers wait.
 */
const answerLost = (shares: Shares): Effect.Effect<void, SqlError> =>
  Effect.suspend(() => {
    const now = shares.clock.unsafeCurrentTimeMillis()
    if (shares.awaiting.size === 0 || now - shares.lostCheckedAt < haltsEvery) return Effect.void
    shares.lostCheckedAt = now
    // a caller with an outcome taken early is answered by the next take
    const stored = Array.from(shares.awaiting)
      .filter(([id, awaiting]) => awaiting.seq !== undefined && !shares.early.has(id))
      .map(([id]) => id)
    if (stored.length === 0) return Effect.void
    return Effect.map(Pg.awaitedBy(shares.pool, shares.sharing.statements, stored, shares.instance), (rows) => {
      const live = new Set(rows.map((row) => row.id))
      for (const id of stored) {
        const awaiting = shares.awaiting.get(id)
        if (live.has(id) || awaiting === undefined) continue
        shares.awaiting.delete(id)
        awaiting.waiter.done(Exit.fail(lostOutcome(awaiting.tag)))
      }
    })
  })

/**
 * Gives up every shard at once, and says so, if `look` still runs when this
 * instance can no longer trust that it owns them: a look stuck on a network
 * that stalls would otherwise let the tasks of its lanes run on while another
 * instance ends its session and runs them too. A stuck statement ends only
 * when the network does, so the session is closed once the look ends.
 */
const watchedLook = <E>(shares: Shares, look: Effect.Effect<void, E>): Effect.Effect<void, E | JournalError> =>
  Effect.scoped(
    Effect.zipRight(Effect.forkScoped(Effect.suspend(() => watch(shares, shares.trustedUntil(), true))), look)
  ).pipe(
    Effect.zipRight(Effect.suspend(() =>
      shares.fenced
        ? Effect.fail(new JournalError({ reason: "the lock session answered too late to be trusted" }))
        : Effect.void
    ))
  )

/**
 * Waits until `deadline`, then for the replies already due (this process may
 * have been paused, or its event loop held, with the look's answer waiting):
 * a heartbeat confirmed meanwhile moves the deadline on. Past it, the look
 * gets `min(heartbeat, (hungAfter - heartbeat) / 2)` more, once, from when
 * this process runs again; then the shards go.
 */
const watch = (shares: Shares, deadline: number, grace: boolean): Effect.Effect<void> =>
  Effect.suspend(() => Effect.sleep(Duration.millis(Math.max(0, deadline - shares.clock.unsafeCurrentTimeMillis()))))
    .pipe(
      Effect.zipRight(eventLoopTurn),
      Effect.zipRight(Effect.suspend(() => {
        const now = shares.clock.unsafeCurrentTimeMillis()
        const trusted = shares.trustedUntil()
        if (trusted > now) return watch(shares, trusted, true)
        if (grace) return watch(shares, now + Math.min(shares.config.heartbeat, shares.trustMargin()), false)
        return shares.fence()
          ? Effect.logWarning(
            "Sequent: the journal's lock session has not answered in time; this instance stops the tasks of its shards and gives them up"
          )
          : Effect.void
      }))
    )

/** The loop that looks at the shards every `poll`, or when woken. A failed look loses every shard. */
const shardLoop = (
  shares: Shares,
  instance: string,
  clock: Clock.Clock,
  permit: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>,
  latch: Effect.Latch
) => {
  const once = watchedLook(shares, permit(look(shares, instance, clock))).pipe(
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : Effect.logWarning(
        "Sequent: the journal's lock session failed; this instance owns no shard until it has a new one",
        cause
      ).pipe(Effect.zipRight(permit(Effect.suspend(() => closeSession(shares.loseAll())))))
    )
  )
  return Effect.forever(Effect.zipRight(once, wakeOrPoll(latch, shares.config.poll)))
}

/** The loop that reads the owned shards and the outcomes kept for this instance when woken, or every `poll`. */
const fetchLoop = (shares: Shares, tasks: Tasks, clock: Clock.Clock, latch: Effect.Latch) => {
  const once = fetchAll(shares, tasks, clock).pipe(
    Effect.zipRight(takeOutcomes(shares, tasks)),
    Effect.zipRight(answerLost(shares)),
    Effect.zipRight(forgetEnded(shares)),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause)
        : Effect.logWarning("Sequent: reading the shared journal failed, retrying", cause)
    )
  )
  return Effect.forever(Effect.zipRight(wakeOrPoll(latch, shares.config.poll), once))
}

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
    // kept in the journal (heartbeats, the caller of a submit): no other instance, before or since, may share it
    const instance = yield* lifeId(clock)
    const shares = new Shares(
      instance,
      sharing,
      yield* Effect.fiberId,
      clock,
      () => fetchLatch.unsafeOpen(),
      yield* Effect.makeLatch(false),
      () => shardLatch.unsafeOpen()
    )
    const permit = (yield* Effect.makeSemaphore(1)).withPermits(1)
    // added first, so it runs last: after the executor has flushed and the loops have stopped
    yield* Effect.addFinalizer(() => permit(shutdown(shares, instance)))
    yield* Effect.forkScoped(shardLoop(shares, instance, clock, permit, shardLatch))
    yield* Effect.forkScoped(fetchLoop(shares, tasks, clock, fetchLatch))
    // disconnected: the client's LISTEN stream ends with an UNLISTEN that has no timeout, which a stalled
    // network never answers; the scope's close must not wait for it (it ends in the background)
    yield* Effect.forkScoped(Effect.disconnect(follow(shares, shares.wakeShards)))
    const append = yield* makeBatcher(appendBatch(shares), { closed: appendUnanswered })
    const pause = Pg.pause(sharing.sql, sharing.statements)
    const drained = drain(shares)
    const store: JournalStore = {
      accept: (intake) => {
        shares.intake = intake
        return (_key, task, context, policy, waiter, entry) =>
          Effect.flatten(append({ entry, waiter, job: intake.job(task, context, policy, undefined) }))
      },
      ...(yield* taskSteps(shares, fencing(shares, permit), tasks, clock)),
      restore: Effect.sync(() => {
        shares.active = true
        shardLatch.unsafeOpen()
      }),
      redrive: (id) => Effect.asVoid(Effect.tap(sharing.journal.redrive(id), () => shares.wakeFetch())),
      unhalt: (key) => persist("resume", sharing.journal.unhalt(key === undefined ? undefined : laneOf(key))),
      pause: (key) =>
        Effect.zipRight(
          persist("pause", pause(key === undefined ? undefined : laneOf(key))),
          Effect.sync(() => shares.pausedHere(key))
        ),
      drain: drained
    }
    return store
  })
