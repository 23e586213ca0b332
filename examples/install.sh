# the core: Sequent, lanes, and the durable executor with the in-memory journal
npm install effect-sequent effect@3
# tests on virtual time (TestClock): vitest and @effect/vitest
npm install -D vitest@3 @effect/vitest@0.30
# OpenTelemetry: metrics export and tracing through @effect/opentelemetry's NodeSdk
npm install @effect/opentelemetry@0.64 @opentelemetry/api@1 @opentelemetry/sdk-metrics@2 @opentelemetry/sdk-trace-base@2
# the PostgreSQL journal, effect-sequent/PgJournal
npm install @effect/sql@0.52 @effect/sql-pg@0.53 @effect/experimental@0.61
# the SQLite journal, effect-sequent/SqliteJournal (better-sqlite3 is a native module)
npm install @effect/sql@0.52 @effect/sql-sqlite-node@0.53 @effect/experimental@0.61 better-sqlite3@12
