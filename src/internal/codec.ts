/**
 * The payload codec of durable tasks, used by `schedule` and by the restore
 * of stored tasks alike. A task is stored as the JSON text of its kind's
 * encoded form, and its handler receives, in the process that scheduled it,
 * the task a restarted process decodes from that text.
 *
 * A task is refused when its text would not give it back:
 *
 * - its encoded form cannot be written as JSON (a `bigint`, a cycle);
 * - JSON would change its encoded form: a number that is not finite (`NaN`,
 *   `Infinity`), a value that is not a plain object, array or primitive (a
 *   `Map`, a `Date` or a class instance under `Schema.Unknown`), `undefined`
 *   or a function in an array;
 * - its text does not decode with the kind's schema.
 *
 * Two changes JSON makes are kept, as a restarted process sees them too: a
 * property whose value is `undefined` is absent (an optional field left
 * out), and `-0` is `0`.
 *
 * The task a handler receives is decoded from the text, unless decoding is
 * bound to give back the scheduled task: when the kind is a class whose
 * fields have no transformation (no `Schema.Date`, no `Schema.BigInt`, no
 * nested class, no transformation of one's own) and JSON gave its encoded
 * form back exactly. Decoding a class costs several times what encoding it
 * does, on the path of every task.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import { SequentInvalidTaskError } from "../SequentError.js"

/** A task kind, as the codec sees it: a schema of a tagged value. */
type Kind = Schema.Schema<any, any, never>

/** A task: a value of a kind. */
interface Task {
  readonly _tag: string
}

/**
 * What is stored of a task, and the task a handler receives.
 *
 * @internal
 */
export interface Stored {
  readonly payload: string
  readonly task: Task
}

/**
 * The codec over the registered kinds. Its encoders and decoders are
 * synchronous and built once per kind: `Schema.encode` would look the parser
 * up and build an effect for every task. A kind whose schema works
 * asynchronously takes the effectful path instead, which also gives the
 * error when a task does not encode or decode.
 *
 * @internal
 */
export const make = (kinds: ReadonlyMap<string, Kind>) => {
  const encoders = new Map<Kind, (task: unknown) => Either.Either<unknown, ParseResult.ParseIssue>>()
  const decoders = new Map<Kind, (json: unknown) => Either.Either<Task, ParseResult.ParseIssue>>()
  const encoderOf = (kind: Kind) => cached(encoders, kind, ParseResult.encodeUnknownEither)
  const decoderOf = (kind: Kind) => cached(decoders, kind, ParseResult.decodeUnknownEither)
  const plains = new Map<Kind, boolean>()
  const plainOf = (kind: Kind) => cached(plains, kind, isPlainClass)

  /** The text of `encoded`, and the task decoded from it; or why the task cannot be stored. */
  const store = (kind: Kind, task: Task, encoded: unknown): Effect.Effect<Stored, SequentInvalidTaskError> => {
    const tag = task._tag
    const text = jsonText(tag, encoded)
    if (Either.isLeft(text)) return Either.left(text.left)
    const payload = text.right
    const changed = faithful(encoded)
    if (changed === EXACT && plainOf(kind)) return Either.right({ payload, task })
    if (changed !== EXACT && changed !== KEPT) {
      return invalid(
        tag,
        `JSON cannot hold its encoded form: ${changed.path || "the value"} is ${describe(changed.value)}`
      )
    }
    const json: unknown = JSON.parse(payload)
    const decoded = decoderOf(kind)(json)
    if (Either.isRight(decoded)) return Either.right({ payload, task: decoded.right })
    return storedAfterDecoding(kind, tag, payload, json)
  }

  return {
    /** The stored form of `task`, of the registered `kind`, with the task a handler receives. */
    encode: (kind: Kind, task: Task): Effect.Effect<Stored, SequentInvalidTaskError> => {
      const encoded = encoderOf(kind)(task)
      return Either.isRight(encoded)
        ? store(kind, task, encoded.right)
        : Schema.encode(kind)(task).pipe(
          Effect.mapError((error) => new SequentInvalidTaskError({ tag: task._tag, reason: error.message })),
          Effect.flatMap((value) => store(kind, task, value))
        )
    },
    /**
     * The task stored as `payload` of the kind `tag`; or why it cannot be run.
     * A task decoded synchronously comes back as an `Either`, so that a store
     * can queue it without running an effect for it.
     */
    decode: (tag: string, payload: string): Effect.Effect<Task, string> => {
      const kind = kinds.get(tag)
      if (kind === undefined) return Either.left(`no task kind ${tag} is registered`)
      const json = Either.try({ try: (): unknown => JSON.parse(payload), catch: messageOf })
      if (Either.isLeft(json)) return Either.left(`the payload is not JSON: ${json.left}`)
      const decoded = decoderOf(kind)(json.right)
      if (Either.isRight(decoded)) return Either.right(decoded.right)
      // an asynchronous schema, or a payload that does not decode: the effectful path, which says why
      return Effect.mapError(
        Schema.decodeUnknown(kind)(json.right),
        (error) => `the payload no longer decodes as ${tag}: ${error.message}`
      )
    }
  }
}

