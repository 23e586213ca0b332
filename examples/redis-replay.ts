/**
 * Replaying writes to a Redis that goes down.
 *
 * An ordered stream of writes goes to Redis through Sequent: one write at a
 * time, in order, and a write that fails is retried with backoff until Redis
 * takes it, while the writes behind it wait. ioredis is configured to fail
 * fast while disconnected (no offline queue, no per-request retries, no
 * automatic resend), so Sequent's retry is the only thing that recovers.
 *
 * Delivery is therefore at least once: when a connection is cut after Redis
 * ran a command but before its reply arrived, the command failed for us and
 * Sequent sends it again. Each write is made idempotent by a small Lua script
 * that applies write `n` only if the stream's last applied index is `n - 1`,
 * and reports "already applied" (a success) when it is `n` or more.
 *
 * Run it against 127.0.0.1:6379 (or `REDIS_URL`):
 *
 *   npx tsx examples/redis-replay.ts
 *   WRITES=20000 CHAOS=1 npx tsx examples/redis-replay.ts
 *
 * `CHAOS=1` kills the writer's connection from a second connection
 * (`CLIENT KILL ID`) every few hundred milliseconds; you can also restart
 * Redis while it runs. Either way the final check finds every write, once,
 * in order.
 *
 * The tests in `test/integration/redis-replay.test.ts` drive these same
 * pieces through a fault-injecting proxy and a Redis that restarts.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import { resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Sequent } from "../src/index.js"

// -----------------------------------------------------------------------------
// The idempotent write
// -----------------------------------------------------------------------------

/**
 * Apply write `n` of a stream at most once, atomically.
 *
 * KEYS: the list, the last applied index, the count of refused duplicates.
 * ARGV: the write's index `n` (1-based) and its value.
 * Returns `{1, n}` when applied, `{0, last}` when already applied (and counts
 * it), `{2, last}` when an earlier write is missing (a gap: never expected).
 *
 * @since 0.1.0
 * @category idempotency
 */
export const APPEND_ONCE_LUA = `
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local n = tonumber(ARGV[1])
if n == last + 1 then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], n)
  return {1, n}
end
if n <= last then
  redis.call('INCR', KEYS[3])
  return {0, last}
end
return {2, last}
`

/**
 * The keys of one stream. The hash tag keeps them in one slot, as a script's
 * keys must be on Redis Cluster.
 *
 * @since 0.1.0
 * @category idempotency
 */
export const streamKeys = (stream: string) => ({
  list: `{${stream}}:list`,
  last: `{${stream}}:last`,
  duplicates: `{${stream}}:duplicates`
})

/**
 * @since 0.1.0
 * @category models
 */
export type AppendOutcome = "applied" | "already-applied"

/**
 * @since 0.1.0
 * @category models
 */
export interface StreamState {
  readonly values: ReadonlyArray<string>
  readonly last: number
  /** How many times the script refused a write that was already applied. */
  readonly duplicates: number
}

// -----------------------------------------------------------------------------
// The client: ioredis promises wrapped once, at the edge
// -----------------------------------------------------------------------------

/**
 * ioredis options that fail a command at once while the connection is down,
 * instead of queueing or resending it, so that Sequent decides when to retry.
 *
 * `commandTimeout` turns a stalled connection into a failed attempt. (ioredis's
 * `socketTimeout` would also do, but its timer can outlive a reconnect.)
 *
 * @since 0.1.0
 * @category client
 */
export const failFastOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 1_000,
  commandTimeout: 1_000,
  retryStrategy: () => 50
} satisfies RedisOptions

/**
 * A Redis command failed: the connection is down, was cut, timed out, or
 * Redis answered with an error.
 *
 * @since 0.1.0
 * @category errors
 */
export class RedisCommandError extends Data.TaggedError("RedisCommandError")<{
  readonly command: string
  readonly cause: unknown
}> {
  override get message(): string {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `Redis ${this.command} failed: ${reason}`
  }
}

/**
 * Write `index` arrived while an earlier write of the stream is missing. With
 * Sequent running the writes of a stream one at a time in order, this never
 * happens; retrying cannot fix it.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamGapError extends Data.TaggedError("StreamGapError")<{
  readonly stream: string
  readonly index: number
  readonly last: number
}> {
  override get message(): string {
    return `stream ${this.stream}: write ${this.index} arrived after write ${this.last}`
  }
}

/**
 * @since 0.1.0
 * @category client
 */
