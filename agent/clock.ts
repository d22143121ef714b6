/*
 * The clock seam: time and waiting, injected wherever backoff, debounce or timeouts happen so
 * that tests drive time by hand. `systemClock` is the real one; composition roots pass it in.
 * Layer: effect (timers). sleep() rejects with the signal's reason when aborted and leaves no
 * timer behind.
 */

export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for times that outlive the process. */
  epochMs(): number;
  /** Resolves after `ms`; rejects with `signal.reason` if the signal aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  epochMs: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
