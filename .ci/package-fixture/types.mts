// The installed declarations type-check: every entry point resolves with its imports (under an
// isolated node_modules), and the types say what the README says.
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient";
import type * as SqlClient from "@effect/sql/SqlClient";
import { Effect, Layer, Redacted, Schema } from "effect";
import {
  Durable,
  DurableSequent,
  Journal,
  type JournalError,
  type JournalLockedError,
  Sequent,
  SequentLive,
  TaskKind,
} from "effect-sequent";
import manifest from "effect-sequent/package.json" with { type: "json" };
import * as PgJournal from "effect-sequent/PgJournal";
import * as SqliteJournal from "effect-sequent/SqliteJournal";

/** True when A and B are the same type (`any` is the same as nothing else). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

export const quick = Sequent.schedule(Effect.log("write")).pipe(Effect.provide(SequentLive));

class Write extends Schema.TaggedClass<Write>()("Write", { n: Schema.Number }) {}
const Tasks = TaskKind.make(Write);
const Handlers = Tasks.handlers({ Write: (write) => Effect.log(`write ${write.n}`) });
const { schedule } = DurableSequent.typed(Tasks);

export const sqlite: Layer.Layer<Journal, JournalError | JournalLockedError> = SqliteJournal.layer({
  filename: "t.db",
});
export const sqliteShared = SqliteJournal.layerFromClient();
// the requirement is @effect/sql-sqlite-node's client, found from effect-sequent's declarations
export const sqliteNeeds: Equals<Layer.Layer.Context<typeof sqliteShared>, SqliteClient.SqliteClient> = true;
export const pg: Layer.Layer<Journal, JournalError | JournalLockedError> = PgJournal.layer({
  url: Redacted.make("postgres://localhost/app"),
});
export const pgShared = PgJournal.layerFromClient();
export const pgNeeds: Equals<Layer.Layer.Context<typeof pgShared>, SqlClient.SqlClient> = true;

export const durable = schedule(new Write({ n: 1 }), { key: "lane", id: "write:1" }).pipe(
  Effect.provide(Durable.layer().pipe(Layer.provide(Handlers), Layer.provide(sqlite))),
);

// @ts-expect-error a value of an unregistered kind is a compile error
export const unregistered = schedule({ _tag: "Other" });

export const name: string = manifest.name;
