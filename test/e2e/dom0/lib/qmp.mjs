// QMP client for the per-domain QEMU that serves a guest's channels
// (/var/run/xen/qmp-libxl-<domid>). I/O layer: one short connection per call.
// QEMU serves one QMP client at a time, so calls are never overlapped; asynchronous
// events in the stream are skipped. Spec: QEMU docs/interop/qmp-spec.rst.
import net from 'node:net';

/**
 * Run QMP commands in order on one connection; resolves to their "return" values.
 * Rejects on an "error" reply (message names the command) or after timeoutMs.
 */
export function qmp(path, commands, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(path);
    const results = [];
    const queue = [{ execute: 'qmp_capabilities' }, ...commands];
    let buf = '',
      greeted = false,
      current = null;
    const timer = setTimeout(() => finish(new Error(`QMP ${path}: timeout`)), timeoutMs);
    const finish = (err) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(results);
    };
    const next = () => {
      current = queue.shift();
      if (!current) return finish();
      sock.write(`${JSON.stringify(current)}\n`);
    };
    sock.on('error', (e) => finish(new Error(`QMP ${path}: ${e.message}`)));
    sock.on('data', (chunk) => {
      buf += chunk.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.QMP) {
          greeted = true;
          next();
          continue;
        }
        if (msg.event || !greeted) continue;
        if (msg.error) return finish(new Error(`QMP ${current.execute}: ${msg.error.desc}`));
        if (current.execute !== 'qmp_capabilities') results.push(msg.return);
        next();
      }
    });
  });
}
