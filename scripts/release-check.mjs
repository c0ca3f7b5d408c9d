#!/usr/bin/env node
// Checks that a release tag matches the package: `node scripts/release-check.mjs vX.Y.Z`.
// The tag must be vX.Y.Z, package.json's version X.Y.Z, and CHANGELOG.md must have a
// `## [X.Y.Z]` section. Prints that section (the release notes) on stdout and the major tag
// (`vX`, which the release workflow moves) on stderr as `major=vX`. Exit 1 with the reason
// otherwise, so a tag that does not match what is released stops the release before it is public.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = process.env.NIX_PLAN_RELEASE_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..');

function fail(message) {
  process.stderr.write(`release-check: ${message}\n`);
  process.exit(1);
}

const tag = process.argv[2] ?? '';
const m = /^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/.exec(tag);
if (m === null) fail(`the tag "${tag}" is not vMAJOR.MINOR.PATCH`);
const version = tag.slice(1);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
if (pkg.version !== version) fail(`the tag is ${tag} but package.json's version is ${pkg.version}`);

const changelog = readFileSync(join(root, 'CHANGELOG.md'), 'utf8').split('\n');
const start = changelog.findIndex((l) => l.startsWith(`## [${version}]`));
if (start < 0) fail(`CHANGELOG.md has no "## [${version}]" section`);
let end = changelog.findIndex((l, i) => i > start && l.startsWith('## '));
if (end < 0) end = changelog.length;
const notes = changelog
  .slice(start + 1, end)
  .filter((l) => !/^\[[^\]]+\]: /.test(l))
  .join('\n')
  .trim();
if (notes === '') fail(`CHANGELOG.md's "## [${version}]" section is empty`);
process.stdout.write(`${notes}\n`);
process.stderr.write(`major=v${m[1]}\n`);
