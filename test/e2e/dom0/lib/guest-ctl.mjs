// dom0 end of the guest control path: the guest's primary console pty (xenconsoled)
// opened once through `socat` (raw, no echo) for the whole life of the guest.
// I/O layer. Requests are serialised (the guest runs one script at a time); a reply
// is recognised only by its request id, so kernel lines, stale input and replies to
// earlier probes are ignored. Protocol: see test/e2e/guest/e2e-ctl.
// close() kills socat; pending requests reject.
import { spawn } from 'node:child_process';

const REP = /E2E-REP (\S+) (\d+) (\S+) (\S+) E2E-END/;

export class GuestControl {
  constructor(ptyPath) {
    this.proc = spawn('socat', ['-', `${ptyPath},raw,echo=0`], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.waiters = new Map(); // id -> { resolve }
    this.text = '';
    this.seq = 0;
    this.chain = Promise.resolve();
    this.proc.stdout.on('data', (chunk) => this.#onData(chunk));
    this.proc.on('exit', () => {
      for (const w of this.waiters.values()) w.resolve({ closed: true });
      this.waiters.clear();
    });
    this.proc.stdin.on('error', () => {});
  }

  #onData(chunk) {
    this.text += chunk.toString('latin1');
    for (let nl = this.text.indexOf('\n'); nl >= 0; nl = this.text.indexOf('\n')) {
      const line = this.text.slice(0, nl);
      this.text = this.text.slice(nl + 1);
      const m = REP.exec(line);
      const w = m && this.waiters.get(m[1]);
      if (!w) continue;
      this.waiters.delete(m[1]);
      const dec = (s) => (s === '-' ? '' : Buffer.from(s, 'base64').toString());
      w.resolve({ code: Number(m[2]), stdout: dec(m[3]), stderr: dec(m[4]) });
    }
  }

  #send(id, script, limitS) {
    const b64 = Buffer.from(script).toString('base64');
    this.proc.stdin.write(`\nE2E-REQ ${id} ${limitS} ${b64}\n`);
  }

  #wait(id, ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve({ timeout: true });
      }, ms);
      this.waiters.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      });
    });
  }

  #forget(id) {
    this.waiters.get(id)?.resolve({ timeout: true });
    this.waiters.delete(id);
  }

  /**
   * Run a bash script in the guest; resolves to {code, stdout, stderr}.
   * The guest kills it after limitS (code 124); rejects if no reply comes at all.
   */
  run(script, limitS = 60) {
    const go = async () => {
      const id = `r${++this.seq}x${Date.now() % 100000}`;
      const reply = this.#wait(id, (limitS + 20) * 1000);
      this.#send(id, script, limitS);
      const r = await reply;
      if (r.closed) throw new Error('guest console closed');
      if (r.timeout) throw new Error(`no reply from the guest control server within ${limitS + 20} s`);
      return r;
    };
    const p = this.chain.then(go, go);
    this.chain = p.catch(() => {});
    return p;
  }

  /**
   * Probe until the control server answers (sent every 2 s; any probe's reply counts).
   * isDead() is polled to give up early (guest crashed). Resolves true when ready.
   */
  async waitReady(timeoutS, isDead) {
    const deadline = Date.now() + timeoutS * 1000;
    let ready = false;
    const probes = [];
    while (!ready && Date.now() < deadline) {
      const id = `p${++this.seq}`;
      probes.push(
        this.#wait(id, timeoutS * 1000).then((r) => {
          if (!r.timeout && !r.closed) ready = true;
        }),
      );
      this.#send(id, 'true', 10);
      for (let i = 0; i < 20 && !ready; i++) await new Promise((r) => setTimeout(r, 100));
      if (!ready && (await isDead())) break;
    }
    for (const id of [...this.waiters.keys()]) if (id.startsWith('p')) this.#forget(id);
    await Promise.all(probes);
    return ready;
  }

  close() {
    for (const id of [...this.waiters.keys()]) this.#forget(id);
    this.proc.kill();
  }
}
