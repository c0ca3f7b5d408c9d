#!/usr/bin/env node
// Reads a `npm test` log on stdin and prints the durations of its test files as JSON, for
// scripts/jest-sequencer.js: node scripts/test-durations.mjs < ci.log > scripts/test-durations.json
// Jest prints a file's duration only when it took a while; the others get 1 s.
import { readFileSync } from 'node:fs';
import { stripVTControlCharacters } from 'node:util';

// Jest colours its PASS/FAIL labels on a terminal.
const log = stripVTControlCharacters(readFileSync(0, 'utf8'));
const durations = {};
for (const match of log.matchAll(/^(?:PASS|FAIL) +(\S+\.test\.ts)(?: \(([0-9.]+) s\))?/gm)) {
  durations[match[1]] = match[2] ? Math.round(Number(match[2])) : 1;
}
const sorted = Object.fromEntries(Object.entries(durations).sort(([a], [b]) => (a < b ? -1 : 1)));
process.stdout.write(JSON.stringify(sorted, null, 2) + '\n');
