#!/usr/bin/env node
// The `nix-plan` command line (bin): run main with the process's arguments, exit with its code.
import { main } from '../cli/main.js';

process.exitCode = await main(process.argv.slice(2));
