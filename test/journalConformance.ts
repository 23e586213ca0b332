/**
 * The behaviour every `Journal` backend must have, as one suite. Call it
 * inside a `describe` with a layer that builds an empty journal each time it
 * is provided.
 */
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type { JournalEntry } from "../src/Journal.js"
import { Journal, JournalNotFoundError } from "../src/Journal.js"

export const entry = (id: string, lane = "", scheduledAt = 1_000): JournalEntry => ({
  id,
  lane,
  tag: "SendMail",
  payload: JSON.stringify({ to: `${id}@example.com` }),
  scheduledAt
})

const ids = (records: ReadonlyArray<{ readonly id: string }>) => records.map((record) => record.id)

const isIncreasing = (seqs: ReadonlyArray<number>) => seqs.every((seq, i) => i === 0 || seqs[i - 1] < seq)

export const journalConformance = (layer: Layer.Layer<Journal, unknown>): void => {
  const test = (name: string, body: (journal: Journal.Service) => Effect.Effect<void, unknown>) =>
    it.effect(name, () => Effect.flatMap(Journal, body).pipe(Effect.provide(layer)))

  test("append stores a batch with seqs increasing in input order and zero attempts", (journal) =>
    Effect.gen(function*() {
      const entries = [entry("a", "mail"), entry("b"), entry("c", "mail")]
      const results = yield* journal.append(entries)
      assert.deepStrictEqual(results.map((r) => r.inserted), [true, true, true])
      assert.isTrue(isIncreasing(results.map((r) => r.seq)))
      const pending = yield* journal.pending
      assert.deepStrictEqual(
        pending,
        entries.map((e, i) => ({ ...e, seq: results[i].seq, attempts: 0 }))
      )
    }))

  test("seq is one global order across appends and lanes", (journal) =>
    Effect.gen(function*() {
      const first = yield* journal.append([entry("a", "x"), entry("b", "y")])
      const second = yield* journal.append([entry("c", "y")])
      const third = yield* journal.append([entry("d", "x"), entry("e", "")])
      const seqs = [...first, ...second, ...third].map((r) => r.seq)
      assert.isTrue(isIncreasing(seqs))
      assert.deepStrictEqual(ids(yield* journal.pending), ["a", "b", "c", "d", "e"])
    }))

  test("an empty append stores nothing", (journal) =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* journal.append([]), [])
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  test("an id already pending is not stored again and answers with the existing seq", (journal) =>
    Effect.gen(function*() {
      const [first] = yield* journal.append([entry("a")])
      const again = yield* journal.append([{ ...entry("a", "other"), payload: "{\"changed\":true}" }, entry("b")])
      assert.deepStrictEqual(again[0], { seq: first.seq, inserted: false })
      assert.isTrue(again[1].inserted)
      const pending = yield* journal.pending
      assert.deepStrictEqual(ids(pending), ["a", "b"])
      assert.deepStrictEqual(pending[0], { ...entry("a"), seq: first.seq, attempts: 0 })
    }))

  test("an id repeated inside one batch is stored once and the first occurrence wins", (journal) =>
    Effect.gen(function*() {
      const results = yield* journal.append([
        entry("a", "first"),
        entry("b"),
        entry("a", "second"),
        entry("a", "third")
      ])
      assert.deepStrictEqual(results.map((r) => r.inserted), [true, true, false, false])
      assert.strictEqual(results[2].seq, results[0].seq)
      assert.strictEqual(results[3].seq, results[0].seq)
      const pending = yield* journal.pending
      assert.deepStrictEqual(pending.map((r) => [r.id, r.lane]), [["a", "first"], ["b", ""]])
    }))

  test("an id in the dead letters is not appended again", (journal) =>
    Effect.gen(function*() {
      const [a] = yield* journal.append([entry("a")])
      yield* journal.deadLetter(a.seq, "boom", 5_000)
      const [again] = yield* journal.append([entry("a")])
      assert.deepStrictEqual(again, { seq: a.seq, inserted: false })
      assert.deepStrictEqual(yield* journal.pending, [])
      assert.deepStrictEqual(ids(yield* journal.deadLetters), ["a"])
    }))

  test("a completed id may be appended again and gets a new seq", (journal) =>
    Effect.gen(function*() {
      const [a] = yield* journal.append([entry("a")])
      yield* journal.append([entry("b")])
      yield* journal.complete([a.seq])
      const [again] = yield* journal.append([entry("a")])
      assert.isTrue(again.inserted)
      assert.isAbove(again.seq, a.seq)
      assert.deepStrictEqual(ids(yield* journal.pending), ["b", "a"])
    }))

  test("a seq is never reused, even after the newest record completes", (journal) =>
    Effect.gen(function*() {
      const [a, b] = yield* journal.append([entry("a"), entry("b")])
      yield* journal.complete([a.seq, b.seq])
      const [c] = yield* journal.append([entry("c")])
      assert.isAbove(c.seq, b.seq)
    }))

  test("attemptFailed persists the attempt count of a pending record", (journal) =>
    Effect.gen(function*() {
      const [a, b] = yield* journal.append([entry("a"), entry("b")])
      yield* journal.attemptFailed(a.seq, 1)
      yield* journal.attemptFailed(a.seq, 2)
      yield* journal.attemptFailed(b.seq, 7)
      const pending = yield* journal.pending
      assert.deepStrictEqual(pending.map((r) => [r.id, r.attempts]), [["a", 2], ["b", 7]])
    }))

  test("complete removes several records in one call and ignores seqs that are not pending", (journal) =>
    Effect.gen(function*() {
      const results = yield* journal.append([entry("a"), entry("b"), entry("c"), entry("d")])
      yield* journal.complete([results[0].seq, results[2].seq, 987_654_321])
      assert.deepStrictEqual(ids(yield* journal.pending), ["b", "d"])
      yield* journal.complete([])
      yield* journal.complete([results[0].seq])
      assert.deepStrictEqual(ids(yield* journal.pending), ["b", "d"])
    }))

  test("deadLetter moves a pending record with its seq, attempts, reason and failure time", (journal) =>
    Effect.gen(function*() {
      const [a, b] = yield* journal.append([entry("a", "mail", 1_500), entry("b")])
      yield* journal.attemptFailed(a.seq, 3)
      yield* journal.deadLetter(a.seq, "SMTP 550: mailbox unavailable", 9_000)
      assert.deepStrictEqual(ids(yield* journal.pending), ["b"])
      assert.deepStrictEqual(yield* journal.deadLetters, [{
        ...entry("a", "mail", 1_500),
        seq: a.seq,
        attempts: 3,
        reason: "SMTP 550: mailbox unavailable",
        failedAt: 9_000
      }])
      assert.isBelow(a.seq, b.seq)
    }))

  test("deadLetters are listed in seq order", (journal) =>
    Effect.gen(function*() {
      const [a, b, c] = yield* journal.append([entry("a"), entry("b"), entry("c")])
      yield* journal.deadLetter(c.seq, "third", 3)
      yield* journal.deadLetter(a.seq, "first", 1)
      yield* journal.deadLetter(b.seq, "second", 2)
      const letters = yield* journal.deadLetters
      assert.deepStrictEqual(letters.map((l) => [l.id, l.seq]), [["a", a.seq], ["b", b.seq], ["c", c.seq]])
    }))

  test("attemptFailed and deadLetter ignore a seq that is not pending", (journal) =>
    Effect.gen(function*() {
      const [a] = yield* journal.append([entry("a")])
      yield* journal.deadLetter(a.seq, "gone", 1)
      yield* journal.attemptFailed(a.seq, 9)
      yield* journal.deadLetter(a.seq, "twice", 2)
      yield* journal.deadLetter(123_456, "unknown", 3)
      const letters = yield* journal.deadLetters
      assert.deepStrictEqual(letters.map((l) => [l.id, l.reason, l.attempts]), [["a", "gone", 0]])
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  test("redrive moves a dead letter to the end of pending with a new seq and zero attempts", (journal) =>
    Effect.gen(function*() {
      const [a, b] = yield* journal.append([entry("a", "mail"), entry("b", "mail")])
      yield* journal.attemptFailed(a.seq, 4)
      yield* journal.deadLetter(a.seq, "boom", 10)
      const [c] = yield* journal.append([entry("c", "mail")])
      const redriven = yield* journal.redrive("a")
      assert.deepStrictEqual(redriven, { ...entry("a", "mail"), seq: redriven.seq, attempts: 0 })
      assert.isAbove(redriven.seq, c.seq)
      assert.isAbove(c.seq, b.seq)
      assert.deepStrictEqual(yield* journal.deadLetters, [])
      const pending = yield* journal.pending
      assert.deepStrictEqual(ids(pending), ["b", "c", "a"])
      assert.deepStrictEqual(pending[2], redriven)
      // it is pending again, so appending the id is a no-op
      const [again] = yield* journal.append([entry("a")])
      assert.deepStrictEqual(again, { seq: redriven.seq, inserted: false })
    }))

  test("deadLetter with haltLane records the lane as halted in the same step; unhalt forgets one lane, or all", (journal) =>
    Effect.gen(function*() {
      const [a, b, c, d] = yield* journal.append([
        { ...entry("a"), lane: "x" },
        { ...entry("b"), lane: "y" },
        { ...entry("c"), lane: "z" },
        { ...entry("d"), lane: "w" }
      ])
      yield* journal.deadLetter(a.seq, "boom", 1, true)
      yield* journal.deadLetter(b.seq, "boom", 2, true)
      yield* journal.deadLetter(c.seq, "boom", 3, false)
      yield* journal.deadLetter(999_999, "not pending", 4, true)
      assert.deepStrictEqual(yield* journal.haltedLanes, ["x", "y"])
      yield* journal.unhalt("x")
      assert.deepStrictEqual(yield* journal.haltedLanes, ["y"])
      yield* journal.unhalt("never-halted")
      yield* journal.deadLetter(d.seq, "boom", 5, true)
      assert.deepStrictEqual(yield* journal.haltedLanes, ["w", "y"])
      yield* journal.unhalt(undefined)
      assert.deepStrictEqual(yield* journal.haltedLanes, [])
      assert.deepStrictEqual((yield* journal.deadLetters).map((letter) => letter.id), ["a", "b", "c", "d"])
    }))

  test("discard deletes a dead letter for good, answers with it, and frees its id", (journal) =>
    Effect.gen(function*() {
      const [a, b] = yield* journal.append([entry("a", "mail"), entry("b", "mail")])
      yield* journal.attemptFailed(a.seq, 3)
      yield* journal.deadLetter(a.seq, "boom", 10)
      yield* journal.deadLetter(b.seq, "bang", 11)
      const discarded = yield* journal.discard("a")
      assert.deepStrictEqual(discarded, {
        ...entry("a", "mail"),
        seq: a.seq,
        attempts: 3,
        reason: "boom",
        failedAt: 10
      })
      assert.deepStrictEqual((yield* journal.deadLetters).map((letter) => letter.id), ["b"])
      assert.deepStrictEqual(yield* journal.pending, [])
      // the id is free again: appending it stores a new record
      const [again] = yield* journal.append([entry("a", "mail")])
      assert.isTrue(again.inserted)
      assert.isAbove(again.seq, b.seq)
    }))

  test("discard of an id with no dead letter fails with JournalNotFoundError and changes nothing", (journal) =>
    Effect.gen(function*() {
      const [a] = yield* journal.append([entry("pending")])
      const unknown = yield* Effect.flip(journal.discard("nope"))
      assert.instanceOf(unknown, JournalNotFoundError)
      assert.strictEqual(unknown.id, "nope")
      const pending = yield* Effect.flip(journal.discard("pending"))
      assert.instanceOf(pending, JournalNotFoundError)
      assert.deepStrictEqual(yield* journal.pending, [{ ...entry("pending"), seq: a.seq, attempts: 0 }])
    }))

  test("redrive of an id with no dead letter fails with JournalNotFoundError", (journal) =>
    Effect.gen(function*() {
      yield* journal.append([entry("pending")])
      const unknown = yield* Effect.flip(journal.redrive("nope"))
      assert.instanceOf(unknown, JournalNotFoundError)
      assert.strictEqual(unknown.id, "nope")
      const pending = yield* Effect.flip(journal.redrive("pending"))
      assert.instanceOf(pending, JournalNotFoundError)
      assert.strictEqual(pending.id, "pending")
      assert.deepStrictEqual(ids(yield* journal.pending), ["pending"])
    }))

  test("ids, lanes, payload text and timestamps round-trip exactly", (journal) =>
    Effect.gen(function*() {
      const odd: JournalEntry = {
        id: "id with 'quotes', \"double\" and ünïcødé 🚀",
        lane: "lane/with:punctuation; DROP TABLE x;--",
        tag: "Tag.With.Dots",
        payload: JSON.stringify({ text: "line1\nline2\t\u0000end", emoji: "🧪", n: 1.25, big: "x".repeat(100_000) }),
        scheduledAt: 1_732_000_000_123
      }
      const fractional: JournalEntry = { ...entry("fractional"), scheduledAt: 0.5, payload: "" }
      yield* journal.append([odd, fractional])
      const pending = yield* journal.pending
      assert.deepStrictEqual(pending.map(({ attempts: _a, seq: _s, ...rest }) => rest), [odd, fractional])
      yield* journal.deadLetter(pending[0].seq, "reason with 'quotes' and 🚀", 1_732_000_000_999)
      const [letter] = yield* journal.deadLetters
      assert.strictEqual(letter.payload, odd.payload)
      assert.strictEqual(letter.reason, "reason with 'quotes' and 🚀")
      assert.strictEqual(letter.failedAt, 1_732_000_000_999)
      assert.strictEqual(letter.scheduledAt, odd.scheduledAt)
    }))

  test("a batch larger than one statement keeps input order and its duplicates", (journal) =>
    Effect.gen(function*() {
      yield* journal.append([entry("e-1500")])
      const entries = Array.from({ length: 2_500 }, (_, i) => entry(`e-${i % 2_200}`))
      const results = yield* journal.append(entries)
      const byId = new Map<string, number>()
      results.forEach((result, i) => {
        const id = entries[i].id
        if (byId.has(id)) {
          assert.deepStrictEqual(result, { seq: byId.get(id)!, inserted: false })
        } else {
          byId.set(id, result.seq)
          assert.strictEqual(result.inserted, id !== "e-1500", id)
        }
      })
      const pending = yield* journal.pending
      assert.strictEqual(pending.length, 2_200)
      assert.strictEqual(pending[0].id, "e-1500")
      assert.deepStrictEqual(
        ids(pending.slice(1)),
        Array.from({ length: 2_200 }, (_, i) => `e-${i}`).filter((id) => id !== "e-1500")
      )
      yield* journal.complete(pending.map((r) => r.seq))
      assert.deepStrictEqual(yield* journal.pending, [])
    }))

  test("concurrent appends and completes never store an id twice or share a seq", (journal) =>
    Effect.gen(function*() {
      const batches = Array.from({ length: 20 }, (_, b) =>
        Array.from({ length: 10 }, (_, i) => entry(`c-${(b * 7 + i) % 60}`)))
      const results = yield* Effect.forEach(batches, (batch) =>
        journal.append(batch), { concurrency: "unbounded" })
      const seqById = new Map<string, number>()
      results.flat().forEach((result, i) => {
        const id = batches.flat()[i].id
        const known = seqById.get(id)
        if (known === undefined) seqById.set(id, result.seq)
        else assert.strictEqual(result.seq, known)
      })
      assert.strictEqual(results.flat().filter((r) => r.inserted).length, 60)
      const pending = yield* journal.pending
      assert.strictEqual(new Set(ids(pending)).size, 60)
      assert.strictEqual(new Set(pending.map((r) => r.seq)).size, 60)
      yield* Effect.forEach(pending, (r) => journal.complete([r.seq]), { concurrency: "unbounded" })
      assert.deepStrictEqual(yield* journal.pending, [])
    }))
}

/**
 * For the SQL backends: a batch is one transaction even when it spans several
 * statements, so a failure part-way stores nothing of it.
 */
export const journalAtomicity = (layer: Layer.Layer<Journal, unknown>): void => {
  it.effect("an append that fails part-way stores none of its entries", () =>
    Effect.gen(function*() {
      const journal = yield* Journal
      yield* journal.append([entry("before")])
      const entries = Array.from({ length: 1_500 }, (_, i) => entry(`x-${i}`))
      // NOT NULL fails on the second statement of the batch, after the first 1000 rows went in
      const broken = { ...entry("broken"), payload: null as unknown as string }
      const error = yield* Effect.flip(journal.append([...entries.slice(0, 1_200), broken, ...entries.slice(1_200)]))
      assert.strictEqual(error._tag, "JournalError")
      assert.deepStrictEqual(ids(yield* journal.pending), ["before"])
      const [retried] = yield* journal.append([entry("x-0")])
      assert.isTrue(retried.inserted)
    }).pipe(Effect.provide(layer)))
}
