// Every package that dist/ imports must be declared in package.json: under an isolated
// node_modules (npm's linked strategy, pnpm) an undeclared one is not there, and the import
// fails with ERR_MODULE_NOT_FOUND. What the root entry point loads must also be installed by
// `npm install effect-sequent`: a dependency, or a peer that is not optional.
//
//   npm run build && node scripts/check-imports.mjs
import { readdirSync, readFileSync } from "node:fs"
import { isBuiltin } from "node:module"
import { dirname, join, relative, resolve } from "node:path"
import ts from "typescript"

const root = resolve(import.meta.dirname, "..")
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))
const dist = join(root, "dist")

/** The module specifiers a file imports or re-exports, statically or dynamically (comments ignored). */
const specifiers = (file) =>
  ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles.map((imported) => imported.fileName)

/** `@scope/name/sub` and `name/sub` to the package name; undefined for relative paths and node builtins. */
const packageOf = (specifier) => {
  if (specifier.startsWith(".") || specifier.startsWith("/") || isBuiltin(specifier)) return undefined
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]
}

const files = readdirSync(dist, { recursive: true, encoding: "utf8" })
  .filter((file) => file.endsWith(".js") || file.endsWith(".d.ts"))
  .map((file) => join(dist, file))
  .sort()

const declared = (name) =>
  name === manifest.name
  || Object.hasOwn(manifest.dependencies ?? {}, name)
  || Object.hasOwn(manifest.peerDependencies ?? {}, name)
const installedByDefault = (name) =>
  name === manifest.name
  || Object.hasOwn(manifest.dependencies ?? {}, name)
  || (Object.hasOwn(manifest.peerDependencies ?? {}, name) && manifest.peerDependenciesMeta?.[name]?.optional !== true)

/** The packages that a JavaScript file loads, with the files it loads through relative imports. */
const loadedFrom = (entry) => {
  const seen = new Set()
  const packages = new Set()
  const visit = (file) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const specifier of specifiers(file)) {
      const name = packageOf(specifier)
      if (name !== undefined) packages.add(name)
      else if (specifier.startsWith(".")) visit(resolve(dirname(file), specifier))
    }
  }
  visit(entry)
  return packages
}

const problems = []
const importers = new Map()
for (const file of files) {
  for (const specifier of specifiers(file)) {
    const name = packageOf(specifier)
    if (name === undefined) continue
    if (!importers.has(name)) importers.set(name, new Set())
    importers.get(name).add(relative(root, file))
  }
}
for (const [name, from] of [...importers].sort(([a], [b]) => a.localeCompare(b))) {
  const kind = Object.hasOwn(manifest.dependencies ?? {}, name)
    ? "dependency"
    : Object.hasOwn(manifest.peerDependencies ?? {}, name)
    ? manifest.peerDependenciesMeta?.[name]?.optional === true ? "optional peer" : "peer"
    : name === manifest.name
    ? "the package itself"
    : "NOT DECLARED"
  const where = from.size > 3 ? `${from.size} files` : [...from].join(", ")
  console.log(`${name.padEnd(26)} ${kind.padEnd(18)} ${where}`)
  if (!declared(name)) problems.push(`${name} is imported by ${[...from].join(", ")} but is not declared`)
}

const rootEntry = join(root, manifest.exports["."].default)
for (const name of loadedFrom(rootEntry)) {
  if (!installedByDefault(name)) {
    problems.push(
      `${name} is loaded by ${relative(root, rootEntry)} but \`npm install ${manifest.name}\` does not install it`
    )
  }
}

if (files.length === 0) problems.push("dist/ holds no .js or .d.ts file: run `npm run build` first")
if (problems.length > 0) {
  console.error(problems.map((problem) => `error: ${problem}`).join("\n"))
  process.exit(1)
}
console.log(`ok: the ${files.length} files in dist/ import only declared packages`)
