/**
 * The shared demo: many instances, one PostgreSQL journal, and one of them
 * killed with `kill -9` mid-stream.
 *
 * Three instance processes and this one run `Durable.layer` on the same
 * journal in shared mode (`PgJournal.layer({ ..., sharing })`). This process
 * schedules 8 customers' webhook deliveries, 40 each, one lane per customer;
 * the lanes spread over the four instances, and each delivery records, in a
 * table of the demo, which instance made it. Once a quarter of them are made,
 * the demo kills an instance that is running lanes with SIGKILL: no finalizer
 * runs, its session locks die with its connections, and the others take its
 * lanes over. At the end it checks the record: every delivery made, each
 * customer's first deliveries in order, and a delivery made twice only where
 * its lane moved with it in flight. It prints PASS or FAIL, and exits
 * non-zero on FAIL.
 *
 *   npm run demo:shared      (PostgreSQL at SEQUENT_PG_URL, default postgres://root@127.0.0.1:5432/test)
 *
 * The same file is an instance: `shared-demo.ts instance <url> <tablePrefix> <name>`.
 *
 * @since 0.2.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Durable, DurableSequent, TaskKind } from "../src/index.js"
import * as PgJournal from "../src/PgJournal.js"

const CUSTOMERS = 8
const DELIVERIES = 40
const INSTANCES = ["a", "b", "c"] as const

// -----------------------------------------------------------------------------
// An instance: a durable executor on the shared journal, and the kind it runs
// -----------------------------------------------------------------------------

class Deliver extends Schema.TaggedClass<Deliver>()("Deliver", { customer: Schema.String, seq: Schema.Int }) {}
const Tasks = TaskKind.make(Deliver)

/** A delivery: recorded with the instance that made it (the demo's stand-in for a webhook call). */
const handlers = (tablePrefix: string, name: string) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const deliveries = sql(`${tablePrefix}deliveries`)
    return Tasks.handlers({
      Deliver: ({ customer, seq }) =>
        sql`INSERT INTO ${deliveries} (instance, customer, seq) VALUES (${name}, ${customer}, ${seq})`.pipe(
          Effect.zipRight(Effect.sleep("20 millis")),
          Effect.orDie
        )
    })
  }))

const instance = (url: Redacted.Redacted, tablePrefix: string, name: string) => {
  const client = PgClient.layer({ url, maxConnections: 2 })
  return Durable.layer({ concurrency: CUSTOMERS }).pipe(
    Layer.provide(handlers(tablePrefix, name)),
    Layer.provide(PgJournal.layer({ url, tablePrefix, sharing: { shards: 16, heartbeat: "200 millis" } })),
    Layer.provide(client)
  )
}

// -----------------------------------------------------------------------------
// The demo: start the instances, schedule, kill one, check the record
// -----------------------------------------------------------------------------

interface Delivery {
  readonly id: number
  readonly instance: string
  readonly customer: string
  readonly seq: number
}

/** Starts an instance process; it is killed with the scope if it is still alive. */
const start = (url: Redacted.Redacted, tablePrefix: string, name: string) =>
  Effect.acquireRelease(
    Effect.async<ChildProcess, Error>((resume) => {
      const file = fileURLToPath(import.meta.url)
      const child = spawn(process.execPath, [
        "--import",
        "tsx",
        file,
        "instance",
        Redacted.value(url),
        tablePrefix,
        name
      ], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      const lines = createInterface({ input: child.stdout! })
      lines.once("line", () => resume(Effect.succeed(child)))
      child.once("exit", (code) => resume(Effect.fail(new Error(`instance ${name} exited with ${code}`))))
    }),
    (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

const record = (sql: PgClient.PgClient, tablePrefix: string) =>
  sql<Delivery>`SELECT id, instance, customer, seq FROM ${sql(`${tablePrefix}deliveries`)} ORDER BY id`

/** Polls the record until `done` holds of it. */
const until = (
  sql: PgClient.PgClient,
  tablePrefix: string,
  done: (rows: ReadonlyArray<Delivery>) => boolean
): Effect.Effect<ReadonlyArray<Delivery>, unknown> =>
  record(sql, tablePrefix).pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry({ schedule: Schedule.spaced("20 millis"), while: (error) => error === "not yet" }),
    Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("the deliveries did not finish") })
  )

/**
 * What went wrong in the record, if anything. A delivery may be made twice
 * only where its lane moved with it in flight (the instance was killed, or
 * handed the lane to one that joined): the lane's new owner makes it again,
 * so handlers must be idempotent.
 */
const check = (rows: ReadonlyArray<Delivery>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  for (let c = 0; c < CUSTOMERS; c++) {
    const customer = `customer-${c}`
    const first = new Map<number, Delivery>()
    const repeats: Array<Delivery> = []
    for (const row of rows) {
      if (row.customer !== customer) continue
      if (first.has(row.seq)) repeats.push(row)
      else first.set(row.seq, row)
    }
    const firsts = [...first.values()]
    const moves = firsts.filter((row, i) => i > 0 && row.instance !== firsts[i - 1]!.instance).length
    if (firsts.length !== DELIVERIES) problems.push(`${customer}: ${firsts.length} of ${DELIVERIES} delivered`)
    if (firsts.some((row, i) => row.seq !== i + 1)) problems.push(`${customer}: first deliveries out of order`)
    if (repeats.length > moves || repeats.some((row) => first.get(row.seq)!.instance === row.instance)) {
      problems.push(`${customer}: delivered twice where its lane did not move`)
    }
  }
  return problems
}

