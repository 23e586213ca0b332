/** The retry setup shared by retry.ts and micro.ts: fail 3 times, then succeed; zero-delay p-retry. */
export const FAILURES = 3
export const pRetryOptions = { retries: FAILURES, minTimeout: 0, factor: 1 } as const
