/*
 * A guest application for the real-Xen scenarios, built on the public API: waits for the
 * channel NAME (also after hotplug), opens it by name in raw mode and echoes every byte
 * back. Prints "OPEN <devid> <tty>" once open, and on the end "HANGUP <code>: <message>"
 * (the documented error when dom0 unplugs the channel) or "ERROR ...".
 *   node channel-echo.mjs NAME [TIMEOUT_SECONDS]
 */
import { openChannel, waitForChannel } from '../../../agent/index.js';

const [name, seconds] = process.argv.slice(2);
if (!name) {
  process.stderr.write('usage: channel-echo NAME [TIMEOUT_SECONDS]\n');
  process.exit(2);
}
try {
  const info = await waitForChannel(name, { timeoutMs: Number(seconds ?? 120) * 1000 });
  const channel = await openChannel(name);
  console.log(`OPEN ${info.devid} ${info.tty}`);
  channel.on('data', (chunk: Buffer) => channel.write(chunk));
  await new Promise<void>((resolve) => {
    channel.once('error', (err: Error & { code?: string }) => {
      console.log(`HANGUP ${err.code}: ${err.message}`);
      resolve();
    });
    channel.once('close', () => resolve());
  });
} catch (err) {
  console.log(`ERROR ${(err as Error & { code?: string }).code}: ${(err as Error).message}`);
  process.exit(1);
}