export interface ReplayClient {
  readonly redis: Redis
  /** Apply write `index` of `stream` unless it is already applied. */
  readonly append: (
    stream: string,
    index: number,
    value: string
  ) => Effect.Effect<AppendOutcome, RedisCommandError | StreamGapError>
  readonly read: (stream: string) => Effect.Effect<StreamState, RedisCommandError>
  readonly reset: (stream: string) => Effect.Effect<void, RedisCommandError>
}

interface AppendOnceCommand {
  appendOnce(list: string, last: string, duplicates: string, index: number, value: string): Promise<[number, number]>
}

const call = <A>(command: string, f: () => Promise<A>): Effect.Effect<A, RedisCommandError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new RedisCommandError({ command, cause }) })

/**
 * Connect a fail-fast ioredis client for the lifetime of the scope.
 *
 * @since 0.1.0
 * @category client
 */
export const makeReplayClient = (
  url: string,
  options: RedisOptions = {}
): Effect.Effect<ReplayClient, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const redis = new Redis(url, { ...failFastOptions, ...options })
        // Connection errors are reported through failed commands; without a
        // listener ioredis would also print each one.
        redis.on("error", () => {})
        redis.defineCommand("appendOnce", { numberOfKeys: 3, lua: APPEND_ONCE_LUA })
        return redis
      }),
      (redis) => Effect.sync(() => redis.disconnect())
    ),
    (redis): ReplayClient => {
      const scripted = redis as Redis & AppendOnceCommand
      return {
        redis,
        append: (stream, index, value) => {
          const keys = streamKeys(stream)
          return call("appendOnce", () => scripted.appendOnce(keys.list, keys.last, keys.duplicates, index, value))
            .pipe(
              Effect.flatMap(([status, last]) =>
                status === 1
                  ? Effect.succeed<AppendOutcome>("applied")
                  : status === 0
                  ? Effect.succeed<AppendOutcome>("already-applied")
                  : Effect.fail(new StreamGapError({ stream, index, last }))
              )
            )
        },
        read: (stream) => {
          const keys = streamKeys(stream)
          return call("read", () =>
            Promise.all([
              redis.lrange(keys.list, 0, -1),
              redis.get(keys.last),
              redis.get(keys.duplicates)
            ])).pipe(
              Effect.map(([values, last, duplicates]) => ({
                values,
                last: Number(last ?? 0),
                duplicates: Number(duplicates ?? 0)
              }))
            )
        },
        reset: (stream) => {
          const keys = streamKeys(stream)
          return Effect.asVoid(call("reset", () => redis.del(keys.list, keys.last, keys.duplicates)))
        }
      }
    }
  )

/**
 * Retry a plain (non-Sequent) command while the client connects: bounded.
 *
 * @since 0.1.0
 * @category client
 */
export const whileConnecting = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(self, Schedule.intersect(Schedule.spaced("100 millis"), Schedule.recurs(100)))

// -----------------------------------------------------------------------------
// Counting attempts
// -----------------------------------------------------------------------------

/**
 * Counters for a run. Sequent runs the task Effect again for every attempt,
 * so counting inside the task counts attempts.
 *
 * @since 0.1.0
 * @category stats
 */
export interface ReplayStats {
  attempts: number
  failedAttempts: number
  applied: number
  alreadyApplied: number
  gaps: number
  lastError: string | undefined
}

/**
 * @since 0.1.0
 * @category stats
 */
export const makeStats = (): ReplayStats => ({
  attempts: 0,
  failedAttempts: 0,
  applied: 0,
  alreadyApplied: 0,
  gaps: 0,
  lastError: undefined
})

/**
 * One write as a Sequent task, counted in `stats`.
 *
 * @since 0.1.0
 * @category tasks
 */
export const writeTask = (
  client: ReplayClient,
  stream: string,
  index: number,
  value: string,
  stats: ReplayStats
): Effect.Effect<AppendOutcome, RedisCommandError | StreamGapError> =>
  Effect.suspend(() => {
    stats.attempts++
    return client.append(stream, index, value)
  }).pipe(
    Effect.tap((outcome) =>
      Effect.sync(() => {
        if (outcome === "applied") stats.applied++
        else stats.alreadyApplied++
      })
    ),
    Effect.tapError((error) =>
      Effect.sync(() => {
        stats.failedAttempts++
        stats.lastError = error.message
        if (error._tag === "StreamGapError") stats.gaps++
      })
    )
  )

