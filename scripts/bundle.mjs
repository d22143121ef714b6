/*
 * `npm run bundle`: bundles the `xen-channel` command (agent/cli/main.ts and everything it
 * imports) into ONE ES module for Node 18, build/bundle/xen-channel.mjs, so that installed
 * packages and the standalone binary need no node_modules. Build-time only; it never runs
 * the CLI. The hashbang is dropped: the bundle is started by the launcher packaging/install.sh
 * writes (`exec node <bundle>`) or imported by the SEA bootstrap, never executed directly.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'build', 'bundle', 'xen-channel.mjs');
const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));

const result = await build({
  absWorkingDir: root,
  entryPoints: ['agent/cli/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  outfile,
  write: false,
  legalComments: 'inline',
  banner: { js: `// xen-channels ${version}: the xen-channel command, bundled by scripts/bundle.mjs.` },
  logLevel: 'warning',
});

const text = result.outputFiles[0].text.replace(/^#!.*\n/, '');
await mkdir(dirname(outfile), { recursive: true });
await writeFile(outfile, text);
process.stdout.write(`bundle: ${outfile} (${Buffer.byteLength(text)} bytes)\n`);
