/**
 * pg-boss on PostgreSQL, a `key_strict_fifo` queue (FIFO per `singletonKey`):
 * two worker processes and this process as the producer, one job per task,
 * every job a no-op that succeeds at once.
 *
 * pg-boss 12 needs Node >= 22.12 and is no dependency of this package, so this
 * child is plain JavaScript, run by `run.ts` with the Node 22 binary of the npm
 * package `node@22` from `PGBOSS_DIR`, a directory where
 * `npm install --save-exact pg-boss@12.38.0 node@22.23.3` was run (run.ts skips
 * it when PGBOSS_DIR is not set).
 *
 * Task i goes to key `lane-${i % lanes}`; one producer per key awaits each
 * `send`. Each worker runs `work` with `batchSize` jobs per fetch (pg-boss
 * hands out only the head job of a key, and only once the one before it has
 * completed), woken by NOTIFY. The clock stops when every job is completed in
 * the database. A key's jobs may run on either worker; see `verify` for the
 * exactly-once and order checks.
 *
 * Fresh schema `pgboss_bench<random>` each run, dropped at the end.
 *
 * Run: PGBOSS_DIR=... $PGBOSS_DIR/node_modules/.bin/node bench/durable/pg-boss.mjs [--n=2000] [--lanes=64] [--workers=2]
 */
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { createRequire } from "node:module"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { createInterface } from "node:readline"
import { setTimeout } from "node:timers"

const args = Object.fromEntries(
  process.argv.slice(2).filter((a) => a.startsWith("--")).map((a) => {
    const [k, v] = a.slice(2).split("=")
    return [k, v ?? "true"]
  })
)
const int = (name, fallback) => (args[name] === undefined ? fallback : Number(args[name]))
const role = args.role ?? "producer"
const n = int("n", 2_000)
const lanes = int("lanes", 64)
const workers = int("workers", 2)
const batchSize = int("batch", 64)
const schema = args.schema ?? `pgboss_bench${randomUUID().replaceAll("-", "").slice(0, 10)}`
const url = process.env.SEQUENT_PG_URL ?? "postgres://root@127.0.0.1:5432/test"
const queue = "work"

const require = createRequire(join(process.env.PGBOSS_DIR ?? process.cwd(), "package.json"))
const { PgBoss } = require("pg-boss")
const pg = require("pg")

const cpuMs = (since) => {
  const cpu = process.cpuUsage(since)
  return (cpu.user + cpu.system) / 1000
}

// -----------------------------------------------------------------------------

const worker = async () => {
  // a key's jobs may run on either worker, one at a time: here they must only come in increasing order
  const last = new Int32Array(lanes).fill(-1)
  const count = new Int32Array(lanes)
  const sum = new Float64Array(lanes)
  let errors = 0
  let first = ""
  const boss = new PgBoss({ connectionString: url, schema, useListenNotify: true, supervise: false, schedule: false })
  boss.on("error", (error) => process.stderr.write(`pg-boss worker error: ${error}\n`))
  await boss.start()
  await boss.work(
    queue,
    { batchSize, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 },
    async (jobs) => {
      for (const job of jobs) {
        const i = job.data.n
        const l = i % lanes
        if (i <= last[l] && errors++ === 0) first = `task ${i} of key ${l} ran after task ${last[l]}`
        last[l] = i
        count[l]++
        sum[l] += i
      }
    }
  )
  let cpu0 = process.cpuUsage()
  createInterface({ input: process.stdin }).on("line", async (line) => {
    if (line === "start") cpu0 = process.cpuUsage()
    if (line !== "report") return
    const report = { count: Array.from(count), sum: Array.from(sum), errors, first, cpuMs: cpuMs(cpu0) }
    process.stdout.write(`REPORT ${JSON.stringify(report)}\n`)
    await boss.stop({ graceful: false, wait: false }).catch(() => {})
    process.exit(0)
  })
  process.stdout.write("ready\n")
}

const startWorker = () => {
  const child = spawn(process.execPath, [
    process.argv[1],
    "--role=worker",
    `--schema=${schema}`,
    `--lanes=${lanes}`,
    `--batch=${batchSize}`
  ], {
    stdio: ["pipe", "pipe", "inherit"]
  })
  const queued = []
  const waiting = []
  createInterface({ input: child.stdout }).on("line", (line) => {
    const w = waiting.shift()
    if (w !== undefined) w(line)
    else queued.push(line)
  })
  const nextLine = () => queued.length > 0 ? Promise.resolve(queued.shift()) : new Promise((r) => waiting.push(r))
  return { child, nextLine, send: (line) => child.stdin.write(`${line}\n`) }
}