/**
 * The value of write `n`: any payload works; this one is easy to check.
 *
 * @since 0.1.0
 * @category tasks
 */
export const valueOf = (n: number): string => `write-${n}`

/**
 * Schedule writes `1..writes` of a stream through Sequent, then wait for all
 * of them (`flush`).
 *
 * @since 0.1.0
 * @category tasks
 */
export const replayWrites = (client: ReplayClient, stream: string, writes: number, stats: ReplayStats) =>
  Effect.gen(function*() {
    for (let n = 1; n <= writes; n++) {
      yield* Sequent.schedule(writeTask(client, stream, n, valueOf(n), stats))
    }
    yield* Sequent.flush
  })

/**
 * Sequent's default backoff, capped at one second for a quick demo:
 * exponential from 10 ms, jittered, retried until Redis takes the write.
 *
 * @since 0.1.0
 * @category tasks
 */
export const demoRetry = Schedule.exponential("10 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.jittered
)

// -----------------------------------------------------------------------------
// The program
// -----------------------------------------------------------------------------

const killWriterConnections = (admin: Redis, name: string) =>
  call("CLIENT LIST", () => admin.client("LIST") as Promise<string>).pipe(
    Effect.flatMap((list) => {
      const ids = list.split("\n").filter((line) => line.includes(` name=${name} `)).map((line) =>
        /(?:^|\s)id=(\d+)/.exec(line)?.[1]
      ).filter((id): id is string => id !== undefined)
      return Effect.forEach(ids, (id) => call("CLIENT KILL", () => admin.client("KILL", "ID", id)), { discard: true })
    }),
    Effect.ignore
  )

const program = Effect.gen(function*() {
  const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
  const writes = Number(process.env["WRITES"] ?? 10_000)
  const chaos = process.env["CHAOS"] === "1"
  const startedAt = yield* Clock.currentTimeMillis
  const stream = `sequent:example:${startedAt}`
  const name = `sequent-replay-${process.pid}`

  const client = yield* makeReplayClient(url, { connectionName: name })
  let reconnects = 0
  client.redis.on("ready", () => reconnects++)
  yield* whileConnecting(client.reset(stream))
  yield* Console.log(`writing ${writes} writes to ${url}, stream ${stream}${chaos ? ", with chaos" : ""}`)

  if (chaos) {
    const admin = yield* makeReplayClient(url)
    yield* Effect.forkScoped(Effect.forever(
      Effect.flatMap(Random.nextIntBetween(100, 600), (ms) => Effect.sleep(Duration.millis(ms))).pipe(
        Effect.zipRight(killWriterConnections(admin.redis, name))
      )
    ))
  }

  const stats = makeStats()
  yield* Effect.forkScoped(Effect.forever(
    Effect.sleep("1 second").pipe(
      Effect.zipRight(Effect.suspend(() =>
        Console.log(
          `  ${stats.applied} applied, ${stats.failedAttempts} failed attempts retried` +
            (stats.lastError === undefined ? "" : ` (last: ${stats.lastError})`)
        )
      ))
    )
  ))

  yield* replayWrites(client, stream, writes, stats).pipe(
    Effect.provide(Sequent.layer({ retry: demoRetry })),
    // Sequent logs every failed attempt, with its cause, as a warning; the
    // progress line above counts them instead.
    Logger.withMinimumLogLevel(LogLevel.Error)
  )

  const state = yield* whileConnecting(client.read(stream))
  const inOrder = state.values.length === writes && state.values.every((value, i) => value === valueOf(i + 1))
  const elapsed = (yield* Clock.currentTimeMillis) - startedAt
  yield* Console.log(
    [
      `done in ${elapsed} ms:`,
      `  writes:             ${writes}`,
      `  attempts:           ${stats.attempts} (${stats.failedAttempts} failed and retried by Sequent)`,
      `  already applied:    ${stats.alreadyApplied} (a reply was lost, the retry found the write done)`,
      `  (re)connections:    ${reconnects}`,
      `  list in Redis:      ${state.values.length} values, last index ${state.last}`,
      `  check:              ${inOrder ? "OK, every write once and in order" : "FAILED"}`
    ].join("\n")
  )
  yield* client.reset(stream)
  if (!inOrder) return yield* Effect.die(new Error("the list in Redis does not match the writes"))
})

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  NodeRuntime.runMain(Effect.scoped(program))
}
