/**
 * The README tells the truth: every TypeScript block in it is either a whole
 * file under examples/readme/ (each of which runs to completion here), or a
 * verbatim excerpt of a program under examples/ (run by its own test). Every
 * file under examples/ is type-checked by `npm run check`. The install
 * commands are examples/install.sh, which .ci/package-check runs, and every
 * file the README links to ships in the package.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const readme = readFileSync(join(root, "README.md"), "utf8")
const blocks = Array.from(readme.matchAll(/```ts\n([\s\S]*?)```/g), (match) => match[1]!.trim())
const dir = join(root, "examples", "readme")
const files = readdirSync(dir).filter((file) => file.endsWith(".ts")).sort()
const sources = new Map(files.map((file) => [file, readFileSync(join(dir, file), "utf8").trim()]))
const programs = readdirSync(join(root, "examples"), { recursive: true, encoding: "utf8" })
  .filter((file) => file.endsWith(".ts") && !file.startsWith("readme"))
  .map((file) => readFileSync(join(root, "examples", file), "utf8"))

const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly files: ReadonlyArray<string>
}
/** The README's `## Install` section, up to the next section. */
const installSection = readme.match(/^## Install\n([\s\S]*?)^## /m)?.[1] ?? ""
/** Relative links: `[text](path)`, without web addresses and anchors. */
const links = Array.from(new Set(Array.from(readme.matchAll(/\]\(([^)#:]+)\)/g), (match) => match[1]!)))

/** What each runnable example prints last, as the README describes it. */
const lastLines: Record<string, string> = {
  "01-quick.ts": "write 3",
  "02-retry.ts": "done after 3 calls",
  "03-submit.ts": "value 42, error rejected",
  "04-flush-stop.ts": "Sequent is stopped: it accepts no new tasks",
  "20-durable.ts": "charges made: 1, dead letters: 0",
  "21-durable-request.ts": "charged r-o-1; card declined for o-3"
}

describe("README", () => {
  it("has TypeScript examples", () => {
    assert.isAtLeast(blocks.length, 5)
  })

  it("its install commands are examples/install.sh, verbatim", () => {
    const block = installSection.match(/```sh\n([\s\S]*?)```/)?.[1]
    assert.isDefined(block, "no sh block in the Install section")
    assert.strictEqual(block, readFileSync(join(root, "examples", "install.sh"), "utf8"))
  })

  it("every file it links to exists and ships in the package (package.json files)", () => {
    assert.isAtLeast(links.length, 5)
    for (const link of links) {
      assert.isTrue(existsSync(join(root, link)), `the README links to ${link}, which does not exist`)
      const shipped = manifest.files.some((entry) => link === entry || link.startsWith(`${entry}/`))
      assert.isTrue(shipped, `the README links to ${link}, which package.json's files leave out of the package`)
    }
  })

  blocks.forEach((block, index) => {
    it(`example ${index + 1} is a checked file under examples/readme, or an excerpt of an example program`, () => {
      const whole = files.some((name) => sources.get(name) === block)
      const excerpt = programs.some((program) => program.includes(block))
      assert.isTrue(
        whole || excerpt,
        `README block ${index + 1} starting ${JSON.stringify(block.slice(0, 60))} is in no file`
      )
    })
  })

  for (const file of files.filter((name) => !name.endsWith(".test.ts"))) {
    it.concurrent(`examples/readme/${file} runs, exits 0 and prints what the README says`, () => {
      const output = execFileSync(process.execPath, ["--import", "tsx", join(dir, file)], {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 120_000
      })
      const expected = lastLines[file]
      assert.isDefined(expected, `no expected output recorded for ${file}`)
      assert.include(output, expected!)
    }, 180_000)
  }
})
