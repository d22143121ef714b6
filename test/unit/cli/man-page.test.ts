import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../../../agent/cli/main.js';
import { EXIT } from '../../../agent/cli/usage.js';

t.test('the man page documents every command and exit status the CLI has', async (t) => {
  const man = readFileSync(new URL('../../../packaging/man/xen-channel.1.md', import.meta.url), 'utf8');
  const out = new PassThrough();
  let help = '';
  out.on('data', (c: Buffer) => {
    help += c.toString();
  });
  await main(['--help'], { stdin: process.stdin, stdout: out, stderr: new PassThrough() });
  const commands = [
    ...(help
      .split('Commands:')[1]
      ?.split('Options:')[0]
      ?.matchAll(/^ {2}([a-z][a-z-]*)/gm) ?? []),
  ].map((m) => m[1]);
  t.ok(commands.length >= 9, `commands found in --help: ${commands.join(', ')}`);
  for (const command of commands)
    t.match(man, new RegExp(`^\\*\\*${command}( \\w+)?\\*\\*`, 'm'), `man page has ${command}`);
  for (const code of Object.values(EXIT))
    t.match(man, new RegExp(`^\\*\\*${code}\\*\\*$`, 'm'), `man page has exit status ${code}`);
});
