// The tool's name and version as recorded in every bundle manifest (kept equal to package.json by a test).

/** The version of nix-plan. */
export const VERSION = '0.1.0';

/** `tool` in bundle manifests and `nix-plan --version`. */
export const TOOL_VERSION = `nix-plan ${VERSION}`;

/** The oldest Node.js nix-plan runs on: package.json's `engines.node` (kept equal by a test). */
export const NODE_REQUIRED = 24;