const invalid = (tag: string, reason: string) => Either.left(new SequentInvalidTaskError({ tag, reason }))

/** `encoded` as JSON text; or why it cannot be stored. */
const jsonText = (tag: string, encoded: unknown): Either.Either<string, SequentInvalidTaskError> => {
  const text = Either.try({ try: () => JSON.stringify(encoded) as string | undefined, catch: messageOf })
  if (Either.isLeft(text)) return invalid(tag, `it cannot be written as JSON: ${text.left}`)
  if (text.right === undefined) return invalid(tag, `it encodes to ${describe(encoded)}, which is not JSON`)
  return Either.right(text.right)
}

/**
 * The stored form of a task whose JSON the synchronous decoder refused: the
 * effectful path, for an asynchronous schema, or to say why it does not decode.
 */
const storedAfterDecoding = (
  kind: Kind,
  tag: string,
  payload: string,
  json: unknown
): Effect.Effect<Stored, SequentInvalidTaskError> =>
  Schema.decodeUnknown(kind)(json).pipe(
    Effect.mapBoth({
      onFailure: (error) =>
        new SequentInvalidTaskError({ tag, reason: `its stored form does not decode: ${error.message}` }),
      onSuccess: (task): Stored => ({ payload, task })
    })
  )

const cached = <V>(cache: Map<Kind, V>, kind: Kind, build: (kind: Kind) => V): V => {
  const known = cache.get(kind)
  if (known !== undefined) return known
  const value = build(kind)
  cache.set(kind, value)
  return value
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * Whether `kind` is a class over fields of plain data: its encoded form is
 * its fields as they are, so decoding that form gives back an equal task.
 */
const isPlainClass = (kind: Kind): boolean => {
  const ast = kind.ast
  return ast._tag === "Transformation" && ast.to._tag === "Declaration" && ast.from._tag === "TypeLiteral" &&
    isPlain(ast.from)
}

/** Whether a schema decodes a value to itself: it has no transformation, no declaration (a class), no recursion. */
const isPlain = (ast: AST.AST): boolean => {
  switch (ast._tag) {
    case "Transformation":
    case "Declaration":
    case "Suspend":
      return false
    case "Refinement":
      return isPlain(ast.from)
    case "Union":
      return ast.types.every(isPlain)
    case "TupleType":
      return ast.elements.every((element) => isPlain(element.type)) && ast.rest.every((rest) => isPlain(rest.type))
    case "TypeLiteral":
      return ast.propertySignatures.every((property) => isPlain(property.type)) &&
        ast.indexSignatures.every((index) => isPlain(index.type))
    default:
      return true
  }
}

/** JSON gives the value back as it was. */
const EXACT = 0
/**
 * JSON gives the value back but for what a restarted process sees too: an
 * `undefined` property left out, `-0` as `0`, an object without a prototype
 * as a plain one.
 */
const KEPT = 1
/** Where JSON would not give the value back, and what the value has there. */
interface Changed {
  readonly path: string
  readonly value: unknown
}

/**
 * What `JSON.parse(JSON.stringify(value))` gives back of `value`, found by a
 * walk of `value` instead of parsing the text: a string, a boolean, `null`, a
 * finite number, and arrays and plain objects of them come back as they
 * were. `JSON.stringify` has already accepted `value`, so it has no cycle.
 * The path of a change is built on the way back, so a value that comes back
 * costs no string.
 */
const faithful = (value: unknown): typeof EXACT | typeof KEPT | Changed => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return EXACT
    case "number":
      return !Number.isFinite(value) ? { path: "", value } : Object.is(value, -0) ? KEPT : EXACT
    case "object": {
      if (value === null) return EXACT
      let result: typeof EXACT | typeof KEPT = EXACT
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const found = faithful(value[i])
          if (found === KEPT) result = KEPT
          else if (found !== EXACT) return { path: `[${i}]${found.path}`, value: found.value }
        }
        return result
      }
      const proto = Object.getPrototypeOf(value)
      if (proto === null) result = KEPT
      else if (proto !== Object.prototype) return { path: "", value }
      const record = value as Record<string, unknown>
      for (const key in record) {
        const field = record[key]
        // JSON leaves out an undefined property, as it leaves out a function: only the first is no loss
        if (field === undefined) result = KEPT
        else {
          const found = faithful(field)
          if (found === KEPT) result = KEPT
          else if (found !== EXACT) return { path: `.${key}${found.path}`, value: found.value }
        }
      }
      return result
    }
    default:
      return { path: "", value }
  }
}

/** A value, for a reason: what kind of thing it is. */
const describe = (value: unknown): string => {
  switch (typeof value) {
    case "number":
      return String(value)
    case "bigint":
      return `the bigint ${value}n`
    case "object": {
      if (value === null) return "null"
      const name = Object.getPrototypeOf(value)?.constructor?.name
      return typeof name === "string" && name !== "" ? `a ${name}` : "an object"
    }
    default:
      return typeof value === "undefined" ? "undefined" : `a ${typeof value}`
  }
}
