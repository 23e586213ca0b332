/**
 * Log handling for the Effect-world children. Sequent logs a WARN on every failed attempt; in the
 * retry benchmarks that would print hundreds of thousands of lines, so by default (`off`) the
 * minimum log level is raised to Error. `format` keeps the WARN logs and formats each with Effect's
 * string logger but discards the text — it shows what the logging itself costs, without terminal I/O.
 */
import { Effect, Logger, LogLevel } from "effect"

export type LogMode = "off" | "format"

export const parseLogMode = (value: string | undefined): LogMode => {
  if (value === undefined || value === "off") return "off"
  if (value === "format") return "format"
  throw new Error(`--logs must be off or format, got ${value}`)
}

const discardFormatted = Logger.map(Logger.stringLogger, () => undefined)

export const withLogs = (mode: LogMode) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  mode === "off"
    ? Logger.withMinimumLogLevel(self, LogLevel.Error)
    : Effect.provide(self, Logger.replace(Logger.defaultLogger, discardFormatted))
