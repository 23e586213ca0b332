/**
 * `npm run demo:shared` as a user runs it: two instance processes on one
 * PostgreSQL journal deliver writes to the demo's HTTP backend, which goes
 * down; one instance is killed with SIGKILL mid-outage, the other takes its
 * lanes, and the demo checks the backend's record (every write once, per
 * customer in order, a repeat only where a lane moved) and prints PASS.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Redacted from "effect/Redacted"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { url } from "./support/PgTables.js"

const demo = fileURLToPath(new URL("../../examples/shared-demo.ts", import.meta.url))

describe("the shared demo", () => {
  it("passes: every write recorded once, each customer's in order, after a kill -9 mid-outage", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", demo], {
      env: { ...process.env, SEQUENT_PG_URL: Redacted.value(url) },
      timeout: 120_000
    })
    const lines = stdout.trim().split("\n")
    assert.strictEqual(lines.at(-1), "PASS", stdout)
    assert.match(stdout, /backend: down after \d+ writes/)
    assert.match(stdout, /both retrying; a runs customer-\d/)
    assert.match(stdout, /kill -9 instance a/)
    assert.match(stdout, /b retries a's lanes too, \d+ ms after the kill/)
    assert.match(stdout, /record {6}writes 1\.\.\d+ of each customer, each once, in order/)
  }, 150_000)
})
