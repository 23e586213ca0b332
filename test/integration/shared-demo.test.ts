/**
 * `npm run demo:shared` as a user runs it: three instance processes and the
 * demo's own share one PostgreSQL journal, one is killed with SIGKILL
 * mid-stream, and the demo checks its record (every delivery made, per
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
  it("passes: every delivery made once a lane moved, each customer's in order", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", demo], {
      env: { ...process.env, SEQUENT_PG_URL: Redacted.value(url) },
      timeout: 120_000
    })
    const lines = stdout.trim().split("\n")
    assert.strictEqual(lines.at(-1), "PASS", stdout)
    assert.match(stdout, /kill -9 instance \w after \d+ deliveries/)
    assert.match(stdout, /its lanes run again elsewhere \d+ ms after the kill/)
  }, 150_000)
})