/**
 * Every task ran exactly once: per key, the runs the workers counted and the
 * sum of their task numbers are those of the key's tasks. In order per key: on
 * each worker (above), and across workers in the database, where each job of
 * a key started only after the one before it had completed.
 */
const verify = async (client, reports) => {
  for (const r of reports) if (r.errors > 0) throw new Error(`${r.errors} out-of-order runs; first: ${r.first}`)
  for (let l = 0; l < lanes; l++) {
    let expected = 0
    let expectedSum = 0
    for (let i = l; i < n; i += lanes) {
      expected++
      expectedSum += i
    }
    const ran = reports.reduce((total, r) => total + r.count[l], 0)
    const sum = reports.reduce((total, r) => total + r.sum[l], 0)
    if (ran !== expected || sum !== expectedSum) throw new Error(`key ${l}: ${ran} runs of its ${expected} tasks`)
  }
  const overlaps = await client.query(
    `SELECT count(*) AS c FROM (
      SELECT started_on, lag(completed_on) OVER (PARTITION BY singleton_key ORDER BY (data->>'n')::int) AS before
      FROM ${schema}.job WHERE name = $1) j
    WHERE started_on < before`,
    [queue]
  )
  const c = Number(overlaps.rows[0].c)
  if (c > 0) throw new Error(`${c} jobs started before the job before them in their key had completed`)
}

const producer = async () => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const boss = new PgBoss({ connectionString: url, schema, supervise: false, schedule: false })
  boss.on("error", (error) => process.stderr.write(`pg-boss error: ${error}\n`))
  const procs = []
  try {
    await boss.start()
    await boss.createQueue(queue, { policy: "key_strict_fifo", notify: true })
    for (let w = 0; w < workers; w++) procs.push(startWorker())
    for (const p of procs) {
      const line = await p.nextLine()
      if (line !== "ready") throw new Error(`a worker said ${line} before ready`)
    }
    const completed = async () =>
      Number(
        (await client.query(`SELECT count(*) AS c FROM ${schema}.job WHERE name = $1 AND state = 'completed'`, [queue]))
          .rows[0].c
      )

    for (const p of procs) p.send("start")
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    await Promise.all(
      Array.from({ length: lanes }, async (_, l) => {
        for (let i = l; i < n; i += lanes) await boss.send(queue, { n: i }, { singletonKey: `lane-${l}` })
      })
    )
    const enqueueMs = performance.now() - t0
    while ((await completed()) < n) await new Promise((r) => setTimeout(r, 2))
    const totalMs = performance.now() - t0
    const producerCpu = cpuMs(cpu0)

    const reports = []
    for (const p of procs) {
      p.send("report")
      const line = await p.nextLine()
      if (!line.startsWith("REPORT ")) throw new Error(`a worker said ${line} instead of its report`)
      reports.push(JSON.parse(line.slice("REPORT ".length)))
    }
    await verify(client, reports)
    return {
      impl: "pg-boss",
      mode:
        `key_strict_fifo, ${workers} worker processes + 1 producer process, ${lanes} producers, awaited; ${lanes} keys`,
      n,
      totalMs,
      enqueueMs,
      tasksPerSecond: Math.round(n / (totalMs / 1000)),
      cpuMs: producerCpu + reports.reduce((sum, r) => sum + r.cpuMs, 0),
      check:
        `each ran once, in order per key (${lanes} keys: on each worker, and across workers by start and completion times); every job completed`
    }
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL")
    await boss.stop({ graceful: false, wait: false }).catch(() => {})
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    await client.end()
  }
}

if (role === "worker") {
  worker().catch((error) => {
    process.stderr.write(`pg-boss worker failed: ${error?.stack ?? error}\n`)
    process.exit(2)
  })
} else {
  const watchdog = setTimeout(() => {
    process.stderr.write("pg-boss benchmark child timed out\n")
    process.exit(3)
  }, 600_000)
  watchdog.unref()
  producer().then(
    (result) => {
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
      process.exit(0)
    },
    (error) => {
      process.stderr.write(`\nDURABLE BENCHMARK FAILED:\n${error?.stack ?? error}\n`)
      process.exit(2)
    }
  )
}
