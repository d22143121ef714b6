/*
 * What every CLI subcommand shares: the exit codes (listed in the README) and UsageError,
 * which main() turns into exit code 2 with the message. Layer: pure.
 */

export const EXIT = { ok: 0, failed: 1, usage: 2, noXenstore: 3, noChannel: 4, timedOut: 5 } as const;

/** The command line is wrong; the message says how. */
export class UsageError extends Error {}
