/*
 * A clock driven by hand: sleep() waits until the test calls fire() (every pending sleep) and
 * rejects as soon as its signal aborts, leaving nothing pending behind. Test helper; no timers.
 */
import type { Clock } from '../../agent/clock.js';

export interface ManualClock extends Clock {
  /** Sleeps started and neither fired nor aborted yet, by duration. */
  readonly pending: number[];
  /** Resolves every pending sleep, as if its time had come. */
  fire(): void;
}

export function manualClock(): ManualClock {
  const sleeps = new Set<{ ms: number; resolve: () => void }>();
  return {
    get pending() {
      return [...sleeps].map((s) => s.ms);
    },
    now: () => 0,
    epochMs: () => 0,
    sleep: (ms, signal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        const entry = {
          ms,
          resolve: () => {
            sleeps.delete(entry);
            resolve();
          },
        };
        sleeps.add(entry);
        signal?.addEventListener(
          'abort',
          () => {
            sleeps.delete(entry);
            reject(signal.reason);
          },
          { once: true },
        );
      }),
    fire() {
      for (const s of [...sleeps]) s.resolve();
    },
  };
}