const demoUrl = Redacted.make(process.env["SEQUENT_PG_URL"] ?? "postgres://root@127.0.0.1:5432/test")

const demo = Effect.gen(function*() {
  const url = demoUrl
  const tablePrefix = `sequent_demo_${process.pid}_`
  const sql = yield* PgClient.PgClient
  const table = sql(`${tablePrefix}deliveries`)
  yield* sql`CREATE TABLE ${table} (id bigserial PRIMARY KEY, instance text, customer text, seq int)`
  yield* Effect.addFinalizer(() => dropTables(sql, tablePrefix))

  const children = new Map<string, ChildProcess>()
  for (const name of INSTANCES) children.set(name, yield* start(url, tablePrefix, name))
  yield* Console.log(`instances ${INSTANCES.join(", ")} and this process share the journal ${tablePrefix}*`)

  // this process is an instance too: it schedules every delivery, and runs its share of the lanes
  yield* Effect.gen(function*() {
    // one producer per customer, each in order; their appends are committed in groups
    const producers = yield* Effect.fork(Effect.forEach(
      Array.from({ length: CUSTOMERS }, (_, c) => `customer-${c}`),
      (customer) =>
        Effect.gen(function*() {
          for (let seq = 1; seq <= DELIVERIES; seq++) {
            yield* DurableSequent.schedule(new Deliver({ customer, seq }), { key: customer })
          }
        }),
      { concurrency: "unbounded", discard: true }
    ))

    const early = yield* until(sql, tablePrefix, (rows) => rows.length >= (CUSTOMERS * DELIVERIES) / 4)
    // the lanes each instance was running: whoever made a customer's latest delivery
    const runner = new Map(early.map((row) => [row.customer, row.instance]))
    const victim = INSTANCES.find((name) => [...runner.values()].includes(name))
    if (victim === undefined) return yield* Effect.fail(new Error("no instance process had a lane yet"))
    const lanes = new Set([...runner].filter(([, instance]) => instance === victim).map(([customer]) => customer))
    const killedAt = yield* Clock.currentTimeMillis
    children.get(victim)!.kill("SIGKILL")
    yield* Console.log(`kill -9 instance ${victim} after ${early.length} deliveries; it ran ${[...lanes].join(", ")}`)

    yield* until(
      sql,
      tablePrefix,
      (rows) => rows.slice(early.length).some((row) => row.instance !== victim && lanes.has(row.customer))
    )
    const takeover = (yield* Clock.currentTimeMillis) - killedAt
    yield* Console.log(`its lanes run again elsewhere ${takeover} ms after the kill`)

    yield* Fiber.join(producers)
    yield* Console.log(`scheduled ${CUSTOMERS * DELIVERIES} deliveries, ${DELIVERIES} per customer`)
    const all = (rows: ReadonlyArray<Delivery>) =>
      new Set(rows.map((row) => `${row.customer}/${row.seq}`)).size >= CUSTOMERS * DELIVERIES
    const rows = yield* until(sql, tablePrefix, all)
    for (const customer of [...new Set(rows.map((row) => row.customer))].sort()) {
      const by = [...new Set(rows.filter((row) => row.customer === customer).map((row) => row.instance))]
      yield* Console.log(`  ${customer}: delivered by ${by.join(" then ")}`)
    }
    const problems = check(rows)
    for (const problem of problems) yield* Console.error(`  ${problem}`)
    yield* Console.log(problems.length === 0 ? "PASS" : "FAIL")
    if (problems.length > 0) yield* Effect.sync(() => (process.exitCode = 1))
  }).pipe(Effect.provide(instance(url, tablePrefix, "demo")))

  // a clean shutdown hands an instance's lanes over at once
  for (const child of children.values()) if (child.exitCode === null) child.kill("SIGTERM")
})

const dropTables = (sql: PgClient.PgClient, tablePrefix: string) =>
  sql<{ readonly name: string }>`SELECT tablename AS name FROM pg_tables WHERE tablename LIKE ${`${tablePrefix}%`}`
    .pipe(
      Effect.flatMap((tables) => Effect.forEach(tables, ({ name }) => sql`DROP TABLE IF EXISTS ${sql(name)} CASCADE`)),
      Effect.ignore
    )

const [role, instanceUrl, instancePrefix, instanceName] = process.argv.slice(2)
if (role === "instance") {
  Console.log("ready").pipe(
    Effect.zipRight(Effect.never),
    Effect.provide(instance(Redacted.make(instanceUrl!), instancePrefix!, instanceName!)),
    NodeRuntime.runMain
  )
} else {
  Effect.scoped(demo).pipe(Effect.provide(PgClient.layer({ url: demoUrl })), NodeRuntime.runMain)
}
