// env-check: prints, as JSON, what a scenario can rely on where it runs (dom0 or guest):
// node's version, the project payload, the xenstore transports. When the payload is
// installed, every package export whose file exists is imported under this node (a
// syntax or API too new for node 18 shows up as an import error); exports whose file
// is not built yet are listed as missing. payload.ok: nothing failed to import.
import fs from 'node:fs';

const exists = (p) => fs.existsSync(p);
const ROOT = '/usr/lib/xen-channels';
const payload = {
  installed: exists(`${ROOT}/package.json`),
  launcher: exists('/usr/bin/xen-channel'),
  imported: [],
  missing: [],
  importErrors: {},
};
if (payload.installed) {
  const pkg = JSON.parse(fs.readFileSync(`${ROOT}/package.json`, 'utf8'));
  for (const [sub, target] of Object.entries(pkg.exports ?? { '.': pkg.main })) {
    const file = typeof target === 'string' ? target : (target?.default ?? target?.import);
    const spec = sub === '.' ? 'xen-channels' : `xen-channels/${sub.replace(/^\.\//, '')}`;
    if (!file || !exists(`${ROOT}/${file}`)) {
      payload.missing.push(spec);
      continue;
    }
    try {
      await import(spec);
      payload.imported.push(spec);
    } catch (e) {
      payload.importErrors[spec] = String(e?.message ?? e);
    }
  }
}
payload.ok = Object.keys(payload.importErrors).length === 0;
console.log(
  JSON.stringify({
    node: { version: process.version, major: Number(process.versions.node.split('.')[0]) },
    payload,
    xenbusDevice: exists('/dev/xen/xenbus'),
    xenstoredSocket: exists('/run/xenstored/socket'),
  }),
);
