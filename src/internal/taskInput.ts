/**
 * The rules for the id and the key of a durable task (and the characters of
 * a task kind's tag): each journal (memory, SQLite, PostgreSQL) must store
 * them exactly as given and be able to index them, so that a task keeps its
 * identity and its lane across a restart.
 *
 * - a lone UTF-16 surrogate cannot be written as UTF-8: SQLite stores U+FFFD
 *   in its place, so after a restart the task has another id or lane;
 * - PostgreSQL cannot store the NUL character in text at all;
 * - PostgreSQL refuses to index a value longer than about a third of a page,
 *   so ids and keys are limited to `maxBytes` bytes of UTF-8;
 * - a journal stores the lane of a task scheduled without a key as `""`, so
 *   the key `""` would be a lane of its own only until the next restart.
 *
 * @internal
 */
import { SequentInvalidTaskError } from "../SequentError.js"

/**
 * The longest id or key, in bytes of UTF-8.
 *
 * @internal
 */
export const maxBytes = 1024

/** In a `u` regular expression a surrogate pair is one code point, so `\p{Cs}` matches only a lone surrogate. */
const unstorable = /[\0\p{Cs}]/u

/** Bytes of UTF-8 of a string that has no lone surrogate. */
const utf8Length = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff) bytes += 4 // with the low surrogate that follows
    else if (unit < 0xdc00 || unit > 0xdfff) bytes += 3
  }
  return bytes
}

/**
 * What in `text` a journal cannot store as given (a NUL character, a lone
 * UTF-16 surrogate), or undefined when there is nothing.
 *
 * @internal
 */
export const unstorableText = (text: string): string | undefined => {
  const found = unstorable.exec(text)
  if (found === null) return undefined
  return found[0] === "\0"
    ? `a NUL character (at index ${found.index})`
    : `a lone UTF-16 surrogate (\\u${found[0].charCodeAt(0).toString(16)} at index ${found.index})`
}

/** Why `value` cannot be the task's `name`, or undefined when it can. */
const problem = (name: "id" | "key", value: unknown): string | undefined => {
  if (typeof value !== "string") return `its ${name} is not a string`
  if (name === "key" && value === "") return "its key is empty, which a journal stores as no key (the default lane)"
  const what = unstorableText(value)
  if (what !== undefined) return `its ${name} contains ${what}, which a journal cannot store as given`
  // every UTF-16 unit is one to three bytes of UTF-8
  if (value.length * 3 <= maxBytes) return undefined
  const bytes = utf8Length(value)
  return bytes > maxBytes
    ? `its ${name} is ${bytes} bytes long in UTF-8, more than the ${maxBytes} a journal indexes`
    : undefined
}

/**
 * The error for a task whose `id` or `key` breaks the rules above, or
 * undefined when both are fine (or not given).
 *
 * @internal
 */
export const invalidIdOrKey = (
  tag: string,
  id: string | undefined,
  key: string | undefined
): SequentInvalidTaskError | undefined => {
  const reason = (id === undefined ? undefined : problem("id", id)) ??
    (key === undefined ? undefined : problem("key", key))
  return reason === undefined ? undefined : new SequentInvalidTaskError({ tag, reason })
}
