/**
 * (6) Sequent through the service's methods: `sequent.schedule(task)` on the service taken from
 * a built `SequentLive`, called from a program that is not provided with it. Beside the
 * headline (accessor) row.
 */
import { service } from "./sequent.js"
import type { Impl } from "./types.js"

export const impl: Impl = { kind: "effect", name: "sequent-service", label: "Sequent (service methods)", make: service }
