/** (1) The floor: a plain sequential `for … await fn()` loop; no queue at all. */
import type { Impl } from "./types.js"

export const impl: Impl = { kind: "floor", name: "await-loop", label: "plain await loop" }
