/*
 * Rules-file injection and path traversal are impossible by construction (issue 9): for
 * arbitrary name bytes from xenstore, validateName() either refuses them or the rules that
 * renderRules() makes from them parse back into exactly the expected assignments, one rule
 * line per channel, every SYMLINK a plain <dir>/<name> below /dev. Property-based (fast-check);
 * the generators mix arbitrary bytes with the characters that matter to udev and to paths.
 */
import { posix } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { type ChannelName, validateName } from '../../../agent/model/names.js';
import { DEFAULT_LINK_DIRS, renderRules } from '../../../agent/model/rules.js';

/** Bytes that are interesting to udev's rule syntax, to shells and to paths, plus ordinary ones. */
const SHARP = [...'a.-_/\\"\'$%*?[]{}=+!,#: \t\n\r\0\x7f', 'A', '0', '..', '../', '\u00e9', '\uff0f'];
const nameBytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.array(fc.constantFrom(...SHARP), { maxLength: 40 }).map((parts) => new Uint8Array(Buffer.from(parts.join('')))),
  fc.stringMatching(/^[A-Za-z0-9._-]{1,130}$/).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
);

/** One rule line back into its assignments, the way udev tokenises it: KEY OP "VALUE", comma-separated. */
function parseRule(line: string): Array<[string, string, string]> {
  const token = /^\s*([A-Z_]+(?:\{[A-Za-z0-9_]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/;
  const out: Array<[string, string, string]> = [];
  let rest = line;
  while (rest.length > 0) {
    const m = token.exec(rest);
    if (!m) throw new Error(`unparsable rule text: ${JSON.stringify(rest)}`);
    out.push([m[1] as string, m[2] as string, m[3] as string]);
    rest = rest.slice(m[0].length);
  }
  return out;
}

t.test('no name bytes can inject into the rules file or leave its link directory', async (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(nameBytes, fc.integer({ min: 1, max: 9 })), { minLength: 1, maxLength: 7 }),
      (channels) => {
        const links = channels.flatMap(([raw, devid], i) => {
          const verdict = validateName(raw);
          if (!verdict.ok) return [];
          return [{ name: verdict.name as ChannelName, devid, slot: i + 1 }];
        });
        accepted += links.length;
        const text = renderRules(links, DEFAULT_LINK_DIRS);
        const lines = text.split('\n');
        if (lines.pop() !== '') return false; // ends with one newline
        const rules = lines.filter((l) => !l.startsWith('# '));
        if (rules.length !== links.length) return false; // one line per channel, no injected line
        const sorted = [...links].sort((a, b) => a.slot - b.slot);
        return rules.every((line, i) => {
          const link = sorted[i];
          if (!link) return false;
          const expected: Array<[string, string, string]> = [
            ['SUBSYSTEM', '==', 'tty'],
            ['KERNEL', '==', `hvc${link.slot}`],
            ['ENV{XEN_CHANNEL_NAME}', '=', link.name],
            ['ENV{XEN_CHANNEL_DEVID}', '=', String(link.devid)],
            ...DEFAULT_LINK_DIRS.map((dir): [string, string, string] => ['SYMLINK', '+=', `${dir}/${link.name}`]),
            ['TAG', '+=', 'systemd'],
          ];
          const parsed = parseRule(line);
          if (JSON.stringify(parsed) !== JSON.stringify(expected)) return false;
          return parsed
            .filter(([key]) => key === 'SYMLINK')
            .every(([, , value]) => {
              const dir = value.split('/')[0] as string;
              const resolved = posix.resolve('/dev', value);
              // Inside its directory, one component deep, no udev substitution characters.
              return resolved === `/dev/${dir}/${link.name}` && !/[%$*?[\]\\]/.test(value);
            });
        });
      },
    ),
    { numRuns: 3000 },
  );
  t.ok(accepted > 500, `enough accepted names were rendered to mean something (${accepted})`);
});

t.test('every name that passes validation is a single safe path component', async (t) => {
  fc.assert(
    fc.property(nameBytes, (raw) => {
      const verdict = validateName(raw);
      if (!verdict.ok) return true;
      const name = verdict.name;
      return (
        posix.basename(name) === name &&
        name !== '.' &&
        name !== '..' &&
        !name.startsWith('-') &&
        Buffer.from(name, 'latin1').equals(Buffer.from(raw)) // never rewritten
      );
    }),
    { numRuns: 5000 },
  );
  t.pass('5000 generated names');
});
