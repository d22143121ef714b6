/*
 * Entry script of the standalone `xen-channel` executable (Node single executable application,
 * built by packaging/build-sea.sh). Node 20's SEA runs one CommonJS script, while the CLI is an
 * ES module with top-level await; so the bundle travels as the SEA asset "xen-channel.mjs" and
 * is imported from a data: URL (it imports only node: built-ins), then its exported main() runs.
 * Exit codes are main()'s; 70 if the embedded bundle cannot even be loaded.
 */
const { getAsset } = require('node:sea');

const bundle = getAsset('xen-channel.mjs', 'utf8');
import(`data:text/javascript;base64,${Buffer.from(bundle).toString('base64')}`).then(
  async (cli) => {
    process.exitCode = await cli.main(process.argv.slice(2), process);
  },
  (error) => {
    process.stderr.write(`xen-channel: cannot load the embedded bundle: ${error.stack ?? error}\n`);
    process.exitCode = 70;
  },
);
