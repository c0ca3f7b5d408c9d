#!/usr/bin/env node
import { createRequire as __WEBPACK_EXTERNAL_createRequire } from "module";
/******/ var __webpack_modules__ = ({

/***/ 540:
/***/ ((__unused_webpack_module, __webpack_exports__, __nccwpck_require__) => {


// EXPORTS
__nccwpck_require__.d(__webpack_exports__, {
  iW: () => (/* binding */ main)
});

// UNUSED EXPORTS: exitCodesHelp, mainHelp, verbosityOf

;// CONCATENATED MODULE: external "node:zlib"
const external_node_zlib_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:zlib");
;// CONCATENATED MODULE: ./src/core/errors.ts
// Typed errors: every failure a user can cause carries a stable code and an actionable message.
/** Base class for every error nix-plan raises on purpose. */
class errors_NixPlanError extends Error {
    code;
    name = 'NixPlanError';
    constructor(code, message, options) {
        super(message, options);
        this.code = code;
    }
}
/**
 * A usage error about the arguments themselves (an option or operand missing, malformed, unknown
 * or in conflict with another), as opposed to a refusal of what they ask for (nothing to roll
 * back, not a NixOS system): only after these does the command line point to `--help`.
 */
class ArgumentError extends errors_NixPlanError {
    name = 'ArgumentError';
    constructor(message) {
        super('usage', message);
    }
}
/** A byte format is broken at a known offset. */
class MalformedError extends errors_NixPlanError {
    what;
    offset;
    name = 'MalformedError';
    constructor(what, offset, detail) {
        super('malformed', `${what}: ${detail}${offset === undefined ? '' : ` at byte offset ${offset}`}`);
        this.what = what;
        this.offset = offset;
    }
}
/** Numbers of the stop signals (the exit code is 128 + this). */
const STOP_SIGNAL_NUMBERS = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGTERM: 15,
};
/** Work stopped by a signal; what it had started was undone before this reached the caller. */
class InterruptedError extends errors_NixPlanError {
    signal;
    name = 'InterruptedError';
    constructor(signal, detail = '') {
        super('interrupted', `interrupted by ${signal}${detail === '' ? '' : `: ${detail}`}`);
        this.signal = signal;
    }
}
/** The InterruptedError an aborted signal carries (its reason), or one for SIGINT. */
function interruption(signal) {
    const reason = signal.reason;
    return reason instanceof InterruptedError ? reason : new InterruptedError('SIGINT');
}
/** A limit that guards memory or time was exceeded. */
class LimitError extends errors_NixPlanError {
    name = 'LimitError';
    constructor(message) {
        super('limit', message);
    }
}
/** Turns anything thrown into one line a user can read (no stack for our own errors). */
function stringifyError(error) {
    if (error instanceof errors_NixPlanError)
        return error.message;
    if (error instanceof Error)
        return error.message || error.name;
    if (typeof error === 'string')
        return error;
    try {
        return JSON.stringify(error) ?? String(error);
    }
    catch {
        return String(error);
    }
}

;// CONCATENATED MODULE: ./src/core/text.ts
// Text a stranger wrote, shown to a person: which characters a manifest refuses, and how anything
// from a bundle is escaped for a terminal and for GitHub's Markdown.
//
// One definition of "unsafe" serves both sides: the manifest refuses these characters in every
// string (tool, labels, provenance, warnings), and the display escapes them wherever a string came
// from a bundle anyway (store paths, key names, error messages), so a bundle cannot move the
// cursor, rewrite a line with a carriage return, open an OSC sequence (titles, hyperlinks,
// clipboard), reorder what follows with a bidi override, or print a line that looks like ours.
/**
 * Characters no string from a bundle may carry: C0 controls (with tab and newline), DEL, C1
 * controls (U+0080–U+009F: a terminal in UTF-8 mode may take U+009B as CSI), the bidi embeddings,
 * overrides, isolates and marks (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), the
 * line and paragraph separators (U+2028, U+2029), and UTF-16 surrogates that are not a pair.
 */
const UNSAFE = 
// eslint-disable-next-line no-control-regex
/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** The same set without the global flag (`exec` from the start, no `lastIndex` state). */
const UNSAFE_ONE = new RegExp(UNSAFE.source);
/** The first unsafe character of `text` as `U+XXXX` and its index, or undefined when there is none. */
function unsafeCharacter(text) {
    const m = UNSAFE_ONE.exec(text);
    if (m === null)
        return undefined;
    return { index: m.index, codePoint: codePointName(m[0]) };
}
function codePointName(ch) {
    return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}
/** How an unsafe character is shown: `\e` style names for the common ones, else `\u{XXXX}`. */
function visible(ch) {
    switch (ch) {
        case '\n':
            return '\\n';
        case '\r':
            return '\\r';
        case '\t':
            return '\\t';
        case '\x1b':
            return '\\e';
        default: {
            const cp = ch.codePointAt(0) ?? 0;
            return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
        }
    }
}
/**
 * `text` with every unsafe character replaced by a visible escape (`\e`, `\r`, `\x9b`,
 * `\u{202e}`), for a terminal. With `multiline`, newlines and tabs are kept (for messages that
 * quote a Nix command's output); a carriage return is escaped either way, as it would let the
 * rest of a line overwrite its start.
 */
function escapeTerminal(text, options = {}) {
    const keep = options.multiline === true;
    return text.replace(UNSAFE, (ch) => (keep && (ch === '\n' || ch === '\t') ? ch : visible(ch)));
}
/**
 * A Markdown code span holding `text` exactly (after `escapeTerminal`): GitHub renders nothing
 * inside one as Markdown or HTML, and neither links mentions nor turns `:name:` into an emoji
 * there, so anything from a bundle is shown this way. The fence is longer than any run of
 * backticks in the text, as CommonMark requires. Inside a table cell, pass the result through
 * the table's cell escaping (a `|` must be `\|` even in a code span).
 */
function text_markdownCode(text) {
    const safe = escapeTerminal(text);
    let longest = 0;
    for (const run of safe.match(/`+/g) ?? [])
        longest = Math.max(longest, run.length);
    const fence = '`'.repeat(longest + 1);
    const pad = safe.startsWith('`') || safe.endsWith('`') || /^ .* $/.test(safe) ? ' ' : '';
    return safe === '' ? '<code></code>' : `${fence}${pad}${safe}${pad}${fence}`;
}
/**
 * `text` as literal Markdown prose: every ASCII punctuation character backslash-escaped (so no
 * emphasis, link, image, heading, HTML tag or entity can start) and unsafe characters made
 * visible. Prefer `markdownCode` for anything from a bundle: GitHub still turns `:name:` into an
 * emoji and `@name` into a mention outside code.
 */
function escapeMarkdown(text) {
    return escapeTerminal(text).replace(/[!-/:-@[-`{-~]/g, (ch) => `\\${ch}`);
}
/** `text` for HTML text or a double-quoted attribute. */
function escapeHtml(text) {
    return escapeTerminal(text).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] ?? ch);
}
/**
 * `message` as a job log line that issues no workflow command and moves no cursor. The runner
 * reads a step's output line by line (a line ends at `\n` or `\r`) and takes a line for a
 * command when, after leading white space, it starts with `::` (`::error::…`), or when it holds
 * `##[` anywhere (the older `##[error]…` form). A message may quote a plan or a host (a label, a
 * path, an error a host sent), so: control characters are made visible as on a terminal (a `\r`
 * too; newlines stay), a line whose first visible characters are `::` gets a backslash before
 * them, and every `##[` is shown as `##\[`. Our own commands go through @actions/core, not here.
 */
function logLine(message) {
    return escapeTerminal(message, { multiline: true })
        .split('\n')
        .map((line) => line.replace(/^(\s*)::/u, '$1\\::').replace(/##\[/g, '##\\['))
        .join('\n');
}
/** `1 path`, `11,235 paths`: a count and its noun, singular for one. */
function plural(n, one, many = `${one}s`) {
    return `${groupDigits(n)} ${n === 1 ? one : many}`;
}
/**
 * `n.toLocaleString('en-US')` (`11,235`), written here for the counts it is used for (whole
 * numbers from 0): the first `toLocaleString` of a process loads ICU's number formatting, about
 * 40 ms of every command that prints a count. Anything else goes to `toLocaleString` itself.
 */
function groupDigits(n) {
    if (!Number.isSafeInteger(n) || n < 0 || Object.is(n, -0))
        return n.toLocaleString('en-US');
    const digits = String(n);
    let out = digits.slice(0, ((digits.length - 1) % 3) + 1);
    for (let i = out.length; i < digits.length; i += 3)
        out += `,${digits.slice(i, i + 3)}`;
    return out;
}

;// CONCATENATED MODULE: external "node:child_process"
const external_node_child_process_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:child_process");
;// CONCATENATED MODULE: external "node:fs"
const external_node_fs_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:fs");
;// CONCATENATED MODULE: external "node:stream"
const external_node_stream_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:stream");
;// CONCATENATED MODULE: external "node:stream/promises"
const promises_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:stream/promises");
;// CONCATENATED MODULE: ./src/nix/errors.ts
// How a Nix command's failure reaches the caller: one error carrying the command, its exit code and
// the tail of what it printed on stderr, and named recognisers for the refusals we act on.

/** How much of a failed command's stderr a message carries (its end, where Nix says why). */
const STDERR_TAIL = 4000;
/** A Nix command (or a program of a Nix store path) that exited non-zero. */
class NixCommandError extends errors_NixPlanError {
    command;
    args;
    exitCode;
    stderr;
    name = 'NixCommandError';
    /** The last `STDERR_TAIL` characters of its stderr, trimmed. */
    stderrTail;
    /**
     * @param what names the command in the message (default: the program and its first three arguments)
     * @param hint said in parentheses after the exit code, e.g. what state the failure left behind
     * @param shown the stderr was passed on to the user as it came (a build log): the message says
     *   so instead of repeating its tail
     */
    constructor(command, args, exitCode, stderr, options = {}) {
        const tail = stderr.trim().slice(-STDERR_TAIL);
        const what = options.what ?? `${command} ${args.slice(0, 3).join(' ')}…`;
        const hints = [
            ...(options.hint === undefined ? [] : [options.hint]),
            ...(options.shown === true ? ['its output is above'] : []),
        ];
        const hint = hints.length === 0 ? '' : ` (${hints.join('; ')})`;
        super('nix', `${what} failed with exit code ${exitCode}${hint}${options.shown === true ? '' : `:\n${tail}`}`);
        this.command = command;
        this.args = args;
        this.exitCode = exitCode;
        this.stderr = stderr;
        this.stderrTail = tail;
    }
    /** Throws a NixCommandError for a run that exited non-zero (one run with `allowFailure`). */
    static check(command, args, result, options = {}) {
        if (result.code !== 0)
            throw new NixCommandError(command, args, result.code, result.stderr, options);
    }
}
/** Nix's refusal to add paths without a signature it trusts (`nix-store --import`, `nix copy`). */
const SIGNATURE_REFUSAL = /lacks a (valid )?signature|lacks a signature by a trusted key/;
/** Whether `stderr` (or a NixCommandError) says the store refused paths for want of a trusted signature. */
function isSignatureRefusal(failure) {
    return SIGNATURE_REFUSAL.test(typeof failure === 'string' ? failure : failure.stderr);
}

;// CONCATENATED MODULE: ./src/nix/runner.ts
// Runs Nix's command-line tools as argv arrays (never shell strings), with bytes in and bytes out.






const FILE_CHUNK = 1024 * 1024;
/**
 * Standard input read from a file. `ProcessRunner` hands the child the open file itself, so the
 * bytes never pass through this process; any other runner can iterate it as chunks.
 */
class FileInput {
    path;
    /** @param path the file to feed (read from its start) */
    constructor(path) {
        this.path = path;
    }
    async *[Symbol.asyncIterator]() {
        for await (const c of (0,external_node_fs_namespaceObject.createReadStream)(this.path, { highWaterMark: FILE_CHUNK }))
            yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    }
}
/** Whether `signal` was aborted (a call, so checks after an await are not narrowed away). */
function isAborted(signal) {
    return signal.aborted;
}
/** How long a command has to exit after SIGTERM before it gets SIGKILL. */
const KILL_GRACE_MS = 5000;
/** The environment a child gets: inherited, plus overrides, with binDir first in PATH. */
function childEnv(nix) {
    const env = { ...process.env };
    for (const [k, v] of Object.entries(nix.env ?? {})) {
        if (v === undefined)
            delete env[k];
        else
            env[k] = v;
    }
    if (nix.binDir !== undefined)
        env['PATH'] = `${nix.binDir}:${env['PATH'] ?? ''}`;
    return env;
}
const STDERR_KEEP = 64 * 1024;
function openInput(path) {
    try {
        return (0,external_node_fs_namespaceObject.openSync)(path, 'r');
    }
    catch (e) {
        throw new errors_NixPlanError('internal', `cannot open '${path}' as standard input: ${e.message}`);
    }
}
/**
 * Starts `cmd args` with `input` as its standard input (a `FileInput` is handed to the child as
 * its descriptor: no pipe, no copying through this process; other input is piped and a child
 * that exits early just closes its end), gathering standard output (unless `passStdout`: then
 * `onStdout` alone gets it) and keeping the tail of standard error. The caller listens for the
 * child's 'error' and 'close'.
 */
function startChild(cmd, args, spawnOptions, io) {
    const fileFd = io.input instanceof FileInput ? openInput(io.input.path) : undefined;
    let child;
    try {
        child = (0,external_node_child_process_namespaceObject.spawn)(cmd, args, {
            ...spawnOptions,
            stdio: [fileFd ?? (io.input === undefined ? 'ignore' : 'pipe'), 'pipe', 'pipe'],
        });
    }
    finally {
        // The child has its own copy of the descriptor once spawned.
        if (fileFd !== undefined)
            (0,external_node_fs_namespaceObject.closeSync)(fileFd);
    }
    const out = [];
    let err = '';
    child.stdout?.on('data', (c) => {
        if (io.passStdout !== true)
            out.push(c);
        io.onStdout?.(c);
    });
    child.stderr?.on('data', (c) => {
        io.onStderr?.(c);
        err += c.toString('utf8');
        if (err.length > STDERR_KEEP * 2)
            err = err.slice(-STDERR_KEEP);
    });
    if (io.input !== undefined && fileFd === undefined && child.stdin !== null) {
        const input = io.input;
        const source = input instanceof Uint8Array ? external_node_stream_namespaceObject.Readable.from([input]) : external_node_stream_namespaceObject.Readable.from(input);
        // A child that exits early closes its stdin; its exit status tells the real story.
        (0,promises_namespaceObject.pipeline)(source, child.stdin).catch(() => undefined);
    }
    return { child, stdout: () => Buffer.concat(out), stderr: () => err };
}
/** A CommandRunner over `child_process.spawn`. */
class ProcessRunner {
    nix;
    constructor(nix = {}) {
        this.nix = nix;
    }
    async run(cmd, args, options = {}) {
        const { signal } = options;
        if (signal?.aborted === true)
            throw interruption(signal);
        const started = startChild(cmd, args, { env: childEnv(this.nix), cwd: options.cwd }, { ...options, passStdout: options.onStdout !== undefined });
        const { child } = started;
        const exited = new Promise((resolve, reject) => {
            child.on('error', (e) => reject(new errors_NixPlanError('nix', `cannot run ${cmd}: ${e.message} (is Nix installed and on PATH?)`, {
                cause: e,
            })));
            child.on('close', (code, killedBy) => resolve(code ?? (killedBy === null ? 1 : 128)));
        });
        // Stopped on request: the child first, then the caller hears of it once the child is gone.
        let killer;
        const stop = () => {
            child.kill('SIGTERM');
            killer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        };
        signal?.addEventListener('abort', stop, { once: true });
        let code;
        try {
            code = await exited;
        }
        finally {
            signal?.removeEventListener('abort', stop);
            if (killer !== undefined)
                clearTimeout(killer);
        }
        if (signal !== undefined && isAborted(signal))
            throw interruption(signal);
        const result = { code, stdout: started.stdout(), stderr: started.stderr() };
        // Output already passed on as it came (a build log) is not repeated in the error.
        if (options.allowFailure !== true)
            NixCommandError.check(cmd, args, result, { shown: options.onStderr !== undefined });
        return result;
    }
}
/**
 * A runner whose every command is stopped when `signal` aborts (see `RunOptions.signal`). What
 * must still run after an abort (removing what an interrupted import added) runs on `inner`.
 */
class AbortableRunner {
    inner;
    signal;
    constructor(inner, signal) {
        this.inner = inner;
        this.signal = signal;
    }
    run(cmd, args, options = {}) {
        return this.inner.run(cmd, args, { ...options, signal: this.signal });
    }
}
/** The runner to clean up with once `runner`'s work was aborted: the one beneath the abort. */
function cleanupRunner(runner) {
    return runner instanceof AbortableRunner ? runner.inner : runner;
}

;// CONCATENATED MODULE: ./src/cli/signals.ts
// Stopping cleanly: SIGINT, SIGTERM and SIGHUP abort the running use case instead of killing the
// process, so it stops its child processes, removes what an import had added, and deletes its
// temporary files before nix-plan exits with 128 + the signal's number (130, 143, 129).

/** The signals nix-plan stops on. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/**
 * Aborts `controller` with an InterruptedError on the first stop signal; later ones are ignored
 * (the cleanup is what they would interrupt) except that `onRepeat` hears of them. Returns what
 * removes the handlers again.
 */
function abortOnStopSignals(controller, source = process, onRepeat = () => undefined) {
    const handlers = STOP_SIGNALS.map((signal) => {
        const handler = () => {
            if (controller.signal.aborted)
                onRepeat(signal);
            else
                controller.abort(new InterruptedError(signal));
        };
        source.on(signal, handler);
        return [signal, handler];
    });
    return () => {
        for (const [signal, handler] of handlers)
            source.off(signal, handler);
    };
}

;// CONCATENATED MODULE: ./src/app/version.ts
// The tool's name and version as recorded in every bundle manifest (kept equal to package.json by a test).
/** The version of nix-plan. */
const VERSION = '0.1.0';
/** `tool` in bundle manifests and `nix-plan --version`. */
const TOOL_VERSION = `nix-plan ${VERSION}`;
/** The oldest Node.js nix-plan runs on: package.json's `engines.node` (kept equal by a test). */
const NODE_REQUIRED = 24;

;// CONCATENATED MODULE: external "node:fs/promises"
const external_node_fs_promises_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:fs/promises");
;// CONCATENATED MODULE: external "node:util"
const external_node_util_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:util");
;// CONCATENATED MODULE: external "node:crypto"
const external_node_crypto_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:crypto");
;// CONCATENATED MODULE: ./src/core/signing.ts
// ed25519 keys and signatures in Nix's formats: `NAME:base64` keys and detached signatures (a
// narinfo's fingerprint and `Sig:` are in narinfo.ts).
//
// The key files are exactly those of `nix-store --generate-binary-cache-key NAME secret public`:
// the secret is `NAME:base64(seed ‖ public key)` (64 bytes, libsodium's layout), the public key
// `NAME:base64(32 bytes)`, a signature `NAME:base64(64 bytes)`. node:crypto does ed25519 natively;
// raw keys go in and out wrapped in their fixed DER prefixes (RFC 8410).


const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const KEY_NAME = /^[\x21-\x39\x3b-\x7e]+$/; // printable ASCII without space and ':'
function b64(bytes) {
    return Buffer.from(bytes).toString('base64');
}
/** Why `name` cannot name a key (Nix splits key strings at the first ':'), or undefined. */
function keyNameProblem(name) {
    if (name.length === 0)
        return 'the key name is empty';
    if (name.length > 256)
        return 'the key name is longer than 256 characters';
    if (!KEY_NAME.test(name))
        return "the key name may only hold printable ASCII without spaces or ':'";
    return undefined;
}
/** Splits `NAME:base64` and decodes it, requiring exactly `size` bytes. */
function parseNamed(text, size, what) {
    const trimmed = text.trim();
    const colon = trimmed.indexOf(':');
    if (colon <= 0)
        throw new errors_NixPlanError('signature', `${what} is not in Nix's NAME:base64 format (no key name before ':')`);
    const name = trimmed.slice(0, colon);
    const data = trimmed.slice(colon + 1);
    const problem = keyNameProblem(name);
    if (problem !== undefined)
        throw new errors_NixPlanError('signature', `${what}: ${problem}`);
    const bytes = B64.test(data) ? new Uint8Array(Buffer.from(data, 'base64')) : undefined;
    if (bytes?.length !== size || b64(bytes) !== data)
        throw new errors_NixPlanError('signature', `${what} '${name}' is corrupt: expected base64 of ${size} bytes after '${name}:'`);
    return { name, bytes };
}
// ASN.1 prefixes wrapping a raw ed25519 seed (PKCS#8) and public key (SPKI), RFC 8410.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
function privateKeyObject(seed) {
    return (0,external_node_crypto_namespaceObject.createPrivateKey)({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}
function publicKeyObject(key) {
    return (0,external_node_crypto_namespaceObject.createPublicKey)({ key: Buffer.concat([SPKI_PREFIX, key]), format: 'der', type: 'spki' });
}
/** The public key belonging to a seed (not trusting the copy stored in the secret key file). */
function derivePublic(seed) {
    const spki = (0,external_node_crypto_namespaceObject.createPublicKey)(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
    return new Uint8Array(spki.subarray(SPKI_PREFIX.length));
}
/**
 * The secret keys (Nix's `NAME:base64` text) of options that take a list and a single key (the
 * Action's one input), the single one last.
 */
function secretKeyTexts(options) {
    return [...(options.signingKeys ?? []), ...(options.signingKey === undefined ? [] : [options.signingKey])];
}
/** Parses a secret key (`NAME:base64(64 bytes)`); refuses one whose halves do not belong together. */
function parseSecretKey(text) {
    const { name, bytes } = parseNamed(text, 64, 'secret key');
    const seed = bytes.slice(0, 32);
    const publicKey = bytes.slice(32);
    if (Buffer.compare(derivePublic(seed), publicKey) !== 0)
        throw new errors_NixPlanError('signature', `secret key '${name}' is corrupt: its public half does not match its seed`);
    return { name, seed, publicKey };
}
/** Parses a public key (`NAME:base64(32 bytes)`), as in `trusted-public-keys`. */
function parsePublicKey(text) {
    const { name, bytes } = parseNamed(text, 32, 'public key');
    return { name, key: bytes };
}
/** The secret key in Nix's file format. */
function formatSecretKey(key) {
    const both = new Uint8Array(64);
    both.set(key.seed, 0);
    both.set(key.publicKey, 32);
    return `${key.name}:${b64(both)}`;
}
/** The public key in Nix's file format. */
function formatPublicKey(key) {
    return `${key.name}:${b64(key.key)}`;
}
/** The public key of a secret key. */
function publicKeyOf(key) {
    return { name: key.name, key: key.publicKey };
}
/** The key with a given 32-byte seed (ed25519 keys are a function of their seed): for reproducible keys. */
function secretKeyFromSeed(name, seed) {
    const problem = keyNameProblem(name);
    if (problem !== undefined)
        throw new NixPlanError('usage', `cannot make a key named '${name}': ${problem}`);
    if (seed.length !== 32)
        throw new NixPlanError('usage', `an ed25519 seed is 32 bytes, not ${seed.length}`);
    return { name, seed: Uint8Array.from(seed), publicKey: derivePublic(seed) };
}
/** A fresh key pair, like `nix-store --generate-binary-cache-key NAME …`. */
function generateKeyPair(name) {
    const problem = keyNameProblem(name);
    if (problem !== undefined)
        throw new errors_NixPlanError('usage', `cannot make a key named '${name}': ${problem}`);
    const pkcs8 = (0,external_node_crypto_namespaceObject.generateKeyPairSync)('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' });
    const seed = new Uint8Array(pkcs8.subarray(PKCS8_PREFIX.length));
    const publicKey = derivePublic(seed);
    const secret = { name, seed, publicKey };
    return { secretKey: formatSecretKey(secret), publicKey: formatPublicKey(publicKeyOf(secret)) };
}
/** The raw 64-byte ed25519 signature of `message`. */
function signRaw(key, message) {
    const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
    return new Uint8Array((0,external_node_crypto_namespaceObject.sign)(null, data, privateKeyObject(key.seed)));
}
/** True when `signature` (raw 64 bytes) is `key`'s signature of `message`. */
function verifyRaw(key, message, signature) {
    if (signature.length !== 64 || key.key.length !== 32)
        return false;
    const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
    try {
        return (0,external_node_crypto_namespaceObject.verify)(null, data, publicKeyObject(key.key), signature);
    }
    catch {
        return false; // a public key that is not a curve point
    }
}
/** A detached signature in Nix's format, `NAME:base64(sig)` (as in a narinfo's `Sig:` line). */
function signDetached(key, message) {
    return `${key.name}:${b64(signRaw(key, message))}`;
}
/** `NAME:base64(64 bytes)` split and decoded, or undefined when it is not a signature in that form. */
function parseNamedSignature(signature) {
    try {
        return parseNamed(signature, 64, 'signature');
    }
    catch {
        return undefined;
    }
}
/** A public key's fingerprint: `sha256:` and the hex sha256 of its 32 raw bytes (not of its name). */
function keyFingerprint(key) {
    return `sha256:${(0,external_node_crypto_namespaceObject.createHash)('sha256').update(key.key).digest('hex')}`;
}
/**
 * Checks `NAME:base64(sig)` against the trusted keys of that name: `untrusted` when no trusted key
 * has the name (Nix ignores such signatures), `invalid` when none of them verifies it.
 */
function signing_checkDetached(message, signature, trusted) {
    const parsed = parseNamedSignature(signature);
    if (parsed === undefined)
        return 'malformed';
    const keys = trusted.filter((k) => k.name === parsed.name);
    if (keys.length === 0)
        return 'untrusted';
    return keys.some((k) => verifyRaw(k, message, parsed.bytes)) ? 'valid' : 'invalid';
}

;// CONCATENATED MODULE: ./src/cli/args.ts
// Command-line parsing helpers over node:util parseArgs: typed values, `--` pass-through, and
// usage errors that name the option and the accepted values.




/** A usage error about the arguments (followed by the hint to `--help`). */
function usageError(message) {
    return new ArgumentError(message);
}
/** Parses `argv` against `specs`; unknown options and missing values become usage errors. */
function parseCommandArgs(argv, specs) {
    const dash = argv.indexOf('--');
    const head = joinDashValues(dash < 0 ? argv : argv.slice(0, dash), specs);
    const rest = dash < 0 ? [] : argv.slice(dash + 1);
    const options = {};
    for (const [name, s] of Object.entries(specs))
        options[name] = {
            type: s.type,
            ...(s.short !== undefined && { short: s.short }),
            ...(s.multiple === true && { multiple: true }),
        };
    try {
        const { values, positionals } = (0,external_node_util_namespaceObject.parseArgs)({
            args: [...head],
            options,
            allowPositionals: true,
            strict: true,
        });
        return { values, positionals, rest };
    }
    catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        throw usageError(message.replace(/\. To specify a positional argument.*$/s, ''));
    }
}
/** `--name VALUE` as `--name=VALUE` for options whose value may look like an option. */
function joinDashValues(argv, specs) {
    const out = [];
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i] ?? '';
        const name = a.startsWith('--') ? a.slice(2) : undefined;
        const value = argv[i + 1];
        if (name !== undefined && specs[name]?.dashValue === true && value !== undefined) {
            out.push(`${a}=${value}`);
            i++;
        }
        else
            out.push(a);
    }
    return out;
}
/** A string option's value, or undefined. */
function str(args, name) {
    const v = args.values[name];
    return typeof v === 'string' ? v : undefined;
}
/** A required string option's value. */
function required(args, name, what) {
    const v = str(args, name);
    if (v === undefined || v === '')
        throw usageError(`missing --${name} ${what}`);
    return v;
}
/** A repeatable string option's values (also splitting on commas when `commas`). */
function list(args, name, commas = false) {
    const v = args.values[name];
    const items = Array.isArray(v)
        ? v.filter((x) => typeof x === 'string')
        : typeof v === 'string'
            ? [v]
            : [];
    return commas ? items.flatMap((x) => x.split(',')).filter((x) => x !== '') : items;
}
/** A boolean flag. */
function flag(args, name) {
    return args.values[name] === true;
}
/** A value that must be one of `allowed`. */
function oneOf(value, name, allowed) {
    if (value === undefined)
        return undefined;
    if (!allowed.includes(value))
        throw usageError(`--${name} must be one of ${allowed.join(', ')} (got '${value}')`);
    return value;
}
/** An integer option within [min, max]. */
function integer(value, name, min, max) {
    if (value === undefined)
        return undefined;
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || n < min || n > max)
        throw usageError(`--${name} must be an integer from ${min} to ${max} (got '${value}')`);
    return n;
}
/** A size in bytes: digits with an optional K, M, G or T (powers of 1024), or a usage error. */
function byteSize(value, name) {
    if (value === undefined)
        return undefined;
    const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(value.trim());
    if (m === null)
        throw usageError(`--${name} must be a size in bytes, like 512M or 64G (got '${value}')`);
    const unit = { '': 0, K: 1, M: 2, G: 3, T: 4 }[(m[2] ?? '').toUpperCase()];
    return Number(m[1]) * 1024 ** unit;
}
/** Exactly one positional argument (the bundle), or a usage error naming it. */
function onePositional(args, what) {
    if (args.positionals.length === 0)
        throw usageError(`missing ${what}`);
    if (args.positionals.length > 1)
        throw usageError(`expected one ${what}, got ${args.positionals.length}: ${args.positionals.join(' ')}`);
    return args.positionals[0] ?? '';
}
const KEY_LITERAL = /^[^\s:/]+:[A-Za-z0-9+/]+=*$/;
function publicKeyOrUsage(key, where) {
    try {
        parsePublicKey(key);
    }
    catch (e) {
        throw usageError(`${where}: ${e.message}`);
    }
    return key;
}
/**
 * Public keys from `--trusted-key` values: each is a key in Nix's format (`name:base64`) or a file
 * holding one or more (whitespace-separated, `#` comments), like `trusted-public-keys`. Fails
 * closed: an empty value (an unset variable), a file without a key, or anything that is not a
 * key is a usage error, never "no keys".
 */
async function readKeys(values, readText = readTextFile) {
    const keys = [];
    for (const v of values) {
        if (v.trim() === '')
            throw usageError('--trusted-key is empty (an unset variable?): give a public key (NAME:base64) or a file of them');
        if (KEY_LITERAL.test(v)) {
            keys.push(publicKeyOrUsage(v, '--trusted-key'));
            continue;
        }
        const words = (await readText(v, 'trusted key file'))
            .split('\n')
            .map((l) => l.replace(/#.*$/, ''))
            .flatMap((l) => l.split(/\s+/))
            .filter((k) => k !== '');
        if (words.length === 0)
            throw usageError(`trusted key file '${v}' holds no key: it must hold public keys (NAME:base64)`);
        keys.push(...words.map((k) => publicKeyOrUsage(k, `trusted key file '${v}'`)));
    }
    return keys;
}
/**
 * A secret key file's contents (Nix's `NAME:base64`), checked to be one: an empty file or one
 * that is not a key is a usage error naming the file (never echoing what it holds).
 */
async function readSecretKeyFile(path, readText = readTextFile) {
    if (path.trim() === '')
        throw usageError('--sign-key is empty (an unset variable?): give a secret key file');
    const text = (await readText(path, 'secret key file')).trim();
    if (text === '')
        throw usageError(`secret key file '${path}' is empty`);
    try {
        parseSecretKey(text);
    }
    catch (e) {
        throw usageError(`secret key file '${path}' does not hold a usable secret key (${e.message.replace(/'[^']*'/g, '(hidden)')})`);
    }
    return text;
}
/** Reads a small text file, turning a missing file into a usage error that names it. */
async function readTextFile(path, what) {
    try {
        return await (0,external_node_fs_promises_namespaceObject.readFile)(path, 'utf8');
    }
    catch (e) {
        throw usageError(`cannot read ${what} '${path}': ${e instanceof Error ? e.message : String(e)}`);
    }
}
/** Help text for a command's options, aligned. */
function optionsHelp(specs) {
    const rows = Object.entries(specs).map(([name, s]) => {
        const left = `${s.short === undefined ? '    ' : `-${s.short}, `}--${name}${s.value === undefined ? '' : ` ${s.value}`}`;
        return [left, s.help + (s.multiple === true ? ' (repeatable)' : '')];
    });
    const width = Math.max(...rows.map(([l]) => l.length));
    return rows.map(([l, h]) => `  ${l.padEnd(width)}  ${h}`).join('\n');
}

;// CONCATENATED MODULE: external "node:path"
const external_node_path_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:path");
;// CONCATENATED MODULE: ./src/core/option-names.ts
// How a message names what the user can change: the command line's options (`--profile`), or
// an action's inputs (`"profile"`), so a refusal tells each user what they can actually set.
/** The command line's flags. */
const CLI_OPTION_NAMES = {
    style: 'flag',
    names: {
        host: 'host',
        profile: 'profile',
        useSudo: 'use-sudo',
        action: 'action',
        trustedKey: 'trusted-key',
        noCheckSigs: 'no-check-sigs',
        maxAge: 'max-age',
        allowDowngrade: 'allow-downgrade',
        allowAnyRoot: 'allow-any-root',
        roots: 'roots',
        relocateTo: 'to',
        signKey: 'sign-key',
        include: 'include',
        maxSize: 'max-size',
    },
};
/** Whether this front end has the option (`names` undefined: the command line's, which has all). */
function offers(names, key) {
    return (names ?? CLI_OPTION_NAMES).names[key] !== undefined;
}
/**
 * The option itself (`--profile`, `"profile"`); `names` undefined: the command line's. An option
 * the front end does not have (ask `offers` first) is named as the command line names it.
 */
function optionName(names, key) {
    const { style, name } = spelling(names, key);
    return style === 'flag' ? `--${name}` : `"${name}"`;
}
/**
 * The option given `value` (`--action push`, `"action: push"`), or a switch turned on when no
 * value is given (`--allow-downgrade`, `"allow-downgrade: true"`).
 */
function optionSet(names, key, value) {
    const { style, name } = spelling(names, key);
    if (style === 'flag')
        return value === undefined ? `--${name}` : `--${name} ${value}`;
    return `"${name}: ${value ?? 'true'}"`;
}
function spelling(names, key) {
    const chosen = names ?? CLI_OPTION_NAMES;
    const name = chosen.names[key];
    if (name !== undefined)
        return { style: chosen.style, name };
    return { style: 'flag', name: CLI_OPTION_NAMES.names[key] ?? key };
}
/**
 * How the user relocates a plan into `storeDir`: the command line's `nix-plan relocate --to DIR`,
 * or, for an action user (who has no command to run), the promote action and its input.
 */
function relocateAdvice(names, storeDir) {
    if (names?.style !== 'input')
        return `nix-plan relocate ${optionSet(names, 'relocateTo', storeDir)}`;
    return `the promote action, ${optionSet(names, 'relocateTo', storeDir)}`;
}
/**
 * How the user gets a plan that carries `include`: the command line exports one with
 * `--include KIND`; an action user sets the plan action's input (no other action makes a plan).
 */
function includeAdvice(names, include) {
    if (names?.style !== 'input')
        return `export with ${optionSet(names, 'include', include)}`;
    return `make the plan with the plan action's ${optionSet(names, 'include', include)}`;
}
/**
 * What a refusal of a build output nothing proves offers: the trusted key that signed the plan,
 * or accepting it unproven. The command line's text also names the actions' inputs, as it
 * always has; an action's names only its own inputs.
 */
function proofAdvice(names) {
    if (names?.style !== 'input')
        return ('give the public key that signed the plan with --trusted-key (the actions: trusted-keys), ' +
            'or accept it unproven with --no-check-sigs (the actions: no-check-sigs)');
    return (`give the public key that signed the plan in ${optionName(names, 'trustedKey')}, ` +
        `or accept it unproven with ${optionSet(names, 'noCheckSigs')}`);
}

;// CONCATENATED MODULE: ./src/core/nix32.ts
// Nix's base-32 encoding ("nix32"): its own alphabet and a little-endian, reversed bit order.

/** The 32 characters of nix32, in digit order (no e, o, u, t). */
const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++)
    DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;
/** Length of the nix32 text for `n` bytes. */
function nix32Length(n) {
    return Math.ceil((n * 8) / 5);
}
/** The alphabet as bytes. */
const ALPHABET_BYTES = Buffer.from(NIX32_ALPHABET, 'latin1');
/** Where nix32Encode writes its digits before they become one string (a store path's hash is 32). */
const scratch = Buffer.alloc(128);
/**
 * Encodes bytes as nix32 text; the first character holds the highest bits. The digits are written
 * as bytes and read out as one string: adding them to a string one by one made a string per digit
 * (52 for a sha256), and relocation encodes several hashes for every .drv.
 */
function nix32Encode(bytes) {
    const len = nix32Length(bytes.length);
    const n = bytes.length;
    const out = len <= scratch.length ? scratch : Buffer.alloc(len);
    for (let k = len - 1, w = 0; k >= 0; k--, w++) {
        const bit = k * 5;
        const i = bit >> 3;
        const j = bit & 7;
        const lo = bytes[i];
        const hi = i + 1 < n ? bytes[i + 1] : 0;
        out[w] = ALPHABET_BYTES[((lo >> j) | (hi << (8 - j))) & 0x1f];
    }
    return out.toString('latin1', 0, len);
}
/** True when `c` (a char code) is a nix32 digit. */
function isNix32Char(c) {
    return c < 256 && (DIGIT[c] ?? -1) >= 0;
}
/** Decodes nix32 text to bytes; refuses foreign characters and set bits beyond the byte length. */
function nix32Decode(text) {
    const n = Math.floor((text.length * 5) / 8);
    if (nix32Length(n) !== text.length)
        throw new MalformedError('nix32', undefined, `invalid length ${text.length}`);
    const out = new Uint8Array(n);
    for (let pos = 0; pos < text.length; pos++) {
        const digit = DIGIT[text.charCodeAt(pos)] ?? -1;
        if (digit < 0)
            throw new MalformedError('nix32', pos, `invalid character ${JSON.stringify(text[pos])}`);
        const bit = (text.length - 1 - pos) * 5;
        const i = bit >> 3;
        const j = bit & 7;
        out[i] = (out[i] ?? 0) | ((digit << j) & 0xff);
        const carry = digit >> (8 - j);
        if (carry !== 0) {
            if (i + 1 >= n)
                throw new MalformedError('nix32', pos, 'excess bits in last digit');
            out[i + 1] = (out[i + 1] ?? 0) | carry;
        }
    }
    return out;
}

;// CONCATENATED MODULE: ./src/core/hash.ts
// Hashes as Nix writes them: algorithms, the four text encodings, parsing, and folding.



/** Digest size in bytes of each algorithm. */
const HASH_SIZE = {
    md5: 16,
    sha1: 20,
    sha256: 32,
    sha512: 64,
    blake3: 32,
};
/** True for the algorithm names Nix accepts. */
function isHashAlgo(s) {
    return s === 'md5' || s === 'sha1' || s === 'sha256' || s === 'sha512' || s === 'blake3';
}
/** True for the algorithms nix-plan can compute (Node's crypto has no blake3). */
function canCompute(algo) {
    return algo !== 'blake3';
}
/**
 * The bytes of a digest given as a `binary` (latin1) string. Digests are asked for that way, not
 * as a Buffer: a Buffer is memory outside the JS heap, allocated and later freed for every hash
 * (relocating 10,000 .drvs takes some 85,000), while a short string and a 32-byte array live on
 * the heap.
 */
function digestBytes(binary) {
    const out = new Uint8Array(binary.length);
    for (let i = 0; i < out.length; i++)
        out[i] = binary.charCodeAt(i);
    return out;
}
/** Digest of `data` (bytes or a string, taken as UTF-8). */
function hashBytes(algo, ...data) {
    if (!canCompute(algo))
        throw new errors_NixPlanError('internal', `nix-plan cannot compute ${algo} hashes`);
    const h = (0,external_node_crypto_namespaceObject.createHash)(algo);
    for (const d of data)
        h.update(d);
    return { algo, bytes: digestBytes(h.digest('binary')) };
}
/** Where `sha256` joins byte inputs for the one-shot hash (reused: hashing is synchronous). */
const JOINED = new Uint8Array(256 * 1024);
/** sha256 of the arguments, as raw bytes. */
function sha256(...data) {
    // The one-shot hash skips a Hash object (a native object the GC must finalise); several
    // inputs (a .drv around its replaced input list, twice per .drv) are joined for it first,
    // which costs less than the object while they fit.
    if (data.length === 1)
        return digestBytes((0,external_node_crypto_namespaceObject.hash)('sha256', data[0], 'binary'));
    let size = 0;
    for (const d of data) {
        if (typeof d === 'string')
            return hashBytes('sha256', ...data).bytes;
        size += d.length;
    }
    if (size > JOINED.length)
        return hashBytes('sha256', ...data).bytes;
    let at = 0;
    for (const d of data) {
        JOINED.set(d, at);
        at += d.length;
    }
    return digestBytes((0,external_node_crypto_namespaceObject.hash)('sha256', JOINED.subarray(0, size), 'binary'));
}
/** Where `toHex` puts a digest to encode it (reused: encoding is synchronous). */
const HEX_SCRATCH = Buffer.allocUnsafeSlow(64);
/**
 * Lower-case hex of bytes. A digest is copied into a buffer of its own first: a typed array of up
 * to 64 bytes lives inside the JS heap, and reading its `.buffer` (to view it as a Buffer) makes
 * V8 move it out to memory of its own, about 0.9 µs per digest against 0.1 µs for the copy.
 */
function toHex(bytes) {
    if (bytes.length <= HEX_SCRATCH.length) {
        HEX_SCRATCH.set(bytes);
        return HEX_SCRATCH.toString('hex', 0, bytes.length);
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
/** Compresses a digest to `size` bytes by XOR-ing, as Nix does for store path hashes. */
function foldHash(bytes, size = 20) {
    const out = new Uint8Array(size);
    for (let i = 0; i < bytes.length; i++)
        out[i % size] = (out[i % size] ?? 0) ^ (bytes[i] ?? 0);
    return out;
}
/** Encodes the digest alone (no algorithm prefix), except SRI which always carries it. */
function formatHash(hash, format, withAlgo = false) {
    switch (format) {
        case 'base16':
            return (withAlgo ? `${hash.algo}:` : '') + toHex(hash.bytes);
        case 'nix32':
            return (withAlgo ? `${hash.algo}:` : '') + nix32Encode(hash.bytes);
        case 'base64':
            return (withAlgo ? `${hash.algo}:` : '') + Buffer.from(hash.bytes).toString('base64');
        case 'sri':
            return `${hash.algo}-${Buffer.from(hash.bytes).toString('base64')}`;
    }
}
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX = /^[0-9a-fA-F]*$/;
function decodeDigest(algo, text, what) {
    const size = HASH_SIZE[algo];
    if (text.length === size * 2 && HEX.test(text))
        return new Uint8Array(Buffer.from(text, 'hex'));
    if (text.length === nix32Length(size))
        return nix32Decode(text);
    if (text.length === Math.ceil(size / 3) * 4 && BASE64.test(text)) {
        const bytes = new Uint8Array(Buffer.from(text, 'base64'));
        if (bytes.length === size)
            return bytes;
    }
    throw new MalformedError(what, undefined, `hash '${text}' is not a valid ${algo} digest in hex, nix32 or base64`);
}
/**
 * Parses a hash as Nix accepts it: `algo:digest`, SRI `algo-base64`, or a bare digest when
 * `defaultAlgo` is given. The digest may be hex, nix32 or base64.
 */
function parseHash(text, defaultAlgo) {
    const sri = /^(md5|sha1|sha256|sha512|blake3)-(.*)$/.exec(text);
    if (sri?.[1] !== undefined && sri[2] !== undefined && isHashAlgo(sri[1])) {
        const bytes = new Uint8Array(Buffer.from(sri[2], 'base64'));
        if (bytes.length !== HASH_SIZE[sri[1]] || !BASE64.test(sri[2]))
            throw new MalformedError('hash', undefined, `SRI hash '${text}' has the wrong length or alphabet`);
        return { algo: sri[1], bytes };
    }
    const colon = text.indexOf(':');
    if (colon >= 0) {
        const algo = text.slice(0, colon);
        if (!isHashAlgo(algo))
            throw new MalformedError('hash', undefined, `unknown hash algorithm '${algo}'`);
        return { algo, bytes: decodeDigest(algo, text.slice(colon + 1), 'hash') };
    }
    if (defaultAlgo === undefined)
        throw new MalformedError('hash', undefined, `hash '${text}' does not name its algorithm`);
    return { algo: defaultAlgo, bytes: decodeDigest(defaultAlgo, text, 'hash') };
}
/** True when two hashes are the same algorithm and digest. */
function hashEquals(a, b) {
    return a.algo === b.algo && Buffer.compare(a.bytes, b.bytes) === 0;
}

;// CONCATENATED MODULE: ./src/core/bundle/json-limits.ts
// Limits on a JSON document's shape, checked before JSON.parse: V8 parses nested arrays and objects
// recursively, so a few kilobytes of `[[[[…` end in a stack overflow, not a clean refusal.

/** Deepest nesting of arrays and objects a manifest may have (version 2 needs 5). */
const MAX_MANIFEST_DEPTH = 16;
/**
 * Refuses ('bundle', exit 3) a JSON text nested deeper than `maxDepth` arrays and objects, naming
 * `what`. A linear scan that skips strings (with their escapes); it does not validate the JSON,
 * which JSON.parse then does safely.
 */
function assertJsonDepth(text, maxDepth, what) {
    let depth = 0;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (inString) {
            if (c === 0x5c /* \ */)
                i++;
            else if (c === 0x22 /* " */)
                inString = false;
            continue;
        }
        if (c === 0x22)
            inString = true;
        else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
            if (++depth > maxDepth)
                throw new errors_NixPlanError('bundle', `${what} is nested deeper than ${maxDepth} arrays and objects (at character ${i}): refusing it`);
        }
        else if (c === 0x5d /* ] */ || c === 0x7d /* } */)
            depth--;
    }
}

;// CONCATENATED MODULE: ./src/core/store-path.ts
// Store paths: parsing and validation, and the fingerprints Nix hashes to name every kind of object.




/** Length of the hash part of a store path's base name. */
const HASH_PART_LENGTH = 32;
/** Longest name Nix accepts after the hash and dash. */
const MAX_NAME_LENGTH = 211;
const NAME_CHAR = /^[A-Za-z0-9+\-._?=]+$/;
const STORE_DIR = /^(\/[A-Za-z0-9._+-]+)+$/;
/** Why `storeDir` cannot be a realm, or undefined if it can. */
function storeDirProblem(storeDir) {
    if (!storeDir.startsWith('/'))
        return 'it is not absolute';
    if (storeDir.endsWith('/'))
        return 'it ends with a slash';
    if (!STORE_DIR.test(storeDir))
        return 'it may only contain A-Z a-z 0-9 . _ + - and single slashes';
    if (storeDir.split('/').some((c) => c === '.' || c === '..'))
        return 'it contains . or .. components';
    return undefined;
}
/** Throws a 'realm' error unless `storeDir` is a valid store directory. */
function assertStoreDir(storeDir) {
    const problem = storeDirProblem(storeDir);
    if (problem !== undefined)
        throw new errors_NixPlanError('realm', `invalid store directory '${storeDir}': ${problem}`);
}
/** Why `name` is not a valid store path name, or undefined if it is. */
function nameProblem(name) {
    if (name.length === 0)
        return 'the name is empty';
    if (name.length > MAX_NAME_LENGTH)
        return `the name is longer than ${MAX_NAME_LENGTH} characters`;
    if (name === '.' || name === '..')
        return `the name is '${name}'`;
    if (name.startsWith('.'))
        return 'the name starts with a period';
    if (!NAME_CHAR.test(name))
        return 'the name has a character outside A-Z a-z 0-9 + - . _ ? =';
    return undefined;
}
/** True when `s` is 32 nix32 characters. */
function isHashPart(s) {
    if (s.length !== HASH_PART_LENGTH)
        return false;
    for (let i = 0; i < s.length; i++)
        if (!isNix32Char(s.charCodeAt(i)))
            return false;
    return true;
}
/** Parses a full store path under `storeDir`; throws a MalformedError naming the problem. */
function parseStorePath(path, storeDir) {
    const prefix = storeDir + '/';
    if (!path.startsWith(prefix))
        throw new MalformedError('store path', undefined, `'${path}' is not in the store directory '${storeDir}'`);
    const base = path.slice(prefix.length);
    const hashPart = base.slice(0, HASH_PART_LENGTH);
    if (!isHashPart(hashPart) || base[HASH_PART_LENGTH] !== '-')
        throw new MalformedError('store path', undefined, `'${path}' does not start with a 32-character nix32 hash and a dash`);
    const name = base.slice(HASH_PART_LENGTH + 1);
    const problem = nameProblem(name);
    if (problem !== undefined)
        throw new MalformedError('store path', undefined, `'${path}': ${problem}`);
    return { storeDir, hashPart, name };
}
/** True when `path` is a valid store path under `storeDir`. */
function isStorePath(path, storeDir) {
    try {
        parseStorePath(path, storeDir);
        return true;
    }
    catch {
        return false;
    }
}
/** The base name (`<hash>-<name>`) of a store path. */
function baseName(path) {
    return path.slice(path.lastIndexOf('/') + 1);
}
/** The 32-character hash part of a full store path (no validation). */
function hashPartOf(path) {
    return baseName(path).slice(0, HASH_PART_LENGTH);
}
/** The name part of a full store path (no validation). */
function nameOf(path) {
    return baseName(path).slice(HASH_PART_LENGTH + 1);
}
/**
 * Nix's `makeStorePath`: `storeDir/nix32(fold20(sha256(type:sha256:innerHex:storeDir:name)))-name`.
 * The store dir is in the fingerprint, which is why every path changes with the realm.
 */
function makeStorePath(type, innerHex, name, storeDir) {
    return storePathFrom(type, undefined, false, innerHex, name, storeDir);
}
/**
 * Where a store path's fingerprint is written to be hashed (reused: hashing is synchronous). A
 * text object's fingerprint names every reference (a few KB for a .drv); made as a string, it was
 * a joined string, a template string around it and the flat copy hashing makes of that, for each
 * of the tens of thousands of paths a plan's reader checks.
 */
const FINGERPRINT = Buffer.allocUnsafeSlow(64 * 1024);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** The digest folded to 20 bytes, for nix32Encode (reused, as FINGERPRINT). */
const FOLDED = new Uint8Array(20);
/** Writes the ASCII string `s` into FINGERPRINT at `at`; -1 when it is not ASCII, does not fit, or `at` is -1. */
function putAscii(s, at) {
    if (at < 0 || at + s.length > FINGERPRINT.length)
        return -1;
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f)
            return -1;
        FINGERPRINT[at++] = c;
    }
    return at;
}
/**
 * `makeStorePath` of type `type` followed by `references` (each after a colon) and `:self` when
 * `self`, with the inner hash given as its digest or its hex. The fingerprint is written as bytes
 * into FINGERPRINT when it is ASCII and fits (the usual case), and made as a string otherwise:
 * the same bytes either way (a string is hashed as UTF-8).
 */
function storePathFrom(type, references, self, inner, name, storeDir) {
    let at = putAscii(type, 0);
    if (references !== undefined)
        for (let i = 0; i < references.length && at >= 0; i++)
            at = putAscii(references[i], putAscii(':', at));
    if (self)
        at = putAscii(':self', at);
    at = putAscii(':sha256:', at);
    if (typeof inner === 'string')
        at = putAscii(inner, at);
    else if (at >= 0 && at + 2 * inner.length <= FINGERPRINT.length)
        for (let i = 0; i < inner.length; i++) {
            FINGERPRINT[at++] = HEX_DIGITS[inner[i] >> 4];
            FINGERPRINT[at++] = HEX_DIGITS[inner[i] & 15];
        }
    else
        at = -1;
    at = putAscii(name, putAscii(':', putAscii(storeDir, putAscii(':', at))));
    let digest;
    if (at >= 0)
        digest = (0,external_node_crypto_namespaceObject.hash)('sha256', FINGERPRINT.subarray(0, at), 'binary');
    else {
        const refs = references === undefined || references.length === 0 ? '' : ':' + references.join(':');
        const innerHex = typeof inner === 'string' ? inner : toHex(inner);
        const fingerprint = `${type}${refs}${self ? ':self' : ''}:sha256:${innerHex}:${storeDir}:${name}`;
        digest = (0,external_node_crypto_namespaceObject.hash)('sha256', fingerprint, 'binary');
    }
    // foldHash of the digest (Nix's compressHash), without making an array of either.
    FOLDED.fill(0);
    for (let i = 0; i < digest.length; i++) {
        const k = i % 20;
        FOLDED[k] = FOLDED[k] ^ digest.charCodeAt(i);
    }
    return `${storeDir}/${nix32Encode(FOLDED)}-${name}`;
}
/** References as a fingerprint names them: sorted (duplicates are the caller's to drop). */
function sortedReferences(references) {
    const refs = Array.isArray(references) ? references : [...references];
    // References usually come sorted already (a .drv's are): sort only a copy, and only when not.
    return isSorted(refs) ? refs : [...refs].sort(compareStrings);
}
/** True when `xs` is in ascending order (equal neighbours allowed). */
function isSorted(xs) {
    for (let i = 1; i < xs.length; i++)
        if (xs[i - 1] > xs[i])
            return false;
    return true;
}
/** Path of a text object (a `.drv`, or a `builtins.toFile` result) from its contents' sha256. */
function makeTextPath(name, contentSha256, references, storeDir) {
    return storePathFrom('text', sortedReferences(references), false, contentSha256, name, storeDir);
}
/** Path of a recursive sha256 source (path literal, `builtins.path`) from its NAR's sha256. */
function makeSourcePath(name, narSha256, storeDir, references = [], self = false) {
    return storePathFrom('source', sortedReferences(references), self, narSha256, name, storeDir);
}
/** Path of a fixed-output object: recursive sha256 is a source; everything else is `output:out`. */
function makeFixedOutputPath(name, hash, ingestion, storeDir) {
    if (ingestion === 'nar' && hash.algo === 'sha256')
        return makeSourcePath(name, hash.bytes, storeDir);
    const prefix = ingestion === 'nar' ? 'r:' : ingestion === 'git' ? 'git:' : '';
    const inner = toHex(sha256(`fixed:out:${prefix}${hash.algo}:${toHex(hash.bytes)}:`));
    return makeStorePath('output:out', inner, name, storeDir);
}
/** The derivation name of a .drv store path: its name without the `.drv` extension. */
function drvName(drvPath) {
    const name = nameOf(drvPath);
    if (!name.endsWith('.drv') || name.length <= 4)
        throw new errors_NixPlanError('malformed', `'${drvPath}' is not a derivation path (its name does not end in .drv)`);
    return name.slice(0, -4);
}
/**
 * The placeholder Nix renders for output `output` of a derivation whose output paths are not
 * known before it is built (a floating content-addressed one, or one depending on it): its
 * dependents mention this hash, which relocation maps with the derivation's path (Nix's
 * `DownstreamPlaceholder`).
 */
function downstreamPlaceholder(drvPath, output) {
    const name = drvName(drvPath);
    return nix32Encode(sha256(`nix-upstream-output:${hashPartOf(drvPath)}:${outputPathName(name, output)}`));
}
/** Name of output `output` of a derivation named `drvName`. */
function outputPathName(drvName, output) {
    return output === 'out' ? drvName : `${drvName}-${output}`;
}
/** Path of output `output` of an input-addressed derivation with the given modulo hash. */
function makeOutputPath(drvName, output, hashModuloHex, storeDir) {
    return makeStorePath(`output:${output}`, hashModuloHex, outputPathName(drvName, output), storeDir);
}
/** Byte-wise comparison of strings (Nix sorts by bytes; for ASCII this equals code unit order). */
function compareStrings(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}
/** True when `xs` is in `compareStrings` order without duplicates. */
function isStrictlySorted(xs) {
    for (let i = 1; i < xs.length; i++)
        if (!(xs[i - 1] < xs[i]))
            return false;
    return true;
}

;// CONCATENATED MODULE: ./src/core/bundle/manifest-types.ts
/** The `format` every bundle manifest names. */
const MANIFEST_FORMAT = 'nix-plan';
/** The manifest schema this code writes. */
const MANIFEST_FORMAT_VERSION = 2;
/** Every manifest schema this code reads (version 1 has no createdAt, provenance or promotions). */
const READABLE_FORMAT_VERSIONS = [1, 2];
/** Prefix of the bytes a manifest signature covers, so no other signed message can pass for one. */
const SIGNATURE_DOMAIN = 'nix-plan manifest v1\n';
/** Default limit on the manifest's size; it lists roots, not paths, so it stays small. */
const DEFAULT_MAX_MANIFEST_SIZE = 16 * 1024 * 1024;
/** Every include kind, for parsing (the CLI's --include, the action's input). */
const INCLUDE_KINDS = ['drvs', 'sources', 'outputs'];
/** Every object kind, in the order counts are listed. */
const OBJECT_KINDS = ['drv', 'text', 'source', 'output'];
/** Counts (or bytes) per object kind, all zero. */
function emptyCounts() {
    return Object.fromEntries(OBJECT_KINDS.map((k) => [k, 0]));
}

;// CONCATENATED MODULE: ./src/core/bundle/manifest-schema.ts
// Strict validation of an untrusted manifest (parsed JSON) against schema version 1 or 2: every
// field's type, range and format, store paths in the bundle's store dir, and the cross-field rules.




const MAX_STRING = 4096;
const MAX_ROOTS = 100_000;
const MAX_LIST = 100_000;
/** Most promotions a plan records (each relocation adds one). */
const MAX_PROMOTIONS = 256;
/** Most locked inputs recorded of a flake (nixpkgs-scale locks have a few hundred). */
const MAX_FLAKE_INPUTS = 10_000;
const ANY = /^/s;
const SYSTEM = /^[A-Za-z0-9_.+-]{1,64}$/;
const OUTPUT_NAME = /^[A-Za-z0-9+\-._?=]{1,211}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const B64SIG = /^[A-Za-z0-9+/]{86}==$/;
const manifest_schema_KEY_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;
const COMMIT = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const NO_SPACE = /^\S+$/;
const HTTPS_URL = /^https:\/\/\S+$/;
const SRI = /^(?:sha1|sha256|sha512)-[A-Za-z0-9+/]+={0,2}$/;
/** RFC 3339 in UTC with whole seconds, as nix-plan writes times: `2026-12-06T10:17:30Z`. */
const RFC3339_UTC = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;
function bad(field, detail) {
    return new errors_NixPlanError('bundle', `bundle manifest: ${field} ${detail}`);
}
function isRecord(v) {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function record(v, field, required, optional = []) {
    if (!isRecord(v))
        throw bad(field, 'must be an object');
    for (const k of Object.keys(v))
        if (!required.includes(k) && !optional.includes(k))
            throw bad(field, `has an unknown field '${k.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}' (written by a newer nix-plan? upgrade nix-plan)`);
    for (const k of required)
        if (!(k in v))
            throw bad(field, `lacks the field '${k}'`);
    return v;
}
/**
 * A string of at most `max` characters matching `pattern`, and free of the characters no
 * manifest string may hold (controls, C1, bidi, separators, lone surrogates: see core/text.ts).
 */
function manifest_schema_str(v, field, max = MAX_STRING, pattern = ANY) {
    if (typeof v !== 'string')
        throw bad(field, 'must be a string');
    if (v.length > max)
        throw bad(field, `is longer than ${max} characters`);
    const unsafe = unsafeCharacter(v);
    if (unsafe !== undefined)
        throw bad(field, `holds the character ${unsafe.codePoint} (at index ${unsafe.index}), which is not allowed`);
    if (!pattern.test(v))
        throw bad(field, `has a forbidden character or format: '${v.slice(0, 80)}'`);
    return v;
}
function manifest_schema_int(v, field, min = 0) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
        throw bad(field, min === 0 ? 'must be a non-negative integer' : `must be an integer of at least ${min}`);
    return v;
}
function bool(v, field) {
    if (typeof v !== 'boolean')
        throw bad(field, 'must be true or false');
    return v;
}
function manifest_schema_list(v, field, max, item) {
    if (!Array.isArray(v))
        throw bad(field, 'must be an array');
    if (v.length > max)
        throw new errors_NixPlanError('bundle', `bundle manifest: ${field} has more than ${max} entries`);
    return v.map((x, i) => item(x, `${field}[${i}]`));
}
function storePath(v, field, storeDir) {
    const p = manifest_schema_str(v, field);
    try {
        parseStorePath(p, storeDir);
    }
    catch (e) {
        throw bad(field, `is not a valid store path in ${storeDir}: ${e.message}`);
    }
    return p;
}
function storeDirField(v, field) {
    const dir = manifest_schema_str(v, field);
    const problem = storeDirProblem(dir);
    if (problem !== undefined)
        throw bad(field, `'${dir}' is not a store directory: ${problem}`);
    return dir;
}
/** An RFC 3339 UTC time with whole seconds that names a real instant (no 30 February). */
function timestamp(v, field) {
    const s = manifest_schema_str(v, field, 64);
    const m = RFC3339_UTC.exec(s);
    const ms = Date.parse(s);
    if (m === null || Number.isNaN(ms) || new Date(ms).toISOString() !== `${s.slice(0, 19)}.000Z`)
        throw bad(field, `must be an RFC 3339 UTC time like 2026-12-06T10:17:30Z, not '${s}'`);
    return s;
}
function kinds(v, field, keys) {
    const r = record(v, field, keys);
    const out = {};
    for (const k of keys)
        out[k] = manifest_schema_int(r[k], `${field}.${k}`);
    return out;
}
function root(v, field, storeDir) {
    const r = record(v, field, ['drvPath', 'outputs'], ['installable', 'attribute']);
    const drvPath = storePath(r['drvPath'], `${field}.drvPath`, storeDir);
    if (!drvPath.endsWith('.drv'))
        throw bad(`${field}.drvPath`, 'must be a .drv path');
    const outputsIn = r['outputs'];
    if (!isRecord(outputsIn))
        throw bad(`${field}.outputs`, 'must be an object');
    const names = Object.keys(outputsIn);
    if (names.length > 1000)
        throw new errors_NixPlanError('bundle', `bundle manifest: ${field}.outputs has more than 1000 outputs`);
    // Own keys, each name as it is: an output may be named `__proto__` (assigning it would drop it).
    const outputs = Object.fromEntries(names.map((name) => {
        manifest_schema_str(name, `${field}.outputs key`, 211, OUTPUT_NAME);
        const p = outputsIn[name];
        return [name, p === '' ? '' : storePath(p, `${field}.outputs.${name}`, storeDir)];
    }));
    const out = { drvPath, outputs };
    if (r['installable'] !== undefined)
        out.installable = manifest_schema_str(r['installable'], `${field}.installable`);
    if (r['attribute'] !== undefined)
        out.attribute = manifest_schema_str(r['attribute'], `${field}.attribute`);
    return out;
}
function relocation(v, field, storeDir) {
    const r = record(v, field, ['storeDir', 'report']);
    const from = storeDirField(r['storeDir'], `${field}.storeDir`);
    const rep = record(r['report'], `${field}.report`, [
        'objects',
        'hashesRewritten',
        'bareHashRewrites',
        'bareStoreDirMentions',
        'warnings',
    ]);
    const report = {
        objects: kinds(rep['objects'], `${field}.report.objects`, ['drv', 'text', 'source']),
        hashesRewritten: manifest_schema_int(rep['hashesRewritten'], `${field}.report.hashesRewritten`),
        bareHashRewrites: manifest_schema_int(rep['bareHashRewrites'], `${field}.report.bareHashRewrites`),
        bareStoreDirMentions: manifest_schema_list(rep['bareStoreDirMentions'], `${field}.report.bareStoreDirMentions`, MAX_LIST, (x, f) => {
            const m = record(x, f, ['path', 'count']);
            return { path: storePath(m['path'], `${f}.path`, storeDir), count: manifest_schema_int(m['count'], `${f}.count`) };
        }),
        warnings: manifest_schema_list(rep['warnings'], `${field}.report.warnings`, MAX_LIST, (x, f) => manifest_schema_str(x, f)),
    };
    return { storeDir: from, report };
}
function flake(v, field) {
    const r = record(v, field, ['url', 'inputs']);
    const inputs = manifest_schema_list(r['inputs'], `${field}.inputs`, MAX_FLAKE_INPUTS, (x, f) => {
        const i = record(x, f, ['name', 'url'], ['narHash', 'lastModified']);
        return {
            name: manifest_schema_str(i['name'], `${f}.name`, 256, NO_SPACE),
            url: manifest_schema_str(i['url'], `${f}.url`, MAX_STRING, NO_SPACE),
            ...(i['narHash'] !== undefined && { narHash: manifest_schema_str(i['narHash'], `${f}.narHash`, 256, SRI) }),
            ...(i['lastModified'] !== undefined && { lastModified: manifest_schema_int(i['lastModified'], `${f}.lastModified`) }),
        };
    });
    for (let i = 1; i < inputs.length; i++)
        if (!((inputs[i - 1]?.name ?? '') < (inputs[i]?.name ?? '')))
            throw bad(`${field}.inputs[${i}].name`, 'must come after the name before it (sorted, no duplicates)');
    return { url: manifest_schema_str(r['url'], `${field}.url`, MAX_STRING, NO_SPACE), inputs };
}
/** The `provenance` object of a version-2 manifest. */
function provenance(v, field) {
    const r = record(v, field, [], ['repository', 'commit', 'ref', 'dirty', 'workflow', 'runUrl', 'runAttempt', 'flake']);
    const p = {};
    if (r['repository'] !== undefined)
        p.repository = manifest_schema_str(r['repository'], `${field}.repository`, 1024, NO_SPACE);
    if (r['commit'] !== undefined)
        p.commit = manifest_schema_str(r['commit'], `${field}.commit`, 64, COMMIT);
    if (r['ref'] !== undefined)
        p.ref = manifest_schema_str(r['ref'], `${field}.ref`, 1024, NO_SPACE);
    if (r['dirty'] !== undefined)
        p.dirty = bool(r['dirty'], `${field}.dirty`);
    if (r['workflow'] !== undefined)
        p.workflow = manifest_schema_str(r['workflow'], `${field}.workflow`, 1024);
    if (r['runUrl'] !== undefined)
        p.runUrl = manifest_schema_str(r['runUrl'], `${field}.runUrl`, 2048, HTTPS_URL);
    if (r['runAttempt'] !== undefined)
        p.runAttempt = manifest_schema_int(r['runAttempt'], `${field}.runAttempt`, 1);
    if (r['flake'] !== undefined)
        p.flake = flake(r['flake'], `${field}.flake`);
    return p;
}
function promotion(v, field) {
    const r = record(v, field, ['digest', 'storeDir', 'checksum', 'signedBy', 'at'], ['noCheckSigs']);
    const signedBy = manifest_schema_list(r['signedBy'], `${field}.signedBy`, 64, (x, f) => {
        const s = record(x, f, ['key', 'fingerprint']);
        return {
            key: manifest_schema_str(s['key'], `${f}.key`, 256, manifest_schema_KEY_NAME),
            fingerprint: manifest_schema_str(s['fingerprint'], `${f}.fingerprint`, 71, SHA256_DIGEST),
        };
    });
    const p = {
        digest: manifest_schema_str(r['digest'], `${field}.digest`, 71, SHA256_DIGEST),
        storeDir: storeDirField(r['storeDir'], `${field}.storeDir`),
        checksum: manifest_schema_str(r['checksum'], `${field}.checksum`, 64, HEX64),
        signedBy,
        at: timestamp(r['at'], `${field}.at`),
    };
    if (r['noCheckSigs'] !== undefined) {
        if (r['noCheckSigs'] !== true)
            throw bad(`${field}.noCheckSigs`, 'must be true when present');
        if (signedBy.length > 0)
            throw bad(`${field}.signedBy`, 'must be empty when the input was accepted with noCheckSigs');
        p.noCheckSigs = true;
    }
    return p;
}
const V1_FIELDS = [
    'format',
    'formatVersion',
    'tool',
    'nixVersion',
    'storeDir',
    'systems',
    'include',
    'roots',
    'counts',
    'narBytes',
    'paths',
    'stream',
    'signatures',
    'checksum',
];
/**
 * Checks that an untrusted value (parsed JSON) is a version-1 or version-2 manifest and returns
 * it typed. An unknown format or version is refused first, with a message that says to upgrade
 * nix-plan for a newer one.
 */
function validateManifest(value) {
    if (!isRecord(value) || value['format'] !== MANIFEST_FORMAT)
        throw new errors_NixPlanError('bundle', `not a nix-plan bundle manifest (its format is not '${MANIFEST_FORMAT}')`);
    const version = value['formatVersion'];
    if (typeof version !== 'number' || !READABLE_FORMAT_VERSIONS.includes(version)) {
        const tool = typeof value['tool'] === 'string' ? ` by ${value['tool'].slice(0, 64)}` : '';
        throw new errors_NixPlanError('bundle', typeof version === 'number' && Number.isSafeInteger(version) && version > MANIFEST_FORMAT_VERSION
            ? `this bundle was written${tool} in bundle format version ${version}; this nix-plan reads versions ${READABLE_FORMAT_VERSIONS.join(' and ')}: upgrade nix-plan`
            : `bundle manifest: formatVersion must be ${READABLE_FORMAT_VERSIONS.join(' or ')}, not ${JSON.stringify(version)?.slice(0, 32)}`);
    }
    const formatVersion = version;
    const r = record(value, 'manifest', [...V1_FIELDS, ...(formatVersion >= 2 ? ['provenance'] : [])], ['relocatedFrom', ...(formatVersion >= 2 ? ['createdAt', 'promotions'] : [])]);
    const storeDir = storeDirField(r['storeDir'], 'storeDir');
    const include = manifest_schema_str(r['include'], 'include', 16);
    if (!INCLUDE_KINDS.includes(include))
        throw bad('include', `must be one of ${INCLUDE_KINDS.join(', ')}`);
    const counts = kinds(r['counts'], 'counts', OBJECT_KINDS);
    const narBytes = kinds(r['narBytes'], 'narBytes', OBJECT_KINDS);
    const paths = manifest_schema_int(r['paths'], 'paths');
    if (paths !== OBJECT_KINDS.reduce((n, k) => n + counts[k], 0))
        throw bad('paths', 'is not the sum of counts');
    for (const k of OBJECT_KINDS)
        if ((counts[k] === 0) !== (narBytes[k] === 0))
            throw bad(`narBytes.${k}`, `disagrees with counts.${k}`);
    if (include === 'drvs' && counts.output > 0)
        throw bad('counts.output', "must be 0 in a 'drvs' bundle (it holds only content-addressed paths)");
    const s = record(r['stream'], 'stream', ['sha256', 'size', 'compressedSha256', 'compressedSize']);
    const stream = {
        sha256: manifest_schema_str(s['sha256'], 'stream.sha256', 64, HEX64),
        size: manifest_schema_int(s['size'], 'stream.size'),
        compressedSha256: manifest_schema_str(s['compressedSha256'], 'stream.compressedSha256', 64, HEX64),
        compressedSize: manifest_schema_int(s['compressedSize'], 'stream.compressedSize'),
    };
    // Every entry is at least its NAR plus a marker, a path, a count and a deriver; the end is 8 bytes.
    const minSize = 8 + OBJECT_KINDS.reduce((n, k) => n + narBytes[k], 0) + paths * 48;
    if (stream.size < minSize)
        throw bad('stream.size', `is smaller than its ${paths} paths need (${minSize} bytes)`);
    if (stream.compressedSize < 9)
        throw bad('stream.compressedSize', 'is too small for a zstd frame');
    const manifest = {
        format: MANIFEST_FORMAT,
        formatVersion,
        tool: manifest_schema_str(r['tool'], 'tool', 256),
        nixVersion: manifest_schema_str(r['nixVersion'], 'nixVersion', 256),
        storeDir,
        systems: manifest_schema_list(r['systems'], 'systems', 64, (x, f) => manifest_schema_str(x, f, 64, SYSTEM)),
        include: include,
        roots: manifest_schema_list(r['roots'], 'roots', MAX_ROOTS, (x, f) => root(x, f, storeDir)),
        counts,
        narBytes,
        paths,
        stream,
        signatures: manifest_schema_list(r['signatures'], 'signatures', 64, (x, f) => {
            const g = record(x, f, ['key', 'sig']);
            return {
                key: manifest_schema_str(g['key'], `${f}.key`, 256, manifest_schema_KEY_NAME),
                sig: manifest_schema_str(g['sig'], `${f}.sig`, 88, B64SIG),
            };
        }),
        checksum: manifest_schema_str(r['checksum'], 'checksum', 64, HEX64),
    };
    if (manifest.roots.length === 0)
        throw bad('roots', 'is empty: a plan needs at least one root');
    if (r['relocatedFrom'] !== undefined) {
        manifest.relocatedFrom = relocation(r['relocatedFrom'], 'relocatedFrom', storeDir);
        if (manifest.relocatedFrom.storeDir === storeDir)
            throw bad('relocatedFrom.storeDir', 'equals storeDir: a relocation changes the store directory');
    }
    if (formatVersion >= 2)
        versionTwo(r, manifest);
    return manifest;
}
/** The fields version 2 adds, and how they must agree with each other and with relocatedFrom. */
function versionTwo(r, manifest) {
    manifest.provenance = provenance(r['provenance'], 'provenance');
    if (r['promotions'] !== undefined) {
        const promotions = manifest_schema_list(r['promotions'], 'promotions', MAX_PROMOTIONS, promotion);
        if (promotions.length === 0)
            throw bad('promotions', 'is empty: leave it out when the plan was never promoted');
        // Each promotion moved the plan out of its store dir: into the next one's, the last into storeDir.
        promotions.forEach((p, i) => {
            const into = promotions[i + 1]?.storeDir ?? manifest.storeDir;
            if (p.storeDir === into)
                throw bad(`promotions[${i}].storeDir`, `equals the store dir it was promoted into (${into})`);
        });
        const last = promotions[promotions.length - 1];
        if (manifest.relocatedFrom === undefined)
            throw bad('promotions', 'is set, but relocatedFrom is not: a promotion is a relocation');
        if (last !== undefined && last.storeDir !== manifest.relocatedFrom.storeDir)
            throw bad(`promotions[${promotions.length - 1}].storeDir`, `is ${last.storeDir}, but relocatedFrom.storeDir is ${manifest.relocatedFrom.storeDir}`);
        manifest.promotions = promotions;
    }
    if (r['createdAt'] !== undefined)
        manifest.createdAt = timestamp(r['createdAt'], 'createdAt');
    else if (manifest.promotions === undefined)
        throw bad('createdAt', 'is missing: only a plan promoted from a version-1 bundle (whose age is unknown) may leave it out');
}
/** Checks an untrusted `provenance` value (for writers that take values from outside). */
function validateProvenance(value) {
    return provenance(value, 'provenance');
}

;// CONCATENATED MODULE: ./src/core/bundle/manifest.ts
// The plan bundle's manifest: canonical form, checksum, signatures, and parsing of untrusted bytes.
// (Its schema, versions 1 and 2, is in manifest-types.ts; strict validation in manifest-schema.ts.)
//
// The manifest is stored as its canonical JSON (keys sorted, no whitespace) and carries a sha256 of
// itself (`checksum`, over the canonical JSON without that field). A reader requires the stored
// bytes to be exactly the canonical form of what they parse to and the checksum to match, so any
// change to the frame's bytes is refused, not just those that break the JSON. Signatures cover the
// canonical JSON without `checksum` and `signatures`, behind a domain-separation prefix; since the
// manifest records the sha256 of both the compressed and the uncompressed stream, a signature covers
// every byte of the bundle except the signature list itself: anyone can strip a signature or add
// one by another key, which is why a reader decides by the keys it trusts, never by the list.








/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members
 * dropped. Only JSON's own value types; numbers as JavaScript prints them (a manifest holds integers).
 */
function canonicalJson(value) {
    if (value === null || typeof value === 'boolean' || typeof value === 'string')
        return JSON.stringify(value);
    if (typeof value === 'number') {
        if (!Number.isFinite(value))
            throw new errors_NixPlanError('internal', `canonical JSON cannot hold ${value}`);
        return JSON.stringify(value);
    }
    if (Array.isArray(value))
        return `[${value.map(canonicalJson).join(',')}]`;
    if (typeof value === 'object') {
        const entries = Object.entries(value)
            .filter(([, v]) => v !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    throw new errors_NixPlanError('internal', `canonical JSON cannot hold a ${typeof value}`);
}
/** sha256 hex of the canonical manifest without `checksum`. */
function manifestChecksum(manifest) {
    const { checksum: _checksum, ...rest } = manifest;
    return toHex(sha256(canonicalJson(rest)));
}
/** The bytes manifest signatures cover: the domain prefix and the canonical manifest without signatures. */
function signedBytes(manifest) {
    const { checksum: _c, signatures: _s, ...rest } = manifest;
    return new Uint8Array(Buffer.from(SIGNATURE_DOMAIN + canonicalJson(rest), 'utf8'));
}
/**
 * Completes a manifest: adds a signature by each key (replacing earlier ones by the same key
 * name) and recomputes the checksum. Validates the result, so a writer cannot emit a manifest
 * its own reader would refuse.
 */
function finaliseManifest(manifest, keys = []) {
    const message = signedBytes(manifest);
    const names = new Set(keys.map((k) => k.name));
    const signatures = [
        ...(manifest.signatures ?? []).filter((s) => !names.has(s.key)),
        ...keys.map((k) => ({ key: k.name, sig: Buffer.from(signRaw(k, message)).toString('base64') })),
    ];
    const { checksum: _c, ...rest } = manifest;
    const unsigned = { ...rest, signatures };
    const full = { ...unsigned, checksum: manifestChecksum(unsigned) };
    validateManifest(JSON.parse(canonicalJson(full)));
    return full;
}
/** The manifest's bytes as stored in the bundle (canonical JSON, UTF-8). */
function encodeManifest(manifest, maxSize = DEFAULT_MAX_MANIFEST_SIZE) {
    const text = canonicalJson(manifest);
    // What its own reader would refuse is not written (exit 3, as on read).
    assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'the manifest to write');
    const bytes = new Uint8Array(Buffer.from(text, 'utf8'));
    if (bytes.length > maxSize)
        throw new errors_NixPlanError('bundle', `the manifest to write is ${bytes.length} bytes, more than the ${maxSize} bytes a reader accepts`);
    return bytes;
}
/**
 * Parses and validates untrusted manifest bytes: JSON, format and version (a newer version asks
 * the user to upgrade), every field's type and range, store paths inside `storeDir`, canonical
 * form, then the checksum. Throws 'bundle' errors naming the field (also for oversize or too deeply
nested input).
 */
function parseManifest(bytes, maxSize = DEFAULT_MAX_MANIFEST_SIZE) {
    if (bytes.length > maxSize)
        throw new errors_NixPlanError('bundle', `bundle manifest of ${bytes.length} bytes exceeds the limit of ${maxSize} bytes`);
    let text;
    try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    }
    catch {
        throw new MalformedError('bundle manifest', undefined, 'not valid UTF-8');
    }
    assertJsonDepth(text, MAX_MANIFEST_DEPTH, 'bundle manifest');
    let value;
    try {
        value = JSON.parse(text);
    }
    catch (e) {
        throw new MalformedError('bundle manifest', undefined, `not valid JSON (${e.message})`);
    }
    const manifest = validateManifest(value);
    if (canonicalJson(manifest) !== text)
        throw new errors_NixPlanError('bundle', 'bundle manifest is not in canonical form (sorted keys, no whitespace, no duplicate keys): it was altered after it was written');
    const expected = manifestChecksum(manifest);
    if (manifest.checksum !== expected)
        throw new errors_NixPlanError('bundle', `bundle manifest checksum mismatch (recorded ${manifest.checksum}, computed ${expected}): the manifest is corrupt or was altered`);
    return manifest;
}
/**
 * Checks the manifest's signatures against trusted keys. Returns the names of the trusted keys
 * with a valid signature; throws a 'signature' error when a trusted key's signature is wrong or
 * when no trusted key signed. Signatures by keys not in `trusted` are ignored, as Nix does.
 */
function verifyManifestSignatures(manifest, trusted) {
    const message = signedBytes(manifest);
    const valid = [];
    for (const s of manifest.signatures) {
        const check = signing_checkDetached(message, `${s.key}:${s.sig}`, trusted);
        if (check === 'invalid' || check === 'malformed')
            throw new errors_NixPlanError('signature', `the bundle's signature by key '${s.key}' does not verify: the manifest was altered or signed with another key`);
        if (check === 'valid')
            valid.push(s.key);
    }
    if (valid.length === 0) {
        const by = manifest.signatures.map((s) => `'${s.key}'`).join(', ');
        throw new errors_NixPlanError('signature', `the bundle is not signed by a trusted key (trusted: ${trusted.map((k) => `'${k.name}'`).join(', ') || 'none'}; signed by: ${by || 'nobody'})`);
    }
    return valid;
}
/**
 * The trusted keys whose signature on the manifest verifies, with their fingerprints (what a
 * promotion records of its input). Signatures by other names, and ones that do not verify, are
 * left out: call `verifyManifestSignatures` first to refuse those.
 */
function manifestSigners(manifest, trusted) {
    const message = signedBytes(manifest);
    const signers = [];
    // The signature list is not signed: anyone may repeat a valid signature in it. Each key counts once.
    const seen = new Set();
    for (const s of manifest.signatures) {
        const sig = parseNamedSignature(`${s.key}:${s.sig}`);
        if (sig === undefined)
            continue;
        for (const k of trusted) {
            if (k.name !== sig.name)
                continue;
            const signer = { key: k.name, fingerprint: keyFingerprint(k) };
            const id = `${signer.key} ${signer.fingerprint}`;
            if (!seen.has(id) && verifyRaw(k, message, sig.bytes)) {
                seen.add(id);
                signers.push(signer);
            }
        }
    }
    return signers;
}

;// CONCATENATED MODULE: ./src/core/bundle/frame.ts
// zstd framing for plan bundles: the manifest's skippable frame, and a scanner that checks a data frame's structure.
//
// A bundle is `skippable frame (manifest)` + `one zstd data frame (export stream)`. `zstd -d` skips the
// first and decodes the second; node:zlib's decoder stops at the end of the *first* frame and silently
// drops anything after it, so the reader parses the skippable frame itself and walks the data frame's
// block headers (cheap, no decompression) to prove it is exactly one frame that ends at end of file.
// Format reference: RFC 8878 (Zstandard), sections 3.1.1 (frames) and 3.1.2 (skippable frames).

/** First and last magic numbers of zstd skippable frames (any low nibble is allowed by zstd). */
const SKIPPABLE_MAGIC_FIRST = 0x184d2a50;
/** Last skippable-frame magic number. */
const SKIPPABLE_MAGIC_LAST = 0x184d2a5f;
/**
 * The skippable-frame magic nix-plan writes its manifest with. Nibble 7 is not used by the tools we
 * know of (pzstd uses 0, the seekable format 0xE), so the magic itself identifies a plan bundle.
 */
const MANIFEST_FRAME_MAGIC = 0x184d2a57;
/** Magic number of a zstd data frame. */
const ZSTD_FRAME_MAGIC = 0xfd2fb528;
/** Size of a skippable frame's header: u32 LE magic, u32 LE payload size. */
const SKIPPABLE_HEADER_SIZE = 8;
/**
 * zstd's default decoder window limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT): frames with a larger window
 * need `zstd -d --long=N`/`--memory`. Bundles stay within it so stock `zstd -dc` decodes them.
 */
const DEFAULT_MAX_WINDOW_LOG = 27;
/** Largest block a zstd frame may hold (RFC 8878, Block_Maximum_Size). */
const ZSTD_MAX_BLOCK_SIZE = 128 * 1024;
/** True when `magic` is one of the 16 skippable-frame magic numbers. */
function isSkippableMagic(magic) {
    return magic >= SKIPPABLE_MAGIC_FIRST && magic <= SKIPPABLE_MAGIC_LAST;
}
/** Encodes `payload` as a skippable frame (header and payload in one array). */
function encodeSkippableFrame(payload, magic = MANIFEST_FRAME_MAGIC) {
    if (!isSkippableMagic(magic))
        throw new RangeError(`0x${magic.toString(16)} is not a skippable-frame magic`);
    if (payload.length > 0xffffffff)
        throw new LimitError('a skippable frame holds at most 4 GiB');
    const out = new Uint8Array(SKIPPABLE_HEADER_SIZE + payload.length);
    const view = new DataView(out.buffer);
    view.setUint32(0, magic, true);
    view.setUint32(4, payload.length, true);
    out.set(payload, SKIPPABLE_HEADER_SIZE);
    return out;
}
/**
 * Parses the 8-byte header at the start of `bytes`. Refuses a data frame or anything else with a
 * message saying what the file looks like, and payloads above `maxSize` before anything is read.
 */
function parseSkippableHeader(bytes, maxSize, what = 'plan bundle') {
    if (bytes.length < SKIPPABLE_HEADER_SIZE)
        throw new MalformedError(what, bytes.length, `file too short for a zstd frame header (${bytes.length} of ${SKIPPABLE_HEADER_SIZE} bytes)`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, SKIPPABLE_HEADER_SIZE);
    const magic = view.getUint32(0, true);
    if (magic === ZSTD_FRAME_MAGIC)
        throw new MalformedError(what, 0, 'this is a plain zstd file without a nix-plan manifest (a bundle starts with a skippable frame)');
    if (!isSkippableMagic(magic))
        throw new MalformedError(what, 0, `not a zstd skippable frame (magic 0x${magic.toString(16)})`);
    const size = view.getUint32(4, true);
    // The manifest's frame: a manifest too large to read is a bad bundle (exit 3), as on write.
    if (size > maxSize)
        throw new errors_NixPlanError('bundle', `${what}: the skippable frame claims ${size} bytes, more than the limit of ${maxSize} bytes at byte offset 4`);
    return { magic, size };
}
/**
 * Walks one zstd data frame chunk by chunk without decompressing: magic, frame header, every block
 * header (skipping block bodies), the optional checksum. Errors name the absolute byte offset.
 * Refuses dictionaries, reserved bits, reserved block types, oversized blocks and windows, and any
 * byte after the frame ends.
 */
class ZstdFrameScanner {
    base;
    limits;
    what;
    state = 'magic';
    need = 4; // bytes still wanted for the current fixed-size field
    field = [];
    skip = 0; // block body bytes still to skip
    lastBlock = false;
    consumed = 0; // bytes of the frame seen so far
    headerRest = 0;
    descriptor = 0;
    windowSize = 0;
    contentSize;
    blockMax = ZSTD_MAX_BLOCK_SIZE;
    boundaries = [];
    blockCount = 0;
    /**
     * @param base absolute offset of the frame's first byte in the file, for error messages.
     */
    constructor(base, limits = { maxWindowLog: DEFAULT_MAX_WINDOW_LOG }, what = 'plan bundle data frame') {
        this.base = base;
        this.limits = limits;
        this.what = what;
    }
    /** True once the frame's last block (and checksum) has been seen. */
    get complete() {
        return this.state === 'done';
    }
    fail(detail, at = this.consumed) {
        return new MalformedError(this.what, this.base + at, detail);
    }
    /** Feeds the next chunk of the file; throws at the first structural problem or a byte past the frame. */
    push(chunk) {
        if (this.pushUntilEnd(chunk) < chunk.length)
            throw this.fail('trailing bytes after the zstd data frame');
    }
    /**
     * Feeds bytes up to the end of the frame and returns how many were consumed (less than the
     * chunk's length once the frame is complete); throws at the first structural problem.
     */
    pushUntilEnd(chunk) {
        let i = 0;
        while (i < chunk.length && this.state !== 'done') {
            if (this.state === 'block-body') {
                const take = Math.min(this.skip, chunk.length - i);
                this.skip -= take;
                this.consumed += take;
                i += take;
                if (this.skip === 0)
                    this.endBlock();
                continue;
            }
            this.field.push(chunk[i] ?? 0);
            i++;
            this.consumed++;
            if (--this.need === 0)
                this.fieldDone();
        }
        return i;
    }
    /** Call at end of input: throws unless exactly one whole frame was seen. */
    finish() {
        if (this.state !== 'done')
            throw this.fail(`the zstd data frame is truncated (ends inside its ${this.state.replace('-', ' ')})`);
        return {
            windowSize: this.windowSize,
            contentSize: this.contentSize,
            hasChecksum: (this.descriptor & 0x04) !== 0,
            blocks: this.blockCount,
            boundaries: this.boundaries,
        };
    }
    expect(state, n) {
        this.state = state;
        this.need = n;
        this.field = [];
    }
    fieldDone() {
        const f = this.field;
        const at = this.consumed - f.length;
        switch (this.state) {
            case 'magic': {
                const magic = ((f[0] ?? 0) | ((f[1] ?? 0) << 8) | ((f[2] ?? 0) << 16) | ((f[3] ?? 0) << 24)) >>> 0;
                if (isSkippableMagic(magic))
                    throw this.fail('a second skippable frame where the zstd data frame should start', at);
                if (magic !== ZSTD_FRAME_MAGIC)
                    throw this.fail(`expected a zstd data frame (magic 0x${magic.toString(16)})`, at);
                this.expect('descriptor', 1);
                return;
            }
            case 'descriptor': {
                const d = f[0] ?? 0;
                this.descriptor = d;
                if ((d & 0x08) !== 0)
                    throw this.fail('reserved bit set in the zstd frame header', at);
                if ((d & 0x10) !== 0)
                    throw this.fail('unused bit set in the zstd frame header', at);
                if ((d & 0x03) !== 0)
                    throw this.fail('the zstd frame needs a dictionary; bundles use none', at);
                const singleSegment = (d & 0x20) !== 0;
                const fcsFlag = d >> 6;
                const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag] ?? 0;
                this.headerRest = (singleSegment ? 0 : 1) + fcsSize;
                if (this.headerRest === 0)
                    this.headerDone([]);
                else
                    this.expect('header', this.headerRest);
                return;
            }
            case 'header':
                this.headerDone(f);
                return;
            case 'block-header': {
                const h = (f[0] ?? 0) | ((f[1] ?? 0) << 8) | ((f[2] ?? 0) << 16);
                this.lastBlock = (h & 1) !== 0;
                const type = (h >> 1) & 3;
                const size = h >>> 3;
                if (type === 3)
                    throw this.fail('reserved zstd block type', at);
                if (size > this.blockMax)
                    throw this.fail(`zstd block of ${size} bytes exceeds the maximum of ${this.blockMax}`, at);
                this.skip = type === 1 ? 1 : size; // RLE blocks store one byte
                this.state = 'block-body';
                if (this.skip === 0)
                    this.endBlock();
                return;
            }
            case 'checksum':
                this.finishFrame();
                return;
            default:
                throw this.fail('internal: scanner in an impossible state', at);
        }
    }
    headerDone(f) {
        const at = this.consumed - f.length;
        const singleSegment = (this.descriptor & 0x20) !== 0;
        let i = 0;
        let windowSize = 0;
        if (!singleSegment) {
            const wd = f[i++] ?? 0;
            const exponent = wd >> 3;
            const windowLog = 10 + exponent;
            if (windowLog > this.limits.maxWindowLog)
                throw new LimitError(`${this.what}: window of 2^${windowLog} bytes exceeds the limit 2^${this.limits.maxWindowLog} at byte offset ${this.base + at}`);
            const base = 2 ** windowLog;
            windowSize = base + (base / 8) * (wd & 7);
        }
        const fcsBytes = f.slice(i);
        let contentSize;
        if (fcsBytes.length > 0) {
            let v = 0n;
            for (let k = fcsBytes.length - 1; k >= 0; k--)
                v = (v << 8n) | BigInt(fcsBytes[k] ?? 0);
            if (fcsBytes.length === 2)
                v += 256n;
            if (v > BigInt(Number.MAX_SAFE_INTEGER))
                throw new LimitError(`${this.what}: content size ${v} is too large at byte offset ${this.base + at}`);
            contentSize = Number(v);
        }
        if (singleSegment) {
            windowSize = contentSize ?? 0;
            if (windowSize > 2 ** this.limits.maxWindowLog)
                throw new LimitError(`${this.what}: single-segment window of ${windowSize} bytes exceeds the limit 2^${this.limits.maxWindowLog} at byte offset ${this.base + at}`);
        }
        this.windowSize = windowSize;
        this.contentSize = contentSize;
        this.blockMax = Math.min(Math.max(windowSize, 1), ZSTD_MAX_BLOCK_SIZE);
        this.boundaries.push(this.consumed);
        this.expect('block-header', 3);
    }
    endBlock() {
        this.blockCount++;
        this.boundaries.push(this.consumed);
        if (!this.lastBlock)
            this.expect('block-header', 3);
        else if ((this.descriptor & 0x04) !== 0)
            this.expect('checksum', 4);
        else
            this.finishFrame();
    }
    finishFrame() {
        this.state = 'done';
        this.field = [];
        if (this.boundaries[this.boundaries.length - 1] !== this.consumed)
            this.boundaries.push(this.consumed);
    }
}

;// CONCATENATED MODULE: external "node:timers/promises"
const external_node_timers_promises_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:timers/promises");
;// CONCATENATED MODULE: ./src/core/bundle/compression.ts
// The compression levels and settings of plan bundles, in one place: what the writer accepts
// and its default, and the tuned settings export and relocation use unless a level is given.

/** Default zstd level: most of level 19's ratio at a fraction of its time (see docs/bundle-format.md). */
const DEFAULT_LEVEL = 12;
/** Lowest level accepted. */
const MIN_LEVEL = 1;
/** Highest level accepted; zstd's "ultra" levels above it want windows beyond the default decoder limit. */
const MAX_LEVEL = 19;
/**
 * Export's default compression: level 10's search with a bigger hash table (hashLog 23), matches
 * of 6+ bytes, and long-distance matches of 256+ bytes only (zstd's default 64 makes many short
 * long-distance matches that cost more to encode than they save in drv files full of repeated
 * store paths), in a 64 MiB window. Measured on the bench closures' export streams (node:zlib):
 * 10,000 drvs (72 MB) 15.6× (0.389× of gzip -9), 30,000 drvs (217 MB) 15.3× (0.395×), where
 * plain level 12 with a 128 MiB window gives 15.2× (0.400×) and 15.1× (0.400×) with more CPU.
 * The window halves zstd's memory (-72 MB at 30,000 drvs) for 0.2% of size. An explicit
 * `--level N` is that level's own search in the writer's default window.
 */
const EXPORT_COMPRESSION = {
    level: 10,
    windowLog: 26,
    params: { [external_node_zlib_namespaceObject.constants.ZSTD_c_hashLog]: 23, [external_node_zlib_namespaceObject.constants.ZSTD_c_minMatch]: 6, [external_node_zlib_namespaceObject.constants.ZSTD_c_ldmMinMatch]: 256 },
};
/**
 * Default zstd level of a relocated bundle, used without long-distance matching: relocation is a
 * step in a promotion pipeline, where time matters more than the last megabyte (measurements in
 * docs/cli.md, `relocate`). An explicit level compresses as `export` does (matching on).
 */
const RELOCATE_LEVEL = 3;
/**
 * log2 of the zstd window of a relocated bundle at the default level: 16 MiB. The compressor
 * holds (and touches) a whole window: the 128 MiB an explicit level gets cost ~110 MB of memory
 * at 30,000 drvs to make the bundle about 1% smaller (docs/cli.md, `relocate`).
 */
const RELOCATE_WINDOW_LOG = 24;

;// CONCATENATED MODULE: ./src/core/bundle/writer.ts
// Writing a plan bundle: the export stream compressed as one zstd frame, behind the manifest's skippable frame.
//
// The manifest comes first in the file but records digests known only at the end, so the data is
// compressed into a temporary file next to the destination (hashing both sides on the way), then
// the manifest frame and the data are copied into a second temporary file that is renamed into
// place: a reader never sees a half-written bundle, and memory does not grow with the closure.
// (This module and source.ts touch files: the bundle's atomic replace needs them. Everything they
// decide is in the pure manifest.ts and frame.ts.)













/** Counts and hashes bytes as they pass. */
class Digest extends external_node_stream_namespaceObject.Transform {
    onBytes;
    hash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    size = 0;
    constructor(onBytes) {
        super();
        this.onBytes = onBytes;
    }
    _transform(chunk, _enc, cb) {
        this.hash.update(chunk);
        this.size += chunk.length;
        this.onBytes?.(chunk.length);
        cb(null, chunk);
    }
    hex() {
        return this.hash.digest('hex');
    }
}
/** Longest tail accepted after the data frame: node's empty frame is 13 bytes. */
const MAX_EMPTY_TAIL = 64;
/**
 * Passes one zstd frame through and drops what node:zlib appends after it. Checked on Node 24.21:
 * a `createZstdCompress` stream that received more than one write emits, after the real frame,
 * an extra EMPTY frame (`28b52ffd 24 00 01 00 00 99e9d851`). Stock `zstd -d` would decode it as
 * nothing, but a bundle's data is exactly one frame, so the tail is verified empty and dropped.
 */
class SingleFrame extends external_node_stream_namespaceObject.Transform {
    scanner = new ZstdFrameScanner(0);
    tail = [];
    tailSize = 0;
    _transform(chunk, _enc, cb) {
        let rest = chunk;
        if (!this.scanner.complete) {
            let n;
            try {
                n = this.scanner.pushUntilEnd(rest);
            }
            catch (e) {
                return cb(e);
            }
            this.push(rest.subarray(0, n));
            rest = rest.subarray(n);
        }
        if (rest.length > 0) {
            this.tail.push(rest);
            this.tailSize += rest.length;
            if (this.tailSize > MAX_EMPTY_TAIL)
                return cb(new errors_NixPlanError('internal', 'the zstd compressor wrote more than one frame'));
        }
        cb();
    }
    _flush(cb) {
        try {
            this.scanner.finish();
            let tail = Buffer.concat(this.tail);
            while (tail.length > 0) {
                const s = new ZstdFrameScanner(0);
                const n = s.pushUntilEnd(tail);
                s.finish();
                if ((0,external_node_zlib_namespaceObject.zstdDecompressSync)(tail.subarray(0, n)).length !== 0)
                    throw new errors_NixPlanError('internal', 'the zstd compressor wrote a second, non-empty frame');
                tail = tail.subarray(n);
            }
            cb();
        }
        catch (e) {
            cb(e);
        }
    }
}
/**
 * `stream`, yielding to the event loop after each chunk. zstd compresses on libuv's threadpool,
 * one written chunk per job, and is handed its next chunk only from the event loop: a producer
 * that never waits (an export stream made in memory) would otherwise run ahead until the
 * encoder's buffer is full while the threadpool idles, then idle itself while the threadpool
 * catches up. With the pause, the threadpool compresses one chunk while the next is made.
 */
async function* pausing(stream) {
    for await (const chunk of stream) {
        yield chunk;
        await (0,external_node_timers_promises_namespaceObject.setImmediate)();
    }
}
/** A temporary file next to `path`, so the final rename stays on one file system. */
function tempPathNear(path) {
    return (0,external_node_path_namespaceObject.join)((0,external_node_path_namespaceObject.dirname)(path), `.${(0,external_node_path_namespaceObject.basename)(path)}.${process.pid}.${(0,external_node_crypto_namespaceObject.randomBytes)(6).toString('hex')}.tmp`);
}
function checkRange(name, value, min, max) {
    if (!Number.isInteger(value) || value < min || value > max)
        throw new errors_NixPlanError('usage', `${name} must be an integer from ${min} to ${max}, not ${value}`);
    return value;
}
/** The zstd parameters of a bundle's data frame. */
function compressionParams(options = {}) {
    const level = checkRange('the compression level', options.level ?? DEFAULT_LEVEL, MIN_LEVEL, MAX_LEVEL);
    const windowLog = checkRange('the window log', options.windowLog ?? DEFAULT_MAX_WINDOW_LOG, 10, DEFAULT_MAX_WINDOW_LOG);
    return {
        [external_node_zlib_namespaceObject.constants.ZSTD_c_compressionLevel]: level,
        ...options.params,
        // No worker threads: with them zstd may take only part of an input chunk while jobs are
        // running, which node:zlib's stream (Node 24.21) takes for the end of the data — it ends the
        // output early and then fails with ERR_STREAM_PUSH_AFTER_EOF once the round buffer fills
        // (reproduced at 200 MB of export stream with nbWorkers 2).
        [external_node_zlib_namespaceObject.constants.ZSTD_c_nbWorkers]: 0,
        [external_node_zlib_namespaceObject.constants.ZSTD_c_windowLog]: windowLog,
        [external_node_zlib_namespaceObject.constants.ZSTD_c_enableLongDistanceMatching]: options.longDistanceMatching === false ? 0 : 1,
        [external_node_zlib_namespaceObject.constants.ZSTD_c_checksumFlag]: 1,
    };
}
function ioError(what, path, e) {
    if (e instanceof errors_NixPlanError)
        return e;
    return new errors_NixPlanError('internal', `cannot ${what} '${path}': ${e.message}`, { cause: e });
}
/**
 * Writes a bundle at `destination`: the manifest (`draft` completed with the stream's size and
 * digests, signed with `options.keys`) in a skippable frame, then `exportStream` as ONE zstd frame.
 * `draft` may be a function, called once the stream has ended (for what only the stream's making
 * establishes).
 * The file appears atomically; on failure nothing is left behind. Errors thrown by `exportStream`
 * propagate unchanged.
 */
async function writeBundle(destination, draft, exportStream, options = {}) {
    const params = compressionParams(options);
    const dataTemp = tempPathNear(destination);
    const finalTemp = tempPathNear(destination);
    try {
        const encoderOptions = {
            params,
            chunkSize: 256 * 1024,
            highWaterMark: 8 * 1024 * 1024, // zlib streams pass Transform options on
        };
        const raw = new Digest(options.onBytes);
        const packed = new Digest();
        try {
            await (0,promises_namespaceObject.pipeline)(external_node_stream_namespaceObject.Readable.from(pausing(exportStream)), raw, 
            // Compression runs on libuv's threadpool: a deep input buffer lets the main thread
            // produce the next entries meanwhile instead of waiting for each 16 KiB.
            (0,external_node_zlib_namespaceObject.createZstdCompress)(encoderOptions), new SingleFrame(), packed, (0,external_node_fs_namespaceObject.createWriteStream)(dataTemp, { mode: 0o600 }));
        }
        catch (e) {
            throw ioError('write the bundle data to', dataTemp, e);
        }
        const manifest = finaliseManifest({
            format: MANIFEST_FORMAT,
            formatVersion: MANIFEST_FORMAT_VERSION,
            ...(typeof draft === 'function' ? draft() : draft),
            stream: {
                sha256: raw.hex(),
                size: raw.size,
                compressedSha256: packed.hex(),
                compressedSize: packed.size,
            },
            ...(options.signatures !== undefined && { signatures: options.signatures }),
        }, options.keys ?? []);
        options.check?.(manifest);
        const frame = encodeSkippableFrame(encodeManifest(manifest));
        try {
            await (0,promises_namespaceObject.pipeline)((async function* () {
                yield frame;
                yield* (0,external_node_fs_namespaceObject.createReadStream)(dataTemp);
            })(), (0,external_node_fs_namespaceObject.createWriteStream)(finalTemp, { mode: 0o644 }));
            const fh = await (0,external_node_fs_promises_namespaceObject.open)(finalTemp, 'r');
            try {
                await fh.sync(); // the rename must not outlive the data on a crash
            }
            finally {
                await fh.close();
            }
            await (0,external_node_fs_promises_namespaceObject.rename)(finalTemp, destination);
        }
        catch (e) {
            throw ioError('write bundle', destination, e);
        }
        return { manifest, bundleBytes: frame.length + packed.size };
    }
    catch (e) {
        await (0,external_node_fs_promises_namespaceObject.rm)(finalTemp, { force: true });
        throw e;
    }
    finally {
        await (0,external_node_fs_promises_namespaceObject.rm)(dataTemp, { force: true });
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/source.ts
// Where a bundle's bytes come from: an open file (read through one descriptor) or memory.
// (With writer.ts, the only modules of the core that touch files; see docs/architecture.md.)



/** Chunk size of `stream`. */
const CHUNK = 256 * 1024;
/** A bundle held in memory. */
function memorySource(bytes, name = 'bundle', chunkSize = CHUNK) {
    return {
        name,
        size: bytes.length,
        read: (offset, length) => Promise.resolve(bytes.subarray(offset, Math.min(bytes.length, offset + length))),
        stream: async function* (offset) {
            for (let at = offset; at < bytes.length; at += chunkSize)
                yield await Promise.resolve(bytes.subarray(at, at + chunkSize));
        },
        close: () => Promise.resolve(),
    };
}
/**
 * Opens a bundle file. Verify and import through the same source: it reads through one open
 * file descriptor, so a bundle renamed over after verification is not what gets imported. It must
 * be a regular file: a FIFO is opened without blocking (O_NONBLOCK; no writer would leave the open
 * waiting for ever) and refused, as is a directory or a device.
 */
async function openBundle(path) {
    let fh;
    try {
        fh = await (0,external_node_fs_promises_namespaceObject.open)(path, external_node_fs_namespaceObject.constants.O_RDONLY | external_node_fs_namespaceObject.constants.O_NONBLOCK);
    }
    catch (e) {
        throw new errors_NixPlanError('usage', `cannot open bundle '${path}': ${e.message}`);
    }
    try {
        const st = await fh.stat();
        if (!st.isFile())
            throw new errors_NixPlanError('usage', `cannot read bundle '${path}': it is not a regular file`);
        return handleSource(fh, path, st.size);
    }
    catch (e) {
        await fh.close();
        throw e;
    }
}
/**
 * A bundle read through an open file `fh` of `size` bytes (as its stat said when opened), named
 * `name` in messages; closing the source closes `fh`.
 */
function handleSource(fh, name, size) {
    const read = async (offset, length) => {
        const buf = new Uint8Array(Math.max(0, Math.min(length, size - offset)));
        let got = 0;
        while (got < buf.length) {
            const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
            if (bytesRead === 0)
                break;
            got += bytesRead;
        }
        return buf.subarray(0, got);
    };
    return {
        name,
        size,
        read,
        stream: async function* (offset) {
            // Fresh buffers: readers downstream keep views of the chunks.
            for (let at = offset;;) {
                const chunk = await read(at, CHUNK);
                if (chunk.length === 0)
                    return;
                at += chunk.length;
                yield chunk;
            }
        },
        close: () => fh.close(),
    };
}

;// CONCATENATED MODULE: ./src/core/bytes.ts
// Bytes in Nix's wire format (little-endian u64s, length-prefixed zero-padded strings), and the
// byte helpers every stream reader and writer shares: comparison, concatenation, a block allocator
// for many small arrays, and a batcher of small writes.
const ZEROS = new Uint8Array(8);
const TWO_POW_32 = 2 ** 32;
/** Encodes a non-negative integer as a little-endian u64. */
function u64(n) {
    const out = new Uint8Array(8);
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0) {
        // the common case, without BigInt (writers emit millions of these)
        const lo = n % TWO_POW_32;
        const hi = (n - lo) / TWO_POW_32;
        out[0] = lo & 0xff;
        out[1] = (lo >>> 8) & 0xff;
        out[2] = (lo >>> 16) & 0xff;
        out[3] = lo >>> 24;
        out[4] = hi & 0xff;
        out[5] = (hi >>> 8) & 0xff;
        out[6] = (hi >>> 16) & 0xff;
        out[7] = hi >>> 24;
        return out;
    }
    new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
    return out;
}
/** Padding needed after `len` bytes to reach a multiple of 8. */
function padLength(len) {
    return (8 - (len % 8)) % 8;
}
/** Bytes of a string, UTF-8 when given as a JS string. */
function toBytes(s) {
    return typeof s === 'string' ? new Uint8Array(Buffer.from(s, 'utf8')) : s;
}
/** Encodes a wire string (length, bytes, zero padding) as the chunks to write. */
function wireString(s) {
    const b = toBytes(s);
    const pad = padLength(b.length);
    return pad === 0 ? [u64(b.length), b] : [u64(b.length), b, ZEROS.subarray(0, pad)];
}
/** Unsigned byte-wise order of two byte strings, the order Nix sorts names, keys and entries by. */
function compareBytes(a, b) {
    // Most comparisons (env keys, names) are of a few bytes and differ early, where a loop beats
    // the call into Buffer.compare; long equal prefixes go to the native compare.
    const n = Math.min(a.length, b.length, 32);
    for (let i = 0; i < n; i++) {
        const d = a[i] - b[i];
        if (d !== 0)
            return d < 0 ? -1 : 1;
    }
    if (n === 32)
        return Buffer.compare(a, b);
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
/** Concatenates chunks into one array. */
function concatBytes(chunks) {
    let total = 0;
    for (const c of chunks)
        total += c.length;
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
        out.set(c, at);
        at += c.length;
    }
    return out;
}
/**
 * Many small byte arrays handed out of shared blocks: for a reader that keeps the contents of
 * thousands of objects, or a writer that makes thousands of short-lived arrays, a Uint8Array of
 * its own for each would be a backing store allocated, tracked and freed outside the JS heap per
 * object, which cost more than the bytes in it. An array pins its whole block for as long as it
 * lives: for callers that keep all of their arrays, or none, not a few of many.
 */
class ByteArena {
    blockSize;
    largest;
    block = new Uint8Array(0);
    at = 0;
    /**
     * @param blockSize size of each block
     * @param largest bigger arrays get memory of their own (default: a quarter of a block)
     */
    constructor(blockSize = 1024 * 1024, largest = blockSize / 4) {
        this.blockSize = blockSize;
        this.largest = largest;
    }
    /** `n` uninitialised bytes, for a caller that writes every one of them. */
    alloc(n) {
        if (n > this.largest)
            return uninitialised(n);
        if (this.at + n > this.block.length) {
            this.block = uninitialised(this.blockSize);
            this.at = 0;
        }
        const out = this.block.subarray(this.at, this.at + n);
        this.at += n;
        return out;
    }
    /** A copy of `bytes`. */
    copy(bytes) {
        const out = this.alloc(bytes.length);
        out.set(bytes);
        return out;
    }
}
/** A plain Uint8Array of `n` bytes with memory of its own, not zeroed. */
function uninitialised(n) {
    const b = Buffer.allocUnsafeSlow(n);
    return new Uint8Array(b.buffer, b.byteOffset, n);
}
/** The blocks `allocBytes` hands small arrays out of: 64 KiB, arrays up to 8 KiB. */
const SMALL = new ByteArena(64 * 1024, 8 * 1024);
/**
 * `n` uninitialised bytes as a plain Uint8Array, for a caller that writes every one of them.
 * Small ones are views into a shared block, so the many short-lived arrays of a rewrite or parse
 * do not each get (and zero) a backing store of their own, which costs more than filling them.
 * (Node's own pool serves only up to 4 KiB from 8 KiB blocks: a .drv's environment values are
 * often bigger.) A view keeps its whole block alive: copy what is kept long.
 */
function allocBytes(n) {
    return SMALL.alloc(n);
}
/**
 * Gathers the many small pieces a wire writer produces (u64s, tokens, padding) into chunks of a
 * useful size, so a stream of millions of tokens is not a stream of millions of 8-byte chunks.
 * Small pieces are copied into a chunk of `target` bytes as they come (the caller may reuse what
 * it passed); large pieces pass through without a copy. Adding allocates nothing but the chunks:
 * callers write tens of thousands of entries, and arrays per call added up to tens of MB.
 */
class ChunkBatcher {
    target;
    chunk;
    at = 0;
    ready = [];
    /** @param target size of the chunks made; pieces this big pass through as they are */
    constructor(target = 64 * 1024) {
        this.target = target;
        this.chunk = new Uint8Array(target);
    }
    /** True when chunks are ready to be taken. */
    get hasReady() {
        return this.ready.length > 0;
    }
    /** The chunks ready to be written, in order, handed over (none after `flush` means no data). */
    take() {
        const out = this.ready;
        this.ready = [];
        return out;
    }
    /** Adds one piece. */
    add(piece) {
        const n = piece.length;
        if (n >= this.target) {
            this.seal();
            this.ready.push(piece);
            return;
        }
        let from = 0;
        while (from < n) {
            const room = this.target - this.at;
            const len = Math.min(room, n - from);
            if (len <= 16)
                for (let k = 0; k < len; k++)
                    this.chunk[this.at + k] = piece[from + k];
            else
                this.chunk.set(len === n ? piece : piece.subarray(from, from + len), this.at);
            this.at += len;
            from += len;
            if (this.at === this.target)
                this.seal();
        }
    }
    /** Adds several pieces. */
    addAll(pieces) {
        for (const p of pieces)
            this.add(p);
    }
    /**
     * Room for `n` bytes the caller writes itself, in one array: returns it and the offset to write
     * at. The bytes there are not zeroed. Anything written outside [offset, offset + n) is lost.
     */
    reserve(n) {
        if (n > this.target) {
            this.seal();
            const own = new Uint8Array(n);
            this.ready.push(own);
            return { bytes: own, at: 0 };
        }
        if (this.at + n > this.target)
            this.seal();
        const at = this.at;
        this.at += n;
        return { bytes: this.chunk, at };
    }
    /** Whatever is gathered becomes a chunk now (at the end of the data). */
    flush() {
        this.seal();
    }
    seal() {
        if (this.at === 0)
            return;
        this.ready.push(this.at === this.target ? this.chunk : this.chunk.subarray(0, this.at));
        this.chunk = new Uint8Array(this.target);
        this.at = 0;
    }
}

;// CONCATENATED MODULE: ./src/core/nar-write.ts
// Writing a NAR (Nix ARchive) from an injected file tree, and the tokens and rules its reader shares.


/**
 * Size of the NAR of one regular file of `size` bytes, without writing it: the fixed tokens
 * (`nix-archive-1 ( type regular [executable ""] contents`), the length, the contents padded to
 * 8 bytes and `)`: the byte count of `writeNar(regularFile(bytes, executable))`.
 */
function regularFileNarSize(size, executable = false) {
    // magic 8+16, "(" 8+8, "type" 8+8, "regular" 8+8, "contents" 8+8, length 8, ")" 8+8;
    // "executable" 8+16 and "" 8 when executable.
    return 112 + (executable ? 32 : 0) + size + padLength(size);
}
/**
 * The NAR of one regular file held in memory, as four chunks (the tokens up to its length, which
 * are shared and must not be changed; the length; the bytes themselves; the padding and closing
 * token): the bytes `writeNar(regularFile(bytes, executable))` yields, without a generator per
 * file. `bytes` is passed through, not copied. The other chunks are small enough to live on the
 * JS heap: relocation writes one NAR per object, and a backing store each cost more than that.
 */
function regularFileNar(bytes, executable = false) {
    const pad = padLength(bytes.length);
    const end = new Uint8Array(pad + CLOSE.length);
    end.set(CLOSE, pad);
    return [executable ? FILE_HEAD_EXECUTABLE : FILE_HEAD, u64(bytes.length), bytes, end];
}
/** A regular file held in memory. */
function regularFile(bytes, executable = false) {
    return {
        type: 'regular',
        executable,
        size: bytes.length,
        // eslint-disable-next-line @typescript-eslint/require-await
        contents: async function* () {
            yield bytes;
        },
    };
}
/** The first token of every NAR. */
const MAGIC = 'nix-archive-1';
/** Why `name` cannot be a directory entry (Nix's rules), or undefined if it can. */
function entryNameProblem(name) {
    if (name.length === 0)
        return 'an empty name';
    if (name.length === 1 && name[0] === 0x2e)
        return "the name '.'";
    if (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e)
        return "the name '..'";
    if (name.includes(0x2f))
        return 'a name containing /';
    if (name.includes(0))
        return 'a name containing a NUL byte';
    return undefined;
}
/** Printable form of a name for error messages. */
function show(name) {
    return JSON.stringify(Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('utf8'));
}
/**
 * Serialises `tree` as a NAR, streaming file contents through. Refuses (MalformedError) a tree
 * Nix would refuse to unpack: unsorted or illegal entry names, or a file whose contents do not
 * match its size.
 */
async function* writeNar(tree) {
    const out = new ChunkBatcher();
    out.addAll(wireString(MAGIC));
    yield* writeNode(tree, out, '');
    out.flush();
    yield* out.take();
}
const T = {
    open: wireString('('),
    close: wireString(')'),
    type: wireString('type'),
    regular: wireString('regular'),
    executable: [...wireString('executable'), ...wireString('')],
    contents: wireString('contents'),
    symlink: wireString('symlink'),
    target: wireString('target'),
    directory: wireString('directory'),
    entry: wireString('entry'),
    name: wireString('name'),
    node: wireString('node'),
};
/** What precedes a regular file's length in a single-file NAR (and with the executable flag). */
const FILE_HEAD = concatBytes([
    ...wireString(MAGIC),
    ...T.open,
    ...T.type,
    ...T.regular,
    ...T.contents,
]);
const FILE_HEAD_EXECUTABLE = concatBytes([
    ...wireString(MAGIC),
    ...T.open,
    ...T.type,
    ...T.regular,
    ...T.executable,
    ...T.contents,
]);
/** The closing token of a NAR node. */
const CLOSE = concatBytes(T.close);
async function* writeNode(tree, out, where) {
    out.addAll([...T.open, ...T.type]);
    switch (tree.type) {
        case 'regular': {
            out.addAll(T.regular);
            if (tree.executable)
                out.addAll(T.executable);
            out.addAll([...T.contents, u64(tree.size)]);
            let written = 0;
            for await (const chunk of tree.contents()) {
                written += chunk.length;
                if (written > tree.size)
                    break;
                out.add(chunk);
                if (out.hasReady)
                    yield* out.take();
            }
            if (written !== tree.size)
                throw new MalformedError('file tree', undefined, `file '${where || '.'}' has ${written > tree.size ? 'more' : 'fewer'} bytes than its size ${tree.size} (did it change while being read?)`);
            const pad = padLength(tree.size);
            if (pad > 0)
                out.add(new Uint8Array(pad));
            break;
        }
        case 'symlink':
            out.addAll([...T.symlink, ...T.target, ...wireString(tree.target)]);
            break;
        case 'directory': {
            out.addAll(T.directory);
            let prev;
            for await (const [name, node] of tree.entries()) {
                const sub = `${where}/${Buffer.from(name).toString('utf8')}`;
                const problem = entryNameProblem(name);
                if (problem !== undefined)
                    throw new MalformedError('file tree', undefined, `'${where || '.'}' has ${problem}`);
                if (prev !== undefined && compareBytes(prev, name) >= 0)
                    throw new MalformedError('file tree', undefined, `entries of '${where || '.'}' are not sorted at ${show(name)}`);
                prev = name;
                out.addAll([...T.entry, ...T.open, ...T.name, ...wireString(name), ...T.node]);
                if (out.hasReady)
                    yield* out.take();
                yield* writeNode(node, out, sub);
                out.addAll(T.close);
            }
            break;
        }
    }
    out.addAll(T.close);
    if (out.hasReady)
        yield* out.take();
}

;// CONCATENATED MODULE: ./src/core/wire.ts
// A streaming reader of Nix's wire format (little-endian u64s and length-prefixed, zero-padded
// strings; their encoding and the byte helpers are in bytes.ts).


const wire_TWO_POW_32 = 2 ** 32;
const MAX_HI = 2 ** 21; // hi word >= 2^21 means the u64 is above 2^53
/**
 * Pulls exact-length pieces from an async stream of chunks, tracking the absolute offset so every
 * error names where it happened. Never allocates more than the caller's limit for one read.
 *
 * Built for streams of hundreds of megabytes: reads that fit in the current chunk are views (no
 * copy), consumed chunks are dropped by advancing an index (no array shifting), and taps see the
 * consumed bytes as a few large views rather than one call per token.
 */
class wire_ByteReader {
    source;
    what;
    maxBytes;
    chunks = [];
    first = 0; // index of the current chunk in `chunks`
    buffered = 0;
    head = 0; // read position inside the current chunk
    done = false;
    received = 0;
    taps = [];
    tapFrom = 0; // start of the not-yet-tapped bytes inside the current chunk
    /** Absolute offset of the next byte to be read. */
    offset = 0;
    /**
     * @param source the chunks to read
     * @param what names the format in errors ("NAR", "export stream")
     * @param maxBytes refuse (LimitError) a source longer than this many bytes
     */
    constructor(source, what, maxBytes = Number.MAX_SAFE_INTEGER) {
        this.source = source;
        this.what = what;
        this.maxBytes = maxBytes;
    }
    /** Wraps any iterable of chunks (a Readable stream, a generator, an array of buffers). */
    static from(source, what, maxBytes) {
        const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : fromSync(source[Symbol.iterator]());
        return new wire_ByteReader(it, what, maxBytes);
    }
    /** Error naming the current offset. */
    error(detail, at = this.offset) {
        return new MalformedError(this.what, at, detail);
    }
    async fill(n) {
        while (this.buffered < n) {
            if (this.done)
                return false;
            const r = await this.source.next();
            if (r.done === true) {
                this.done = true;
                return false;
            }
            const chunk = r.value;
            if (chunk.length > 0) {
                this.received += chunk.length;
                if (this.received > this.maxBytes)
                    throw new LimitError(`${this.what}: input is larger than the limit of ${this.maxBytes} bytes`);
                this.chunks.push(chunk);
                this.buffered += chunk.length;
            }
        }
        return true;
    }
    /** True when the stream has no more bytes. */
    async atEnd() {
        return !(await this.fill(1));
    }
    /** Reads exactly `n` bytes (the caller bounds `n`). A view into the source's chunk when possible. */
    async readExact(n) {
        if (!(await this.fill(n)))
            throw this.error(`unexpected end of input (wanted ${n} more bytes)`);
        const c = this.chunks[this.first];
        if (c !== undefined && c.length - this.head >= n) {
            const out = c.subarray(this.head, this.head + n);
            this.consume(n);
            return out;
        }
        const out = new Uint8Array(n);
        let filled = 0;
        while (filled < n) {
            const cur = this.chunks[this.first];
            if (cur === undefined)
                throw this.error('internal: buffer underrun');
            const take = Math.min(n - filled, cur.length - this.head);
            out.set(cur.subarray(this.head, this.head + take), filled);
            filled += take;
            this.consume(take);
        }
        return out;
    }
    // Fast paths that need no await. Parsers call them first and fall back to the waiting reads
    // (`x ?? (await slow())`): an await costs a trip through the microtask queue even for bytes
    // already buffered, and a stream of small drvs is mostly small fields. Each consumes nothing
    // and returns undefined unless all it needs is in the current chunk and well formed; the
    // waiting read then reads the same bytes again and reports any problem.
    /**
     * The unread bytes of the current chunk, consuming nothing: for a parser that looks at a whole
     * structure before it reads it (`tryReadExact` then consumes what it took).
     */
    peekBuffered() {
        const c = this.chunks[this.first];
        return c === undefined ? EMPTY : c.subarray(this.head);
    }
    /** Like readExact, when the `n` bytes are in the current chunk. */
    tryReadExact(n) {
        const c = this.chunks[this.first];
        if (c === undefined || c.length - this.head < n)
            return undefined;
        const out = c.subarray(this.head, this.head + n);
        this.consume(n);
        return out;
    }
    /** Like readU64Unbounded, for a value below 2^32 in the current chunk. */
    tryReadSmallU64() {
        const c = this.chunks[this.first];
        const h = this.head;
        if (c === undefined || c.length - h < 8)
            return undefined;
        if ((c[h + 4] | c[h + 5] | c[h + 6] | c[h + 7]) !== 0)
            return undefined;
        const v = (c[h] | (c[h + 1] << 8) | (c[h + 2] << 16) | (c[h + 3] << 24)) >>> 0;
        this.consume(8);
        return v;
    }
    /**
     * A wire string (u64 length, bytes, zero padding) of at most `max` bytes, as a view, when all
     * of it is in the current chunk.
     */
    tryReadWireBytes(max) {
        const c = this.tryReadWireSpan(max);
        return c === undefined ? undefined : c.subarray(this.spanStart, this.spanEnd);
    }
    /** Where the wire string `tryReadWireSpan` last found is: [spanStart, spanEnd) of the chunk it returned. */
    spanStart = 0;
    spanEnd = 0;
    /**
     * `tryReadWireBytes` without a view: returns the chunk the string is in (undefined when it is
     * not all there) and leaves where in `spanStart` and `spanEnd`. For the many short strings a
     * caller only compares or decodes (the store paths of an export stream).
     */
    tryReadWireSpan(max) {
        const c = this.chunks[this.first];
        const h = this.head;
        if (c === undefined || c.length - h < 8)
            return undefined;
        if ((c[h + 4] | c[h + 5] | c[h + 6] | c[h + 7]) !== 0)
            return undefined;
        const len = (c[h] | (c[h + 1] << 8) | (c[h + 2] << 16) | (c[h + 3] << 24)) >>> 0;
        if (len > max)
            return undefined;
        const end = h + 8 + len + padLength(len);
        if (end > c.length)
            return undefined;
        for (let i = h + 8 + len; i < end; i++)
            if (c[i] !== 0)
                return undefined;
        this.spanStart = h + 8;
        this.spanEnd = h + 8 + len;
        this.consume(end - h);
        return c;
    }
    /** Like readPadding: true once the padding after `len` bytes was read (it is in the current chunk and zero). */
    tryReadPadding(len) {
        const pad = padLength(len);
        if (pad === 0)
            return true;
        const c = this.chunks[this.first];
        const h = this.head;
        if (c === undefined || c.length - h < pad)
            return false;
        for (let i = h; i < h + pad; i++)
            if (c[i] !== 0)
                return false;
        this.consume(pad);
        return true;
    }
    /** Advances by `n` bytes, all inside the current chunk; drops the chunk once it is used up. */
    consume(n) {
        this.offset += n;
        this.buffered -= n;
        this.head += n;
        const c = this.chunks[this.first];
        if (c !== undefined && this.head >= c.length) {
            if (this.taps.length > 0 && this.tapFrom < c.length)
                this.emit(c.subarray(this.tapFrom));
            this.chunks[this.first] = EMPTY; // let it be collected
            this.first++;
            this.head = 0;
            this.tapFrom = 0;
            if (this.first === this.chunks.length) {
                this.chunks = [];
                this.first = 0;
            }
            else if (this.first >= 1024) {
                this.chunks = this.chunks.slice(this.first);
                this.first = 0;
            }
        }
    }
    emit(view) {
        for (const t of this.taps)
            t(view);
    }
    /** Hands the consumed but not yet tapped bytes to the taps. */
    flushTaps() {
        const c = this.chunks[this.first];
        if (this.taps.length > 0 && c !== undefined && this.head > this.tapFrom)
            this.emit(c.subarray(this.tapFrom, this.head));
        this.tapFrom = this.head;
    }
    /**
     * Sees every byte consumed from now on, in order, as views of the source's chunks (batched: call
     * the returned function to flush and detach; pass `flush = false` to detach without delivering
     * the pending bytes, e.g. after an error).
     */
    tap(fn) {
        this.flushTaps();
        this.taps.push(fn);
        return (flush = true) => {
            const remove = () => {
                const i = this.taps.indexOf(fn);
                if (i >= 0)
                    this.taps.splice(i, 1);
            };
            // Without flushing, the pending bytes still go to the other taps (an enclosing reader's).
            if (flush)
                this.flushTaps();
            remove();
            if (!flush)
                this.flushTaps();
        };
    }
    /** Passes the next `n` bytes to `sink` chunk by chunk, without holding them all. */
    async stream(n, sink) {
        let left = n;
        while (left > 0) {
            if (this.buffered === 0 && !(await this.fill(1)))
                throw this.error(`unexpected end of input (wanted ${left} more bytes)`);
            const c = this.chunks[this.first];
            if (c === undefined)
                throw this.error('internal: buffer underrun');
            const take = Math.min(left, c.length - this.head);
            sink(c.subarray(this.head, this.head + take));
            this.consume(take);
            left -= take;
        }
    }
    /** Reads a u64; refuses values above `max` (default 2^53-1) before anything is allocated. */
    async readU64(max = Number.MAX_SAFE_INTEGER) {
        const at = this.offset;
        const v = await this.readU64Unbounded();
        if (v > max) {
            const shown = v === Infinity ? 'above 2^53' : String(v);
            throw new LimitError(`${this.what}: value ${shown} exceeds the limit ${max} at byte offset ${at}`);
        }
        return v;
    }
    /**
     * Reads a u64 without judging it: values above 2^53-1 come back as Infinity, so a caller can
     * raise the error that fits (a format error for a marker, a limit error for a length).
     */
    async readU64Unbounded() {
        const b = await this.readExact(8);
        const lo = (b[0] ?? 0) | ((b[1] ?? 0) << 8) | ((b[2] ?? 0) << 16) | ((b[3] ?? 0) << 24);
        const hi = ((b[4] ?? 0) | ((b[5] ?? 0) << 8) | ((b[6] ?? 0) << 16) | ((b[7] ?? 0) << 24)) >>> 0;
        return hi >= MAX_HI ? Infinity : hi * wire_TWO_POW_32 + (lo >>> 0);
    }
    /** Reads zero padding after a string of `len` bytes; non-zero padding is an error, as in Nix. */
    async readPadding(len) {
        const pad = padLength(len);
        if (pad === 0)
            return;
        const at = this.offset;
        const b = await this.readExact(pad);
        for (let i = 0; i < pad; i++)
            if (b[i] !== 0)
                throw this.error('non-zero padding', at);
    }
    /** Reads a wire string of at most `max` bytes. */
    async readBytes(max) {
        const len = await this.readU64(max);
        const b = len === 0 ? new Uint8Array(0) : await this.readExact(len);
        await this.readPadding(len);
        return b;
    }
    /** Reads a wire string as UTF-8 text (for tokens and paths, which are ASCII). */
    async readString(max) {
        const b = await this.readBytes(max);
        return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
    }
    /** Reads a wire string and requires it to equal `expected`. */
    async expectString(expected) {
        const at = this.offset;
        const got = await this.readString(Math.max(expected.length, 64));
        if (got !== expected)
            throw this.error(`expected '${expected}', got '${got.slice(0, 64)}'`, at);
    }
}
const EMPTY = new Uint8Array(0);
function fromSync(it) {
    return { next: () => Promise.resolve(it.next()) };
}

;// CONCATENATED MODULE: ./src/core/nar.ts
// NAR (Nix ARchive): a streaming, validating reader (the writer and the tokens both share are in
// nar-write.ts).






/**
 * Defaults: never looser than what any Nix we support unpacks. Names: NAME_MAX (255), which Nix
 * 2.34 also enforces while parsing. Symlink targets: 4,095 bytes (the kernel's PATH_MAX with its
 * NUL, and Nix 2.34's own bound), never empty (symlink(2) refuses one) and without NUL (2.34
 * refuses it; 2.8 would cut the target short and register a NAR hash the files do not have).
 * Depth: Nix 2.34.7+ refuses an object inside 64 or more directories (`narMaxDepth`), so at most
 * 63. The length of a whole path inside the NAR is checked once the store path is known (the
 * export stream names it after the NAR): see `NarSummary.longestPath` and `ExportLimits`.
 */
const DEFAULT_NAR_LIMITS = Object.freeze({
    maxFileSize: 2 ** 40,
    maxEntries: 4_000_000,
    maxDepth: 63,
    maxNameLength: 255,
    maxTargetLength: 4095,
});
const MAX_TOKEN = 16; // longer than any NAR token ("nix-archive-1" is 13 bytes)
/** Reads a NAR token; anything longer than a token is a format error, not a limit. */
async function readToken(reader) {
    const at = reader.offset;
    const len = await reader.readU64Unbounded();
    if (len > MAX_TOKEN)
        throw reader.error(`expected a NAR token, found a string of ${len === Infinity ? 'more than 2^53' : len} bytes`, at);
    const b = await reader.readExact(len);
    await reader.readPadding(len);
    return String.fromCharCode(...b);
}
async function expectToken(reader, expected) {
    const at = reader.offset;
    const got = await readToken(reader);
    if (got !== expected)
        throw reader.error(`expected '${expected}', found ${JSON.stringify(got)}`, at);
}
/** readToken without waiting, when the whole token is buffered (ByteReader's fast paths). */
function tryToken(reader) {
    const b = reader.tryReadWireBytes(MAX_TOKEN);
    return b === undefined ? undefined : String.fromCharCode(...b);
}
/** expectToken without waiting: true once `expected` was read, false when it must be waited for. */
function tryExpectToken(reader, expected) {
    const at = reader.offset;
    const got = tryToken(reader);
    if (got === undefined)
        return false;
    if (got !== expected)
        throw reader.error(`expected '${expected}', found ${JSON.stringify(got)}`, at);
    return true;
}
/** readLength without waiting, when the field is buffered. */
function tryLength(reader, max, what) {
    const at = reader.offset;
    const len = reader.tryReadSmallU64();
    if (len !== undefined && len > max)
        throw new LimitError(`NAR: ${what} at byte offset ${at} is longer than the limit of ${max} bytes`);
    return len;
}
/** Reads a length field, refusing one above `max` with a LimitError that says what it measured. */
async function readLength(reader, max, what) {
    const at = reader.offset;
    const len = await reader.readU64Unbounded();
    if (len > max)
        throw new LimitError(`NAR: ${what} at byte offset ${at} is longer than the limit of ${max} bytes`);
    return len;
}
/**
 * Reads one NAR from `reader`, validating everything Nix validates and more (canonical token
 * order, strictly sorted legal names, zero padding, bounded lengths, depth and entry count).
 * Raw NAR bytes go to `onBytes` as they are read; file contents stream through without being
 * held, except a top-level regular file no bigger than `keepFileUpTo`, returned in `file` as
 * `keep` makes it of the reader's bytes (default: a copy of its own).
 * Throws MalformedError (with the byte offset) or LimitError.
 */
async function readNar(reader, limits, keepFileUpTo, onBytes, keep = (bytes) => bytes.slice()) {
    const start = reader.offset;
    const hash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    const untap = reader.tap(onBytes === undefined
        ? (c) => hash.update(c)
        : (c) => {
            hash.update(c);
            onBytes(c);
        });
    let ok = false;
    try {
        const top = await readBody(reader, limits, keepFileUpTo, keep);
        untap(true);
        ok = true;
        const summary = {
            narHash: digestBytes(hash.digest('binary')),
            narSize: reader.offset - start,
        };
        if (top.file !== undefined)
            summary.file = top.file;
        if (top.fileHash !== undefined)
            summary.fileHash = top.fileHash;
        if (top.longestPath > 0)
            summary.longestPath = top.longestPath;
        return summary;
    }
    finally {
        if (!ok)
            untap(false);
    }
}
/**
 * `readNar` for the commonest NAR, one regular file to be kept (every .drv and text of a plan),
 * when all of it is in the reader's current chunk: recognised whole, as the exact bytes its
 * canonical form has, and read at once, without a token at a time or a wait. Undefined, having
 * read nothing, for anything else (the general reader then reads it, or says what is wrong).
 */
function tryReadFileNar(reader, limits, keepFileUpTo, onBytes, keep = (bytes) => bytes.slice()) {
    const b = reader.peekBuffered();
    const executable = !startsWith(b, FILE_HEAD, 0);
    const head = executable ? FILE_HEAD_EXECUTABLE : FILE_HEAD;
    if (executable && !startsWith(b, head, 0))
        return undefined;
    const h = head.length;
    if (b.length < h + 8 || (b[h + 4] | b[h + 5] | b[h + 6] | b[h + 7]) !== 0)
        return undefined;
    const size = (b[h] | (b[h + 1] << 8) | (b[h + 2] << 16) | (b[h + 3] << 24)) >>> 0;
    if (size > keepFileUpTo || size > limits.maxFileSize)
        return undefined;
    const start = h + 8;
    const end = start + size;
    const padded = end + padLength(size);
    const total = padded + CLOSE.length;
    if (b.length < total || !startsWith(b, CLOSE, padded))
        return undefined;
    for (let k = end; k < padded; k++)
        if (b[k] !== 0)
            return undefined;
    const nar = reader.tryReadExact(total); // the bytes just looked at, now consumed
    onBytes?.(nar);
    const contents = nar.subarray(start, end);
    return new KeptFileNar(total, { executable, contents: keep(contents) }, sha256(contents));
}
/**
 * The summary of a one-file NAR read whole, whose NAR hash is computed from the kept file when it
 * is first asked for: a .drv's or text's content address is its file's hash, and relocating or
 * importing a plan never asks for theirs (binary caches do).
 */
class KeptFileNar {
    narSize;
    file;
    fileHash;
    hash;
    constructor(narSize, file, fileHash) {
        this.narSize = narSize;
        this.file = file;
        this.fileHash = fileHash;
    }
    get narHash() {
        return (this.hash ??= sha256(...regularFileNar(this.file.contents, this.file.executable)));
    }
}
/** True when `b` holds `prefix` at `at`. */
function startsWith(b, prefix, at) {
    if (b.length - at < prefix.length)
        return false;
    for (let k = 0; k < prefix.length; k++)
        if (b[at + k] !== prefix[k])
            return false;
    return true;
}
async function readBody(reader, limits, keepFileUpTo, keep) {
    const magicAt = reader.offset;
    const magic = tryToken(reader) ?? (await readToken(reader));
    if (magic !== MAGIC)
        throw reader.error('not a NAR (bad magic)', magicAt);
    let entries = 0;
    const stack = [];
    let result = {};
    let longestPath = 0;
    /** Path length of the entry being read (its parent's, a slash and its name). */
    let entryPathLength = 0;
    // Reads "( type …" of one object. Leaves are read to their ")"; a directory pushes a frame.
    const readObject = async () => {
        if (stack.length > limits.maxDepth)
            throw new LimitError(`NAR: objects nested deeper than ${limits.maxDepth} directories at byte offset ${reader.offset}`);
        if (++entries > limits.maxEntries)
            throw new LimitError(`NAR: more than ${limits.maxEntries} entries at byte offset ${reader.offset}`);
        if (!tryExpectToken(reader, '('))
            await expectToken(reader, '(');
        if (!tryExpectToken(reader, 'type'))
            await expectToken(reader, 'type');
        const typeAt = reader.offset;
        const type = tryToken(reader) ?? (await readToken(reader));
        if (type === 'regular') {
            let at = reader.offset;
            let tok = tryToken(reader) ?? (await readToken(reader));
            let executable = false;
            if (tok === 'executable') {
                executable = true;
                await expectToken(reader, '');
                at = reader.offset;
                tok = await readToken(reader);
            }
            if (tok !== 'contents')
                throw reader.error(`expected 'contents', found ${JSON.stringify(tok)}`, at);
            const size = tryLength(reader, limits.maxFileSize, 'a file') ??
                (await readLength(reader, limits.maxFileSize, 'a file'));
            if (stack.length === 0) {
                // The whole NAR is one file: hash its contents (content addresses need it), maybe keep it.
                if (size <= keepFileUpTo) {
                    const contents = reader.tryReadExact(size) ?? (await reader.readExact(size));
                    result = {
                        file: { executable, contents: keep(contents) },
                        fileHash: sha256(contents),
                    };
                }
                else {
                    const h = (0,external_node_crypto_namespaceObject.createHash)('sha256');
                    await reader.stream(size, (c) => h.update(c));
                    result = { fileHash: digestBytes(h.digest('binary')) };
                }
            }
            else {
                await reader.stream(size, () => undefined);
            }
            if (!reader.tryReadPadding(size))
                await reader.readPadding(size);
            if (!tryExpectToken(reader, ')'))
                await expectToken(reader, ')');
        }
        else if (type === 'symlink') {
            await expectToken(reader, 'target');
            const targetAt = reader.offset;
            const target = await readLengthPrefixed(reader, limits.maxTargetLength, 'a symlink target');
            if (target.length === 0)
                throw reader.error('a symlink with an empty target', targetAt);
            if (target.includes(0))
                throw reader.error('a symlink target containing a NUL byte', targetAt);
            await expectToken(reader, ')');
        }
        else if (type === 'directory') {
            stack.push({ prev: undefined, pathLength: stack.length === 0 ? 0 : entryPathLength });
        }
        else {
            throw reader.error(`unknown file type ${JSON.stringify(type)}`, typeAt);
        }
    };
    await readObject();
    // `pendingEntryClose`: a child object just ended, so its parent's entry needs its ")".
    let pendingEntryClose = false;
    while (stack.length > 0) {
        const frame = stack[stack.length - 1];
        if (frame === undefined)
            break;
        if (pendingEntryClose) {
            await expectToken(reader, ')');
            pendingEntryClose = false;
        }
        const at = reader.offset;
        const tok = await readToken(reader);
        if (tok === ')') {
            stack.pop();
            pendingEntryClose = stack.length > 0;
            continue;
        }
        if (tok !== 'entry')
            throw reader.error(`expected 'entry' or ')', found ${JSON.stringify(tok)}`, at);
        await expectToken(reader, '(');
        await expectToken(reader, 'name');
        const nameAt = reader.offset;
        const name = await readLengthPrefixed(reader, limits.maxNameLength, 'an entry name');
        const problem = entryNameProblem(name);
        if (problem !== undefined)
            throw reader.error(`directory entry with ${problem}`, nameAt);
        if (frame.prev !== undefined && compareBytes(frame.prev, name) >= 0)
            throw reader.error(`directory entries are not strictly sorted (${show(name)} after ${show(frame.prev)})`, nameAt);
        frame.prev = name.slice(); // a copy: the view would pin the whole source chunk
        entryPathLength = frame.pathLength + 1 + name.length;
        if (entryPathLength > longestPath)
            longestPath = entryPathLength;
        await expectToken(reader, 'node');
        const depthBefore = stack.length;
        await readObject();
        pendingEntryClose = stack.length === depthBefore; // a leaf ended; a directory pushed a frame
    }
    return { ...result, longestPath };
}
async function readLengthPrefixed(reader, max, what) {
    const len = await readLength(reader, max, what);
    const b = await reader.readExact(len);
    await reader.readPadding(len);
    return b;
}
/**
 * Reads a whole NAR from a stream of chunks and refuses trailing bytes: the summary of a NAR
 * file, or of `writeNar`'s output.
 */
async function summariseNar(source, limits = DEFAULT_NAR_LIMITS, keepFileUpTo = 0, onBytes) {
    const reader = ByteReader.from(source, 'NAR');
    const summary = await readNar(reader, limits, keepFileUpTo, onBytes);
    if (!(await reader.atEnd()))
        throw reader.error('trailing bytes after the NAR');
    return summary;
}

;// CONCATENATED MODULE: ./src/core/export-stream.ts
// The `nix-store --export` stream: a streaming writer and a streaming, validating reader.





/** The marker after each entry's NAR ("NIXE" read as a little-endian u64). */
const EXPORT_MAGIC = 0x4558494e;
/** Defaults sized for real closures (nixpkgs' largest .drv files are a few MB). */
const DEFAULT_EXPORT_LIMITS = Object.freeze({
    maxPaths: 1_000_000,
    maxReferences: 100_000,
    maxPathLength: 4096,
    maxTotalBytes: 2 ** 45,
    maxFilePathLength: 4095,
    nar: DEFAULT_NAR_LIMITS,
    keepFileUpTo: 16 * 1024 * 1024,
});
/**
 * Writes an export stream of `entries` in the given order (Nix imports dependencies first, so
 * pass a dependency order). Streams NARs through; holds nothing that grows with the closure.
 */
async function* writeExport(entries) {
    const out = new ChunkBatcher(BATCH);
    for await (const e of entries) {
        out.add(NEXT_ENTRY);
        if (Symbol.asyncIterator in e.nar)
            for await (const chunk of e.nar) {
                out.add(chunk);
                if (out.hasReady)
                    yield* out.take();
            }
        else
            for (const chunk of e.nar)
                out.add(chunk);
        writeTrailer(e, out);
        if (out.hasReady)
            yield* out.take();
    }
    out.add(END_OF_STREAM);
    out.flush();
    yield* out.take();
}
/** Output chunks of `writeExport`: few enough that each costs little downstream (hashing, zstd). */
const BATCH = 256 * 1024;
const NEXT_ENTRY = u64(1);
const END_OF_STREAM = u64(0);
/**
 * Writes what follows an entry's NAR straight into the output: the magic, the path, the sorted
 * unique references, the deriver and the (empty) signature marker. Nothing is allocated per
 * string, which matters with tens of references for each of tens of thousands of entries.
 */
function writeTrailer(e, out) {
    // Sorted and unique already when relocated or read from a store.
    const refs = isStrictlySorted(e.references) ? e.references : [...new Set(e.references)].sort(compareAscii);
    let size = 5 * 8; // magic, reference count, signature marker, the lengths of path and deriver
    size += wireSize(e.path) + wireSize(e.deriver);
    for (const r of refs)
        size += 8 + wireSize(r);
    const { bytes, at: start } = out.reserve(size);
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let at = putU64(buf, start, EXPORT_MAGIC);
    at = putString(buf, at, e.path);
    at = putU64(buf, at, refs.length);
    for (const r of refs)
        at = putString(buf, at, r);
    at = putString(buf, at, e.deriver);
    at = putU64(buf, at, 0);
    if (at !== start + size)
        throw new errors_NixPlanError('internal', `an export trailer took ${at - start} bytes, not ${size}`);
}
/** Bytes a wire string takes after its length: the UTF-8 bytes and their padding. */
function wireSize(s) {
    const n = Buffer.byteLength(s, 'utf8');
    return n + padLength(n);
}
function putU64(buf, at, n) {
    buf.writeUInt32LE(n % 2 ** 32, at);
    buf.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
    return at + 8;
}
/** A wire string (length, UTF-8 bytes, zero padding); returns the offset after it. */
function putString(buf, at, s) {
    const n = buf.write(s, at + 8, 'utf8');
    putU64(buf, at, n);
    const end = at + 8 + n;
    const pad = padLength(n);
    buf.fill(0, end, end + pad);
    return end + pad;
}
/** Characters of a store path's hash part that `hashKey` mixes. */
const HASH_KEY_CHARS = 8;
/** A number made of the first characters of the hash part at `at`, from a path's bytes or its string. */
function hashKey(path, at) {
    let k = 0;
    if (typeof path === 'string')
        for (let i = at; i < at + HASH_KEY_CHARS; i++)
            k = (k * 31 + path.charCodeAt(i)) | 0;
    else
        for (let i = at; i < at + HASH_KEY_CHARS; i++)
            k = (k * 31 + path[i]) | 0;
    return k;
}
/** Whether `s` is the latin-1 reading of `bytes[start, end)`. */
function sameLatin1(s, bytes, start, end) {
    if (s.length !== end - start)
        return false;
    for (let i = s.length - 1; i >= 0; i--)
        if (s.charCodeAt(i) !== bytes[start + i])
            return false;
    return true;
}
function compareAscii(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}
/**
 * Streams the entries of an export stream, validating as it goes: every NAR (see `readNar`), the
 * per-entry magic, store paths (one store dir for all), sorted unique references, a deriver that
 * is "" or a `.drv` path, no legacy signature, no repeated path, the end marker and no trailing
 * bytes. Throws MalformedError naming the byte offset, or LimitError. Entries already yielded
 * were valid; the stream as a whole is only valid once iteration completes.
 */
async function* readExport(source, limits = DEFAULT_EXPORT_LIMITS, options = {}) {
    const lim = { ...DEFAULT_EXPORT_LIMITS, ...limits };
    const reader = wire_ByteReader.from(source, 'export stream', lim.maxTotalBytes);
    let storeDir = options.storeDir;
    if (storeDir !== undefined) {
        const problem = storeDirProblem(storeDir);
        if (problem !== undefined)
            throw new MalformedError('export stream', undefined, `invalid store directory '${storeDir}': ${problem}`);
    }
    // Each entry's path, as the one string every later mention of it shares: references name earlier
    // entries tens of times over, and one string per path instead of one per mention keeps tens of
    // megabytes of duplicates out of the heap of a large closure (and skips re-checking them).
    const seen = new Map();
    // The same strings found from a path field's bytes without making a string of them first: by a
    // number made of the start of the hash part, then compared byte for byte (a clash or a miss
    // falls back to the string). References are most of the path fields of a closure.
    const byHash = new Map();
    // Kept files share blocks: callers keep every entry's (relocation) or none past the entry.
    const arena = new ByteArena();
    const keep = options.keptFiles === 'view' ? (bytes) => bytes : (bytes) => arena.copy(bytes);
    const onNarBytes = options.onNarBytes;
    /** Where the hash part of a path field of `length` bytes starts, if the field is long enough to key. */
    const hashStart = (length) => storeDir !== undefined && length > storeDir.length + HASH_KEY_CHARS ? storeDir.length + 1 : undefined;
    /** The text of the path field at [from, to) of `bytes`, checked; `at` is where its length field started. */
    const checkPath = (bytes, from, to, what, allowEmpty, at) => {
        const start = hashStart(to - from);
        if (start !== undefined) {
            const known = byHash.get(hashKey(bytes, from + start));
            if (known !== undefined && sameLatin1(known, bytes, from, to))
                return known;
        }
        const s = Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');
        if (s === '' && allowEmpty)
            return s;
        const known = seen.get(s);
        if (known !== undefined)
            return known; // an entry's path: checked when it was read
        if (storeDir === undefined) {
            const dir = s.slice(0, Math.max(0, s.lastIndexOf('/')));
            const problem = storeDirProblem(dir);
            if (problem !== undefined)
                throw reader.error(`${what} ${JSON.stringify(s)} is not in a valid store directory (${problem})`, at);
            storeDir = dir;
        }
        try {
            parseStorePath(s, storeDir);
        }
        catch (e) {
            if (e instanceof MalformedError)
                throw reader.error(`bad ${what}: ${e.message}`, at);
            throw e;
        }
        return s;
    };
    // Path fields are read without waiting when buffered (see ByteReader's fast paths).
    const tryPath = (what, allowEmpty) => {
        const at = reader.offset;
        const chunk = reader.tryReadWireSpan(lim.maxPathLength);
        return chunk === undefined
            ? undefined
            : checkPath(chunk, reader.spanStart, reader.spanEnd, what, allowEmpty, at);
    };
    const readPath = async (what, allowEmpty) => {
        const at = reader.offset;
        const len = await reader.readU64Unbounded();
        if (len > lim.maxPathLength)
            throw new LimitError(`export stream: ${what} at byte offset ${at} is longer than the limit of ${lim.maxPathLength} bytes`);
        const bytes = await reader.readExact(len);
        await reader.readPadding(len);
        return checkPath(bytes, 0, bytes.length, what, allowEmpty, at);
    };
    const untapStream = options.onStreamBytes === undefined ? undefined : reader.tap(options.onStreamBytes);
    let complete = false;
    try {
        for (let index = 0;; index++) {
            const markerAt = reader.offset;
            const marker = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
            if (marker === 0)
                break;
            if (marker !== 1)
                throw reader.error(`expected 0 or 1 before an entry, found ${marker === Infinity ? 'a value above 2^53' : marker}`, markerAt);
            if (index >= lim.maxPaths)
                throw new LimitError(`export stream: more than ${lim.maxPaths} paths at byte offset ${markerAt}`);
            const onBytes = onNarBytes === undefined ? undefined : (chunk) => onNarBytes(chunk, index);
            // A .drv or text that is buffered whole is read without awaiting anything.
            const nar = tryReadFileNar(reader, lim.nar, lim.keepFileUpTo, onBytes, keep) ??
                (await readNar(reader, lim.nar, lim.keepFileUpTo, onBytes, keep));
            const magicAt = reader.offset;
            const magic = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
            if (magic !== EXPORT_MAGIC)
                throw reader.error('bad export entry magic (expected "NIXE")', magicAt);
            const path = tryPath('path', false) ?? (await readPath('path', false));
            if (seen.has(path))
                throw reader.error(`path '${path}' appears twice`);
            if (nar.longestPath !== undefined) {
                const dir = options.realStoreDir ?? storeDir ?? '';
                const fsLength = Buffer.byteLength(dir) + path.length - (storeDir?.length ?? 0) + nar.longestPath;
                if (fsLength > lim.maxFilePathLength)
                    throw new LimitError(`export stream: '${path}' holds a file whose path in ${dir} is ${fsLength} bytes long, more than the ${lim.maxFilePathLength} bytes the kernel allows (PATH_MAX)`);
            }
            seen.set(path, path);
            const start = hashStart(path.length);
            if (start !== undefined)
                byHash.set(hashKey(path, start), path);
            const countAt = reader.offset;
            const n = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
            if (n > lim.maxReferences)
                throw new LimitError(`export stream: '${path}' has more than ${lim.maxReferences} references (byte offset ${countAt})`);
            const references = [];
            for (let i = 0; i < n; i++) {
                const at = reader.offset;
                const r = tryPath('reference', false) ?? (await readPath('reference', false));
                const last = references[references.length - 1];
                if (last !== undefined && compareAscii(last, r) >= 0)
                    throw reader.error(`references of '${path}' are not sorted and unique at '${r}'`, at);
                references.push(r);
            }
            const deriverAt = reader.offset;
            const deriver = tryPath('deriver', true) ?? (await readPath('deriver', true));
            if (deriver !== '' && !deriver.endsWith('.drv'))
                throw reader.error(`deriver '${deriver}' of '${path}' is not a .drv path`, deriverAt);
            const sigAt = reader.offset;
            const sig = reader.tryReadSmallU64() ?? (await reader.readU64Unbounded());
            if (sig !== 0)
                throw reader.error('expected 0 after the deriver (legacy signatures are not supported)', sigAt);
            yield { path, references, deriver, nar };
        }
        if (!(await reader.atEnd()))
            throw reader.error('trailing bytes after the end of the export stream');
        complete = true;
    }
    finally {
        untapStream?.(complete);
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/limits.ts
// The bounds that keep a hostile bundle from exhausting memory, disk or time: the reader's limits
// and their defaults, the checks made on a manifest's recorded sizes before anything is
// decompressed, and what a writer checks so it never writes a bundle its readers would refuse.





/**
 * The largest .drv (or other single file) the reader holds whole by default: 512 MiB, room for a
 * 256 MB attribute. The reader cannot know a NAR is a .drv's before its path, which follows it, so
 * any single-file NAR up to this size is held: it bounds what a hostile bundle can make it hold,
 * and a 1 GiB file of zeros still streams through.
 */
const MAX_KEPT_FILE = 2 ** 29;
/**
 * The default bound on a bundle's uncompressed size: what an import writes to the temp dir (its
 * verified stream) and then to the store. Overridable (`--max-size`; docs/security.md, Limits).
 */
const DEFAULT_MAX_STREAM_SIZE = 64 * 1024 ** 3;
/** Defaults: generous for real closures (drv closures compress about 20×), tight for bombs. */
const DEFAULT_READER_LIMITS = Object.freeze({
    maxManifestSize: DEFAULT_MAX_MANIFEST_SIZE,
    maxStreamSize: DEFAULT_MAX_STREAM_SIZE,
    maxRatio: 1000,
    ratioFloor: 2 ** 30,
    maxWindowLog: DEFAULT_MAX_WINDOW_LOG,
    // A .drv is held whole to be checked and relocated: one with a big attribute is as big. Held
    // one entry at a time (and only up to this size), so memory stays bounded by it.
    export: Object.freeze({ keepFileUpTo: MAX_KEPT_FILE }),
    maxMissingReferences: 100_000,
    maxMissingReferenceBytes: 32 * 1024 * 1024,
});
/**
 * What a writer checks before it calls a bundle done: that its readers, with `limits`, would
 * accept it. `entries` are the limits of single paths (as `entryLimitProblem` found them while
 * writing); throws a LimitError naming the first problem.
 */
function checkWritten(manifest, limits, entries = []) {
    try {
        checkSizeLimits(manifest, limits);
        const maxPaths = limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths;
        if (manifest.paths > maxPaths)
            throw new LimitError(`the bundle holds ${manifest.paths} paths, more than the limit of ${maxPaths}`);
        if (entries.length > 0)
            throw new LimitError(entries[0]);
    }
    catch (e) {
        if (!(e instanceof LimitError))
            throw e;
        throw new LimitError(`the bundle was not written, as its readers would refuse it: ${e.message}`);
    }
}
/**
 * Why a path of `kind`, with `references` and a NAR of `narSize` bytes (`fileSize` when it is one
 * regular file), breaks the reader's `limits`; undefined when it does not.
 */
function entryLimitProblem(entry, limits) {
    const lim = { ...DEFAULT_EXPORT_LIMITS, ...limits.export };
    if (entry.references.length > lim.maxReferences)
        return `'${entry.path}' has ${entry.references.length} references, more than the limit of ${lim.maxReferences}`;
    if (entry.path.length > lim.maxPathLength)
        return `'${entry.path}' is longer than the limit of ${lim.maxPathLength} bytes`;
    if (entry.kind === 'drv' && (entry.fileSize ?? entry.narSize) > lim.keepFileUpTo)
        return `'${entry.path}' is larger than the limit of ${lim.keepFileUpTo} bytes for a .drv`;
    return undefined;
}
/**
 * How to raise the size limit, as `names` spells it (`raise it with --max-size`), or, for a front
 * end with no such option (the actions), what the limit is for.
 */
function maxSizeAdvice(names) {
    return offers(names, 'maxSize')
        ? `raise it with ${optionName(names, 'maxSize')}`
        : "the limit keeps a plan from filling the runner's disk, and no input raises it";
}
/**
 * Refuses, before decompressing, a stream whose recorded size breaks the limits; the message says
 * how to raise the size limit (maxSizeAdvice).
 */
function checkSizeLimits(manifest, limits, names) {
    const { size, compressedSize } = manifest.stream;
    if (size > limits.maxStreamSize)
        throw new LimitError(`the bundle's export stream is ${size} bytes, more than the limit of ${limits.maxStreamSize} bytes (${maxSizeAdvice(names)})`);
    if (size > limits.ratioFloor && size > compressedSize * limits.maxRatio)
        throw new LimitError(`the bundle decompresses ${compressedSize} bytes to ${size} (ratio ${Math.round(size / compressedSize)}), more than the limit of ${limits.maxRatio}: refusing a possible zip bomb`);
}
/** The export reader's limits for a bundle: the given ones, no looser than what its manifest records. */
function exportLimitsFor(manifest, limits) {
    return {
        ...limits.export,
        // One more than the manifest says: the verifier refuses that entry as a lie ('bundle'), which
        // it is, rather than as a limit reached.
        maxPaths: Math.min(limits.export.maxPaths ?? DEFAULT_EXPORT_LIMITS.maxPaths, manifest.paths + 1),
        maxTotalBytes: Math.min(limits.export.maxTotalBytes ?? DEFAULT_EXPORT_LIMITS.maxTotalBytes, manifest.stream.size),
    };
}
/**
 * Refuses a manifest declaring more compressed bytes than zstd makes of its stream (at most
 * ZSTD_compressBound, plus a frame's header and checksum): nix-plan never writes one, and the
 * bytes it declares are what a private copy would have to hold.
 */
function checkCompressedSize(manifest, name) {
    const { size, compressedSize } = manifest.stream;
    const bound = size + Math.floor(size / 256) + 128 * 1024 + 64;
    if (compressedSize > bound)
        throw new errors_NixPlanError('bundle', `plan bundle '${name}': its manifest's stream.compressedSize (${compressedSize}) is more than zstd makes of ${size} bytes (at most ${bound}): refusing it`);
}

;// CONCATENATED MODULE: ./src/core/bundle/decode.ts
// Decoding a plan bundle: its manifest frame without decompressing, and its export stream,
// decompressed with the framing, both digests and both sizes checked as it goes.








/** Output chunk of the zstd decoder. */
const DECODE_CHUNK = 1024 * 1024;
function decode_bad(message) {
    return new errors_NixPlanError('bundle', message);
}
/**
 * Reads and validates the manifest frame (no decompression): header, size limit, schema,
 * canonical form, checksum, and the file's length against the manifest, so truncated or
 * extended files are refused before any decoding. This is all `inspect` needs.
 */
async function readBundleHead(source, maxManifestSize = DEFAULT_MAX_MANIFEST_SIZE) {
    const header = await source.read(0, SKIPPABLE_HEADER_SIZE);
    const { size } = parseSkippableHeader(header, maxManifestSize, `plan bundle '${source.name}'`);
    const dataOffset = SKIPPABLE_HEADER_SIZE + size;
    if (dataOffset > source.size)
        throw decode_bad(`plan bundle '${source.name}' is truncated: its manifest frame needs ${dataOffset} bytes, the file has ${source.size}`);
    const manifest = parseManifest(await source.read(SKIPPABLE_HEADER_SIZE, size), maxManifestSize);
    const expected = dataOffset + manifest.stream.compressedSize;
    if (source.size !== expected)
        throw decode_bad(`plan bundle '${source.name}' is ${source.size < expected ? 'truncated' : 'followed by extra bytes'}: the manifest says ${expected} bytes, the file has ${source.size}`);
    return { manifest, dataOffset, bundleBytes: source.size };
}
/**
 * The head of a bundle about to be copied (into a private copy, out of a shared directory), checked
 * as far as it can be without reading on: the file is as long as its manifest says, and the
 * manifest declares no more compressed bytes than zstd makes of its stream. A sparse terabyte
 * behind a valid head is refused here, before a byte of it is copied.
 */
async function readCheckedHead(source) {
    const head = await readBundleHead(source);
    checkCompressedSize(head.manifest, source.name);
    return head;
}
/**
 * The decompressed export stream of a bundle whose head was read, checking as it goes: the data
 * frame's structure (exactly one frame that ends at end of file), the compressed digest and
 * size, and an output no longer than the manifest records; the uncompressed digest and size at
 * the end. With `holdBackEnd`, the last 8 bytes (the export stream's end marker) are released
 * only after the digests matched, so `nix-store --import` fails on a bundle changed under it.
 */
async function* decompressedStream(source, head, limits = DEFAULT_READER_LIMITS, options = {}) {
    const holdBackEnd = options.holdBackEnd === true;
    const { stream } = head.manifest;
    const scanner = new ZstdFrameScanner(head.dataOffset, { maxWindowLog: limits.maxWindowLog });
    const packedHash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    let packedSize = 0;
    async function* compressed() {
        for await (const chunk of source.stream(head.dataOffset)) {
            scanner.push(chunk);
            packedHash.update(chunk);
            packedSize += chunk.length;
            yield chunk;
        }
        scanner.finish();
        if (packedSize !== stream.compressedSize || packedHash.digest('hex') !== stream.compressedSha256)
            throw decode_bad(`the compressed data of '${source.name}' does not match its manifest: the bundle is corrupt`);
    }
    // Decompression runs on libuv's threadpool: large output chunks and a deep read-ahead let it
    // work ahead while the main thread parses and hashes what came before (1 MiB chunks, up to 8).
    const decoderOptions = {
        params: { [external_node_zlib_namespaceObject.constants.ZSTD_d_windowLogMax]: limits.maxWindowLog },
        chunkSize: DECODE_CHUNK,
        highWaterMark: 8 * DECODE_CHUNK, // zlib streams pass Transform options on
    };
    const decoder = (0,external_node_zlib_namespaceObject.createZstdDecompress)(decoderOptions);
    // Errors of any stage surface through iteration of the decoder; the promise only ends the chain.
    (0,promises_namespaceObject.pipeline)(external_node_stream_namespaceObject.Readable.from(compressed()), decoder).catch(() => undefined);
    const rawHash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    let rawSize = 0;
    let held = new Uint8Array(0);
    try {
        for await (const c of decoder) {
            const chunk = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
            rawSize += chunk.length;
            if (rawSize > stream.size)
                throw decode_bad(`the data of '${source.name}' decompresses to more than the ${stream.size} bytes its manifest records: refusing it (corrupt, or a zip bomb)`);
            rawHash.update(chunk);
            if (!holdBackEnd) {
                yield chunk;
                continue;
            }
            const all = held.length === 0 ? chunk : new Uint8Array(Buffer.concat([held, chunk]));
            const cut = Math.max(0, all.length - 8);
            held = all.slice(cut);
            if (cut > 0)
                yield all.subarray(0, cut);
        }
    }
    catch (e) {
        if (e instanceof errors_NixPlanError)
            throw e;
        throw decode_bad(`the zstd data of '${source.name}' is corrupt: ${e.message}`);
    }
    // The decoder stops at the end of the first frame; the scanner has seen the rest of the file.
    options.onFrame?.(scanner.finish());
    if (rawSize !== stream.size || rawHash.digest('hex') !== stream.sha256)
        throw decode_bad(`the export stream of '${source.name}' does not match the sha256 and size in its manifest: the bundle is corrupt`);
    if (held.length > 0)
        yield held;
}
/**
 * The export stream of a bundle, for `nix-store --import` after `verifyBundle` succeeded on the
 * same source: decompressed again with the framing and digests re-checked, the end marker held
 * back until they matched (see `decompressedStream`).
 */
async function* exportStream(source, limits = {}) {
    const lim = { ...DEFAULT_READER_LIMITS, ...limits };
    const head = await readBundleHead(source, lim.maxManifestSize);
    checkSizeLimits(head.manifest, lim);
    yield* decompressedStream(source, head, lim, { holdBackEnd: true });
}

;// CONCATENATED MODULE: ./src/core/bundle/closure-check.ts
// The closure rule of a bundle, checked entry by entry as the stream arrives: every reference is
// the entry itself, one before it, or a path the target store already holds.

/**
 * The closure rule, entry by entry: every reference is the entry itself, an entry before it, or a
 * path valid in the target store. A reference met later in the stream is out of dependency order;
 * the others not in the bundle are gathered (bounded in number and bytes) and asked about in one
 * query at the end (`missing`, then `finish` with the valid ones): one missing is a 'closure' error.
 */
class ClosureCheck {
    limits;
    seen = new Set();
    /** Reference not yet seen → the first path that needs it. */
    pending = new Map();
    pendingBytes = 0;
    storeValid = 0;
    constructor(limits) {
        this.limits = limits;
    }
    /** Refuses an entry an earlier one needed but did not find (call before `add`). */
    arrive(path) {
        const needer = this.pending.get(path);
        if (needer !== undefined)
            throw new errors_NixPlanError('closure', `'${needer}' refers to '${path}', which comes after it in the bundle: the bundle is out of dependency order`);
    }
    /** Records an entry and its references. */
    add(path, references) {
        for (const r of references) {
            if (r === path || this.seen.has(r) || this.pending.has(r))
                continue;
            this.pending.set(r, path);
            this.pendingBytes += r.length;
            if (this.pending.size > this.limits.maxMissingReferences ||
                this.pendingBytes > this.limits.maxMissingReferenceBytes)
                throw new LimitError(`the bundle refers to more than ${this.limits.maxMissingReferences} paths (or ${this.limits.maxMissingReferenceBytes} bytes of them) it does not hold, e.g. '${r}' (from '${path}')`);
        }
        this.seen.add(path);
    }
    /** Whether `path` was an entry. */
    has(path) {
        return this.seen.has(path);
    }
    /** How many entries were added. */
    get paths() {
        return this.seen.size;
    }
    /** The references the bundle does not hold (to be found valid in the store). */
    missing() {
        return [...this.pending.keys()];
    }
    /** How many references were found valid in the store instead of in the bundle. */
    get storeReferences() {
        return this.storeValid;
    }
    /** Refuses a reference that was neither an entry nor valid in the store (`valid`: those that are). */
    finish(valid) {
        for (const [missing, needer] of this.pending)
            if (!valid.has(missing))
                throw new errors_NixPlanError('closure', `'${needer}' refers to '${missing}', which is neither in the bundle nor valid in the store`);
        this.storeValid = this.pending.size;
    }
}

;// CONCATENATED MODULE: ./src/core/git-hash.ts
// Git hashing (Nix's experimental `git-hashing`, `outputHashMode = "git"`): a regular file is
// hashed as a git blob, `blob <size>\0<contents>`, whatever its executable bit (git keeps that
// in the tree, not in the blob). Directories and symlinks hash as git trees and blobs of their
// targets; nix-plan recognises only files, and says so for the rest.

/** True for the algorithms Nix's git hashing accepts. */
function isGitHashAlgo(algo) {
    return algo === 'sha1' || algo === 'sha256';
}
/** The git blob hash of a regular file's contents. */
function gitBlobHash(algo, contents) {
    return hashBytes(algo, `blob ${contents.length}\0`, contents);
}

;// CONCATENATED MODULE: ./src/core/content-address.ts
// Content addresses: a typed `text` / `flat` / `nar` method with its hash, parsed from and written
// as Nix writes it (a narinfo's `CA:` field, a derivation output's `hashAlgo`), the one function
// that makes a content-addressed store path, and the check of which objects name themselves by
// their content (bundle entries; the `CA:` that lets an untrusted user import them).





/** The `CA:` prefix of each method (Nix's `renderPrefixModern`). */
const CA_PREFIX = {
    text: 'text:',
    nar: 'fixed:r:',
    git: 'fixed:git:',
    flat: 'fixed:',
};
function content_address_bad(text, detail) {
    throw new MalformedError('content address', undefined, `'${text}': ${detail}`);
}
/**
 * The method of a narinfo `CA:` value from its prefix alone (`text:sha256:`, `fixed:r:`,
 * `fixed:git:`, `fixed:`), or undefined for any other: for callers that need no digest.
 */
function contentAddressMethod(text) {
    if (text.startsWith('text:sha256:'))
        return 'text';
    if (text.startsWith('fixed:r:'))
        return 'nar';
    if (text.startsWith('fixed:git:'))
        return 'git';
    if (text.startsWith('fixed:'))
        return 'flat';
    return undefined;
}
/**
 * Parses a narinfo `CA:` value: `text:sha256:<hash>`, `fixed:r:<algo>:<hash>`,
 * `fixed:git:<algo>:<hash>` or `fixed:<algo>:<hash>`.
 */
function parseContentAddress(text) {
    const method = contentAddressMethod(text);
    if (method === undefined)
        content_address_bad(text, "it does not start with 'text:sha256:' or 'fixed:'");
    const ca = { method, hash: parseHash(text.slice(CA_PREFIX[method].length)) };
    checkMethodAlgo(ca, text);
    return ca;
}
/** Refuses an algorithm the method cannot take, as Nix does. */
function checkMethodAlgo(ca, text) {
    if (ca.method === 'text' && ca.hash.algo !== 'sha256')
        content_address_bad(text, 'a text-hashed output must use sha256');
    if (ca.method === 'git' && ca.hash.algo !== 'sha1' && ca.hash.algo !== 'sha256')
        content_address_bad(text, 'git hashing must use sha1 or sha256');
}
/** A content address as a narinfo's `CA:` field writes it (the digest in nix32). */
function formatContentAddress(ca) {
    return CA_PREFIX[ca.method] + formatHash(ca.hash, 'nix32', true);
}
/**
 * The content address a fixed output declares in a .drv: `hashAlgo` as written (`r:sha256`,
 * `text:sha256`, `sha1`, …) and `hash`, a bare hex (or nix32) digest.
 */
function parseOutputHashAlgo(hashAlgo, hash) {
    let method = 'flat';
    let algo = hashAlgo;
    for (const m of ['nar', 'text', 'git'])
        if (algo.startsWith(ALGO_PREFIX[m])) {
            method = m;
            algo = algo.slice(ALGO_PREFIX[m].length);
            break;
        }
    if (!isHashAlgo(algo))
        content_address_bad(hashAlgo, 'unsupported hash algorithm');
    if (hash.includes(':') || hash.includes('-'))
        content_address_bad(hash, 'the output hash is not a bare digest');
    const ca = { method, hash: parseHash(hash, algo) };
    checkMethodAlgo(ca, hashAlgo);
    return ca;
}
/** The `hashAlgo` prefix of each method in a .drv (Nix's `makeFileIngestionPrefix`). */
const ALGO_PREFIX = {
    nar: 'r:',
    text: 'text:',
    git: 'git:',
    flat: '',
};
/** A content address as a .drv's output `hashAlgo` field writes it (`r:sha256`, `git:sha1`, `sha1`). */
function formatOutputHashAlgo(ca) {
    return ALGO_PREFIX[ca.method] + ca.hash.algo;
}
/**
 * The store path of a content-addressed object (Nix's `makeFixedOutputPathFromCA`): the one
 * constructor every caller uses. `text` takes references; `nar` over sha256 takes references and
 * `self` (a source); any other may have neither.
 */
function makeContentAddressedPath(name, ca, storeDir, references = [], self = false) {
    if (ca.method === 'text') {
        if (ca.hash.algo !== 'sha256' || self)
            content_address_bad(formatContentAddress(ca), 'not a valid text address');
        return makeTextPath(name, ca.hash.bytes, references, storeDir);
    }
    if (ca.method === 'nar' && ca.hash.algo === 'sha256')
        return makeSourcePath(name, ca.hash.bytes, storeDir, references, self);
    if (self || !isEmpty(references))
        content_address_bad(formatContentAddress(ca), 'only text and sha256 NAR addresses can have references');
    return makeFixedOutputPath(name, ca.hash, ca.method, storeDir);
}
function isEmpty(items) {
    if (Array.isArray(items))
        return items.length === 0;
    for (const _ of items)
        return false;
    return true;
}
/** Every content-addressed kind, in the order counts are listed. */
const CONTENT_ADDRESSED_KINDS = (/* unused pure expression or super */ null && (['drv', 'text', 'source']));
const FLAT_ALGOS = ['sha256', 'sha1', 'sha512', 'md5'];
const GIT_ALGOS = ['sha1', 'sha256'];
/**
 * Determines how `obj` is content-addressed by recomputing its path every way Nix could have
 * named it, or undefined when none matches (an input-addressed build output, or a forgery).
 * Flat fixed outputs are found for every algorithm nix-plan can compute (not blake3), git-hashed
 * ones for single files (git blobs; a directory's git tree is not computed); recursive ones only
 * for sha256, the only NAR hash a bundle carries.
 */
function identifyContentAddress(obj, storeDir) {
    const name = nameOf(obj.path);
    const file = obj.file;
    if (file !== undefined && !file.executable) {
        const hash = { algo: 'sha256', bytes: obj.fileSha256 ?? sha256(file.contents) };
        if (makeContentAddressedPath(name, { method: 'text', hash }, storeDir, obj.references) === obj.path)
            return { kind: name.endsWith('.drv') ? 'drv' : 'text', ca: `text:sha256:${nix32Encode(hash.bytes)}` };
    }
    const others = obj.references.filter((r) => r !== obj.path);
    const self = others.length !== obj.references.length;
    const narHash = typeof obj.narHash === 'function' ? obj.narHash() : obj.narHash;
    if (narHash !== undefined) {
        const ca = { method: 'nar', hash: { algo: 'sha256', bytes: narHash } };
        if (makeContentAddressedPath(name, ca, storeDir, others, self) === obj.path)
            return { kind: 'source', ca: formatContentAddress(ca) };
    }
    if (file !== undefined && obj.references.length === 0) {
        // A git-hashed file is its git blob, whatever its executable bit.
        for (const algo of GIT_ALGOS) {
            const ca = { method: 'git', hash: gitBlobHash(algo, file.contents) };
            if (makeContentAddressedPath(name, ca, storeDir) === obj.path)
                return { kind: 'source', ca: formatContentAddress(ca) };
        }
    }
    if (file !== undefined && !file.executable && obj.references.length === 0) {
        for (const algo of FLAT_ALGOS) {
            const hash = algo === 'sha256' && obj.fileSha256 !== undefined
                ? { algo, bytes: obj.fileSha256 }
                : hashBytes(algo, file.contents);
            const ca = { method: 'flat', hash };
            if (makeContentAddressedPath(name, ca, storeDir) === obj.path)
                return { kind: 'source', ca: formatContentAddress(ca) };
        }
    }
    return undefined;
}

;// CONCATENATED MODULE: ./src/core/derivation/aterm.ts
// The ATerm text of a .drv at the byte level: the punctuation, and the escapes Nix writes in the
// builder, arguments and environment (`"` `\` LF CR TAB, nothing else). Shared by the parser
// and the writer, so what one accepts the other writes.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LPAREN = 0x28;
const RPAREN = 0x29;
/** Byte a character stands for after a backslash; 0 for "not an escape Nix writes". */
const UNESCAPE = new Uint8Array(256);
UNESCAPE[0x6e] = 0x0a; // \n
UNESCAPE[0x72] = 0x0d; // \r
UNESCAPE[0x74] = 0x09; // \t
UNESCAPE[QUOTE] = QUOTE;
UNESCAPE[BACKSLASH] = BACKSLASH;
/** Character written after a backslash for a byte that must be escaped; 0 for "write as is". */
const ESCAPE = new Uint8Array(256);
ESCAPE[0x0a] = 0x6e;
ESCAPE[0x0d] = 0x72;
ESCAPE[0x09] = 0x74;
ESCAPE[QUOTE] = QUOTE;
ESCAPE[BACKSLASH] = BACKSLASH;
/** 1 for the bytes that end a run of plain bytes in an escaped string (the escapable ones). */
const SPECIAL = new Uint8Array(256).map((_, i) => (ESCAPE[i] === 0 ? 0 : 1));
const DERIVE = ascii('Derive(');
const DRV_WITH_VERSION = ascii('DrvWithVersion(');
/** Nesting allowed in dynamic outputs (`drv^out^out^…`); bounds recursion on hostile input. */
const MAX_DYNAMIC_DEPTH = 64;
/** The bytes of an ASCII string. */
function ascii(s) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++)
        out[i] = s.charCodeAt(i);
    return out;
}

;// CONCATENATED MODULE: ./src/core/derivation/parser.ts
// The cursor a .drv is parsed with: reads ATerm's strings (verbatim or escaped), lists and
// dynamic-output trees from the bytes, checks order and canonical escapes, and names the byte
// offset in every error. What is read in which order is parse.ts.



/**
 * Verbatim fields up to this long are made once and shared: output names (`out`, `dev`, `lib`…,
 * one per input derivation of every .drv) and empty hash fields. Made anew, each was a string of
 * its own to allocate, and every comparison of two (sorting and matching output names) compared
 * their characters instead of finding them the same string.
 */
const SHORT_UP_TO = 3;
const SHORT = new Map();
/** At most this many are kept: a hostile .drv could name thousands of different outputs. */
const SHORT_KEPT = 4096;
function shortString(bytes, start, end) {
    let key = end - start; // the length first: the keys of each length are a range of their own
    for (let i = start; i < end; i++)
        key = (key << 8) | bytes[i];
    let s = SHORT.get(key);
    if (s === undefined) {
        s = String.fromCharCode(...bytes.subarray(start, end));
        if (SHORT.size < SHORT_KEPT)
            SHORT.set(key, s);
    }
    return s;
}
/** Cursor over the bytes of one .drv; every error names the offset where it happened. */
class Parser {
    pos = 0;
    /** Start of the verbatim field `rawEnd` last read. */
    rawStart = 0;
    /** A plain Uint8Array view (not a Buffer), so field views are plain too and access stays monomorphic. */
    bytes;
    text;
    constructor(input) {
        this.bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
        this.text = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    }
    fail(detail, at = this.pos) {
        throw new MalformedError('derivation', at, detail);
    }
    describe(at) {
        const b = this.bytes[at];
        if (b === undefined)
            return 'the end of the input';
        return b >= 0x20 && b < 0x7f
            ? `'${String.fromCharCode(b)}'`
            : `byte 0x${b.toString(16).padStart(2, '0')}`;
    }
    expect(byte) {
        if (this.bytes[this.pos] !== byte)
            this.fail(`expected '${String.fromCharCode(byte)}' but found ${this.describe(this.pos)}`);
        this.pos++;
    }
    peek() {
        return this.bytes[this.pos];
    }
    /** The bytes parsed (a plain Uint8Array over the input's bytes: the same offsets). */
    get input() {
        return this.bytes;
    }
    get length() {
        return this.bytes.length;
    }
    startsWith(lit) {
        if (this.pos + lit.length > this.bytes.length)
            return false;
        for (let i = 0; i < lit.length; i++)
            if (this.bytes[this.pos + i] !== lit[i])
                return false;
        return true;
    }
    /** A verbatim field: the bytes up to the next quote, unchanged (Nix never escapes these). Returns its end. */
    rawEnd() {
        this.expect(QUOTE);
        const start = this.pos;
        const end = this.bytes.indexOf(QUOTE, start);
        if (end < 0)
            this.fail('unterminated string', this.bytes.length);
        this.rawStart = start;
        this.pos = end + 1;
        return end;
    }
    /** A verbatim field as a string; latin-1 so that every byte maps to one code unit and back. */
    rawString() {
        const end = this.rawEnd();
        const start = this.rawStart;
        if (end - start <= SHORT_UP_TO)
            return shortString(this.bytes, start, end);
        return this.text.toString('latin1', start, end);
    }
    rawBytes() {
        const end = this.rawEnd();
        return this.bytes.subarray(this.rawStart, end);
    }
    /** An escaped field. Only Nix's canonical escapes are accepted, so the result re-serialises exactly. */
    escaped() {
        const start = this.pos + 1;
        const escapes = this.skipEscaped();
        const end = this.pos - 1;
        const bytes = this.bytes;
        if (escapes === 0)
            return bytes.subarray(start, end);
        const out = allocBytes(end - start - escapes); // every byte is written below
        let o = 0;
        for (let j = start; j < end; j++) {
            let b = bytes[j];
            if (b === BACKSLASH)
                b = UNESCAPE[bytes[++j]];
            out[o++] = b;
        }
        return out;
    }
    /**
     * Reads past an escaped field, validating it as `escaped` does, without unescaping it; returns
     * how many escapes it holds. Its contents as written are the bytes before the closing quote
     * (`this.pos - 1`), from just after the opening one.
     */
    skipEscaped() {
        this.expect(QUOTE);
        const bytes = this.bytes;
        const n = bytes.length;
        let escapes = 0;
        let i = this.pos;
        for (;;) {
            while (i < n && SPECIAL[bytes[i]] === 0)
                i++;
            const b = bytes[i];
            if (b === undefined)
                this.fail('unterminated string', i);
            if (b === QUOTE)
                break;
            if (b === BACKSLASH) {
                const next = bytes[i + 1];
                if (next === undefined)
                    this.fail('unterminated string', i + 1);
                if (UNESCAPE[next] === 0)
                    this.fail(`unknown escape '\\${String.fromCharCode(next)}' (Nix writes only \\" \\\\ \\n \\r \\t)`, i);
                escapes++;
                i += 2;
                continue;
            }
            this.fail(`raw control byte 0x${b.toString(16)} that Nix would have escaped`, i);
        }
        this.pos = i + 1;
        return escapes;
    }
    /** `[` item (`,` item)* `]`, calling `item` for each. */
    list(item) {
        this.expect(LBRACKET);
        if (this.peek() === RBRACKET) {
            this.pos++;
            return;
        }
        for (;;) {
            item();
            const b = this.peek();
            if (b === RBRACKET) {
                this.pos++;
                return;
            }
            if (b !== COMMA)
                this.fail(`expected ',' or ']' but found ${this.describe(this.pos)}`);
            this.pos++;
        }
    }
    /** A sorted list of verbatim strings (output names). */
    sortedRawStrings(what) {
        const out = [];
        this.list(() => {
            const at = this.pos;
            const s = this.rawString();
            this.checkOrder(out[out.length - 1], s, what, at);
            out.push(s);
        });
        return out;
    }
    checkOrder(prev, next, what, at) {
        if (prev !== undefined && !(prev < next))
            this.fail(prev === next ? `duplicate ${what} '${next}'` : `${what} '${next}' is out of order`, at);
    }
    /** Skips over a dynamic-outputs child map, validating its shape, and returns its bytes. */
    dynamicOutputs(depth) {
        if (depth > MAX_DYNAMIC_DEPTH)
            this.fail(`dynamic outputs nested deeper than ${MAX_DYNAMIC_DEPTH}`);
        const start = this.pos;
        this.list(() => {
            this.expect(LPAREN);
            this.rawString();
            this.expect(COMMA);
            this.dynamicNode(depth + 1);
            this.expect(RPAREN);
        });
        return this.bytes.slice(start, this.pos);
    }
    /** `[names]` or `([names],childMap)`. */
    dynamicNode(depth) {
        if (this.peek() === LPAREN) {
            this.pos++;
            this.sortedRawStrings('output name');
            this.expect(COMMA);
            this.dynamicOutputs(depth);
            this.expect(RPAREN);
        }
        else {
            this.sortedRawStrings('output name');
        }
    }
}

;// CONCATENATED MODULE: ./src/core/derivation/parse.ts
// Parsing a .drv: byte-exact, on bytes. Verbatim fields stay verbatim and only the canonical form
// of escaped ones is accepted, so whenever `parseDerivation(b)` succeeds, `serialiseDerivation`
// (write.ts) gives back exactly `b`.




/**
 * Parses a .drv file. Accepts exactly what Nix writes (`Derive(…)` or `DrvWithVersion("v",…)`,
 * sorted lists, canonical escapes, nothing after the closing parenthesis); anything else throws a
 * MalformedError naming the byte offset.
 */
function parseDerivation(bytes, spans) {
    const p = new Parser(bytes);
    const { version, outputs, inputDrvs, inputSrcs, system } = parseUpToSystem(p, spans);
    const env = [];
    let valueAt = 0;
    const { builder, args } = parseTail(p, () => {
        valueAt = p.pos + 1;
        return p.escaped();
    }, (value, key) => {
        env.push({ key, value });
        spans?.envValues.push(valueAt, p.pos - 1);
    });
    return { version, outputs, inputDrvs, inputSrcs, system, builder, args, env };
}
/**
 * Parses and validates a .drv exactly as `parseDerivation` does (throwing the same errors), but
 * leaves the builder, arguments and environment values escaped in place and says where they are.
 */
function parseDerivationSpans(bytes, layout) {
    const p = new Parser(bytes);
    const head = parseUpToSystem(p, layout);
    const start = p.pos;
    // Keys are left in place too (where each is, and its escapes): they are compared there, and
    // views of them are made only for a caller that asks (`SpansTail.keys`).
    const keySpans = [];
    const values = [];
    parseTail(p, () => {
        const at = p.pos + 1;
        p.skipEscaped();
        return at;
    }, (valueAt) => {
        values.push(valueAt, p.pos - 1); // the value's closing quote: entry() runs right after it
    }, keySpans);
    return { head, tail: new SpansTail(p.input, start, keySpans, values) };
}
/** A `DerivationTail` whose keys are made (as `Parser.escaped` makes them) when first asked for. */
class SpansTail {
    bytes;
    start;
    keySpans;
    values;
    made;
    constructor(bytes, start, keySpans, values) {
        this.bytes = bytes;
        this.start = start;
        this.keySpans = keySpans;
        this.values = values;
    }
    get keys() {
        if (this.made === undefined) {
            const s = this.keySpans;
            const keys = [];
            for (let i = 0; i < s.length; i += 3)
                keys.push(unescapeSpan(this.bytes, s[i], s[i + 1], s[i + 2]));
            this.made = keys;
        }
        return this.made;
    }
}
/** The unescaped contents of an escaped field written at [start, end) with `escapes` escapes (a view when none). */
function unescapeSpan(bytes, start, end, escapes) {
    if (escapes === 0)
        return bytes.subarray(start, end);
    const out = new Uint8Array(end - start - escapes);
    let o = 0;
    for (let j = start; j < end; j++) {
        let b = bytes[j];
        if (b === BACKSLASH)
            b = UNESCAPE[bytes[++j]];
        out[o++] = b;
    }
    return out;
}
/**
 * Byte order of the unescaped keys whose spans start at `a` and `b` in `spans` (start, end,
 * escapes): compared where they are written when neither holds an escape.
 */
function compareKeySpans(bytes, spans, a, b) {
    const aStart = spans[a];
    const aEnd = spans[a + 1];
    const bStart = spans[b];
    const bEnd = spans[b + 1];
    if (spans[a + 2] !== 0 || spans[b + 2] !== 0)
        return compareBytes(unescapeSpan(bytes, aStart, aEnd, spans[a + 2]), unescapeSpan(bytes, bStart, bEnd, spans[b + 2]));
    const n = Math.min(aEnd - aStart, bEnd - bStart);
    for (let i = 0; i < n; i++) {
        const d = bytes[aStart + i] - bytes[bStart + i];
        if (d !== 0)
            return d < 0 ? -1 : 1;
    }
    const la = aEnd - aStart;
    const lb = bEnd - bStart;
    return la === lb ? 0 : la < lb ? -1 : 1;
}
/**
 * Parses and validates a .drv exactly as `parseDerivation` does (throwing the same errors), and
 * returns only its head: the builder, arguments and environment are checked and left where they
 * are, nothing made of them (for readers that need names, outputs and inputs of many .drv files).
 */
function parseDerivationHead(bytes) {
    const p = new Parser(bytes);
    const head = parseUpToSystem(p);
    parseTail(p, () => p.skipEscaped(), () => undefined, []);
    return head;
}
/**
 * The part of a .drv after its system: `,"builder",[args],[env])` and the end of the input.
 * `field` reads each escaped field but the keys; `entry` gets each environment entry, called right
 * after its value is read, with the key unescaped, or, given `keySpans`, with the key left where
 * it is: its start, end and number of escapes are pushed there (the key passed is then empty).
 * Keys are checked to be strictly sorted.
 */
function parseTail(p, field, entry, keySpans) {
    p.expect(COMMA);
    const builder = field();
    p.expect(COMMA);
    const args = [];
    p.list(() => args.push(field()));
    p.expect(COMMA);
    let prev;
    const none = new Uint8Array(0);
    p.list(() => {
        p.expect(LPAREN);
        const at = p.pos;
        let key = none;
        let c = -1;
        if (keySpans === undefined) {
            key = p.escaped();
            if (prev !== undefined)
                c = compareBytes(prev, key);
            prev = key;
        }
        else {
            const escapes = p.skipEscaped();
            keySpans.push(at + 1, p.pos - 1, escapes);
            const n = keySpans.length;
            if (n > 3)
                c = compareKeySpans(p.input, keySpans, n - 6, n - 3);
        }
        if (c >= 0)
            p.fail(c === 0 ? 'duplicate environment variable' : 'environment variable out of order', at);
        p.expect(COMMA);
        entry(field(), key);
        p.expect(RPAREN);
    });
    p.expect(RPAREN);
    if (p.pos !== p.length)
        p.fail('unexpected bytes after the end of the derivation');
    return { builder, args };
}
/** The fields up to the system; `layout` (when given) gets where the outputs' paths and the input derivations are. */
function parseUpToSystem(p, layout) {
    const { version, outputs } = parseHead(p, layout?.outputPaths);
    p.expect(COMMA);
    if (layout !== undefined)
        layout.inputDrvsStart = p.pos;
    const inputDrvs = [];
    p.list(() => {
        p.expect(LPAREN);
        const at = p.pos;
        const path = p.rawString();
        p.checkOrder(inputDrvs[inputDrvs.length - 1]?.path, path, 'input derivation', at);
        p.expect(COMMA);
        if (version !== undefined && p.peek() === LPAREN) {
            p.pos++;
            const outs = p.sortedRawStrings('output name');
            p.expect(COMMA);
            const dynamicOutputs = p.dynamicOutputs(1);
            p.expect(RPAREN);
            inputDrvs.push({ path, outputs: outs, dynamicOutputs });
        }
        else {
            inputDrvs.push({ path, outputs: p.sortedRawStrings('output name') });
        }
        p.expect(RPAREN);
    });
    if (layout !== undefined)
        layout.inputDrvsEnd = p.pos;
    p.expect(COMMA);
    const inputSrcs = p.sortedRawStrings('input source');
    p.expect(COMMA);
    const system = p.rawBytes();
    return { version, outputs, inputDrvs, inputSrcs, system };
}
/**
 * Parses only the start of a .drv file: its version and outputs, for callers that need nothing
 * else (the rest is neither read nor validated; `parseDerivation` validates everything).
 */
function parseDerivationOutputs(bytes) {
    return parseHead(new Parser(bytes));
}
/** The only `DrvWithVersion` version Nix writes and reads (experimental dynamic derivations). */
const DYNAMIC_DERIVATIONS_VERSION = 'xp-dyn-drv';
/** The method prefixes of an output's `hashAlgo` (Nix's `ContentAddressMethod::renderPrefix`). */
const OUTPUT_METHOD_PREFIX = /^(?:r:|text:|git:)?/;
/**
 * An output's `hashAlgo` and `hash` as Nix reads them (`parseDerivationOutput`, 2.8 and 2.34): a
 * `hashAlgo` is a method prefix and an algorithm Nix knows, or Nix refuses the .drv ("unknown hash
 * algorithm"), after the paths imported before it; without one, Nix reads the output as
 * input-addressed (or deferred) and drops its `hash`, so it hashes the .drv without that hash and
 * computes other output paths than the bytes give. Nix never writes either: both are refused.
 */
function checkOutputHashFields(p, name, hashAlgo, algoAt, hash, hashAt) {
    if (hashAlgo === '') {
        if (hash !== '')
            p.fail(`output '${name}' has the hash '${hash.slice(0, 80)}' but no hash algorithm (Nix never writes one: it reads the output as input-addressed and drops the hash)`, hashAt);
        return;
    }
    const algo = hashAlgo.slice(OUTPUT_METHOD_PREFIX.exec(hashAlgo)?.[0].length ?? 0);
    if (!isHashAlgo(algo))
        p.fail(`output '${name}' has the hash algorithm '${hashAlgo.slice(0, 80)}', which Nix does not know (it refuses the .drv)`, algoAt);
}
/** `Derive(` or `DrvWithVersion("v",`, then the outputs list (`outputPaths` gets where each path's text starts). */
function parseHead(p, outputPaths) {
    let version;
    if (p.startsWith(DERIVE)) {
        p.pos += DERIVE.length;
    }
    else if (p.startsWith(DRV_WITH_VERSION)) {
        p.pos += DRV_WITH_VERSION.length;
        const at = p.pos;
        version = p.rawString();
        // As Nix's parseDerivation: every other version is refused ("Unknown derivation ATerm format
        // version"), not read as if it were this one.
        if (version !== DYNAMIC_DERIVATIONS_VERSION)
            p.fail(`unknown derivation ATerm format version '${version}' (Nix reads only '${DYNAMIC_DERIVATIONS_VERSION}')`, at);
        p.expect(COMMA);
    }
    else {
        p.fail("expected 'Derive(' or 'DrvWithVersion(' at the start of a derivation");
    }
    const outputs = [];
    p.list(() => {
        p.expect(LPAREN);
        const at = p.pos;
        const name = p.rawString();
        p.checkOrder(outputs[outputs.length - 1]?.name, name, 'output', at);
        p.expect(COMMA);
        outputPaths?.push(p.pos + 1);
        const path = p.rawString();
        p.expect(COMMA);
        const algoAt = p.pos;
        const hashAlgo = p.rawString();
        p.expect(COMMA);
        const hashAt = p.pos;
        const hash = p.rawString();
        checkOutputHashFields(p, name, hashAlgo, algoAt, hash, hashAt);
        p.expect(RPAREN);
        outputs.push({ name, path, hashAlgo, hash });
    });
    return { version, outputs };
}

;// CONCATENATED MODULE: ./src/core/derivation/write.ts
// Writing a .drv as Nix does, and splicing one from a new head and a tail kept as written.



/**
 * Serialises into a reused scratch buffer that is at least as big as the result can be (every
 * escaped byte at most doubles), in one pass that also validates the verbatim fields; the result
 * is then copied out at its exact size. (An exact size pass first cost as much as the writing.)
 */
const MAX_SCRATCH = 1024 * 1024;
class Writer {
    /** Reused by every call (serialisation is synchronous); up to MAX_SCRATCH bytes. */
    static scratch = new Uint8Array(64 * 1024);
    out;
    pos = 0;
    constructor(bound) {
        // A huge drv gets a buffer of its own, so the scratch buffer kept between calls stays small.
        if (bound > MAX_SCRATCH)
            this.out = new Uint8Array(bound);
        else {
            if (Writer.scratch.length < bound)
                Writer.scratch = new Uint8Array(MAX_SCRATCH);
            this.out = Writer.scratch;
        }
    }
    /**
     * The bytes written, copied out of the scratch buffer: into Node's pool when `shortLived` (a
     * slice of the pool keeps all of it alive), otherwise into a buffer of their own.
     */
    result(shortLived) {
        const out = shortLived ? allocBytes(this.pos) : new Uint8Array(this.pos);
        out.set(this.out.subarray(0, this.pos));
        return out;
    }
    byte(b) {
        this.out[this.pos++] = b;
    }
    bytes(b) {
        this.out.set(b, this.pos);
        this.pos += b.length;
    }
    raw(s, field) {
        const out = this.out;
        let w = this.pos;
        out[w++] = QUOTE;
        for (let i = 0; i < s.length; i++) {
            const c = s.charCodeAt(i);
            if (c > 0xff || c === QUOTE)
                throw new errors_NixPlanError('malformed', `derivation field ${field} '${s}' has a character Nix cannot write there (a quote or non-latin-1)`);
            out[w++] = c;
        }
        out[w++] = QUOTE;
        this.pos = w;
    }
    rawBytes(b, field) {
        if (b.includes(QUOTE))
            throw new errors_NixPlanError('malformed', `derivation field ${field} contains a quote, which Nix cannot write there`);
        this.out[this.pos++] = QUOTE;
        this.bytes(b);
        this.out[this.pos++] = QUOTE;
    }
    escaped(b) {
        const out = this.out;
        const n = b.length;
        let w = this.pos;
        out[w++] = QUOTE;
        let i = 0;
        for (;;) {
            // Copy each run of plain bytes at once (by hand when short: cheaper than a subarray),
            // then write the escape that ends it.
            const run = i;
            while (i < n && SPECIAL[b[i]] === 0)
                i++;
            if (i - run > 16)
                out.set(b.subarray(run, i), w);
            else
                for (let k = run; k < i; k++)
                    out[w + k - run] = b[k];
            w += i - run;
            if (i >= n)
                break;
            out[w++] = BACKSLASH;
            out[w++] = ESCAPE[b[i++]];
        }
        out[w++] = QUOTE;
        this.pos = w;
    }
    /** `[` item `,` item … `]`: ATerm's list, each item written by `item`. */
    list(items, item) {
        this.byte(LBRACKET);
        for (let n = 0; n < items.length; n++) {
            if (n > 0)
                this.byte(COMMA);
            item(items[n]);
        }
        this.byte(RBRACKET);
    }
    /** A list of verbatim strings (written per input derivation: no closure per call). */
    rawList(items, field) {
        this.byte(LBRACKET);
        for (let n = 0; n < items.length; n++) {
            if (n > 0)
                this.byte(COMMA);
            this.raw(items[n], field);
        }
        this.byte(RBRACKET);
    }
}
/** Most bytes a verbatim list of `items` can take (exact: verbatim fields are not escaped). */
function rawListBound(items) {
    let n = 2 + items.length;
    for (const s of items)
        n += s.length + 2;
    return n;
}
function inputDrvsBound(inputDrvs) {
    let size = 2 + inputDrvs.length;
    for (const i of inputDrvs) {
        size += 5 + i.path.length + rawListBound(i.outputs);
        if (i.dynamicOutputs !== undefined)
            size += 3 + i.dynamicOutputs.length;
    }
    return size;
}
function writeInputDrvs(w, inputDrvs) {
    w.list(inputDrvs, (i) => {
        w.byte(LPAREN);
        w.raw(i.path, 'input derivation');
        w.byte(COMMA);
        if (i.dynamicOutputs !== undefined) {
            w.byte(LPAREN);
            w.rawList(i.outputs, 'output name');
            w.byte(COMMA);
            w.bytes(i.dynamicOutputs);
            w.byte(RPAREN);
        }
        else
            w.rawList(i.outputs, 'output name');
        w.byte(RPAREN);
    });
}
/**
 * The input derivations list alone, `[("path",["out"]),…]`, exactly as `serialiseDerivation`
 * writes it (hashDerivationModulo writes modulo hashes there instead of paths).
 */
function serialiseInputDrvs(inputDrvs) {
    const w = new Writer(inputDrvsBound(inputDrvs));
    writeInputDrvs(w, inputDrvs);
    return w.result(true);
}
/**
 * Writes a derivation as Nix does. The inverse of `parseDerivation`: for any bytes that parse,
 * `serialiseDerivation(parseDerivation(b))` equals `b`. Lists are written in the order given;
 * callers that build or edit a derivation must keep them sorted (see the field comments). When
 * `layout` is given, the offsets of the parts are recorded in it.
 */
function serialiseDerivation(drv, layout) {
    // An upper bound of the size, part by part with the comma after it; escaped strings count
    // twice (every byte could need escaping).
    let bound = headBound(drv);
    bound += 2 * drv.builder.length + 3;
    bound += 3;
    for (const a of drv.args)
        bound += 2 * a.length + 3;
    bound += 3;
    for (const e of drv.env)
        bound += 2 * (e.key.length + e.value.length) + 8;
    const w = new Writer(bound);
    writeHead(w, drv, layout);
    w.byte(COMMA);
    w.escaped(drv.builder);
    w.byte(COMMA);
    w.list(drv.args, (a) => w.escaped(a));
    w.byte(COMMA);
    w.list(drv.env, (e) => {
        w.byte(LPAREN);
        w.escaped(e.key);
        w.byte(COMMA);
        layout?.envValues.push(w.pos + 1);
        w.escaped(e.value);
        w.byte(RPAREN);
    });
    w.byte(RPAREN);
    if (w.pos > bound)
        throw new errors_NixPlanError('internal', `derivation size bound exceeded: ${w.pos} > ${bound}`);
    return w.result(false);
}
/**
 * A derivation written from its head (outputs, inputs and system, serialised as
 * `serialiseDerivation` does) followed by `tail`, the bytes after the system exactly as they are to
 * be written (`,"builder",[args],[env])`, escaped), given in pieces. `layout` gets the head's
 * offsets, and in `envValues` the offset where each piece but the last ends. The caller vouches
 * for the tail: it comes from `parseDerivationSpans`, with only store hashes replaced.
 */
function spliceDerivation(head, tail, layout) {
    const written = head;
    let bound = headBound(written);
    for (const piece of tail)
        bound += piece.length;
    const w = new Writer(bound);
    writeHead(w, written, layout);
    for (let n = 0; n < tail.length; n++) {
        if (n > 0)
            layout?.envValues.push(w.pos);
        w.bytes(tail[n]);
    }
    return w.result(false);
}
/** Most bytes the head of `drv` takes (up to its system's closing quote), and the comma after it. */
function headBound(drv) {
    let bound = DRV_WITH_VERSION.length + (drv.version?.length ?? 0) + 3;
    bound += 3;
    for (const o of drv.outputs)
        bound += 14 + o.name.length + o.path.length + o.hashAlgo.length + o.hash.length;
    bound += inputDrvsBound(drv.inputDrvs) + 1;
    bound += rawListBound(drv.inputSrcs) + 1;
    return bound + drv.system.length + 3;
}
/** `Derive(` (or `DrvWithVersion("v",`), the outputs, inputs and the system. */
function writeHead(w, drv, layout) {
    if (drv.version === undefined)
        w.bytes(DERIVE);
    else {
        w.bytes(DRV_WITH_VERSION);
        w.raw(drv.version, 'version');
        w.byte(COMMA);
    }
    w.list(drv.outputs, (o) => {
        w.byte(LPAREN);
        w.raw(o.name, 'output name');
        w.byte(COMMA);
        layout?.outputPaths.push(w.pos + 1);
        w.raw(o.path, 'output path');
        w.byte(COMMA);
        w.raw(o.hashAlgo, 'hashAlgo');
        w.byte(COMMA);
        w.raw(o.hash, 'hash');
        w.byte(RPAREN);
    });
    w.byte(COMMA);
    if (layout !== undefined)
        layout.inputDrvsStart = w.pos;
    writeInputDrvs(w, drv.inputDrvs);
    if (layout !== undefined)
        layout.inputDrvsEnd = w.pos;
    w.byte(COMMA);
    w.rawList(drv.inputSrcs, 'input source');
    w.byte(COMMA);
    w.rawBytes(drv.system, 'system');
}

;// CONCATENATED MODULE: ./src/core/derivation/fields.ts
// What a parsed derivation says, read without writing it: its references, an env value, its name.

const encoder = new TextEncoder();
/** The output named by environment key `key`, if any (output names are ASCII: compared without decoding the key). */
function outputNamed(outputs, key) {
    outer: for (const o of outputs) {
        if (o.name.length !== key.length)
            continue;
        for (let i = 0; i < key.length; i++)
            if (o.name.charCodeAt(i) !== key[i])
                continue outer;
        return o;
    }
    return undefined;
}
/** `outputNamed` of the key written at [start, end) of `bytes` (a key without escapes). */
function outputNamedAt(outputs, bytes, start, end) {
    const n = end - start;
    outer: for (const o of outputs) {
        if (o.name.length !== n)
            continue;
        for (let i = 0; i < n; i++)
            if (o.name.charCodeAt(i) !== bytes[start + i])
                continue outer;
        return o;
    }
    return undefined;
}
/** The value of environment variable `key` (UTF-8 encoded for the comparison), if set. */
function envGet(drv, key) {
    const k = encoder.encode(key);
    for (const e of drv.env)
        if (compareBytes(e.key, k) === 0)
            return e.value;
    return undefined;
}
/** What a .drv file references: its input sources and input derivations, sorted, without duplicates. */
function derivationReferences(drv) {
    const srcs = drv.inputSrcs;
    const drvs = drv.inputDrvs;
    let sorted = true;
    for (let i = 1; sorted && i < srcs.length; i++)
        sorted = srcs[i - 1] < srcs[i];
    for (let i = 1; sorted && i < drvs.length; i++)
        sorted = drvs[i - 1].path < drvs[i].path;
    if (!sorted) {
        const refs = new Set(srcs);
        for (const i of drvs)
            refs.add(i.path);
        return [...refs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    // Both lists are sorted (as in every parsed .drv): merge them, dropping a path in both.
    const out = [];
    let i = 0;
    let j = 0;
    while (i < srcs.length || j < drvs.length) {
        const a = srcs[i];
        const b = drvs[j]?.path;
        const next = b === undefined || (a !== undefined && a <= b) ? a : b;
        if (next === a)
            i++;
        if (next === b)
            j++;
        out.push(next);
    }
    return out;
}

/**
 * Output name → path of a parsed derivation ("" for a deferred output). Every name is an own key,
 * `__proto__` included (Nix allows it; assigning it would set the prototype and lose the output).
 */
function outputsOf(drv) {
    return Object.fromEntries(drv.outputs.map((o) => [o.name, o.path]));
}

;// CONCATENATED MODULE: ./src/core/derivation/scan.ts
// Reading a .drv's system and references without parsing it: export reads thousands of .drv
// files, and skipping through each costs a fraction of a full parse.



/**
 * The `system` field of a .drv (its `field`-th top-level field: 3 in `Derive(…)`, 4 in
 * `DrvWithVersion(…)`); see scanDerivation.
 */
function derivationSystem(bytes, field) {
    return scanDerivation(bytes, field === 4).system;
}
/**
 * A .drv's `system` and references (its input derivations and input sources, sorted: what Nix
 * registers for a .drv it writes), found by skipping through the file rather than parsing it.
 * The fields up to `system` are verbatim strings (no escapes), so every quote opens or closes
 * one. A file it cannot follow is parsed in full, which reports what is malformed and where.
 */
function scanDerivation(bytes, versioned) {
    const inputDrvsField = versioned ? 2 : 1;
    const systemField = inputDrvsField + 2;
    const references = [];
    let depth = 0;
    let at = 0;
    let tupleStart = false;
    for (let i = 0; i < bytes.length; i++) {
        const c = bytes[i];
        if (c === QUOTE) {
            const end = bytes.indexOf(QUOTE, i + 1);
            if (end < 0)
                break;
            if (depth === 1 && at === systemField)
                return {
                    system: Buffer.from(bytes.buffer, bytes.byteOffset + i + 1, end - i - 1).toString('latin1'),
                    references: sortedUnique(references),
                };
            if ((at === inputDrvsField && depth === 3 && tupleStart) || (at === inputDrvsField + 1 && depth === 2))
                references.push(Buffer.from(bytes.buffer, bytes.byteOffset + i + 1, end - i - 1).toString('latin1'));
            tupleStart = false;
            i = end;
        }
        else if (c === 0x28 || c === 0x5b) {
            depth++; // ( [
            tupleStart = c === 0x28 && depth === 3;
        }
        else if (c === 0x29 || c === 0x5d) {
            if (--depth === 0)
                break; // ) ]
        }
        else if (c === 0x2c && depth === 1 && ++at > systemField)
            break; // ,
    }
    const drv = parseDerivation(bytes);
    return { system: Buffer.from(drv.system).toString('latin1'), references: derivationReferences(drv) };
}
function sortedUnique(items) {
    items.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return items.filter((x, i) => i === 0 || x !== items[i - 1]);
}

;// CONCATENATED MODULE: ./src/core/derivation/kind.ts
// How a derivation names its outputs, decided once (Nix's `Derivation::type()`): input-addressed,
// fixed (its one output's content address is declared), floating (content-addressed, known only
// once built) or impure; and the path a fixed output must have.



const PROBLEMS = {
    'no-outputs': 'it has no outputs',
    mixed: 'it mixes output types (input-addressed, fixed, floating, impure)',
    'fixed-not-one-out': 'a fixed-output derivation must have exactly one output, named "out"',
    'floating-algos': 'its floating outputs use different hash algorithms (Nix requires one for all)',
};
/** The hash algorithm of an output's `hashAlgo`, without its method prefix (`r:sha256` → `sha256`). */
const algorithmOf = (hashAlgo) => hashAlgo.replace(/^(?:r:|text:|git:)/, '');
/** The kind one output declares, from its `hashAlgo` and `hash` fields as written. */
function outputKind(o) {
    if (o.hashAlgo === '')
        return 'input-addressed';
    if (o.hash === 'impure')
        return 'impure';
    return o.hash === '' ? 'floating' : 'fixed';
}
/** The kind of a derivation, or the problem that leaves it without one. */
function classifyDerivation(drv) {
    const first = drv.outputs[0];
    if (first === undefined)
        return { problem: 'no-outputs' };
    const kind = outputKind(first);
    for (const o of drv.outputs)
        if (outputKind(o) !== kind)
            return { problem: 'mixed' };
    if (kind === 'fixed' && (drv.outputs.length !== 1 || first.name !== 'out'))
        return { problem: 'fixed-not-one-out' };
    // Nix's `Derivation::type()` (2.8 and 2.34), on import: "all floating outputs must use the same
    // hash algorithm" (the method may differ).
    if (kind === 'floating' && drv.outputs.some((o) => algorithmOf(o.hashAlgo) !== algorithmOf(first.hashAlgo)))
        return { problem: 'floating-algos' };
    return { kind };
}
/** The kind of a derivation; a 'malformed' error naming `label` when it has none. */
function derivationKind(drv, label) {
    const c = classifyDerivation(drv);
    if (c.problem !== undefined)
        throw new errors_NixPlanError('malformed', `derivation ${label}: ${PROBLEMS[c.problem]}`);
    return c.kind;
}
/** True for a fixed-output derivation: its one output, `out`, declares its content address. */
function isFixedOutput(drv) {
    return classifyDerivation(drv).kind === 'fixed';
}
/** The content address a fixed output declares; a 'malformed' error naming `label` when it is not one. */
function fixedOutputAddress(o, label) {
    try {
        return parseOutputHashAlgo(o.hashAlgo, o.hash);
    }
    catch (e) {
        throw new errors_NixPlanError('malformed', `derivation ${label}: output ${o.name}: ${e.message}`);
    }
}
/** The path fixed output `o` of the derivation named `drvName` must have in `storeDir`. */
function fixedOutputPath(o, drvName, storeDir, label = drvName) {
    return makeContentAddressedPath(outputPathName(drvName, o.name), fixedOutputAddress(o, label), storeDir);
}

;// CONCATENATED MODULE: ./src/core/derivation/hash.ts
// Nix's hashDerivationModulo: the hash that names a derivation's outputs, and the drv's own path.
//
// Output paths of an input-addressed derivation come from a hash of its ATerm in which each input
// derivation is replaced by *that input's* modulo hash, so a fixed-output input (a fetcher) counts
// only by what it produces, not by how. The derivation itself is masked first (its output paths
// and the environment variables named after its outputs set to ""), since those are what is being
// computed. Floating content-addressed derivations, and everything depending on one, have no
// output paths before they are built ("deferred").







function fail(drvLabel, detail) {
    throw new errors_NixPlanError('malformed', `derivation ${drvLabel}: ${detail}`);
}
/** A derivation whose output paths, and the env variables named after its outputs, are "". */
function masked(drv) {
    const empty = new Uint8Array(0);
    return {
        ...drv,
        outputs: drv.outputs.map((o) => ({ ...o, path: '' })),
        env: drv.env.map((e) => (isOutputName(drv, e.key) ? { key: e.key, value: empty } : e)),
    };
}
/** A new empty layout for `serialiseDerivation` to fill. */
function newLayout() {
    return { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
}
/** sha256 of a serialised derivation with its input derivations list replaced by `inputs`. */
function hashWithInputs(bytes, layout, inputs) {
    return sha256(bytes.subarray(0, layout.inputDrvsStart), inputs, bytes.subarray(layout.inputDrvsEnd));
}
function isOutputName(drv, key) {
    return outputNamed(drv.outputs, key) !== undefined;
}
/**
 * Memoised hashDerivationModulo over a lookup of parsed derivations in one store dir. The lookup
 * is called at most once per derivation during a walk; it should throw (a NixPlanError) for a
 * path it does not have.
 */
class DerivationHasher {
    storeDir;
    lookup;
    /**
     * Every hashed derivation: its hash, the hex of it (written into many dependents; "" when
     * deferred) and its output names (to check what dependents ask for). One map, as each input of
     * each derivation is looked up in it.
     */
    memo = new Map();
    constructor(storeDir, lookup) {
        this.storeDir = storeDir;
        this.lookup = lookup;
    }
    /**
     * The modulo hash of a derivation in the store (unmasked: as its dependents use it), memoised.
     * Walks the inputs with an explicit stack, so deep graphs cannot overflow the call stack.
     */
    hashModulo(drvPath) {
        const known = this.memo.get(drvPath);
        if (known !== undefined)
            return known.hash;
        const pending = new Map();
        const stack = [drvPath];
        while (stack.length > 0) {
            const path = stack[stack.length - 1];
            if (this.memo.has(path)) {
                stack.pop();
                continue;
            }
            let drv = pending.get(path);
            if (drv === undefined) {
                drv = this.lookup(path);
                pending.set(path, drv);
                // A fixed-output hash does not depend on inputs, so they need not be visited.
                if (derivationKind(drv, path) !== 'fixed') {
                    for (const input of drv.inputDrvs) {
                        if (this.memo.has(input.path))
                            continue;
                        if (pending.has(input.path))
                            throw new errors_NixPlanError('closure', `derivation ${input.path} depends on itself (via ${path})`);
                        stack.push(input.path);
                    }
                    if (stack[stack.length - 1] !== path)
                        continue;
                }
            }
            stack.pop();
            pending.delete(path);
            this.remember(path, drv, this.compute(drv, path, drvName(path), false));
        }
        return this.memo.get(drvPath).hash;
    }
    /** Whether the modulo hash of `drvPath` is known (hashed or recorded). */
    has(drvPath) {
        return this.memo.has(drvPath);
    }
    /**
     * Takes the modulo hash of `drvPath` from `other`, a hasher of the same store dir that hashed a
     * .drv at that path (a .drv path is the hash of its bytes and references, and its inputs are
     * named by their paths, so the hash is the same); false when `other` has none.
     */
    adopt(drvPath, other) {
        const memo = other.storeDir === this.storeDir ? other.memo.get(drvPath) : undefined;
        if (memo === undefined)
            return false;
        this.memo.set(drvPath, memo);
        return true;
    }
    /** Output paths the derivation must have: masks it, hashes it, fills outputs. */
    outputPaths(drv, drvName) {
        const fixed = this.fixedOutputPaths(drv, drvName);
        if (fixed !== undefined)
            return fixed;
        const paths = new Map();
        const h = this.compute(drv, drvName, drvName, true);
        for (const o of drv.outputs)
            paths.set(o.name, h.kind === 'deferred' ? '' : makeOutputPath(drvName, o.name, toHex(h.hash), this.storeDir));
        return paths;
    }
    /** The output path of a fixed-output derivation, which follows from its outputs alone; undefined for other kinds. */
    fixedOutputPaths(drv, drvName) {
        if (derivationKind(drv, drvName) !== 'fixed')
            return undefined;
        const out = drv.outputs[0];
        return new Map([[out.name, fixedOutputPath(out, drvName, this.storeDir)]]);
    }
    /**
     * Records the modulo hash of a derivation computed elsewhere (`fillOutputs`), so it is never
     * looked up. `hash` may be left out for a fixed-output or floating derivation, whose hash needs
     * only its outputs.
     */
    record(drvPath, drv, hash) {
        const h = hash ?? this.outputsOnlyHash(drv, drvPath, drvName(drvPath));
        if (h === undefined)
            throw new errors_NixPlanError('internal', `the modulo hash of input-addressed ${drvPath} was not given`);
        this.remember(drvPath, drv, h);
    }
    remember(drvPath, drv, hash) {
        this.memo.set(drvPath, {
            hash,
            hex: hash.kind === 'deferred' ? '' : toHex(hash.hash),
            outputs: drv.outputs.map((o) => o.name),
        });
    }
    /**
     * An input-addressed derivation completed as Nix writes it: its output paths (as `outputPaths`
     * gives them) filled into its outputs and into the env variables named after them, its bytes,
     * and its modulo hash as its dependents see it (for `record`). The derivation is serialised
     * once, masked; the masked hash, the bytes and the modulo hash are all made from that by
     * splicing in the input hashes or the output paths (which need no escaping).
     */
    fillOutputs(drv, drvName) {
        const layout = newLayout();
        const bytes = serialiseDerivation(masked(drv), layout);
        const envHoles = [];
        drv.env.forEach((e, i) => {
            const o = outputNamed(drv.outputs, e.key);
            if (o !== undefined)
                envHoles.push({ at: layout.envValues[i], output: o.name });
        });
        return this.fillMasked({ bytes, layout, envHoles }, drv, drvName);
    }
    /**
     * `fillOutputs` for a derivation the caller serialised masked: `drv` gives its version, outputs
     * and input derivations (which must be hashed or recorded already).
     */
    fillMasked(maskedDrv, drv, drvName) {
        if (derivationKind(drv, drvName) !== 'input-addressed')
            throw new errors_NixPlanError('internal', `fillOutputs is for input-addressed derivations, not ${drvName}`);
        const { bytes, layout } = maskedDrv;
        const inputs = this.moduloInputs(drv, drvName);
        if (inputs === undefined)
            return { paths: drv.outputs.map(() => ''), bytes, hash: { kind: 'deferred' } };
        const hex = toHex(hashWithInputs(bytes, layout, inputs));
        const paths = drv.outputs.map((o) => makeOutputPath(drvName, o.name, hex, this.storeDir));
        // Holes, in byte order: each output's path, then the value of each env variable named after one.
        const holes = paths.map((text, i) => ({
            at: layout.outputPaths[i],
            text,
        }));
        for (const h of maskedDrv.envHoles)
            holes.push({ at: h.at, text: paths[drv.outputs.findIndex((o) => o.name === h.output)] });
        let size = bytes.length;
        for (const h of holes)
            size += h.text.length;
        const out = new Uint8Array(size); // kept by the caller: not a slice of a shared pool
        let r = 0;
        let w = 0;
        let shift = 0; // bytes inserted before the input derivations list (output paths only)
        for (const h of holes) {
            out.set(bytes.subarray(r, h.at), w);
            w += h.at - r;
            r = h.at;
            for (let k = 0; k < h.text.length; k++)
                out[w++] = h.text.charCodeAt(k);
            if (h.at < layout.inputDrvsStart)
                shift += h.text.length;
        }
        out.set(bytes.subarray(r), w);
        const filled = {
            ...layout,
            inputDrvsStart: layout.inputDrvsStart + shift,
            inputDrvsEnd: layout.inputDrvsEnd + shift,
        };
        return { paths, bytes: out, hash: { kind: 'regular', hash: hashWithInputs(out, filled, inputs) } };
    }
    /**
     * Whether `fillMasked` would give back exactly `original`, a .drv's own bytes, checked without
     * writing any: `original` with its output paths and the values of `envHoles` (the variables
     * named after its outputs) cut out is the masked form (the head of a .drv that parses is
     * written as `serialiseDerivation` writes it), hashed as Nix hashes it; the paths that gives
     * must be the ones it holds. `spans` says where its output paths and input derivations are
     * (`parseDerivationSpans`). The filled derivation (`original` itself) when they are; undefined
     * when they are not, or when its outputs are deferred (`fillMasked` says how).
     */
    checkFilled(original, spans, envHoles, drv, drvName) {
        if (derivationKind(drv, drvName) !== 'input-addressed')
            throw new errors_NixPlanError('internal', `checkFilled is for input-addressed derivations, not ${drvName}`);
        const inputs = this.moduloInputs(drv, drvName);
        if (inputs === undefined)
            return undefined;
        const { outputs } = drv;
        const pieces = [];
        let r = 0;
        outputs.forEach((o, i) => {
            const at = spans.outputPaths[i];
            pieces.push(original.subarray(r, at));
            r = at + o.path.length;
        });
        pieces.push(original.subarray(r, spans.inputDrvsStart), inputs);
        r = spans.inputDrvsEnd;
        for (const h of envHoles) {
            pieces.push(original.subarray(r, h.start));
            r = h.end;
        }
        pieces.push(original.subarray(r));
        const hex = toHex(sha256(...pieces));
        const paths = outputs.map((o) => makeOutputPath(drvName, o.name, hex, this.storeDir));
        for (let i = 0; i < outputs.length; i++)
            if (outputs[i].path !== paths[i])
                return undefined;
        for (const h of envHoles) {
            const path = paths[outputs.findIndex((o) => o.name === h.output)];
            if (h.end - h.start !== path.length)
                return undefined;
            for (let k = 0; k < path.length; k++)
                if (original[h.start + k] !== path.charCodeAt(k))
                    return undefined;
        }
        return {
            paths,
            bytes: original,
            hash: { kind: 'regular', hash: hashWithInputs(original, spans, inputs) },
        };
    }
    /**
     * The input derivations list of `drv`'s modulo form: each input replaced by (hex of its modulo
     * hash, the outputs used), inputs with the same hash (e.g. two fetchers of the same file) merged
     * into one entry; undefined when the derivation is deferred. Every input is hashed if it is not
     * memoised yet.
     */
    moduloInputs(drv, label) {
        const entries = [];
        let deferred = false;
        for (const input of drv.inputDrvs) {
            // Every input is hashed (or found known) even once the derivation is found deferred.
            const m = this.memo.get(input.path) ?? this.memoised(input.path);
            if (deferred || m.hash.kind === 'deferred') {
                deferred = true;
                continue;
            }
            // Outputs of what this input builds (dynamic derivations) are not in the modulo form: Nix
            // keeps only the outputs used of the input itself, and an input with none is left out.
            if (input.outputs.length === 0)
                continue;
            const names = m.outputs;
            for (const o of input.outputs)
                if (!names.includes(o))
                    fail(label, `it uses output '${o}' that ${input.path} does not have`);
            entries.push({ path: m.hex, outputs: input.outputs });
        }
        if (deferred)
            return undefined;
        entries.sort((a, b) => compareStrings(a.path, b.path));
        const merged = [];
        for (const e of entries) {
            const last = merged[merged.length - 1];
            if (last !== undefined && last.path === e.path)
                last.outputs = [...last.outputs, ...e.outputs];
            else
                merged.push({ path: e.path, outputs: e.outputs });
        }
        // Output lists are sorted already unless built by hand, or merged from several inputs.
        for (const m of merged)
            if (!isStrictlySorted(m.outputs))
                m.outputs = [...new Set(m.outputs)].sort(compareStrings);
        return serialiseInputDrvs(merged);
    }
    /** What is memoised of a derivation, hashing it first. */
    memoised(drvPath) {
        this.hashModulo(drvPath);
        return this.memo.get(drvPath);
    }
    /**
     * The modulo hash of a fixed-output derivation, or of one deferred by its own kind (floating,
     * impure): they follow from its outputs alone. Undefined for an input-addressed one.
     */
    outputsOnlyHash(drv, label, name) {
        const kind = derivationKind(drv, label);
        if (kind === 'fixed') {
            const out = drv.outputs[0];
            const ca = fixedOutputAddress(out, label);
            const path = makeContentAddressedPath(outputPathName(name, out.name), ca, this.storeDir);
            return { kind: 'fixed', hash: sha256(`fixed:out:${out.hashAlgo}:${toHex(ca.hash.bytes)}:${path}`) };
        }
        return kind === 'input-addressed' ? undefined : { kind: 'deferred' };
    }
    /** hashDerivationModulo of one derivation whose inputs are all memoised. */
    compute(drv, label, name, mask) {
        const early = this.outputsOnlyHash(drv, label, name);
        if (early !== undefined)
            return early;
        const inputs = this.moduloInputs(drv, label);
        if (inputs === undefined)
            return { kind: 'deferred' };
        // A DrvWithVersion derivation keeps its version in the modulo form (Nix's `unparse` looks at
        // the derivation's own inputs for it); its inputs list is replaced by the plain one.
        const layout = newLayout();
        const bytes = serialiseDerivation(mask ? masked(drv) : drv, layout);
        return { kind: 'regular', hash: hashWithInputs(bytes, layout, inputs) };
    }
}
/** Path of a .drv file in `storeDir`: a text object named `<drvName>.drv` with its references. */
function computeDrvPath(storeDir, drvName, bytes, references) {
    // Duplicates count once; an array strictly in order (the usual case) has none and is used as is.
    const refs = Array.isArray(references) && isStrictlySorted(references) ? references : new Set(references);
    const ca = { method: 'text', hash: { algo: 'sha256', bytes: sha256(bytes) } };
    return makeContentAddressedPath(`${drvName}.drv`, ca, storeDir, refs);
}

;// CONCATENATED MODULE: ./src/core/diff/drv-name.ts
// Package names and versions as Nix reads them: `builtins.parseDrvName` and
// `builtins.compareVersions` (libstore's names.cc), so a diff groups and orders exactly as Nix does.
/** C's `isalpha` in the C locale: ASCII letters only (Nix calls it on each byte of the name). */
function isAlpha(code) {
    return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}
function isDigit(code) {
    return code >= 0x30 && code <= 0x39;
}
/**
 * `builtins.parseDrvName`: the name is everything up to the first `-` that is followed by a
 * character that is not a letter, the version everything after that dash
 * (`apache-httpd-2.0.48` → `apache-httpd`, `2.0.48`; `foo-` → `foo-`, ``).
 */
function parseDrvName(fullName) {
    for (let i = 0; i + 1 < fullName.length; i++)
        if (fullName.charCodeAt(i) === 0x2d && !isAlpha(fullName.charCodeAt(i + 1)))
            return { name: fullName.slice(0, i), version: fullName.slice(i + 1) };
    return { name: fullName, version: '' };
}
/** Largest number a version component may be and still compare as a number (Nix parses an `int`). */
const INT_MAX = 2 ** 31 - 1;
/** The version components of `v`: runs of digits, or runs of anything but digits, `.` and `-`. */
function components(v) {
    const out = [];
    let p = 0;
    while (p < v.length) {
        while (p < v.length && (v[p] === '.' || v[p] === '-'))
            p++;
        if (p === v.length)
            break;
        const start = p;
        if (isDigit(v.charCodeAt(p)))
            while (p < v.length && isDigit(v.charCodeAt(p)))
                p++;
        else
            while (p < v.length && !isDigit(v.charCodeAt(p)) && v[p] !== '.' && v[p] !== '-')
                p++;
        out.push(v.slice(start, p));
    }
    return out;
}
/** A component as the number Nix's `string2Int<int>` reads, or undefined (letters, empty, overflow). */
function asInt(c) {
    if (c === '' || !isDigit(c.charCodeAt(0)))
        return undefined;
    const n = Number(c);
    return n <= INT_MAX ? n : undefined;
}
/** Nix's `componentsLT`: numbers by value, "" and "pre" before anything, numbers after words. */
function componentLess(c1, c2) {
    const n1 = asInt(c1);
    const n2 = asInt(c2);
    if (n1 !== undefined && n2 !== undefined)
        return n1 < n2;
    if (c1 === '' && n2 !== undefined)
        return true;
    if (c1 === 'pre' && c2 !== 'pre')
        return true;
    if (c2 === 'pre')
        return false;
    // Nix: "Assume that `2.3a' < `2.3.1'."
    if (n2 !== undefined)
        return true;
    if (n1 !== undefined)
        return false;
    return c1 < c2;
}
/**
 * `builtins.compareVersions`: -1, 0 or 1. Components are compared in turn, a missing one being
 * "" (so `1.0` < `1.0.1`, `1.0pre1` < `1.0`, `2.3a` < `2.3.1`).
 */
function compareVersions(v1, v2) {
    const a = components(v1);
    const b = components(v2);
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
        const c1 = a[i] ?? '';
        const c2 = b[i] ?? '';
        if (componentLess(c1, c2))
            return -1;
        if (componentLess(c2, c1))
            return 1;
    }
    return 0;
}

;// CONCATENATED MODULE: ./src/core/derivation/requirements.ts
// What a Nix must have to read a .drv: the shapes Nix parses only with an experimental feature on
// (and only from the version that knows it), and whether a target store's Nix has what a plan needs.
//
// Nix parses every .drv it registers (`nix-store --import`, a daemon adding one) and refuses, at
// that .drv, one whose shape needs a feature it lacks: 2.34's `parseDerivation` and
// `parseDerivationOutput` call `experimentalFeatureSettings.require(…)`; 2.8 knows fewer shapes
// and refuses the others as unknown hash algorithms. Through a daemon the daemon parses, with its
// own features (the client does not send `experimental-features`).

/**
 * Each shape's requirement, in the order Nix checks them while parsing one .drv (the format
 * version first, then per output the method prefix, the hash algorithm, then the kind). Read from
 * Nix's sources: `ca-derivations` since 2.4 (floating outputs), `impure-derivations` since 2.8,
 * `dynamic-derivations` since 2.16 (`text:` outputs, `DrvWithVersion("xp-dyn-drv",…)`), `git:`
 * outputs since 2.21 (`git-hashing`; 2.19 and 2.20 know the feature but not the prefix), BLAKE3
 * hashes since 2.27 (`blake3-hashes`; asked for even where a Nix read them without it).
 */
const SHAPE_REQUIREMENTS = {
    'dyn-drv': {
        feature: 'dynamic-derivations',
        since: '2.16',
        what: "the dynamic-derivation format (DrvWithVersion 'xp-dyn-drv')",
    },
    git: { feature: 'git-hashing', since: '2.21', what: "a git-hashed output ('git:')" },
    text: { feature: 'dynamic-derivations', since: '2.16', what: "a text-hashed output ('text:')" },
    blake3: { feature: 'blake3-hashes', since: '2.27', what: 'an output hashed with BLAKE3' },
    impure: { feature: 'impure-derivations', since: '2.8', what: 'an impure output' },
    floating: {
        feature: 'ca-derivations',
        since: '2.4',
        what: 'a floating content-addressed output',
    },
};
/**
 * The shapes of a .drv that need an experimental feature, in the order Nix meets them: its
 * format version, then each output's method prefix, hash algorithm and kind.
 */
function derivationShapes(drvPath, drv) {
    const out = [];
    if (drv.version !== undefined)
        out.push({ drvPath, shape: 'dyn-drv' });
    for (const o of drv.outputs) {
        if (o.hashAlgo === '')
            continue; // input-addressed or deferred: every Nix reads it
        let algo = o.hashAlgo;
        const need = (shape) => void out.push({ drvPath, output: o.name, shape });
        if (algo.startsWith('git:')) {
            need('git');
            algo = algo.slice(4);
        }
        else if (algo.startsWith('text:')) {
            need('text');
            algo = algo.slice(5);
        }
        else if (algo.startsWith('r:'))
            algo = algo.slice(2);
        if (algo === 'blake3')
            need('blake3');
        if (o.hash === 'impure')
            need('impure');
        else if (o.hash === '')
            need('floating');
    }
    return out;
}
/**
 * The shapes of a plan's .drv files that need an experimental feature: the first .drv (in plan
 * order) with each shape, and how many have it. Memory: one record per shape.
 */
class PlanShapes {
    first = new Map();
    counts = new Map();
    /** Records the shapes of one .drv. */
    add(drvPath, drv) {
        // The usual .drv, input-addressed: nothing to record, nothing made.
        if (drv.version === undefined && drv.outputs.every((o) => o.hashAlgo === ''))
            return;
        const seen = new Set();
        for (const n of derivationShapes(drvPath, drv)) {
            if (!this.first.has(n.shape))
                this.first.set(n.shape, n);
            if (!seen.has(n.shape))
                this.counts.set(n.shape, (this.counts.get(n.shape) ?? 0) + 1);
            seen.add(n.shape);
        }
    }
    /** The first .drv with each shape, in plan order, with how many .drv files have that shape. */
    needs() {
        return [...this.first.values()].map((n) => ({ ...n, count: this.counts.get(n.shape) ?? 0 }));
    }
}
/**
 * Whether Nix version `version` comes before `than`, as `builtins.compareVersions` orders them
 * (`2.8.0` < `2.16`; a pre-release `2.27pre…` before `2.27`).
 */
function versionBefore(version, than) {
    return compareVersions(version, than) < 0;
}
function where(n) {
    const more = n.count !== undefined && n.count > 1 ? ` (and ${n.count - 1} more .drv files)` : '';
    return `derivation '${n.drvPath}'${n.output === undefined ? '' : ` output '${n.output}'`}${more}`;
}
/**
 * Whether `target`'s Nix reads every shape in `needs` (from `PlanShapes.needs`): refused, naming
 * the first .drv, its output, the shape and the feature or Nix version it needs, when the target
 * is known to lack it; left unchecked, and said so, when what the target accepts cannot be known
 * (a daemon's features, a store nix-plan cannot ask).
 */
function checkShapes(needs, target) {
    const unchecked = [];
    for (const n of needs) {
        const req = SHAPE_REQUIREMENTS[n.shape];
        const nix = target.version === undefined ? 'its Nix' : `its Nix ${target.version}`;
        const tooOld = target.version !== undefined && versionBefore(target.version, req.since);
        const needsText = `${where(n)} is ${req.what}, which Nix reads only from ${req.since} on, with the experimental feature '${req.feature}'`;
        if (tooOld)
            return {
                refusal: `${needsText}; ${target.label} runs Nix ${target.version}, which cannot read it: Nix would refuse it on import`,
                unchecked,
            };
        if (target.kind === 'local' && target.features !== undefined) {
            if (!target.features.has(req.feature))
                return {
                    refusal: `${needsText}; ${target.label} has it off (${nix}): Nix would refuse it on import. Enable it where Nix reads its settings (e.g. 'extra-experimental-features = ${req.feature}' in nix.conf or NIX_CONFIG)`,
                    unchecked,
                };
            continue;
        }
        const why = target.kind === 'daemon'
            ? `the daemon's experimental features cannot be asked`
            : `what ${target.label} accepts cannot be asked`;
        unchecked.push(`${needsText}: not checked (${why}); if it is off there, Nix refuses the import and nix-plan removes what it added`);
    }
    return { unchecked };
}

;// CONCATENATED MODULE: ./src/core/derivation/index.ts
// Derivations (.drv files) in Nix's ATerm text, byte-exact: their parts (types.ts), the escapes
// (aterm.ts), parsing (parse.ts), writing and splicing (write.ts), what they say (fields.ts,
// scan.ts), their kind (kind.ts), and the hashes and paths that follow from them (hash.ts).









;// CONCATENATED MODULE: ./src/core/bundle/policy.ts
// What a bundle must satisfy to be accepted, as pure functions over its manifest and entries: the
// realm, the signatures, each entry's kind, the .drv files against the manifest, and the totals
// (the limits are in limits.ts, the closure rule in closure-check.ts). The streaming verifier
// (reader.ts) applies them in one pass; nothing here reads a file or a store.








function policy_bad(message) {
    return new errors_NixPlanError('bundle', message);
}
/**
 * Refuses a bundle made for another store dir than `storeDir` (when one is required); the
 * message says how to relocate it as `names` spells that (default: the command line).
 */
function checkRealm(manifest, storeDir, name, names) {
    if (storeDir !== undefined && storeDir !== manifest.storeDir)
        throw new errors_NixPlanError('realm', `'${name}' is a plan for the store dir ${manifest.storeDir}, but this store's dir is ${storeDir}; relocate it first (${relocateAdvice(names, storeDir)})`);
}
/**
 * The names of the trusted keys whose signatures verify on the manifest: none asked for when no
 * key is given and none is required; otherwise at least one must verify ('signature' error).
 */
function checkSignatures(manifest, trustedKeys, requireSignature) {
    const keys = (trustedKeys ?? []).map((k) => (typeof k === 'string' ? parsePublicKey(k) : k));
    if (requireSignature === true && keys.length === 0)
        throw new errors_NixPlanError('usage', 'a signature is required, but no trusted public keys were given');
    return keys.length > 0 || requireSignature === true ? verifyManifestSignatures(manifest, keys) : [];
}
/**
 * The checks of a bundle's .drv files against their entries and the manifest: each .drv's
 * references are its inputs (`check`, as each is parsed), and the manifest's systems and its
 * roots' outputs are the ones the .drv files give (`finish`, once all are checked). Errors are
 * 'bundle' NixPlanErrors, whoever parses the .drv files.
 */
class DerivationChecks {
    manifest;
    systems = new Set();
    /** The system of the last .drv checked: nearly all are the same, and need no string made. */
    lastSystem;
    rootOutputs = new Map();
    rootDrvs;
    anyChecked = false;
    /** The shapes of the .drv files that Nix reads only with an experimental feature on. */
    shapes = new PlanShapes();
    constructor(manifest) {
        this.manifest = manifest;
        this.rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
    }
    /** Checks a parsed .drv against its entry (the same .drv may be passed again). */
    check(path, references, drv) {
        const inputs = derivationReferences(drv);
        if (inputs.length !== references.length || inputs.some((r, i) => r !== references[i]))
            throw policy_bad(`the references of '${path}' differ from the inputs its contents name`);
        this.shapes.add(path, drv);
        const { system } = drv;
        if (this.lastSystem === undefined || compareBytes(system, this.lastSystem) !== 0) {
            this.systems.add(Buffer.from(system.buffer, system.byteOffset, system.byteLength).toString('latin1'));
            this.lastSystem = system.slice(); // a view would pin the bytes around it
        }
        this.checked(path, drv.outputs);
    }
    /**
     * Records a .drv whose bytes and references were parsed and checked under the same path in
     * another bundle of the same store dir: a .drv path is the hash of both (checked for this entry
     * by `classifyEntry`), so only what this manifest must agree with is left, its system and outputs.
     */
    checkSame(path, system, outputs) {
        this.systems.add(system);
        this.checked(path, outputs);
    }
    /** Records that the .drv at `path` was checked: a root's outputs are the ones it names. */
    checked(path, outputs) {
        if (this.rootDrvs.has(path) && !this.rootOutputs.has(path))
            this.rootOutputs.set(path, new Map(outputs.map((o) => [o.name, o.path])));
        this.anyChecked = true;
    }
    /** The checks of the manifest against all the .drv files, once each was checked. */
    finish() {
        // A root's outputs must be the ones its .drv names (when the .drv is in the bundle).
        for (const root of this.manifest.roots) {
            const outputs = this.rootOutputs.get(root.drvPath);
            if (outputs !== undefined)
                for (const [name, path] of Object.entries(root.outputs))
                    if (outputs.get(name) !== path)
                        throw policy_bad(`the manifest gives output '${name}' of root '${root.drvPath}' as '${path}', but the .drv says '${outputs.get(name) ?? 'no such output'}'`);
        }
        const drvSystems = [...this.systems].sort();
        const { systems } = this.manifest;
        if (this.anyChecked && drvSystems.join(' ') !== systems.join(' '))
            throw policy_bad(`the manifest lists the systems [${systems.join(', ')}], but the bundle's .drv files are for [${drvSystems.join(', ')}]`);
    }
}
/**
 * The kind of an entry, refusing a .drv that is not text-addressed (or, given `derivations` to
 * check it with, whose parse fails or whose references are not its inputs), and outputs in a
 * plan-only bundle.
 */
function classifyEntry(entry, manifest, limits, derivations, onDerivation) {
    const ca = identifyContentAddress({
        path: entry.path,
        references: entry.references,
        narHash: () => entry.nar.narHash, // not asked for a .drv or text: its NAR is never hashed
        file: entry.nar.file,
        fileSha256: entry.nar.fileHash,
    }, manifest.storeDir);
    if (entry.path.endsWith('.drv')) {
        if (entry.nar.file === undefined && entry.nar.fileHash !== undefined)
            throw new LimitError(`'${entry.path}' is larger than the limit of ${limits.keepFileUpTo ?? DEFAULT_EXPORT_LIMITS.keepFileUpTo} bytes for a .drv`);
        if (ca?.kind !== 'drv')
            throw policy_bad(`'${entry.path}' is not the hash of its contents and references: the bundle was altered`);
        if (derivations !== undefined) {
            const bytes = entry.nar.file?.contents ?? new Uint8Array(0);
            // Validated whole as parseDerivation validates it; its environment is not made (the output
            // checks read what they need of it from the bytes).
            const layout = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0 };
            const { head, tail } = policy_parseNamed(entry.path, () => parseDerivationSpans(bytes, layout));
            derivations.check(entry.path, entry.references, head);
            onDerivation?.(head, tail, bytes, layout);
        }
        return { ...entry, kind: 'drv', ca: ca.ca };
    }
    const kind = ca?.kind ?? 'output';
    if (kind === 'output' && manifest.include === 'drvs')
        throw policy_bad(`'${entry.path}' is not the hash of its contents, but a 'drvs' bundle holds only content-addressed paths: the bundle was altered`);
    return { ...entry, kind, ca: ca?.ca };
}
/** `parse()`, with a .drv that does not parse named in the error (exit 3, as any malformed .drv). */
function policy_parseNamed(drvPath, parse) {
    try {
        return parse();
    }
    catch (e) {
        if (e instanceof errors_NixPlanError && e.code === 'malformed')
            throw new errors_NixPlanError('malformed', `${e.message} (in '${drvPath}')`);
        throw e;
    }
}
/**
 * Refuses an entry that takes the bundle past what its manifest records: more paths or NAR bytes
 * of a kind than it says (checked as each entry arrives, so a bundle lying about its sizes is
 * refused before more than it declared was read).
 */
function checkRunningTotals(manifest, kind, counts, narBytes, name) {
    const paths = OBJECT_KINDS.reduce((n, k) => n + counts[k], 0);
    if (paths > manifest.paths)
        throw policy_bad(`'${name}' holds more than the ${manifest.paths} paths its manifest says: the bundle is corrupt or lies about its sizes`);
    if (counts[kind] > manifest.counts[kind] || narBytes[kind] > manifest.narBytes[kind])
        throw policy_bad(`'${name}' holds more ${kind} paths or NAR bytes than its manifest says (${manifest.counts[kind]} paths, ${manifest.narBytes[kind]} bytes): the bundle is corrupt or lies about its sizes`);
}
/** The total NAR bytes a manifest declares, of every kind. */
function declaredNarBytes(manifest) {
    return OBJECT_KINDS.reduce((n, k) => n + manifest.narBytes[k], 0);
}
/** Refuses a bundle whose entries do not add up to what its manifest records, or that lacks a root. */
function checkTotals(manifest, found, name) {
    const { counts, narBytes } = found;
    for (const k of OBJECT_KINDS)
        if (counts[k] !== manifest.counts[k] || narBytes[k] !== manifest.narBytes[k])
            throw policy_bad(`'${name}' holds ${counts[k]} ${k} paths (${narBytes[k]} NAR bytes), but its manifest says ${manifest.counts[k]} (${manifest.narBytes[k]})`);
    // Every root's .drv (so its outputs are checked against it), and an outputs bundle's outputs.
    for (const root of manifest.roots) {
        const wanted = [
            root.drvPath,
            ...(manifest.include === 'outputs' ? Object.values(root.outputs).filter((p) => p !== '') : []),
        ];
        for (const p of wanted)
            if (!found.has(p))
                throw policy_bad(`root '${p}' is not in the bundle '${name}'`);
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/trust-report.ts

/**
 * The trust report of a manifest whose signatures were checked against `trusted` (none: not
 * checked). The verifier refuses a manifest whose signature by a trusted key name does not
 * verify before this is asked, so a signature here is verified, by a key not trusted, or not
 * checked.
 */
function trustReportOf(manifest, trusted, options = {}) {
    const keysGiven = trusted.length > 0;
    const verified = new Set(manifestSigners(manifest, trusted).map((s) => s.key));
    return {
        keysGiven,
        verifiedBy: [...verified],
        signatures: manifest.signatures.map((s) => ({
            key: s.key,
            status: !keysGiven ? 'not-checked' : verified.has(s.key) ? 'verified' : 'untrusted-key',
        })),
        noCheckSigs: options.noCheckSigs === true,
        unproven: options.unproven ?? 0,
    };
}
/**
 * The trust status in the words every front end uses (unescaped: the key names come from the
 * bundle): "verified: signed by trusted key ci", "signatures: 2 (not verified)", "unsigned", or
 * "NOT CHECKED (--no-check-sigs)". Without a report (nothing was verified, as in `inspect`),
 * signatures are "not verified". With one, its signatures are counted (a relocation's report is
 * about its input, whose signatures are not the output manifest's).
 */
function trustStatus(manifest, trust) {
    if (trust?.noCheckSigs === true && trust.verifiedBy.length === 0)
        return `NOT CHECKED (--no-check-sigs)${trust.unproven > 0 ? `: ${trust.unproven} unproven path${trust.unproven === 1 ? '' : 's'}` : ''}`;
    if (trust !== undefined && trust.verifiedBy.length > 0)
        return `verified: signed by trusted key ${trust.verifiedBy.join(', ')}`;
    const n = trust?.signatures.length ?? manifest.signatures.length;
    if (n === 0)
        return 'unsigned';
    return `signatures: ${n} (not verified)`;
}

;// CONCATENATED MODULE: ./src/core/bundle/store-derivations.ts
// Input derivations a plan does not hold, read from the target store as Nix reads them: when Nix
// registers a .drv whose inputs are not in the plan, it reads them from there. They are parsed,
// bounded in number and bytes, and kept only until they are hashed.


/** Defaults: more than any closure's worth of .drv files (nixpkgs systems have ~30,000, ~200 MB). */
const DEFAULT_DRV_OUTPUT_LIMITS = Object.freeze({
    maxStoreDerivations: 1_000_000,
    maxStoreDerivationBytes: 4 * 1024 * 1024 * 1024,
});
/** Derivations read from the store, by path, until they are hashed. */
class StoreDerivations {
    read;
    held = new Map();
    bytes = 0;
    limits;
    /** `read` reads a derivation from the target store (none: every input must be in the plan). */
    constructor(read, limits = {}) {
        this.read = read;
        this.limits = { ...DEFAULT_DRV_OUTPUT_LIMITS, ...limits };
    }
    /** The derivation at `drvPath`, when it was read and is still held. */
    get(drvPath) {
        return this.held.get(drvPath);
    }
    /**
     * Reads `paths` (needed by `needer`) and every input derivation they need, from the store,
     * except those `hashed` says are hashed already.
     */
    async readClosure(paths, needer, hashed) {
        const read = this.read;
        const todo = paths.map((p) => [p, needer]);
        for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
            const [p, by] = next;
            if (hashed(p) || this.held.has(p))
                continue;
            const bytes = read === undefined ? undefined : await read(p);
            if (bytes === undefined)
                throw new errors_NixPlanError('closure', `'${by}' refers to '${p}', which is neither in the bundle nor valid in the store`);
            this.bytes += bytes.length;
            if (this.held.size + 1 > this.limits.maxStoreDerivations ||
                this.bytes > this.limits.maxStoreDerivationBytes)
                throw new errors_NixPlanError('limit', `the plan needs more than ${this.limits.maxStoreDerivations} input derivations (or ${this.limits.maxStoreDerivationBytes} bytes of them) from the store`);
            let drv;
            try {
                drv = parseDerivation(bytes);
            }
            catch (e) {
                throw new errors_NixPlanError('nix', `cannot parse '${p}' from the store: ${e.message}`);
            }
            this.held.set(p, drv);
            for (const i of drv.inputDrvs)
                if (!hashed(i.path) && !this.held.has(i.path))
                    todo.push([i.path, p]);
        }
    }
    /** Lets go of the derivations `hashed` says are hashed now. */
    release(hashed) {
        for (const [p] of this.held)
            if (hashed(p))
                this.held.delete(p);
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/drv-outputs.ts
// The output paths of a plan's .drv files, checked as Nix checks them when it registers each one.
//
// `nix-store --import` (and a daemon adding a .drv for an untrusted user) recomputes every
// derivation's output paths when it registers the .drv: Nix 2.8's `checkDerivationOutputs` and
// 2.34's `Derivation::checkInvariants`. A wrong one fails the import after the paths before it were
// added, so the verifier checks the union of what both versions check, before anything reaches
// the store:
//   - input-addressed outputs: the path is `makeOutputPath(hashDerivationModulo)`, and the
//     environment variable named after the output holds it (2.8; 2.34 checks the path only);
//   - a derivation whose inputs defer it (floating content-addressed inputs): no output paths;
//   - fixed outputs: the path the declared hash gives, also in the variable named after it;
//   - floating and impure outputs: no path (Nix 2.8 asserts it);
//   - one kind of output per derivation, and one fixed output named `out` (`Derivation::type()`).
//   - every output's path name (`<drv name>-<output>`) is a store path name Nix accepts.
// Input derivations come from the plan (checked before their dependents: the plan is in
// dependency order) or, when the plan does not hold them, from the target store, as Nix reads
// them from there (store-derivations.ts). The checker also indexes which derivation declares
// which output path, for the proof of build outputs (proof.ts).





function wrong(drvPath, detail) {
    return new errors_NixPlanError('bundle', `derivation '${drvPath}' ${detail}; Nix would refuse it on import (after importing the paths before it)`);
}
/**
 * Refuses an output whose path could not be a store path: Nix names it `<drv name>-<output>`
 * (`outputPathName`) and refuses a name outside Nix's characters or length, for an input-addressed
 * or fixed output when it registers the .drv, and for any other when it is built.
 */
function checkOutputNames(drvPath, outputs) {
    const base = drvName(drvPath);
    for (const o of outputs) {
        const name = outputPathName(base, o.name);
        const problem = nameProblem(name);
        if (problem !== undefined)
            throw wrong(drvPath, `has output name '${o.name.slice(0, 80)}', which no store path can have ('${name.slice(0, 120)}': ${problem})`);
    }
}
/** The env variable named after `output`, as a string (Nix compares it to the path as text). */
function envOf(drv, output) {
    const v = envGet(drv, output);
    return v === undefined ? undefined : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
}
/** Whether two byte strings are equal. */
function sameBytes(a, b) {
    return a.length === b.length && Buffer.compare(a, b) === 0;
}
/**
 * Checks the output paths of a plan's derivations, fed in the plan's (dependency) order with
 * `check`, and, with `finish`, those whose input derivations are only in the target store.
 * Memory: a modulo hash per derivation (and, with `indexOutputs`, a declaration per output path).
 */
class DerivationOutputChecks {
    storeDir;
    options;
    hasher;
    /** The derivation being checked, for the hasher's lookup. */
    current;
    /** Input derivations the plan does not hold, read from the store. */
    fromStore;
    /** Output path → the derivations declaring it (usually one: an array only for the others). */
    declared = new Map();
    /**
     * `readStore` reads an input derivation the plan does not hold from the target store (none:
     * every input must be in the plan). With `indexOutputs`, `declaredOutput` answers which
     * derivation of the plan declares an output path.
     */
    constructor(storeDir, options = {}) {
        this.storeDir = storeDir;
        this.options = options;
        this.fromStore = new StoreDerivations(options.readStore, options.limits);
        this.hasher = new DerivationHasher(storeDir, (p) => this.lookup(p));
    }
    lookup(drvPath) {
        if (this.current?.path === drvPath)
            return this.current.drv;
        const d = this.fromStore.get(drvPath);
        if (d !== undefined)
            return d;
        throw new errors_NixPlanError('closure', `input derivation '${drvPath}' is neither in the plan before its dependents nor in the store`);
    }
    /**
     * Checks one .drv of the plan, parsed (`bytes` are the file, for the common case: its outputs
     * filled in must give back exactly these bytes; `spans`, where the parser found its parts, let
     * that be checked on the bytes themselves). Its input derivations must have been checked
     * already, or be in the store (then this returns a promise: they are read first).
     */
    check(drvPath, drv, bytes, spans) {
        const missing = drv.inputDrvs.filter((i) => !this.hasher.has(i.path)).map((i) => i.path);
        if (missing.length === 0)
            return this.checkNow(drvPath, drv, bytes, spans);
        return this.readFromStore(missing, drvPath).then(() => this.checkNow(drvPath, drv, bytes, spans));
    }
    /**
     * `check` for a .drv parsed for its head and where the rest is (`parseDerivationSpans`, which
     * validates it as `parseDerivation` does; `layout` as it filled it): the usual kind, an
     * input-addressed .drv with a variable named after each output, is checked on its bytes without
     * making its environment; any other kind, and one whose check fails, is parsed whole and checked
     * as `check` does (with its errors).
     */
    checkSpans(drvPath, head, tail, bytes, layout) {
        const missing = head.inputDrvs.filter((i) => !this.hasher.has(i.path)).map((i) => i.path);
        if (missing.length === 0)
            return this.checkSpansNow(drvPath, head, tail, bytes, layout);
        return this.readFromStore(missing, drvPath).then(() => this.checkSpansNow(drvPath, head, tail, bytes, layout));
    }
    checkSpansNow(drvPath, head, tail, bytes, layout) {
        checkOutputNames(drvPath, head.outputs);
        if (this.filledInPlace(drvPath, head, tail, bytes, layout))
            return;
        const spans = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0, envValues: [] };
        // Its output names were checked above, on the head: the same bytes the whole parse reads.
        this.checkParsed(drvPath, parseDerivation(bytes, spans), bytes, spans);
    }
    /**
     * Whether the .drv is input-addressed, holds a variable named after each output, and is
     * exactly its outputs filled in as Nix fills them (`hasher.checkFilled`): then it is recorded and
     * its outputs declared, as `checkInputAddressed` does when it passes. Anything else is left to
     * `checkNow`, which says what is wrong.
     */
    filledInPlace(drvPath, head, tail, bytes, layout) {
        if (head.version !== undefined || head.outputs.some((o) => outputKind(o) !== 'input-addressed'))
            return false;
        const holes = [];
        const { keySpans, values } = tail;
        for (let i = 0, k = 0; k < keySpans.length; i++, k += 3) {
            // A key without escapes is its bytes as written: matched there, without a view of it.
            const o = keySpans[k + 2] === 0
                ? outputNamedAt(head.outputs, bytes, keySpans[k], keySpans[k + 1])
                : outputNamed(head.outputs, tail.keys[i]);
            if (o !== undefined)
                holes.push({ start: values[2 * i], end: values[2 * i + 1], output: o.name });
        }
        if (holes.length !== head.outputs.length)
            return false; // keys are unique: one lacks its variable
        let filled;
        try {
            filled = this.hasher.checkFilled(bytes, layout, holes, head, drvName(drvPath));
        }
        catch {
            return false; // checkNow throws it again, naming the .drv
        }
        if (filled === undefined)
            return false;
        for (const o of head.outputs)
            this.declare(o.path, { drvPath, output: o.name });
        this.hasher.record(drvPath, head, filled.hash);
        this.fromStore.release((p) => this.hasher.has(p));
        return true;
    }
    /** Whether the .drv at `drvPath` was checked here (or its check adopted). */
    checked(drvPath) {
        return this.hasher.has(drvPath);
    }
    /**
     * Takes the check of the .drv at `drvPath` from `other`, the checks of a plan of the same store
     * dir that checked a .drv at that path: a .drv path is the hash of its bytes and references,
     * and its inputs are named by their paths, so the outcome is the same. Its modulo hash and the
     * outputs it declares (`outputs`, from its head) are recorded as if it was checked here, without
     * hashing it again; false when `other` did not check it.
     */
    adopt(drvPath, outputs, other) {
        if (!this.hasher.adopt(drvPath, other.hasher))
            return false;
        for (const o of outputs)
            for (const d of other.declarations(o.path))
                if (d.drvPath === drvPath)
                    this.declare(o.path, d);
        return true;
    }
    /** Which derivation of the plan declares `path` as an output (with `indexOutputs`; the first one). */
    declaredOutput(path) {
        const d = this.declared.get(path);
        return Array.isArray(d) ? d[0] : d;
    }
    /** Every output path the plan's derivations declare (with `indexOutputs`; deferred ones have none). */
    declaredPaths() {
        return [...this.declared.keys()];
    }
    /**
     * Every derivation of the plan that declares `path` as an output (with `indexOutputs`): two
     * fetchers of one file declare one path, and so do two derivations whose modulo hashes agree.
     */
    declarations(path) {
        const d = this.declared.get(path);
        return d === undefined ? [] : Array.isArray(d) ? d : [d];
    }
    /** Reads `paths` and every input derivation they need that is not hashed yet, from the store. */
    readFromStore(paths, needer) {
        return this.fromStore.readClosure(paths, needer, (p) => this.hasher.has(p));
    }
    checkNow(drvPath, drv, bytes, spans) {
        checkOutputNames(drvPath, drv.outputs);
        this.checkParsed(drvPath, drv, bytes, spans);
    }
    /** `checkNow` of a .drv whose output names were checked already. */
    checkParsed(drvPath, drv, bytes, spans) {
        const name = drvName(drvPath);
        this.current = { path: drvPath, drv };
        try {
            const fixed = this.hasher.fixedOutputPaths(drv, name);
            if (fixed !== undefined)
                this.checkFixed(drvPath, drv, fixed);
            else if (derivationKind(drv, name) !== 'input-addressed')
                this.checkFloating(drvPath, drv);
            else if (drv.version === undefined)
                this.checkInputAddressed(drvPath, drv, name, bytes, spans);
            else
                this.checkOther(drvPath, drv, name);
        }
        catch (e) {
            if (e instanceof errors_NixPlanError && e.code === 'malformed')
                throw new errors_NixPlanError('bundle', `${e.message} (in '${drvPath}')`);
            throw e;
        }
        finally {
            this.current = undefined;
        }
        this.fromStore.release((p) => this.hasher.has(p));
    }
    checkFixed(drvPath, drv, paths) {
        for (const o of drv.outputs) {
            const want = paths.get(o.name) ?? '';
            if (o.path !== want)
                throw wrong(drvPath, `declares fixed output '${o.name}' at '${o.path}', but its hash gives '${want}'`);
            this.expectEnv(drvPath, drv, o.name, want);
            this.declare(want, { drvPath, output: o.name, fixed: { hashAlgo: o.hashAlgo, hash: o.hash } });
        }
        this.hasher.record(drvPath, drv);
    }
    /** Floating content-addressed or impure outputs (kind.ts): no path until built. */
    checkFloating(drvPath, drv) {
        for (const o of drv.outputs)
            if (o.path !== '')
                throw wrong(drvPath, `gives its floating output '${o.name}' the path '${o.path}', which is only known once built`);
        this.hasher.record(drvPath, drv); // refuses a mixture of kinds
    }
    /**
     * Input-addressed `Derive(…)`: its outputs filled in as Nix fills them must give back exactly its
     * bytes, which proves every output path and every variable named after an output at once.
     */
    checkInputAddressed(drvPath, drv, name, bytes, spans) {
        // On the bytes themselves when the parser said where the parts are: the .drv is written out
        // again with its outputs filled in only when that check fails, to say what is wrong.
        const filled = (spans !== undefined && this.checkInPlace(drv, name, bytes, spans)) ||
            this.hasher.fillOutputs(drv, name);
        if (filled.hash.kind === 'deferred') {
            this.checkDeferred(drvPath, drv);
            this.hasher.record(drvPath, drv, filled.hash);
            return;
        }
        if (!sameBytes(filled.bytes, bytes)) {
            drv.outputs.forEach((o, i) => {
                const want = filled.paths[i] ?? '';
                if (o.path !== want)
                    throw wrong(drvPath, `has output '${o.name}' at '${o.path}', but Nix computes '${want}'`);
                this.expectEnv(drvPath, drv, o.name, want);
            });
            throw wrong(drvPath, 'does not read back as Nix writes it with its outputs filled in');
        }
        drv.outputs.forEach((o, i) => {
            if (envGet(drv, o.name) === undefined)
                this.expectEnv(drvPath, drv, o.name, filled.paths[i] ?? '');
            this.declare(o.path, { drvPath, output: o.name });
        });
        this.hasher.record(drvPath, drv, filled.hash);
    }
    /** `hasher.checkFilled` of a parsed .drv: its filled form when that is exactly `bytes`. */
    checkInPlace(drv, name, bytes, spans) {
        const holes = [];
        drv.env.forEach((e, i) => {
            const o = outputNamed(drv.outputs, e.key);
            if (o !== undefined)
                holes.push({ start: spans.envValues[2 * i], end: spans.envValues[2 * i + 1], output: o.name });
        });
        return this.hasher.checkFilled(bytes, spans, holes, drv, name);
    }
    /** Outputs of a derivation deferred by its inputs: no paths yet. */
    checkDeferred(drvPath, drv) {
        for (const o of drv.outputs)
            if (o.path !== '')
                throw wrong(drvPath, `has output '${o.name}' at '${o.path}', but its inputs defer it (no path before they are built)`);
    }
    /** A `DrvWithVersion` derivation: its outputs compared one by one. */
    checkOther(drvPath, drv, name) {
        const hash = this.hasher.hashModulo(drvPath);
        if (hash.kind === 'deferred') {
            this.checkDeferred(drvPath, drv);
            return;
        }
        const paths = this.hasher.outputPaths(drv, name);
        for (const o of drv.outputs) {
            const want = paths.get(o.name) ?? '';
            if (o.path !== want)
                throw wrong(drvPath, `has output '${o.name}' at '${o.path}', but Nix computes '${want}'`);
            this.expectEnv(drvPath, drv, o.name, want);
            this.declare(o.path, { drvPath, output: o.name });
        }
    }
    /** Indexes a declaration. */
    declare(path, declaration) {
        if (this.options.indexOutputs !== true)
            return;
        const known = this.declared.get(path);
        if (known === undefined)
            this.declared.set(path, declaration);
        else if (Array.isArray(known))
            known.push(declaration);
        else
            this.declared.set(path, [known, declaration]);
    }
    expectEnv(drvPath, drv, output, path) {
        const value = envOf(drv, output);
        if (value === undefined)
            throw wrong(drvPath, `has no environment variable '${output}' (it should be '${path}')`);
        if (value !== path)
            throw wrong(drvPath, `has environment variable '${output}' = '${value}', but it should be '${path}'`);
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/proof.ts
// Proof before trust: every path of a plan must prove itself, or be covered by a trusted signature.
//
// A `.drv`, a `toFile` text and a source name themselves by their content (the verifier recomputes
// their paths), and so does the output of a fixed-output derivation whose content hashes to the
// path its `.drv` declares. Anything else a plan carries is a build output: an input-addressed path
// whose name says how it was built, not what it holds, so only a signature by a key the user
// trusts (over the manifest, which covers the stream's sha256 and so every byte) proves it. Without
// one it is refused, naming the first such path, unless the user explicitly opted out
// (`--no-check-sigs`, counted in the trust report). Also: an output's deriver, when the plan holds
// it, must declare the output; and a `sources` bundle carries no build output but outputs of the
// plan's own derivations (fixed outputs, and outputs its evaluation read: import from derivation).


/**
 * The proof of each path of a plan, fed in stream order (`entry`), and the checks that need every
 * .drv first (`finish`). Memory: the paths that carry a deriver, and the build outputs of a
 * `sources` bundle.
 */
class PathProofs {
    options;
    unprovenCount = 0;
    firstUnproven;
    /** Paths with a deriver, checked against the plan's derivations at the end. */
    derived = [];
    /** Build outputs of a `sources` bundle: each must be an output some .drv of the plan declares. */
    sourceOutputs = [];
    constructor(options) {
        this.options = options;
    }
    /** Paths accepted without proof (with `--no-check-sigs`; otherwise refused before counting). */
    get unproven() {
        return this.unprovenCount;
    }
    /** The first of them. */
    get firstUnprovenPath() {
        return this.firstUnproven;
    }
    /**
     * The proof of one entry, given the kind the verifier found (`output`: not content-addressed).
     * Refuses (exit 4) a build output no signature covers, unless the user opted out.
     */
    entry(path, kind, deriver) {
        if (deriver !== '')
            this.derived.push({ path, deriver });
        if (kind !== 'output')
            return 'content-address';
        if (this.options.include === 'drvs')
            throw new errors_NixPlanError('bundle', `'${path}' is not the hash of its contents, but a 'drvs' bundle holds only content-addressed paths: the bundle was altered`);
        // A `sources` bundle's outputs are judged at the end, once every .drv declared its outputs.
        if (this.options.include === 'sources')
            this.sourceOutputs.push(path);
        return this.unprovenOrSigned(path, this.options.include === 'sources');
    }
    unprovenOrSigned(path, deferRefusal) {
        if (this.options.signed)
            return 'signature';
        this.unprovenCount++;
        this.firstUnproven ??= path;
        if (!this.options.noCheckSigs && !deferRefusal)
            throw unprovenError(path, this.options.optionNames);
        return 'unproven';
    }
    /**
     * The checks that need every .drv of the plan: each deriver the plan holds declares what names
     * it as its deriver, and each build output of a `sources` bundle is an output of a .drv of the
     * plan: a fixed output whose content did not hash to its path (an algorithm the verifier does not
     * compute; `entry` counted it as unproven), or an output the plan's evaluation read (import from
     * derivation), which only a trusted signature admits, whatever `--no-check-sigs` says. `declarations` answers which .drv of the plan
     * declares a path; `inPlan` whether a .drv is in the plan.
     */
    finish(declarations, inPlan) {
        for (const { path, deriver } of this.derived)
            if (inPlan(deriver) && !declarations(path).some((d) => d.drvPath === deriver))
                throw new errors_NixPlanError('bundle', `'${path}' names '${deriver}' as its deriver, but that derivation of the plan has no such output: the bundle was altered`);
        const names = this.options.optionNames;
        for (const path of this.sourceOutputs) {
            const declared = declarations(path);
            if (declared.length === 0)
                throw new errors_NixPlanError('bundle', `'${path}' is a build output, but a 'sources' bundle may carry only outputs of the plan's own derivations: the bundle was altered`);
            // An input-addressed output the plan's evaluation read: a signature is its only proof, and
            // --no-check-sigs does not stand in for one here (a `sources` plan otherwise proves itself).
            if (!declared.some((d) => d.fixed !== undefined) && !this.options.signed)
                throw new errors_NixPlanError('signature', `'${path}' is a build output of '${declared[0].drvPath}' that the plan's evaluation read (import from derivation); a 'sources' bundle carries one only when a trusted key signed the plan, and no trusted key did (${optionName(names, 'noCheckSigs')} does not cover it): ${signedAdvice(names)}`);
        }
        if (this.firstUnproven !== undefined && !this.options.noCheckSigs && !this.options.signed)
            throw unprovenError(this.firstUnproven, this.options.optionNames);
    }
}
/** The refusal of a path nothing proves, naming the options as `names` spells them. */
function unprovenError(path, names) {
    return new errors_NixPlanError('signature', `'${path}' is a build output, whose content only a signature by a trusted key can vouch for, and no trusted key signed this plan: ${proofAdvice(names)}`);
}
/** Where the key that signed the plan is given (only a signature admits what is refused). */
function signedAdvice(names) {
    if (names?.style !== 'input')
        return 'give the public key that signed the plan with --trusted-key (the actions: trusted-keys)';
    return `give the public key that signed the plan in ${optionName(names, 'trustedKey')}`;
}

;// CONCATENATED MODULE: ./src/core/bundle/reader.ts
// Reading a plan bundle: the streaming verifier, over the bundle's source (source.ts), its
// decoding (decode.ts) and the rules it applies (policy.ts), whose public names it re-exports.
//
// Verification is one streaming pass that checks everything `nix-store --import` relies on before
// a byte reaches Nix: the skippable frame and the manifest (schema, checksum, realm, signatures),
// limits (absolute and compression ratio) before decompressing, the data frame's structure (one
// frame ending at end of file), both digests and sizes, every NAR and entry, store paths, that
// references are closed over bundle ∪ store and come first, that every .drv/text/source path is
// the hash of its content, counts and roots. Memory is bounded by the limits, not by the bundle.










/**
 * Verifies a bundle completely in one streaming pass (see the module comment) and returns what
 * it holds; throws a NixPlanError ('bundle', 'malformed', 'limit', 'closure', 'realm',
 * 'signature') at the first problem. Pass a path or an open source.
 */
async function verifyBundle(bundle, options = {}) {
    const source = typeof bundle === 'string' ? await openBundle(bundle) : bundle;
    try {
        return await verifySource(source, options);
    }
    finally {
        if (typeof bundle === 'string')
            await source.close();
    }
}
async function verifySource(source, options) {
    const limits = { ...DEFAULT_READER_LIMITS, ...options.limits };
    const head = await readBundleHead(source, limits.maxManifestSize);
    const { manifest } = head;
    checkRealm(manifest, options.storeDir, source.name, options.optionNames);
    const trustedSignatures = checkSignatures(manifest, options.trustedKeys, options.requireSignature);
    checkSizeLimits(manifest, limits, options.optionNames);
    const exportLimits = exportLimitsFor(manifest, limits);
    const counts = emptyCounts();
    const narBytes = emptyCounts();
    const closure = new ClosureCheck(limits);
    const derivations = new DerivationChecks(manifest);
    const parseDerivations = options.parseDerivations !== false;
    // Output paths are checked as Nix checks them on import; relocation recomputes them instead.
    const outputs = parseDerivations
        ? new DerivationOutputChecks(manifest.storeDir, {
            readStore: options.readStoreDerivation,
            indexOutputs: true,
        })
        : undefined;
    const known = outputs !== undefined && options.known?.checks.storeDir === manifest.storeDir ? options.known : undefined;
    const noCheckSigs = options.noCheckSigs === true;
    const proofs = new PathProofs({
        include: manifest.include,
        signed: trustedSignatures.length > 0,
        noCheckSigs,
        optionNames: options.optionNames,
    });
    // Every NAR byte counts against what the manifest declares, as it arrives.
    const declared = declaredNarBytes(manifest);
    let narSeen = 0;
    const onNarBytes = (chunk, index) => {
        narSeen += chunk.length;
        if (narSeen > declared)
            throw new errors_NixPlanError('bundle', `'${source.name}' holds more than the ${declared} NAR bytes its manifest records (entry ${index}): the bundle is corrupt or lies about its sizes`);
        options.onNarBytes?.(chunk, index);
    };
    let frame;
    const decoded = decompressedStream(source, head, limits, { onFrame: (info) => (frame = info) });
    const data = options.onStreamBytes === undefined ? decoded : tapChunks(decoded, options.onStreamBytes);
    let parsed;
    const onDerivation = (head, tail, bytes, layout) => {
        parsed = { head, tail, bytes, layout };
    };
    for await (const entry of readExport(data, exportLimits, {
        storeDir: manifest.storeDir,
        onNarBytes,
        ...(options.keptFiles !== undefined && { keptFiles: options.keptFiles }),
    })) {
        closure.arrive(entry.path);
        parsed = undefined;
        const same = known !== undefined && entry.path.endsWith('.drv') && known.checks.checked(entry.path)
            ? known.head(entry.path)
            : undefined;
        const verified = classifyEntry(entry, manifest, exportLimits, parseDerivations && same === undefined ? derivations : undefined, onDerivation);
        const drv = parsed; // set by classifyEntry, through onDerivation
        if (same !== undefined) {
            derivations.checkSame(entry.path, same.system, same.outputs);
            outputs.adopt(entry.path, same.outputs, known.checks);
        }
        else if (outputs !== undefined && drv !== undefined) {
            const pending = outputs.checkSpans(entry.path, drv.head, drv.tail, drv.bytes, drv.layout);
            if (pending !== undefined)
                await pending;
        }
        proofs.entry(entry.path, verified.kind, entry.deriver);
        closure.add(entry.path, entry.references);
        counts[verified.kind]++;
        narBytes[verified.kind] += entry.nar.narSize;
        checkRunningTotals(manifest, verified.kind, counts, narBytes, source.name);
        await options.onEntry?.(drv === undefined ? verified : { ...verified, derivation: drv.head });
    }
    checkTotals(manifest, { counts, narBytes, has: (p) => closure.has(p) }, source.name);
    if (parseDerivations)
        derivations.finish();
    if (outputs !== undefined)
        proofs.finish((p) => outputs.declarations(p), (p) => p.endsWith('.drv') && closure.has(p));
    // One question to the store, about every path the bundle refers to but does not hold.
    closure.finish(await validAmong(closure.missing(), options));
    if (frame === undefined)
        throw new errors_NixPlanError('internal', 'the data frame was not scanned to its end');
    return {
        manifest,
        bundleBytes: head.bundleBytes,
        paths: closure.paths,
        counts,
        narBytes,
        trustedSignatures,
        storeReferences: closure.storeReferences,
        unproven: proofs.unproven,
        noCheckSigs,
        declaredOutputs: () => outputs?.declaredPaths() ?? [],
        shapes: derivations.shapes.needs(),
        frame: { windowSize: frame.windowSize, blocks: frame.blocks },
        ...(!parseDerivations && { derivations }),
        ...(outputs !== undefined && { outputChecks: outputs }),
    };
}
/** Which of `paths` are valid in the target store, by the options' batch or per-path question. */
async function validAmong(paths, options) {
    if (paths.length === 0)
        return new Set();
    if (options.validInStore !== undefined)
        return options.validInStore(paths);
    const valid = new Set();
    if (options.isValidInStore !== undefined)
        for (const p of paths)
            if (await options.isValidInStore(p))
                valid.add(p);
    return valid;
}
/** Passes each chunk to `fn` before handing it on. */
async function* tapChunks(source, fn) {
    for await (const chunk of source) {
        fn(chunk);
        yield chunk;
    }
}

;// CONCATENATED MODULE: ./src/core/bundle/index.ts
// The plan bundle: its manifest, its framing, writing one, and reading and verifying one.
// Outside the bundle folder, import from here.













;// CONCATENATED MODULE: ./src/core/lines.ts
// Lines of a byte stream as it comes (an evaluator's stderr, a host's output): whole lines passed
// on as they end, with a bound on what is held, so a program printing one endless line cannot make
// this process hold more than one piece of it.

/** The most a line splitter holds: a longer line is passed on in pieces of at most this size. */
const LINE_PIECE_MAX = 64 * 1024;
/**
 * Cuts the chunks written into lines, whatever the chunking: each line is passed to `sink` once
 * it ends, with its `\n` (and its `\r`, when `\r\n` ends it). A line longer than `max` bytes is
 * passed on in pieces of at most `max` bytes as it comes, its last piece ending with the `\n`;
 * a piece is not cut inside a UTF-8 sequence or between a `\r` and what follows (so neither is
 * split across two pieces) unless the piece would be empty. Bytes given are copied: the caller
 * may reuse its chunks.
 */
function lineSplitter(sink, max = LINE_PIECE_MAX) {
    if (!Number.isInteger(max) || max < 1)
        throw new RangeError(`a line piece must be at least 1 byte, not ${max}`);
    let held = [];
    let heldBytes = 0;
    let continued = false;
    const pass = (bytes, next) => {
        const was = continued;
        continued = next;
        sink(bytes, was);
    };
    /** `bytes` of the current line; `ends` when its last byte is the line's `\n`. */
    const take = (bytes, ends) => {
        while (heldBytes + bytes.length > max) {
            const room = max - heldBytes;
            const piece = concatBytes([...held, bytes.subarray(0, room)]);
            const cut = pieceEnd(piece);
            pass(piece.subarray(0, cut), true);
            held = cut < piece.length ? [piece.slice(cut)] : [];
            heldBytes = piece.length - cut;
            bytes = bytes.subarray(room);
        }
        if (ends) {
            pass(held.length === 0 ? bytes.slice() : concatBytes([...held, bytes]), false);
            held = [];
            heldBytes = 0;
        }
        else if (bytes.length > 0) {
            held.push(bytes.slice());
            heldBytes += bytes.length;
        }
    };
    return {
        write(chunk) {
            for (let start = 0; start < chunk.length;) {
                const nl = chunk.indexOf(0x0a, start);
                const stop = nl === -1 ? chunk.length : nl + 1;
                take(chunk.subarray(start, stop), nl !== -1);
                start = stop;
            }
        },
        end() {
            if (heldBytes > 0)
                pass(concatBytes(held), false);
            held = [];
            heldBytes = 0;
            continued = false;
        },
    };
}
/**
 * Where a full piece is cut: before an unfinished UTF-8 sequence at its end, else before a final
 * `\r` (whose `\n` may follow); its whole length when that would leave nothing.
 */
function pieceEnd(piece) {
    const n = piece.length;
    // The last lead byte among the last four, and how many bytes its sequence needs.
    for (let i = n - 1; i >= Math.max(0, n - 4); i--) {
        const b = piece[i];
        if ((b & 0xc0) === 0x80)
            continue; // a continuation byte: look further back
        const need = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xc0 && b < 0xe0 ? 2 : 1;
        if (n - i < need && i > 0)
            return i;
        break;
    }
    return piece[n - 1] === 0x0d && n > 1 ? n - 1 : n;
}

;// CONCATENATED MODULE: ./src/nix/store.ts
// Reads a closure out of a Nix store with a handful of processes (not one per path): one query for
// the closure, one `nix-store --dump-db` per batch of paths for registration info, then the files.




/**
 * Parses `nix-store --dump-db` output: per path its name, NAR hash, NAR size, deriver (or an empty
 * line), the number of references and the references, each on its own line.
 */
function parseDumpDb(text) {
    const lines = text.split('\n');
    const out = [];
    let i = 0;
    const bad = (detail) => new errors_NixPlanError('nix', `unexpected nix-store --dump-db output at line ${i + 1}: ${detail}`);
    while (i < lines.length && lines[i] !== '') {
        const path = lines[i] ?? '';
        const hashText = lines[i + 1];
        const sizeText = lines[i + 2];
        const deriver = lines[i + 3];
        const countText = lines[i + 4];
        if (hashText === undefined || sizeText === undefined || deriver === undefined || countText === undefined)
            throw bad(`truncated entry for '${path}'`);
        const count = Number(countText);
        const narSize = Number(sizeText);
        if (!Number.isSafeInteger(count) || count < 0 || !/^\d+$/.test(countText))
            throw bad('bad reference count');
        if (!Number.isSafeInteger(narSize) || !/^\d+$/.test(sizeText))
            throw bad('bad NAR size');
        let narHash;
        try {
            const h = parseHash(hashText, 'sha256');
            if (h.algo !== 'sha256')
                throw new Error(h.algo);
            narHash = toHex(h.bytes);
        }
        catch {
            throw bad(`bad NAR hash '${hashText}'`);
        }
        const references = lines.slice(i + 5, i + 5 + count);
        if (references.length !== count)
            throw bad(`truncated references of '${path}'`);
        out.push({ path, narHash, narSize, deriver, references });
        i += 5 + count;
    }
    return out;
}
/** Parses `nix-store --version` ("nix-store (Nix) 2.8.0", "nix-store (Lix, like Nix) 2.91.1"). */
function parseNixVersion(text) {
    const m = /(\d+\.\d+(?:\.\d+)?(?:[-+.\w]*)?)\s*$/.exec(text.trim().split('\n')[0] ?? '');
    if (m === null)
        throw new errors_NixPlanError('nix', `cannot read the Nix version from '${text.trim()}'`);
    return m[1] ?? '';
}
/** Parameters of a store URI (`local?root=/x&real=/y`, `/x`, `daemon`). */
function storeUriParams(uri) {
    if (uri.startsWith('/'))
        return { root: uri.split('?')[0] ?? uri };
    const q = uri.indexOf('?');
    if (q < 0)
        return {};
    const params = storeUriQuery(uri.slice(q + 1), uri);
    const root = params.get('root');
    const real = params.get('real');
    return { ...(root !== undefined && { root }), ...(real !== undefined && { real }) };
}
/**
 * A store URI's query as Nix reads it (`decodeQuery`): `&`-separated `key=value` pairs, values
 * only percent-decoded (a `+` stays a `+`, unlike in HTML forms), a pair without `=` ignored,
 * and the first of two equal keys kept. A malformed `%` escape is an error, as in Nix.
 */
function storeUriQuery(query, uri = query) {
    const out = new Map();
    for (const pair of query.split('&')) {
        const eq = pair.indexOf('=');
        if (eq < 0)
            continue;
        const key = pair.slice(0, eq);
        let value;
        try {
            value = decodeURIComponent(pair.slice(eq + 1));
        }
        catch {
            throw new errors_NixPlanError('usage', `invalid store URI '${uri}': '${pair}' is not percent-encoded correctly`);
        }
        if (!out.has(key))
            out.set(key, value);
    }
    return out;
}
/**
 * Where the files of `storeDir` physically are: `realStoreDir` when given, else the store URI's
 * `real=`, else `<root>/nix/store` for a chroot store (`root=`, or a URI that is a path: Nix puts
 * the files there whatever the logical store dir is), else the store dir itself (NIX_STORE_DIR
 * stores are real).
 */
function physicalStoreDir(storeDir, options = {}) {
    if (options.realStoreDir !== undefined)
        return options.realStoreDir;
    if (options.store === undefined)
        return storeDir;
    const { root, real } = storeUriParams(options.store);
    if (real !== undefined)
        return real;
    if (root !== undefined)
        return root.replace(/\/+$/, '') + '/nix/store';
    return storeDir;
}
/** Most bytes of paths passed on one command line (Linux allows ~2 MB of argv and environment). */
const ARGV_BUDGET = 256 * 1024;
/** Splits `paths` into command-line-sized batches. */
function batchPaths(paths, budget = ARGV_BUDGET) {
    const batches = [];
    let current = [];
    let size = 0;
    for (const p of paths) {
        if (current.length > 0 && size + p.length + 1 > budget) {
            batches.push(current);
            current = [];
            size = 0;
        }
        current.push(p);
        size += p.length + 1;
    }
    if (current.length > 0)
        batches.push(current);
    return batches;
}
/** The non-empty lines a Nix command printed (store paths, one a line), trimmed. */
function outputLines(out) {
    return out
        .toString('utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '');
}
/** A Nix store seen through its command-line tools and its files. */
class NixStore {
    runner;
    options;
    storeDirCache;
    constructor(runner, options = {}) {
        this.runner = runner;
        this.options = options;
    }
    /** `--store URI` when a store was chosen, for every Nix command that talks to it. */
    storeArgs() {
        return this.options.store === undefined ? [] : ['--store', this.options.store];
    }
    /** The version of the Nix on PATH (`nix-store --version`), e.g. "2.8.0". */
    async version() {
        const { stdout } = await this.runner.run('nix-store', ['--version']);
        return parseNixVersion(stdout.toString('utf8'));
    }
    /** The store's logical directory (`builtins.storeDir`), asked once. */
    async storeDir() {
        if (this.storeDirCache === undefined) {
            const { stdout } = await this.runner.run('nix-instantiate', [
                ...this.storeArgs(),
                '--eval',
                '--json',
                '-E',
                'builtins.storeDir',
            ]);
            const value = JSON.parse(stdout.toString('utf8'));
            if (typeof value !== 'string')
                throw new errors_NixPlanError('nix', 'builtins.storeDir is not a string');
            this.storeDirCache = value;
        }
        return this.storeDirCache;
    }
    /** Tells the store its directory when it is already known (e.g. from an evaluated .drv path). */
    setStoreDir(storeDir) {
        this.storeDirCache = storeDir;
    }
    /** The file-system location of a store path. */
    async realPath(path) {
        const storeDir = await this.storeDir();
        const real = physicalStoreDir(storeDir, this.options);
        return real === storeDir ? path : real + path.slice(storeDir.length);
    }
    /**
     * `realPath` without the round trip, once the store dir is known (`setStoreDir` or an awaited
     * `storeDir()`): for the thousands of paths of a closure.
     */
    realPathSync(path) {
        const storeDir = this.storeDirCache;
        if (storeDir === undefined)
            throw new errors_NixPlanError('internal', 'the store dir is not known yet');
        const real = physicalStoreDir(storeDir, this.options);
        return real === storeDir ? path : real + path.slice(storeDir.length);
    }
    /**
     * A store object that is one regular file, read synchronously: its bytes and executable bit, or
     * undefined when it is not a regular file. Store files are small and never change, and one
     * `lstat` + `readFile` on the calling thread costs microseconds, where each `fs.promises` call
     * is a round trip through libuv's thread pool (which zstd shares): for tens of thousands of
     * `.drv` files that waiting dominated.
     */
    readRegularFileSync(path, maxSize = Infinity) {
        const real = this.realPathSync(path);
        const st = (0,external_node_fs_namespaceObject.lstatSync)(real);
        if (!st.isFile() || st.size > maxSize)
            return undefined;
        const buf = (0,external_node_fs_namespaceObject.readFileSync)(real);
        return {
            bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.length),
            executable: (st.mode & 0o100) !== 0,
        };
    }
    /** A store object's bytes when it is one regular file (a .drv, a text file). */
    async readFile(path) {
        return new Uint8Array(await (0,external_node_fs_promises_namespaceObject.readFile)(await this.realPath(path)));
    }
    /** Size and executable bit of a store object that is one regular file; undefined otherwise. */
    async fileInfo(path) {
        const st = await (0,external_node_fs_promises_namespaceObject.lstat)(await this.realPath(path));
        return st.isFile() ? { size: st.size, executable: (st.mode & 0o100) !== 0 } : undefined;
    }
    /** The closure of `paths` (one `nix-store -q --requisites`), dependencies first. */
    async requisites(paths, includeOutputs = false) {
        const out = [];
        const seen = new Set();
        const flags = ['--query', '--requisites', ...(includeOutputs ? ['--include-outputs'] : [])];
        await this.queryLines(flags, paths, (p) => {
            if (!seen.has(p)) {
                seen.add(p);
                out.push(p);
            }
        });
        return out;
    }
    /** Each line `nix-store FLAGS PATHS…` prints, run once per command-line-sized batch of `paths`. */
    async queryLines(flags, paths, line) {
        for (const batch of batchPaths(paths)) {
            const { stdout } = await this.runner.run('nix-store', [...this.storeArgs(), ...flags, ...batch]);
            for (const l of outputLines(stdout))
                line(l);
        }
    }
    /** Registration info of `paths` (one `nix-store --dump-db` per command-line-sized batch). */
    async pathInfos(paths) {
        const infos = new Map();
        for await (const batch of this.pathInfoBatches(paths, ARGV_BUDGET))
            for (const info of batch)
                infos.set(info.path, info);
        return infos;
    }
    /**
     * Registration info of `paths`, in their order, one batch (one `nix-store --dump-db`) at a
     * time, with up to `parallel` Nix processes answering ahead: a consumer starts on the first
     * batch while Nix answers the rest. The first processes start at the call, not at iteration.
     */
    pathInfoBatches(paths, budget = ARGV_BUDGET, parallel = 1) {
        // References name the same few thousand paths again and again: sharing one string per path
        // (instead of slices that keep each whole --dump-db output alive) keeps memory flat.
        const canonical = new Map(paths.map((p) => [p, p]));
        const intern = (p) => {
            const c = canonical.get(p);
            if (c !== undefined)
                return c;
            const copy = Buffer.from(p, 'utf8').toString('utf8');
            canonical.set(copy, copy);
            return copy;
        };
        const batches = batchPaths(paths, budget);
        const started = [];
        const start = (i) => {
            const batch = batches[i];
            if (batch === undefined || started[i] !== undefined)
                return;
            const answer = this.dumpDb(batch, intern);
            answer.catch(() => undefined); // awaited in turn; a consumer that stops early leaves it
            started[i] = answer;
        };
        for (let i = 0; i < parallel; i++)
            start(i);
        return (async function* () {
            for (let i = 0; i < batches.length; i++) {
                start(i);
                const infos = await started[i];
                start(i + parallel);
                if (infos !== undefined)
                    yield infos;
            }
        })();
    }
    /** One `nix-store --dump-db` of `batch`: its registrations in the batch's order. */
    async dumpDb(batch, intern) {
        const { stdout } = await this.runner.run('nix-store', [...this.storeArgs(), '--dump-db', ...batch]);
        const byPath = new Map();
        for (const info of parseDumpDb(stdout.toString('utf8')))
            byPath.set(info.path, {
                path: intern(info.path),
                narHash: info.narHash,
                narSize: info.narSize,
                deriver: info.deriver === '' ? '' : intern(info.deriver),
                references: info.references.map(intern),
            });
        return batch.map((p) => {
            const info = byPath.get(p);
            if (info === undefined)
                throw new errors_NixPlanError('nix', `nix-store --dump-db did not describe '${p}'`);
            return info;
        });
    }
    /** Which of `paths` are valid (one `nix-store --check-validity --print-invalid` per batch). */
    async invalidPaths(paths) {
        const invalid = new Set();
        await this.queryLines(['--check-validity', '--print-invalid'], paths, (p) => invalid.add(p));
        return invalid;
    }
    /** The deriver Nix registered for `path`, or undefined when it knows none (`unknown-deriver`). */
    async deriver(path) {
        const { stdout } = await this.runner.run('nix-store', [
            ...this.storeArgs(),
            '--query',
            '--deriver',
            path,
        ]);
        const drvPath = stdout.toString('utf8').trim();
        return drvPath.endsWith('.drv') ? drvPath : undefined;
    }
    /** `nix-store --export` of `paths`, handed to `onChunk` as Nix writes it (never held whole). */
    async export(paths, onChunk) {
        await this.runner.run('nix-store', [...this.storeArgs(), '--export', ...paths], { onStdout: onChunk });
    }
    /**
     * Builds (or substitutes) `drvPaths`' outputs with one `nix-store --realise`; returns the output
     * paths it printed. `addRoot` makes indirect GC roots `addRoot`, `addRoot-2`, … as Nix names them;
     * `onLog` receives Nix's build log as it is written.
     */
    async realise(drvPaths, options = {}) {
        if (drvPaths.length === 0)
            return [];
        const rootArgs = options.addRoot === undefined ? [] : ['--add-root', options.addRoot, '--indirect'];
        const { stdout } = await this.runner.run('nix-store', [...this.storeArgs(), '--realise', ...rootArgs, ...(options.extraArgs ?? []), ...drvPaths], { onStderr: options.onLog });
        return outputLines(stdout);
    }
}

;// CONCATENATED MODULE: ./src/nix/evaluate.ts
// Evaluates once: every flake installable of a plan in one `nix` process, every attribute of a file
// in one `nix-instantiate`, .drv paths taken as they are; each root keeps where it came from.
//
// Why these commands (read from Nix's sources, 2.8 to 2.34):
// - `nix path-info --derivation A B` gathers its results in one StorePathSet and prints it sorted
//   (2.8) or topologically sorted (2.34): which drv came from which installable is lost, so it is
//   used only for a single installable. `nix eval` takes one installable.
// - `nix build --dry-run --json A B …` appends each installable's result in the order given
//   (duplicates kept) and prints them as one JSON array: the one command that evaluates several
//   installables in one process and says which result is whose. Before printing it runs Nix's
//   printMissing (a walk over the closure that may ask substituters about outputs, and lists every
//   path on stderr); it builds, links and fetches nothing.
// - `nix-instantiate FILE -A a -A b` prints each attribute's derivations in order with nothing
//   between them: an attribute with none (`{}`) and one with two (`[d1 d2]`) look like one each.
//   `nix-instantiate --eval --json -A a.type -A a.drvPath …` prints exactly two values per
//   attribute, the drvPath attribute `nix-instantiate -A a` itself reads; `--read-write-mode`
//   writes the .drv files as plain instantiation does.
//
// What the evaluators say on stderr (warnings, `trace:` lines, a substituter out of reach) is the
// user's to see, as `nix-instantiate` shows it: it reaches `log` when one is given, line by line as
// it comes, without what is nix-plan's doing rather than the user's expression's: the list of every
// path a build would make that `nix build --dry-run` prints (Nix's printMissing), and
// `nix-instantiate`'s advice to give `--add-root` (the closure is read at once, and nix-plan has
// no root to add for the user).





/** The heading of Nix's printMissing lists (`these 12 derivations will be built:`, …). */
const MISSING_HEADING = /^(?:this|these [0-9]+) (?:derivations?|paths?) will be (?:built|fetched)\b.*:$|^don't know how to build these paths/;
/** Nix's warnings about how nix-plan called it, not about what it evaluated. */
const ABOUT_THE_CALL = /^warning: you did not specify '--add-root'/;
/**
 * A sink for an evaluator's stderr that passes each line on to `log` as it ends, except Nix's
 * printMissing lists (a heading and the indented paths under it) and its warnings about how it was
 * called; `end` passes on an unfinished last line. A line longer than the core's line splitter
 * holds is passed on in pieces as it comes, each piece going where its line's first one went.
 */
function evaluationMessages(log) {
    let listing = false;
    let dropped = false;
    return lineSplitter((bytes, continued) => {
        if (continued) {
            if (!dropped)
                log(bytes);
            return;
        }
        dropped = true;
        if (listing && bytes[0] === 0x20 && bytes[1] === 0x20)
            return;
        const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1').trimEnd();
        listing = MISSING_HEADING.test(text);
        dropped = listing || ABOUT_THE_CALL.test(text);
        if (!dropped)
            log(bytes);
    });
}
/**
 * Runs one evaluator command with its stderr passed through `evaluationMessages` to `log` (when
 * given); a failure's message then says its output is above rather than repeating it.
 */
async function runEvaluator(store, cmd, args, log) {
    if (log === undefined)
        return (await store.runner.run(cmd, args)).stdout;
    const messages = evaluationMessages(log);
    try {
        return (await store.runner.run(cmd, args, { onStderr: messages.write })).stdout;
    }
    finally {
        messages.end();
    }
}
/** Flake commands need these on 2.8, where flakes are experimental; harmless on newer Nix. */
const FLAKE_FEATURES = ['--extra-experimental-features', 'nix-command flakes'];
/**
 * Refuses a file argument that does not exist before Nix is started, as a usage error naming it
 * (Nix would fail with its own message and nix-plan's exit code for a failed evaluation).
 * Lookup paths (`<nixpkgs>`) and URLs are Nix's to resolve.
 */
async function assertReadable(file) {
    if (file.startsWith('<') || /^[a-z][a-z0-9+.-]*:\/\//i.test(file))
        return;
    try {
        await (0,external_node_fs_promises_namespaceObject.access)(file);
    }
    catch (e) {
        const why = e.code === 'ENOENT' ? 'no such file' : e.message;
        throw new errors_NixPlanError('usage', `cannot read the file to evaluate '${file}': ${why}`);
    }
}
/** The directory of a store path (the realm it belongs to). */
function storeDirOf(path) {
    return path.slice(0, path.lastIndexOf('/'));
}
/**
 * The per-installable results of `nix build --dry-run --json`: one element per installable, in
 * order. An element is `{drvPath, outputs}` for a derivation (Nix 2.8 and later) or `{path}` for a
 * store path that is not built; anything but a .drv path is refused, naming its installable.
 */
function parseDryRunJson(text, installables) {
    let parsed;
    try {
        parsed = JSON.parse(text);
    }
    catch {
        throw new errors_NixPlanError('nix', `nix build --dry-run --json printed no JSON: '${text.trim().slice(0, 200)}'`);
    }
    if (!Array.isArray(parsed) || parsed.length !== installables.length)
        throw new errors_NixPlanError('nix', `nix build --dry-run --json gave ${Array.isArray(parsed) ? parsed.length : 'no list of'} results for ${installables.length} installables`);
    return installables.map((installable, i) => {
        const item = parsed[i];
        const fields = typeof item === 'object' && item !== null ? item : {};
        const path = typeof fields['drvPath'] === 'string' ? fields['drvPath'] : fields['path'];
        if (typeof path !== 'string' || !path.endsWith('.drv'))
            throw new errors_NixPlanError('nix', `'${installable}' evaluated to ${typeof path === 'string' ? `'${path}'` : 'no store path'}, not a derivation`);
        return { installable, drvPath: path };
    });
}
/** One flake installable: `nix path-info --derivation` (no walk over the closure, nothing printed). */
async function evaluateOneInstallable(installable, evalArgs, store, log) {
    const stdout = await runEvaluator(store, 'nix', [...FLAKE_FEATURES, ...store.storeArgs(), 'path-info', '--derivation', ...evalArgs, installable], log);
    return outputLines(stdout).map((drvPath) => ({ installable, drvPath }));
}
/** Several flake installables in one process (see the top of this file). */
async function evaluateInstallables(installables, evalArgs, store, log) {
    const only = installables[0];
    if (installables.length === 1 && only !== undefined)
        return evaluateOneInstallable(only, evalArgs, store, log);
    const stdout = await runEvaluator(store, 'nix', [
        ...FLAKE_FEATURES,
        ...store.storeArgs(),
        'build',
        '--dry-run',
        '--json',
        '--no-link',
        ...evalArgs,
        ...installables,
    ], log);
    return parseDryRunJson(stdout.toString('utf8'), installables);
}
/**
 * The JSON values `nix-instantiate --eval --json` printed for its `-A`s, in order (Nix 2.8 writes
 * them without separators, newer Nix one a line). Undefined when a value is not a string.
 */
function parseEvalStrings(text) {
    const values = [];
    const token = /\s*("(?:[^"\\]|\\.)*")\s*/y;
    let at = 0;
    while (at < text.length) {
        token.lastIndex = at;
        const m = token.exec(text);
        if (m === null)
            return /^\s*$/.test(text.slice(at)) ? values : undefined;
        values.push(JSON.parse(m[1] ?? '""'));
        at = token.lastIndex;
    }
    return values;
}
/** Selection paths that fail only because an attribute is not one derivation (a list, a plain set). */
const NOT_ONE_DERIVATION = /selection path '[^']*\.(type|drvPath)'/;
/**
 * Each attribute's .drv, when every attribute is one derivation: one `nix-instantiate --eval`
 * selecting `a.type` and `a.drvPath` for each. Undefined when some attribute is not a derivation
 * (Nix says so about a `.type`/`.drvPath` selection path); any other failure is thrown.
 */
async function evaluateAttributes(file, attributes, evalArgs, store, log) {
    const args = [
        ...store.storeArgs(),
        '--eval',
        '--json',
        '--read-write-mode',
        ...evalArgs,
        file,
        ...attributes.flatMap((a) => ['-A', `${a}.type`, '-A', `${a}.drvPath`]),
    ];
    const result = await store.runner.run('nix-instantiate', args, { allowFailure: true });
    if (result.code !== 0 && NOT_ONE_DERIVATION.test(result.stderr))
        return undefined;
    NixCommandError.check('nix-instantiate', args, result, { what: `nix-instantiate ${file}` });
    const values = parseEvalStrings(result.stdout.toString('utf8'));
    if (values?.length !== attributes.length * 2)
        return undefined;
    // Said once the evaluation is taken: one that falls back to the plain one below says it there.
    const said = () => {
        if (log === undefined)
            return;
        const messages = evaluationMessages(log);
        messages.write(Buffer.from(result.stderr));
        messages.end();
    };
    const roots = [];
    for (const [i, attribute] of attributes.entries()) {
        const type = values[2 * i];
        const drvPath = values[2 * i + 1] ?? '';
        if (type !== 'derivation')
            return undefined;
        roots.push({ attribute, drvPath });
    }
    said();
    return roots;
}
/** A file's derivations: labelled by attribute when each is one derivation, else in Nix's order. */
async function evaluateFile(file, attributes, evalArgs, store, log) {
    if (attributes.length > 0) {
        const labelled = await evaluateAttributes(file, attributes, evalArgs, store, log);
        if (labelled !== undefined)
            return labelled;
    }
    // The file's value itself, or attributes that are lists or sets of derivations: every
    // derivation, recorded without an attribute (Nix prints nothing between the attributes).
    const stdout = await runEvaluator(store, 'nix-instantiate', [...store.storeArgs(), ...evalArgs, file, ...attributes.flatMap((a) => ['-A', a])], log);
    return outputLines(stdout).map((drvPath) => ({ drvPath }));
}
/**
 * Evaluates `request` (checked: see `checkEvaluateRequest`) against `store`: one evaluator process
 * for all flake installables and one for the file, and returns the roots in the order asked
 * (duplicates dropped) and the store dir they are in. The evaluators' messages reach `log` when
 * one is given.
 */
async function evaluate(request, store, log) {
    const roots = [];
    const evalArgs = request.evalArgs ?? [];
    const attributes = request.attributes ?? [];
    const installables = request.installables ?? [];
    if (installables.length > 0)
        roots.push(...(await evaluateInstallables(installables, evalArgs, store, log)));
    if (request.file !== undefined)
        roots.push(...(await evaluateFile(request.file, attributes, evalArgs, store, log)));
    for (const drvPath of request.drvPaths ?? [])
        roots.push({ drvPath });
    if (roots.length === 0)
        throw new errors_NixPlanError('usage', 'nothing to export: the evaluation gave no derivations');
    for (const r of roots)
        if (!r.drvPath.startsWith('/') || !r.drvPath.endsWith('.drv'))
            throw new errors_NixPlanError('nix', `the evaluator returned '${r.drvPath}', which is not a .drv path`);
    const dirs = new Set(roots.map((r) => storeDirOf(r.drvPath)));
    if (dirs.size !== 1)
        throw new errors_NixPlanError('realm', `the roots are in different store dirs: ${[...dirs].join(', ')}`);
    const storeDir = [...dirs][0] ?? '';
    const seen = new Set();
    const unique = roots.filter((r) => !seen.has(r.drvPath) && seen.add(r.drvPath) !== undefined);
    return { roots: unique, storeDir };
}
/**
 * The checks of a request that need no Nix: what to evaluate is given, `-A` has its file, `--drv`
 * paths are `.drv` paths and the file exists. Usage errors (exit 2), made before any Nix starts;
 * returns the request, for `evaluate`.
 */
async function checkEvaluateRequest(request) {
    const attributes = request.attributes ?? [];
    const installables = request.installables ?? [];
    if (attributes.length > 0 && request.file === undefined)
        throw new errors_NixPlanError('usage', 'an attribute (-A) needs a file (-f FILE)');
    for (const drvPath of request.drvPaths ?? [])
        if (!drvPath.endsWith('.drv'))
            throw new errors_NixPlanError('usage', `'${drvPath}' is not a derivation (.drv) path`);
    if (installables.length === 0 && request.file === undefined && (request.drvPaths ?? []).length === 0)
        throw new errors_NixPlanError('usage', 'nothing to export: give an installable, -f FILE [-A ATTR], or --drv PATH');
    if (request.file !== undefined)
        await assertReadable(request.file);
    return request;
}

;// CONCATENATED MODULE: ./src/nix/import.ts



/** `nix copy` is behind the nix-command feature on every Nix that has it. */
const NIX_COMMAND = ['--extra-experimental-features', 'nix-command'];
/**
 * Whether the user may `nix-store --import` into the store: Nix 2.15+ says so (`Trusted: 1` in
 * `nix store ping`, `trusted` in its `--json` form); older Nix only tells local from daemon
 * stores, and a local store is ours. `unknown` when it cannot be known (a daemon on old Nix): try
 * and see. The text form comes first: it answers on every Nix in one process (the `--json` form
 * is refused by Nix before 2.15); the JSON form is asked only about a store the text form says
 * nothing of.
 */
async function storeTrust(store) {
    const text = await storePing(store);
    if (text.ok) {
        if (text.trusted === '1')
            return 'trusted';
        if (text.trusted === '0')
            return 'untrusted';
        if (text.url !== undefined && isLocalUrl(text.url))
            return 'trusted';
    }
    const json = await store.runner.run('nix', [...FLAKE_FEATURES, ...store.storeArgs(), 'store', 'ping', '--json'], { allowFailure: true });
    if (json.code === 0) {
        try {
            const info = JSON.parse(json.stdout.toString('utf8'));
            if (info.trusted === true || info.trusted === 1)
                return 'trusted';
            if (info.trusted === false || info.trusted === 0)
                return 'untrusted';
        }
        catch {
            // nothing more to learn
        }
    }
    return 'unknown';
}
/** A store URL Nix prints for a store this process writes itself (`local`, `local?…`, a path). */
function isLocalUrl(url) {
    return url === 'local' || url.startsWith('local?') || url.startsWith('/');
}
const pings = new WeakMap();
/**
 * `nix store ping` in its text form, asked once per NixStore (trust and the target's Nix share
 * the answer): the store's URL as Nix resolved it (`local`, `daemon`, …), the version of the Nix
 * that serves it (Nix 2.8 reports it for a local store; daemons of newer Nix report theirs) and,
 * from Nix 2.15 on, whether it trusts us.
 */
function storePing(store) {
    let p = pings.get(store);
    if (p === undefined) {
        p = store.runner
            .run('nix', [...FLAKE_FEATURES, ...store.storeArgs(), 'store', 'ping'], { allowFailure: true })
            .then((r) => {
            if (r.code !== 0)
                return { ok: false };
            const said = r.stdout.toString('utf8') + r.stderr;
            const field = (name) => new RegExp(`^${name}: (\\S+)$`, 'm').exec(said)?.[1];
            return { ok: true, url: field('Store URL'), version: field('Version'), trusted: field('Trusted') };
        });
        pings.set(store, p);
    }
    return p;
}
/**
 * The experimental features the Nix on PATH has on, under the environment and NIX_CONFIG an
 * import runs with: the `experimental-features = …` line of `nix show-config` (or `nix config
 * show` where that alias is gone); undefined when neither answers. The text form, because Nix 2.8
 * writes the features as enum numbers in the `--json` form. Nix drops the names it does not know
 * when it reads its settings, so a feature listed is one this Nix knows and has on.
 */
async function experimentalFeatures(store) {
    for (const cmd of [['show-config'], ['config', 'show']]) {
        const r = await store.runner.run('nix', [...NIX_COMMAND, ...cmd], { allowFailure: true });
        if (r.code !== 0)
            continue;
        const line = /^experimental-features = (.*)$/m.exec(r.stdout.toString('utf8'));
        if (line !== null)
            return new Set((line[1] ?? '').split(' ').filter((f) => f !== ''));
    }
    return undefined;
}
/**
 * What the Nix that will parse the plan's .drv files in `store` is known to accept: for a local
 * store, its version and experimental features (two processes: the ping, shared with
 * `storeTrust`, and the features); for a daemon, its version when it reports one (its features
 * cannot be asked: the client does not send its own, and the daemon tells none).
 */
async function targetNix(store) {
    const ping = await storePing(store);
    if (!ping.ok || ping.url === undefined)
        return { kind: 'other', label: 'the target store' };
    if (isLocalUrl(ping.url))
        return {
            kind: 'local',
            version: ping.version,
            features: await experimentalFeatures(store),
            label: `the store (${ping.url})`,
        };
    if (ping.url === 'daemon' || ping.url.startsWith('unix://'))
        return { kind: 'daemon', version: ping.version, label: `the daemon (${ping.url})` };
    return { kind: 'other', version: ping.version, label: `the store ${ping.url}` };
}
/**
 * `nix-store --import` of an export stream (bytes, chunks, or a `FileInput`); a failure is a
 * NixCommandError (see `isSignatureRefusal` for the store wanting signatures). `onPaths` counts the
 * paths as Nix reports them. Returns the paths Nix reported: every path of the stream, each one
 * added or found valid already (Nix prints them once it has added the last one).
 */
async function importExport(store, input, onPaths) {
    const args = [...store.storeArgs(), '--import'];
    // nix-store --import prints each path, one a line.
    const out = [];
    const onStdout = (chunk) => {
        out.push(Buffer.from(chunk));
        onPaths?.(chunk.filter((b) => b === 0x0a).length);
    };
    const result = await store.runner.run('nix-store', args, { input, allowFailure: true, onStdout });
    NixCommandError.check('nix-store', args, result, { what: 'nix-store --import' });
    return Buffer.concat(out)
        .toString('utf8')
        .split('\n')
        .filter((l) => l !== '');
}
/**
 * `nix copy --from FROM [--to STORE] [--derivation] PATHS…` into `store` (its `--store` URI, if
 * any, is the destination), batched to fit the command line. With `derivation`, `.drv` paths mean
 * themselves, not their outputs (and any other path means its deriver). A failure is a
 * NixCommandError named `what`.
 */
async function copyPaths(store, from, paths, options = {}) {
    const to = store.options.store === undefined ? [] : ['--to', store.options.store];
    const base = [
        ...NIX_COMMAND,
        'copy',
        '--from',
        from,
        ...to,
        ...(options.derivation === true ? ['--derivation'] : []),
    ];
    for (const batch of batchPaths(paths)) {
        const args = [...base, ...batch];
        const result = await store.runner.run('nix', args, { allowFailure: true });
        NixCommandError.check('nix', args, result, { what: options.what ?? 'nix copy' });
    }
}

;// CONCATENATED MODULE: external "node:os"
const external_node_os_namespaceObject = __WEBPACK_EXTERNAL_createRequire(import.meta.url)("node:os");
;// CONCATENATED MODULE: ./src/core/narinfo.ts
// The narinfo: what a binary cache says of a store path (the text Nix's binary-cache store reads),
// the fingerprint its signatures cover, and signing and checking them.




/** The narinfo text Nix's binary-cache store reads (`Compression: none`, references as base names). */
function narinfoText(info) {
    const lines = [
        `StorePath: ${info.path}`,
        `URL: ${info.url}`,
        'Compression: none',
        `NarHash: ${formatHash({ algo: 'sha256', bytes: info.narHash }, 'nix32', true)}`,
        `NarSize: ${info.narSize}`,
        `References: ${info.references.map(baseName).join(' ')}`,
    ];
    if (info.deriver !== '')
        lines.push(`Deriver: ${baseName(info.deriver)}`);
    if (info.ca !== undefined)
        lines.push(`CA: ${info.ca}`);
    if (info.sig !== undefined)
        lines.push(`Sig: ${info.sig}`);
    return lines.join('\n') + '\n';
}
/**
 * Nix's narinfo fingerprint, `1;<path>;sha256:<nix32>;<narSize>;<refs,…>` (references sorted, as
 * Nix's StorePathSet iterates them). Nix refuses to fingerprint a zero NAR size or non-sha256 hash.
 */
function narinfoFingerprint(info) {
    if (info.narHash.length !== 32)
        throw new errors_NixPlanError('internal', 'a narinfo fingerprint needs a sha256 NAR hash');
    if (!(info.narSize > 0))
        throw new errors_NixPlanError('internal', `cannot fingerprint '${info.path}' with NAR size 0`);
    const refs = [...info.references].sort(compareStrings).join(',');
    return `1;${info.path};${formatHash({ algo: 'sha256', bytes: info.narHash }, 'nix32', true)};${info.narSize};${refs}`;
}
/** A narinfo `Sig:` value for the object. */
function signNarinfo(key, info) {
    return signDetached(key, narinfoFingerprint(info));
}
/** True when at least one of `signatures` is a valid narinfo signature by a trusted key. */
function verifyNarinfo(info, signatures, trusted) {
    const fingerprint = narinfoFingerprint(info);
    return signatures.some((s) => checkDetached(fingerprint, s, trusted) === 'valid');
}

;// CONCATENATED MODULE: ./src/app/deps.ts
/** A logger that drops everything (for library callers that want no output). */
const silentLogger = {
    info: () => undefined,
    warn: () => undefined,
    debug: () => undefined,
};
/** A progress sink that shows nothing. */
const noProgress = {
    start: () => ({ tick: () => undefined, done: () => undefined }),
};
/** `deps.progress` or one that shows nothing. */
function progressOf(deps) {
    return deps.progress ?? noProgress;
}

;// CONCATENATED MODULE: ./src/app/binary-cache.ts
// Import without trust: turn a verified export stream into a temporary `file://` binary cache whose
// narinfos carry `CA:` (and, with a key, `Sig:`), then let `nix copy` add it through the daemon.














/** Subdirectories Nix's local binary-cache store creates on opening (2.8 and 2.34). */
const CACHE_DIRS = ['nar', 'realisations', 'log', 'debuginfo'];
/**
 * The paths `nix copy` must be named so that it copies all of `cached`: those no other cached path
 * refers to (their closures cover the rest), `.drv` files apart from the others. A `.drv` named on
 * the command line means its outputs unless `--derivation` is given, and `--derivation` turns any
 * other path into its deriver, so the two kinds need separate calls.
 */
function copyTargets(cached) {
    const referenced = new Set();
    for (const c of cached)
        for (const r of c.references)
            if (r !== c.path)
                referenced.add(r);
    const tops = cached.map((c) => c.path).filter((p) => !referenced.has(p));
    return { drvs: tops.filter((p) => p.endsWith('.drv')), others: tops.filter((p) => !p.endsWith('.drv')) };
}
/** The error for build outputs an untrusted user cannot add without a trusted signature. */
function needsSignature(paths, key) {
    const example = paths[0] ?? '';
    const how = key === undefined
        ? 'Either import as a user the daemon trusts (`trusted-users` in nix.conf), or sign them on import: ' +
            'pass a secret key (`nix-plan keygen NAME`) whose public key root has added to ' +
            '`trusted-public-keys` in the nix.conf of the host (then restart nix-daemon).'
        : `They were signed with '${key.name}', so the daemon does not trust that key: root must add ` +
            `'${formatPublicKey(publicKeyOf(key))}' to \`trusted-public-keys\` in the host's nix.conf ` +
            '(then restart nix-daemon).';
    return new errors_NixPlanError('signature', `${paths.length} path${paths.length === 1 ? ' is a build output' : 's are build outputs'} ` +
        `(input-addressed, e.g. '${example}'), which Nix accepts from a user it does not trust only with ` +
        `a signature by a key in its \`trusted-public-keys\`. ${how}`);
}
/**
 * Adds the paths of an export stream to a store as a user the Nix daemon does not trust: writes
 * them as a temporary `file://` binary cache (NARs streamed to disk as they are read, never the
 * whole closure in memory), with each narinfo's `CA:` field from `identifyContentAddress` so Nix
 * re-derives content-addressed paths instead of asking for signatures, then runs
 * `nix copy --from file://DIR [--derivation] PATHS…`. Build outputs need `signingKey`, whose
 * public key the daemon must trust; without it they are refused before anything is copied.
 * The stream should already be verified (the bundle verifier); it is validated again as it is read.
 */
async function importViaBinaryCache(source, options, deps) {
    const parent = options.workDir ?? (0,external_node_os_namespaceObject.tmpdir)();
    const dir = await (0,external_node_fs_promises_namespaceObject.mkdtemp)((0,external_node_path_namespaceObject.join)(parent, 'nix-plan-cache-'));
    try {
        // Readable by everyone: the Nix client may run as another user than this process (sudo -u),
        // and everything in it is about to enter the world-readable store anyway.
        await (0,external_node_fs_promises_namespaceObject.chmod)(dir, 0o755);
        await (0,external_node_fs_promises_namespaceObject.writeFile)((0,external_node_path_namespaceObject.join)(dir, 'nix-cache-info'), `StoreDir: ${options.storeDir}\nWantMassQuery: 0\n`);
        // Nix creates these when it opens a file:// cache; made here so a client that cannot write
        // the directory (another user) still opens it.
        for (const sub of CACHE_DIRS)
            await (0,external_node_fs_promises_namespaceObject.mkdir)((0,external_node_path_namespaceObject.join)(dir, sub), { mode: 0o755 });
        const cached = await writeCache(source, dir, options, deps);
        const store = new NixStore(deps.runner, { store: options.store });
        const paths = cached.map((c) => c.path);
        const invalid = await store.invalidPaths(paths);
        const alreadyValid = paths.length - invalid.size;
        const unsigned = cached.filter((c) => c.ca === undefined && invalid.has(c.path)).map((c) => c.path);
        if (unsigned.length > 0 && options.signingKey === undefined)
            throw needsSignature(unsigned, undefined);
        if (invalid.size > 0)
            await runCopy(store, dir, cached, options, deps, unsigned);
        const still = await store.invalidPaths([...invalid]);
        if (still.size > 0)
            throw new errors_NixPlanError('nix', `nix copy finished but ${still.size} paths are still not valid, e.g. '${[...still][0]}'`);
        return {
            paths,
            imported: invalid.size,
            alreadyValid,
            contentAddressed: cached.filter((c) => c.ca !== undefined).length,
        };
    }
    finally {
        await (0,external_node_fs_promises_namespaceObject.rm)(dir, { recursive: true, force: true });
    }
}
/** Reads the stream once, writing `nar/<n>.nar` and `<hash>.narinfo` for every path. */
async function writeCache(source, dir, options, deps) {
    const cached = [];
    const task = progressOf(deps).start('writing a temporary binary cache');
    let fd;
    let fdIndex = -1;
    const narFile = (index) => `nar/${index}.nar`;
    const closeNar = () => {
        if (fd !== undefined)
            (0,external_node_fs_namespaceObject.closeSync)(fd);
        fd = undefined;
    };
    try {
        const entries = readExport(source, options.limits, {
            storeDir: options.storeDir,
            // Synchronous writes: the reader hands over views without back-pressure, so writing them
            // before it continues keeps memory flat whatever the NAR sizes.
            onNarBytes: (chunk, index) => {
                if (index !== fdIndex) {
                    closeNar();
                    fd = (0,external_node_fs_namespaceObject.openSync)((0,external_node_path_namespaceObject.join)(dir, narFile(index)), 'wx', 0o644);
                    fdIndex = index;
                }
                if (fd !== undefined)
                    (0,external_node_fs_namespaceObject.writeSync)(fd, chunk);
            },
        });
        let index = 0;
        for await (const entry of entries) {
            closeNar();
            const ca = identifyContentAddress({
                path: entry.path,
                references: entry.references,
                narHash: entry.nar.narHash,
                file: entry.nar.file,
            }, options.storeDir)?.ca;
            const facts = {
                path: entry.path,
                narHash: entry.nar.narHash,
                narSize: entry.nar.narSize,
                references: entry.references,
            };
            const text = narinfoText({
                ...facts,
                url: narFile(index),
                deriver: entry.deriver,
                ca,
                sig: options.signingKey === undefined ? undefined : signNarinfo(options.signingKey, facts),
            });
            const hashPart = baseName(entry.path).slice(0, 32);
            await (0,external_node_fs_promises_namespaceObject.writeFile)((0,external_node_path_namespaceObject.join)(dir, `${hashPart}.narinfo`), text, { mode: 0o644, flag: 'wx' });
            cached.push({ path: entry.path, references: entry.references, ca });
            index++;
            task.tick(1, entry.nar.narSize);
        }
    }
    finally {
        closeNar();
        task.done();
    }
    return cached;
}
/** Runs `nix copy` for the cache's top-level paths, `.drv` files with `--derivation`. */
async function runCopy(store, dir, cached, options, deps, unsigned) {
    const { drvs, others } = copyTargets(cached);
    const from = `file://${dir}`;
    const what = 'nix copy from the temporary binary cache';
    deps.log.info(`adding ${cached.length} paths through a temporary binary cache (nix copy)`);
    try {
        await copyPaths(store, from, drvs, { derivation: true, what });
        await copyPaths(store, from, others, { what });
    }
    catch (e) {
        if (e instanceof NixCommandError && isSignatureRefusal(e) && unsigned.length > 0)
            throw needsSignature(unsigned, options.signingKey);
        throw e;
    }
}
/**
 * The `copyImport` route of `importPlan`: hands the verified export stream to
 * `importViaBinaryCache`. `signingKey` is the text of a Nix secret key file, or a parsed key.
 */
function binaryCacheCopyImport(settings = {}) {
    const key = typeof settings.signingKey === 'string' ? parseSecretKey(settings.signingKey) : settings.signingKey;
    return async (stream, options, deps) => {
        await importViaBinaryCache(stream, {
            storeDir: options.manifest.storeDir,
            store: options.store,
            signingKey: key,
            workDir: settings.workDir ?? options.workDir,
        }, deps);
    };
}

;// CONCATENATED MODULE: ./src/transport/room.ts
// Whether a directory's file system has room for a file about to be written there: the one check
// made before a bundle or an artifact is copied, or a verified stream written, so a full disk is
// refused by name before anything is written rather than failing halfway.


/** What a refusal for want of room in TMPDIR suggests on the command line. */
const TMPDIR_ADVICE = 'free some, or point TMPDIR elsewhere';
/**
 * What a refusal for want of room in the temp dir suggests to the user of a front end (`names`:
 * its option names; undefined, the command line). An action runs in a job whose runner chose
 * the temp dir: its user can free room in an earlier step or pick a runner with a larger disk.
 */
function tmpdirAdvice(names) {
    if (names?.style !== 'input')
        return TMPDIR_ADVICE;
    return 'free some on the runner (a step before this one can delete what the job no longer needs), or run the job on a runner with a larger disk';
}
/**
 * Refuses (a LimitError) to write `bytes` bytes into `dir` when its file system has less room than
 * that for an unprivileged writer; says nothing when the room cannot be read (the write itself
 * then says what is wrong). The message is `<what>, but <dir> has room for <n>`, then `: <advice>`.
 */
async function requireRoom(dir, bytes, what, advice) {
    const fs = await (0,external_node_fs_promises_namespaceObject.statfs)(dir).catch(() => undefined);
    if (fs === undefined)
        return;
    const room = fs.bavail * fs.bsize;
    if (room < bytes)
        throw new LimitError(`${what}, but ${dir} has room for ${room}${advice === undefined ? '' : `: ${advice}`}`);
}

;// CONCATENATED MODULE: ./src/app/private-copy.ts
// The private copy an import works from: its digest, the room it needs, and the file that
// receives its verified export stream for `nix-store --import` to read.








/**
 * Copies `bundlePath` into a private directory under TMPDIR and opens the copy, after checking
 * its sha256 against `options.digest` when one is given. Everything read after this reads the
 * copy, so the bytes verified are the bytes used even if the original is rewritten in place or
 * replaced. The one way import, relocate, deploy, apply, diff and the freshness check read a plan.
 */
async function privateBundle(bundlePath, options = {}) {
    const name = options.name ?? bundlePath;
    // The original is opened once, its head checked and exactly the bytes it was checked with
    // copied: a file that is not what its manifest says (a sparse terabyte behind a valid head, a
    // manifest declaring a terabyte of compressed data) is refused before a byte of it is copied,
    // and one that grows or is replaced meanwhile cannot make the copy larger.
    const original = await openCheckedBundle(bundlePath, name);
    let dir;
    const remove = async () => {
        if (dir !== undefined)
            await (0,external_node_fs_promises_namespaceObject.rm)(dir, { recursive: true, force: true });
    };
    try {
        await requireRoom((0,external_node_os_namespaceObject.tmpdir)(), original.size, `the bundle '${name}' is ${original.size} bytes`, tmpdirAdvice(options.optionNames));
        dir = await (0,external_node_fs_promises_namespaceObject.mkdtemp)((0,external_node_path_namespaceObject.join)((0,external_node_os_namespaceObject.tmpdir)(), options.prefix ?? 'nix-plan-copy-'));
        const path = (0,external_node_path_namespaceObject.join)(dir, 'bundle.nixplan');
        const digest = await copyExactly(original.handle, original.size, path, name).catch((e) => {
            throw e instanceof errors_NixPlanError ? e : cannotRead(name, e);
        });
        await original.handle.close();
        if (options.digest !== undefined)
            checkDigest(digest, options.digest, name);
        const source = { ...(await openBundle(path)), name };
        return {
            dir,
            path,
            source,
            digest,
            dispose: async () => {
                await source.close();
                await remove();
            },
        };
    }
    catch (e) {
        await original.handle.close().catch(() => undefined);
        await remove();
        throw e;
    }
}
/**
 * Refuses, from its head alone, a bundle file that is not what its manifest says (see
 * readCheckedHead): before hashing or copying a file someone else could have put there.
 */
async function checkBundleFile(path, name = path) {
    await (await openCheckedBundle(path, name)).handle.close();
}
/** The usage error for a bundle file that cannot be opened or read. */
const cannotRead = (name, e) => new errors_NixPlanError('usage', `cannot read bundle '${name}': ${e.message}`);
/**
 * Opens the bundle file at `path` (messages name it `name`) once: a FIFO does not block the open,
 * what was opened must be a regular file (fstat of the descriptor read afterwards), and its head
 * must be what its manifest says (readCheckedHead). Returns it open, with the size it was checked
 * at; closed again when refused.
 */
async function openCheckedBundle(path, name) {
    const handle = await (0,external_node_fs_promises_namespaceObject.open)(path, external_node_fs_namespaceObject.constants.O_RDONLY | external_node_fs_namespaceObject.constants.O_NONBLOCK).catch((e) => {
        throw cannotRead(name, e);
    });
    try {
        const st = await handle.stat();
        if (!st.isFile())
            throw new errors_NixPlanError('usage', `cannot read bundle '${name}': it is not a regular file`);
        await readCheckedHead(handleSource(handle, name, st.size));
        return { handle, size: st.size };
    }
    catch (e) {
        await handle.close();
        throw e;
    }
}
/**
 * Copies the first `size` bytes of `from` into a new file `to` (0600), failing if there are fewer,
 * and returns the `sha256:<hex>` of the bytes written.
 */
async function copyExactly(from, size, to, name) {
    const out = await (0,external_node_fs_promises_namespaceObject.open)(to, 'wx', 0o600);
    const hash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    try {
        const buf = new Uint8Array(Math.min(size, COPY_CHUNK));
        for (let at = 0; at < size;) {
            const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, size - at), at);
            if (bytesRead === 0)
                throw new errors_NixPlanError('bundle', `the bundle '${name}' became shorter while it was copied`);
            for (let done = 0; done < bytesRead;) {
                const { bytesWritten } = await out.write(buf, done, bytesRead - done, at + done);
                done += bytesWritten;
            }
            hash.update(buf.subarray(0, bytesRead));
            at += bytesRead;
        }
    }
    finally {
        await out.close();
    }
    return `sha256:${hash.digest('hex')}`;
}
/** How much a private copy reads and writes at a time. */
const COPY_CHUNK = 4 * 1024 * 1024;
/**
 * A private file that receives the verified export stream as the verifier decompresses it, so
 * `nix-store --import` can read it straight from disk: no second decompression and no second
 * verification. Only this process can write it (0600 in a 0700 directory), so what Nix reads is
 * byte for byte what was verified. If writing fails (a full disk), it gives up quietly and the
 * caller falls back to decompressing the private bundle copy again.
 */
class VerifiedStreamFile {
    path;
    fd;
    failure;
    constructor(path) {
        this.path = path;
        this.fd = (0,external_node_fs_namespaceObject.openSync)(path, 'wx', 0o600);
    }
    /** Appends a chunk (synchronously: the page cache takes 1 MiB in well under a millisecond). */
    write(chunk) {
        if (this.fd === undefined)
            return;
        try {
            for (let at = 0; at < chunk.length;)
                at += (0,external_node_fs_namespaceObject.writeSync)(this.fd, chunk, at, chunk.length - at);
        }
        catch (e) {
            this.failure = e.message;
            this.close();
        }
    }
    /** True when every chunk was written. */
    get complete() {
        return this.failure === undefined;
    }
    /** Closes the file (it stays for its reader). */
    close() {
        if (this.fd !== undefined)
            (0,external_node_fs_namespaceObject.closeSync)(this.fd);
        this.fd = undefined;
    }
}
/** Refuses `actual` (`sha256:<hex>` of a bundle) when it is not `digest` (`sha256:<hex>` or hex). */
function checkDigest(actual, digest, bundlePath) {
    const want = digest.replace(/^sha256:/, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(want))
        throw new errors_NixPlanError('usage', `the digest '${digest}' is not a sha256 (sha256:<64 hex digits>)`);
    const got = actual.replace(/^sha256:/, '');
    if (got !== want)
        throw new errors_NixPlanError('bundle', `the bundle '${bundlePath}' has sha256:${got}, not the expected digest sha256:${want}: it is not the plan that was published`);
}
/**
 * Refuses, before decompressing anything, a plan larger than `maxSize` uncompressed, or one the
 * temp dir has no room for (its verified stream is written there).
 */
async function checkRoom(manifest, dir, maxSize, names) {
    const size = manifest.stream.size;
    if (maxSize !== undefined && size > maxSize)
        throw new LimitError(`the plan is ${size} bytes uncompressed, more than the limit of ${maxSize} bytes (${maxSizeAdvice(names)})`);
    await requireRoom(dir, size, `the plan is ${size} bytes uncompressed`, tmpdirAdvice(names));
}

;// CONCATENATED MODULE: ./src/nix/gc.ts
// Removing store paths again: `nix-store --delete`, which removes valid paths nothing valid refers
// to and no GC root (or running process) holds, and refuses the others ("still alive").


/**
 * `nix-store --delete PATHS…` in one run (per command-line batch). Nix walks each path's referrers:
 * any outside `paths` keeps it (and that run fails); `keep-derivations` is turned off so a .drv
 * goes even when an output it built stays. A failure is a NixCommandError.
 */
async function deletePaths(store, paths) {
    for (const batch of batchPaths(paths)) {
        const args = [...store.storeArgs(), '--option', 'keep-derivations', 'false', '--delete', ...batch];
        const result = await store.runner.run('nix-store', args, { allowFailure: true });
        NixCommandError.check('nix-store', args, result, { what: 'nix-store --delete' });
    }
}

;// CONCATENATED MODULE: ./src/app/rollback.ts
// Rolling back an import that failed or was interrupted: the paths it made valid are removed again,
// so the store's valid paths are what they were before it started.
//
// An import adds paths in dependency order, and a path it added can only be referred to by paths
// added after it (Nix registers references to valid paths only), so those paths are new and
// unreferenced from outside: `nix-store --delete` removes them all, newest first. A path another
// process started using meanwhile (a concurrent build, a GC root) is kept, and said so.


/**
 * Removes again those of `added` (the paths that were not valid before the import, in its order)
 * that are valid now. `store` must run on a runner that still works after an interruption.
 */
async function rollBack(store, added) {
    if (added.length === 0)
        return { removed: [], kept: [] };
    const invalid = await store.invalidPaths(added);
    const valid = added.filter((p) => !invalid.has(p)).reverse();
    if (valid.length === 0)
        return { removed: [], kept: [] };
    let reason;
    try {
        await deletePaths(store, valid);
    }
    catch (e) {
        // One that stays alive stops the run: remove the others one at a time, newest first.
        reason = firstLine(e);
        for (const p of valid)
            await deletePaths(store, [p]).catch((f) => {
                reason ??= firstLine(f);
            });
    }
    const still = await store.invalidPaths(valid);
    const kept = valid.filter((p) => !still.has(p));
    return { removed: valid.filter((p) => still.has(p)), kept, ...(kept.length > 0 && { reason }) };
}
function firstLine(e) {
    const text = e instanceof Error ? e.message : String(e);
    const lines = text.split('\n').filter((l) => /error|alive|cannot/i.test(l));
    return (lines[lines.length - 1] ?? text).trim();
}
/** What a failure message adds about the rollback. */
function rollbackNote(result) {
    if (result.removed.length === 0 && result.kept.length === 0)
        return 'no path had been added, the store is unchanged';
    if (result.kept.length === 0)
        return `the ${result.removed.length} path${result.removed.length === 1 ? '' : 's'} it had added ${result.removed.length === 1 ? 'was' : 'were'} removed again, the store is as it was`;
    return (`${result.removed.length} of the paths it had added were removed again, but ${result.kept.length} could not be ` +
        `(e.g. '${result.kept[0]}': ${result.reason ?? 'still in use'}); remove them with nix-store --delete once nothing uses them`);
}
/** `error` with what the rollback did added to its message (the same error: its class and code stay). */
function withRollbackNote(error, result) {
    if (error instanceof errors_NixPlanError)
        error.message = `${error.message}\n(${rollbackNote(result)})`;
    return error;
}

;// CONCATENATED MODULE: ./src/app/validity.ts
// Which paths a store already holds, asked while the bundle is still being verified: Nix's answer
// does not depend on the bundle, and each query is mostly a process start and a database open.

/**
 * A promise that never rejects, for work started ahead of need: its outcome, replayed (value or
 * error) when it is finally needed, and no unhandled rejection if it never is.
 */
function settle(p) {
    return p.then((v) => () => v, (e) => () => {
        throw e;
    });
}
/** Paths needing one query each this many at least, before the query is split. */
const PATHS_PER_QUERY = 1000;
/**
 * Which of the paths handed to `add` are invalid in the store, asked a batch at a time while the
 * caller is still busy verifying: Nix's answer does not depend on the bundle, and each query is
 * mostly a process start and a database open, which overlap with the verification. Batches are
 * large because starting a process blocks this thread for a few milliseconds.
 */
class ValidityQueries {
    store;
    batchSize;
    ready;
    batch = [];
    /** The batch's size on a command line. */
    bytes = 0;
    /** Each query's answer: the invalid paths among those the caller added. */
    answers = [];
    /** Set by `close`: a query whose turn comes after it is not started. */
    closed = false;
    /**
     * @param ready no query starts before it settles (the store's first Nix process runs alone);
     *   if it rejects, so does every answer
     */
    constructor(store, batchSize = 4 * PATHS_PER_QUERY, ready = Promise.resolve()) {
        this.store = store;
        this.batchSize = batchSize;
        this.ready = ready;
    }
    /**
     * Adds a path to ask about; a full batch is sent at once, and so is one that would not fit on
     * one command line with it (a batch is one Nix process, started as soon as it is full).
     */
    add(path) {
        if (this.batch.length > 0 && this.bytes + path.length + 1 > ARGV_BUDGET)
            this.send();
        this.batch.push(path);
        this.bytes += path.length + 1;
        if (this.batch.length >= this.batchSize)
            this.send();
    }
    send() {
        if (this.batch.length === 0)
            return;
        const batch = this.batch;
        this.answers.push(settle(this.ready.then(() => this.ask(batch))));
        this.batch = [];
        this.bytes = 0;
    }
    /**
     * Sends the paths added so far together with `extra` (paths that are not the caller's) in one
     * query, and returns the invalid ones among `extra`: for the question asked once every path is
     * added, so the end of it waits for one Nix process, not two. Add no path after it.
     */
    async sendWith(extra) {
        const own = this.batch;
        this.batch = [];
        this.bytes = 0;
        const asked = [...own, ...extra];
        const answer = settle(this.ready.then(() => this.ask(asked)));
        this.answers.push(settle(answer.then((r) => {
            const invalid = r();
            return new Set(own.filter((p) => invalid.has(p)));
        })));
        const invalid = (await answer)();
        return new Set(extra.filter((p) => invalid.has(p)));
    }
    ask(paths) {
        if (this.closed)
            return Promise.reject(new Error('validity queries closed before this one started'));
        return this.store.invalidPaths(paths);
    }
    /**
     * Ends the queries: those not started yet (waiting for `ready`) are not started, and those
     * running are waited for, so that no Nix process outlives the caller's use of the store (a
     * failed import's scratch store is then removed with nothing still writing to it).
     */
    async close() {
        this.closed = true;
        this.batch = [];
        await Promise.all(this.answers);
    }
    /** The invalid paths among all added. */
    async invalid() {
        this.send();
        const out = new Set();
        for (const answer of await Promise.all(this.answers))
            for (const p of answer())
                out.add(p);
        return out;
    }
}
/**
 * The invalid ones of `paths`, asking Nix in up to four concurrent `--check-validity` runs: each
 * is a process start and a database open, which is most of its cost, and they overlap.
 */
async function invalidAmong(store, paths) {
    const parts = Math.max(1, Math.min(4, Math.floor(paths.length / PATHS_PER_QUERY)));
    const queries = new ValidityQueries(store, Math.ceil(paths.length / parts));
    for (const p of paths)
        queries.add(p);
    return queries.invalid();
}

;// CONCATENATED MODULE: ./src/app/verify.ts
// verifyPlan: one streaming pass over a bundle that checks everything import relies on (the
// bundle verifier in core/bundle/), without touching a store, with progress.



/**
 * Runs the bundle verifier over `bundle` with a progress task ticking per path; `extra` passes
 * the verifier's other options (store validity, an entry callback) through.
 */
async function verifyWithProgress(bundle, options, progress, signal) {
    const source = typeof bundle === 'string' ? await openBundle(bundle) : bundle;
    try {
        // The manifest says how many paths there are, so the bar can show a total.
        const { manifest } = await readBundleHead(source);
        const task = progressOf({ progress }).start('verifying', manifest.paths);
        try {
            return await verifyBundle(source, {
                ...options,
                onEntry: async (e) => {
                    signal?.throwIfAborted();
                    await options.onEntry?.(e);
                    task.tick(1, e.nar.narSize);
                },
            });
        }
        finally {
            task.done();
        }
    }
    finally {
        if (typeof bundle === 'string')
            await source.close();
    }
}
/** Verifies a bundle completely; the use case behind `nix-plan verify`. */
async function verifyPlan(bundlePath, options = {}, deps = {}) {
    const keys = (options.trustedKeys ?? []).map(parsePublicKey);
    const report = await verifyWithProgress(bundlePath, {
        trustedKeys: keys,
        storeDir: options.storeDir,
        noCheckSigs: options.noCheckSigs,
        // No entry's bytes are kept past its checks: they need not be copied out of the stream.
        keptFiles: 'view',
    }, deps.progress, deps.signal);
    const { outputChecks: _checks, derivations: _derivations, declaredOutputs: _declared, shapes: _shapes, ...findings } = report;
    return {
        bundlePath,
        ...findings,
        trust: trustReportOf(report.manifest, keys, {
            noCheckSigs: report.noCheckSigs,
            unproven: report.unproven,
        }),
    };
}

;// CONCATENATED MODULE: ./src/app/import.ts
// importPlan: verify a bundle completely, then add it to a store: `nix-store --import` where the
// user may, otherwise the untrusted route through a temporary binary cache. Idempotent.
















/** The import methods, for option parsing. */
const IMPORT_METHODS = ['auto', 'import', 'copy'];
/** Dependencies of importPlan: the usual ones and, optionally, the untrusted route. */
/**
 * Asks the store dir of `store` (Nix's default when undefined): the realm a plan must be for to be
 * imported there, for `withFreshness` to prefer a realm refusal to a stale one.
 */
function storeDirAsker(deps, store) {
    return () => new NixStore(deps.runner, { store }).storeDir();
}
/**
 * Copies the bundle into a private directory and verifies the copy completely, so nothing
 * unverified can reach the store even if the original changes meanwhile; the verified export
 * stream is kept in a private file as it is checked, and that file is what Nix imports.
 * Paths already valid are skipped; running it twice, or twice at once, is safe (Nix locks paths).
 * If the import fails or is interrupted (`deps.signal`), the paths it made valid are removed again
 * before the error is thrown, and the error says so: the store's valid paths are what they were.
 */
async function importPlan(bundlePath, options, deps) {
    const store = new NixStore(deps.runner, { store: options.store });
    const started = performance.now();
    // The first Nix process runs alone: on a store that does not exist yet it creates the
    // database, and two Nix 2.34 processes starting at once on a new store can fail with
    // "SQLite database is busy". Every other Nix process of the import waits for it; the copy and
    // verification of the bundle, which need no store, run meanwhile.
    const storeDirKnown = store.storeDir();
    const storeDirAnswer = settle(storeDirKnown);
    // Nix's other answers do not depend on the bundle: ask while copying and verifying it. No Nix
    // process outlives the call: once it has ended (`ended`), a query not started yet is not
    // started, and one running is waited for.
    let ended = false;
    const trusts = options.method === undefined || options.method === 'auto'
        ? settle(storeDirKnown.then(() => {
            if (ended)
                throw new errors_NixPlanError('internal', 'the import ended before its store was asked');
            return storeTrust(store);
        }))
        : undefined;
    const validity = new ValidityQueries(store, undefined, storeDirKnown);
    const finish = async () => {
        ended = true;
        await storeDirAnswer;
        await trusts;
        await validity.close();
    };
    const settled = async (e) => {
        await finish();
        throw e;
    };
    // Messages name the user's file, not the private copy they are about.
    const copy = await privateBundle(bundlePath, {
        digest: options.digest,
        name: options.name,
        prefix: 'nix-plan-import-',
        optionNames: options.optionNames,
    }).catch(settled);
    const { dir, source } = copy;
    try {
        const { manifest: claimed } = await readBundleHead(source);
        // A plan for another store dir is refused with that error whatever else is wrong with it, as
        // when its store dir was checked first: a verification that fails waits for the store dir,
        // and a store dir that differs stops the verification. So does the caller's own refusal of
        // the manifest (realise: roots that name none of the plan's): no choice of roots can make a
        // plan for another realm importable here, and the realm's message says what would (relocate).
        const realm = new AbortController();
        const realmChecked = settle(storeDirKnown.then((storeDir) => {
            checkRealm(claimed, storeDir, source.name, options.optionNames);
            return storeDir;
        }));
        void realmChecked.then((r) => {
            try {
                r();
            }
            catch (e) {
                realm.abort(e);
            }
        });
        try {
            options.checkManifest?.(claimed);
        }
        catch (e) {
            (await realmChecked)();
            throw e;
        }
        await checkRoom(claimed, dir, options.maxSize, options.optionNames);
        // Whatever the route, what reaches the store is the stream verified here.
        const verified = new VerifiedStreamFile((0,external_node_path_namespaceObject.join)(dir, 'export'));
        const paths = [];
        const limits = options.maxSize === undefined ? {} : { maxStreamSize: options.maxSize };
        let report;
        try {
            report = await verifyWithProgress(source, {
                trustedKeys: options.trustedKeys,
                noCheckSigs: options.noCheckSigs,
                limits,
                optionNames: options.optionNames,
                // Asked with the last of the bundle's paths, in one Nix process.
                validInStore: async (missing) => {
                    const invalid = await validity.sendWith(missing);
                    return new Set(missing.filter((p) => !invalid.has(p)));
                },
                readStoreDerivation: (p) => storeDirKnown.then(() => readStoreFile(store, p)),
                // Only each entry's path is kept: its bytes need not be copied out of the stream.
                keptFiles: 'view',
                onEntry: (e) => {
                    paths.push(e.path);
                    validity.add(e.path);
                },
                onStreamBytes: (c) => verified.write(c),
            }, deps.progress, deps.signal === undefined ? realm.signal : AbortSignal.any([deps.signal, realm.signal]));
        }
        catch (e) {
            (await realmChecked)();
            throw e;
        }
        finally {
            verified.close();
        }
        const storeDir = (await realmChecked)();
        if (verified.failure !== undefined)
            deps.log.debug(`cannot keep the verified stream (${verified.failure}): decompressing it again`);
        const { manifest } = report;
        const proof = {
            trustedSignatures: report.trustedSignatures,
            unproven: report.unproven,
            noCheckSigs: report.noCheckSigs,
            declaredOutputs: report.declaredOutputs,
            trust: trustReportOf(manifest, (options.trustedKeys ?? []).map(parsePublicKey), {
                noCheckSigs: report.noCheckSigs,
                unproven: report.unproven,
            }),
        };
        if (report.unproven > 0)
            deps.log.warn(`${optionSet(options.optionNames, 'noCheckSigs')}: importing ${report.unproven} build output${report.unproven === 1 ? '' : 's'} no trusted signature proves`);
        const invalid = await validity.invalid();
        const verifiedAt = performance.now();
        const timings = () => ({
            verifyMs: Math.round(verifiedAt - started),
            importMs: Math.round(performance.now() - verifiedAt),
        });
        const alreadyValid = paths.length - invalid.size;
        if (invalid.size === 0) {
            deps.log.info(`all ${paths.length} paths are valid already`);
            return {
                manifest,
                imported: 0,
                alreadyValid,
                method: 'none',
                addedPaths: () => [],
                ...proof,
                timings: timings(),
            };
        }
        // A .drv the target's Nix cannot read stops `nix-store --import` at that .drv: refused here,
        // before anything reaches the store.
        await checkTargetReads(store, report.shapes, deps);
        // From here on the store changes: whatever stops the import, what it added is removed again.
        const added = paths.filter((p) => invalid.has(p));
        try {
            const { method, reported } = await addPaths(store, manifest, options, deps, {
                trusts,
                count: invalid.size,
                stream: () => (verified.complete ? new FileInput(verified.path) : exportStream(source)),
            });
            deps.signal?.throwIfAborted();
            // nix-store --import exits 0 and lists every path of the stream only when each one was
            // added or valid already: then that is the answer, without asking Nix again path by path.
            const still = everyPathReported(paths, reported) ? new Set() : await invalidAmong(store, paths);
            if (still.size > 0)
                throw new errors_NixPlanError('nix', `after importing, ${still.size} paths are still not valid, e.g. '${[...still][0]}'`);
            return {
                manifest,
                imported: invalid.size,
                alreadyValid,
                method,
                addedPaths: () => added,
                ...proof,
                timings: timings(),
            };
        }
        catch (e) {
            deps.log.info(`the import failed: removing the paths it added…`);
            const cleanup = new NixStore(cleanupRunner(deps.runner), { store: options.store });
            cleanup.setStoreDir(storeDir);
            throw withRollbackNote(e, await rollBack(cleanup, added));
        }
    }
    finally {
        await finish();
        await copy.dispose();
    }
}
/**
 * Refuses a plan with a .drv the target store's Nix cannot read (a shape it reads only with an
 * experimental feature it has off, or not at all), naming the first; warns of the shapes that
 * cannot be checked (a daemon's features). Asks the store only for a plan with such shapes.
 */
async function checkTargetReads(store, shapes, deps) {
    if (shapes.length === 0)
        return;
    const verdict = checkShapes(shapes, await targetNix(store));
    if (verdict.refusal !== undefined)
        throw new errors_NixPlanError('bundle', `the plan cannot be imported into this store: ${verdict.refusal}`);
    for (const w of verdict.unchecked)
        deps.log.warn(w);
}
/** A .drv of the target store, read from its file (undefined when it is not there). */
function readStoreFile(store, path) {
    try {
        return store.readRegularFileSync(path)?.bytes;
    }
    catch {
        return undefined;
    }
}
/** True when `reported` (Nix's list, in stream order) is exactly `paths`. */
function everyPathReported(paths, reported) {
    return (reported !== undefined && reported.length === paths.length && reported.every((p, i) => p === paths[i]));
}
/**
 * Adds the verified stream to the store by `nix-store --import` or the binary-cache route; with
 * `nix-store --import`, also the paths it reported.
 */
async function addPaths(store, manifest, options, deps, how) {
    let method = options.method ?? 'auto';
    if (method === 'auto') {
        const trust = await (how.trusts ?? settle(storeTrust(store))).then((r) => r());
        method = trust === 'untrusted' ? 'copy' : 'import';
        if (trust === 'unknown')
            deps.log.debug('store trust unknown: trying nix-store --import first');
    }
    if (method === 'import') {
        // nix-store --import prints each path it adds: one tick per line.
        const importing = progressOf(deps).start('importing with nix-store --import', how.count);
        try {
            const reported = await importExport(store, how.stream(), (n) => importing.tick(n));
            return { method: 'import', reported };
        }
        catch (e) {
            if (options.method === 'import' || !(e instanceof NixCommandError) || !isSignatureRefusal(e))
                throw e;
            deps.log.info('the store wants signatures from this user: importing through a binary cache instead');
        }
        finally {
            importing.done();
        }
    }
    const copyImport = deps.copyImport ?? binaryCacheCopyImport();
    // The cache is made beside (not inside) the private dir: the Nix client may be another user.
    await copyImport(how.stream(), { store: options.store, manifest }, deps);
    return { method: 'copy' };
}

;// CONCATENATED MODULE: ./src/app/signing-policy.ts
// A key signs only what was verified: the rule every command that signs a plan it read applies.

/**
 * Refuses (a usage error, before any work) to sign an input that no trusted key vouched for:
 * signing makes a plan trusted downstream, so an unverified input would be laundered into a
 * trusted one. `--no-check-sigs` is the explicit opt-out, recorded in what is signed.
 */
function assertSignable(signs, keysGiven, noCheckSigs, names = CLI_NAMES) {
    if (signs && !keysGiven && !noCheckSigs)
        throw new errors_NixPlanError('usage', `${names.sign} signs only what was verified: give ${names.trust} (the keys the input must be signed by), ` +
            `or ${names.optOut} to sign it unverified on purpose`);
}
/** The command line's names. */
const CLI_NAMES = {
    sign: '--sign-key',
    trust: '--trusted-key',
    optOut: '--no-check-sigs',
};

;// CONCATENATED MODULE: ./src/nix/host-markers.ts
// What the host program's marker lines (`@nix-plan KEY VALUE` on its stdout) say, parsed into
// typed answers: the probe, an activation's report, the closures of the current and new systems.
// A host is not trusted to send well-formed lines: each is checked as it is read.



/**
 * The probe's `last-*` markers as a LastActivation, or undefined when there are none or they are
 * not what the host program writes (the files are only reported: a deploy does not depend on them).
 */
function parseLastActivation(markers, storeDir) {
    const id = lastMarker(markers, 'last-activation');
    const action = lastMarker(markers, 'last-action');
    const state = lastMarker(markers, 'last-state');
    const out = lastMarker(markers, 'last-out');
    if (id === undefined || !/^act-\d{8}T\d{6}Z-[0-9a-f]{8}$/.test(id))
        return undefined;
    if (action !== 'switch' && action !== 'boot' && action !== 'test')
        return undefined;
    if (state === undefined || !isActivationState(state) || state === 'lost')
        return undefined;
    return {
        id: id.slice('act-'.length),
        action,
        out: out !== undefined && isStorePath(out, storeDir) ? out : undefined,
        state,
        switchRc: markerNumber(lastMarker(markers, 'last-switch-rc')),
        expired: lastMarker(markers, 'last-expired') !== undefined,
        timedOut: lastMarker(markers, 'last-timed-out') !== undefined,
    };
}
/** The states an activation's report can name. */
const ACTIVATION_STATES = [
    'starting',
    'switching',
    'awaiting-confirmation',
    'reverting',
    'done',
    'dry-activated',
    'reverted',
    'no-previous',
    'revert-failed',
    'lost',
];
const isActivationState = (s) => ACTIVATION_STATES.includes(s);
/** Marker lines of a session: `@nix-plan KEY VALUE`, in order. */
function parseMarkers(stdout) {
    const out = [];
    for (const line of stdout.toString().split('\n')) {
        // [^\n], not `.`: a carriage return or U+2028 in a value is kept for the checks to see (with
        // `.` the whole line was dropped, as if the host had not said it).
        const m = /^@nix-plan ([a-z-]+)(?: ([^\n]*))?$/.exec(line);
        if (m?.[1] !== undefined)
            out.push([m[1], m[2] ?? '']);
    }
    return out;
}
/** The last value of `key` among `markers`. */
function lastMarker(markers, key) {
    let v;
    for (const [k, value] of markers)
        if (k === key)
            v = value;
    return v;
}
/** A marker's value as a whole number, or undefined when it is not one. */
const markerNumber = (v) => v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
/** Hex (od's output with the spaces removed) to bytes. */
function markerBytes(hex) {
    if (!/^(?:[0-9a-f]{2})*$/.test(hex))
        throw new errors_NixPlanError('host', 'the host sent its record garbled');
    return new Uint8Array(Buffer.from(hex, 'hex'));
}
/** The report in a session's markers (partial when the session ended early). */
function activationReport(markers) {
    const state = lastMarker(markers, 'state');
    const confirmed = lastMarker(markers, 'confirmed');
    return {
        id: lastMarker(markers, 'activation'),
        state: state === undefined ? undefined : isActivationState(state) ? state : 'lost',
        switchRc: markerNumber(lastMarker(markers, 'switch-rc')),
        revertRc: markerNumber(lastMarker(markers, 'revert-rc')),
        removed: lastMarker(markers, 'removed') || undefined,
        recordFailed: lastMarker(markers, 'record-failed') !== undefined,
        previous: lastMarker(markers, 'previous') || undefined,
        previousSystem: lastMarker(markers, 'previous-system') || undefined,
        generation: lastMarker(markers, 'generation') || undefined,
        current: lastMarker(markers, 'current'),
        currentSystem: lastMarker(markers, 'current-system'),
        logged: markerNumber(lastMarker(markers, 'logged')) ?? 0,
        confirmed: confirmed === undefined ? undefined : confirmed === '1',
        timedOut: markerNumber(lastMarker(markers, 'timed-out')),
        revertTimedOut: markerNumber(lastMarker(markers, 'revert-timed-out')),
    };
}
/**
 * Most bytes of marker lines any phase may send: the largest, two closures of a large NixOS
 * system (about 5,000 paths of under 200 bytes each) or the validity answer for one, take a few
 * MiB; a host sending more is refused (and its session stopped) before it fills this machine's memory.
 */
const HOST_OUTPUT_LIMIT = 64 * 1024 * 1024;
/**
 * The closures in a closure phase's markers, each line checked: a store path of `storeDir` and a
 * size in decimal digits. A host is not trusted to send well-formed lines.
 */
function parseClosures(markers, storeDir, label) {
    const bad = (what) => new errors_NixPlanError('host', `${label}: the host sent ${what} in the closure it reported`);
    const old = [];
    const now = [];
    let oldSeen = false;
    for (const [k, v] of markers) {
        if (k !== 'old' && k !== 'new')
            continue;
        const space = v.indexOf(' ');
        const size = v.slice(0, space);
        const path = v.slice(space + 1);
        if (space < 1 || !/^\d{1,15}$/.test(size))
            throw bad('a line without a size');
        if (!isStorePath(path, storeDir))
            throw bad(`a path outside ${storeDir} or not a store path`);
        (k === 'old' ? old : now).push({ path, narSize: Number(size) });
        if (k === 'old')
            oldSeen = true;
    }
    const current = lastMarker(markers, 'current') || undefined;
    const currentSystem = lastMarker(markers, 'current-system') || undefined;
    for (const p of [current, currentSystem])
        if (p !== undefined && unsafeCharacter(p) !== undefined)
            throw bad('a generation with control characters');
    if (now.length === 0)
        throw bad('no path of the new system');
    const oldInvalid = lastMarker(markers, 'old-invalid') !== undefined;
    return {
        current,
        currentSystem,
        old: oldSeen && !oldInvalid ? old : undefined,
        oldInvalid,
        new: now,
    };
}

;// CONCATENATED MODULE: ./src/nix/host-supervisor.ts
// The activation supervisor the host program (host-activation.ts) leaves on a deploy target: a POSIX
// sh script, started detached, that runs switch-to-configuration, reverts a failed switch, and
// reverts an unconfirmed one when its confirmation window ends (the watchdog). Written without
// brace expansions, like the host program, so it lives in a template literal untouched.
/** The unit nixos-rebuild runs switch-to-configuration in: using it too serialises the two tools. */
const SWITCH_UNIT = 'nixos-rebuild-switch-to-configuration';
/**
 * switch-to-configuration SYSTEM ($1) ACTION ($2) as nixos-rebuild runs it under systemd: in its
 * unit, with the environment it passes, waiting for the end and passing its output through.
 */
const SWITCH_UNDER_SYSTEMD = String.raw `systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER --collect --no-ask-password --pipe \
      --quiet --service-type=exec --unit=${SWITCH_UNIT} --wait "$1/bin/switch-to-configuration" "$2"`;
/**
 * switch-to-configuration under a time limit, shared by the supervisor and the host program's
 * attached dry-activate. `run_limited SYSTEM ACTION LIMIT MARK` runs SYSTEM's
 * switch-to-configuration ACTION (in nixos-rebuild's systemd unit when the host runs systemd) and
 * returns its exit code; after LIMIT seconds (0: never) it stops it — `systemctl stop` of the
 * unit, TERM to the process and everything it started, KILL to what is left once it is gone or
 * 10 s later — and creates MARK (removed again if the switch succeeded after all). The processes
 * are found by their parents in /proc, so nothing beyond sh is needed. Needs `nap`.
 */
const SWITCH_FUNCTIONS = String.raw `descendants() {
  all=" $1 "
  more=1
  while [ "$more" = 1 ]; do
    more=0
    for s in /proc/[0-9]*/status; do
      p=
      pp=
      while read -r k v; do
        case $k in Pid:) p=$v ;; PPid:) pp=$v; break ;; esac
      done 2> /dev/null < "$s"
      case $all in *" $p "*) continue ;; esac
      case $all in *" $pp "*) all="$all$p "; more=1 ;; esac
    done
  done
  printf '%s\n' "$all"
}

run_limited() {
  rm -f "$4"
  if [ -d /run/systemd/system ]; then
    ${SWITCH_UNDER_SYSTEMD} &
  else
    "$1/bin/switch-to-configuration" "$2" &
  fi
  spid=$!
  tpid=
  if [ "$3" -gt 0 ]; then
    (
      end=$(($(date +%s) + $3))
      while [ "$(date +%s)" -lt "$end" ]; do sleep 1; done
      : > "$4"
      pids=$(descendants "$spid")
      if [ -d /run/systemd/system ]; then systemctl stop ${SWITCH_UNIT} 2> /dev/null; fi
      kill -s TERM $pids 2> /dev/null
      n=0
      while kill -0 "$spid" 2> /dev/null && [ "$n" -lt 50 ]; do
        nap
        n=$((n + 1))
      done
      kill -s KILL $pids 2> /dev/null
    ) < /dev/null > /dev/null 2>&1 &
    tpid=$!
  fi
  wait "$spid"
  src=$?
  if [ -n "$tpid" ]; then
    [ -e "$4" ] || kill "$tpid" 2> /dev/null
    # dash reports a job killed by a signal ("Terminated") on the stderr of the wait that reaps
    # it, which is the activation's log: the timer's end is no news to whoever reads that.
    wait "$tpid" 2> /dev/null
  fi
  [ "$src" = 0 ] && rm -f "$4"
  return "$src"
}
`;
/** Generations of activation state (logs, results) kept beside the profile. */
const KEEP_ACTIVATIONS = 5;
/**
 * The supervisor: started detached before the switch, so neither a dropped SSH session nor a
 * killed nix-plan can stop an activation halfway. It runs switch-to-configuration (under
 * systemd-run when the host runs systemd), restores the previous generation when the switch
 * fails, and, for confirmed activations, waits CONFIRM seconds after the switch for nix-plan to
 * come back and confirm; if nobody does, it restores the previous generation (the watchdog).
 * Who wins between the confirmation and the watchdog is settled by one atomic rename of `armed`.
 */
const SUPERVISOR = String.raw `# nix-plan activation supervisor: sh supervise.sh ACTIVATION-DIR
act=$1
trap '' HUP INT PIPE
get() { cat "$act/$1" 2>/dev/null; }
put() { printf '%s\n' "$2" > "$act/$1.tmp" && mv -f "$act/$1.tmp" "$act/$1"; }
note() { printf 'nix-plan: %s\n' "$*" >> "$act/log"; }
nap() { sleep 0.2 2>/dev/null || sleep 1; }
. "$act/env"
state=$(dirname "$act")
echo $$ > "$act/pid"
echo $$ > "$state/lock/pid"
profile=$(get profile); action=$(get action); out=$(get out); prev=$(get prev)
prevsys=$(get prevsys); new=$(get new); created=$(get created); confirm=$(get confirm)
systemd=$(get systemd); limit=$(get limit)

${SWITCH_FUNCTIONS}
# run_switch SYSTEM ACTION MARK: switch-to-configuration under the activation timeout, logged.
run_switch() {
  run_limited "$1" "$2" "$limit" "$3" < /dev/null >> "$act/log" 2>&1
}

prune() {
  total=0
  for d in "$state"/act-*; do [ -d "$d" ] && total=$((total + 1)); done
  n=0
  for d in "$state"/act-*; do
    [ -d "$d" ] || continue
    n=$((n + 1))
    if [ $((total - n)) -ge ${KEEP_ACTIVATIONS} ] && [ "$d" != "$act" ]; then rm -rf "$d"; fi
  done
}

finish() {
  rm -rf "$state/lock"
  prune
  exit 0
}

generation() { expr "$1" : '.*-\([0-9][0-9]*\)-link$'; }

revert() {
  put state reverting
  note "$1"
  if [ -z "$prev" ]; then
    if [ "$created" = 1 ]; then
      rm -f "$profile" "$new"
      put removed "$new"
      note "there is no previous generation to re-activate: removed $new"
    else
      note "there is no previous generation to re-activate"
    fi
    put state no-previous
    finish
  fi
  if [ "$action" != test ] && [ "$new" != "$prev" ]; then
    if ! nix-env -p "$profile" --switch-generation "$(generation "$prev")" >> "$act/log" 2>&1; then
      note "nix-env --switch-generation failed: $profile still points at $new"
      put state revert-failed
      finish
    fi
    if [ "$created" = 1 ] && nix-env -p "$profile" --delete-generations "$(generation "$new")" >> "$act/log" 2>&1; then
      put removed "$new"
    fi
  fi
  note "re-activating $prevsys ($action)"
  run_switch "$prevsys" "$action" "$act/revert-timed-out"
  rc=$?
  [ -e "$act/revert-timed-out" ] && note "the previous generation's switch-to-configuration $action did not finish within $limit s: stopped it"
  put revert-rc "$rc"
  if [ "$rc" = 0 ]; then
    put state reverted
  else
    note "the previous generation's switch-to-configuration $action exited with $rc"
    put state revert-failed
  fi
  finish
}

write_record() {
  record=$(get record)
  [ -n "$record" ] || return 0
  rec="$profile.nix-plan.json"
  # Into a file of its own beside the record, then renamed over it: mktemp makes it exclusively,
  # under a name nobody can plant a link at beforehand (a link there is never followed).
  rtmp=
  if rtmp=$(mktemp "$rec.tmp.XXXXXX") && printf '%s\n' "$record" > "$rtmp" && chmod 644 "$rtmp" && mv -f "$rtmp" "$rec"; then
    return 0
  fi
  [ -n "$rtmp" ] && rm -f "$rtmp"
  note "could not write $rec"
  put record-failed 1
}

put state switching
run_switch "$out" "$action" "$act/timed-out"
rc=$?
put switch-rc "$rc"
[ -e "$act/timed-out" ] && revert "switch-to-configuration $action did not finish within $limit s: stopped it; restoring the previous generation"
[ "$rc" = 0 ] || revert "switch-to-configuration $action exited with $rc: restoring the previous generation"
if [ "$confirm" -gt 0 ] && { [ "$action" = switch ] || [ "$action" = test ]; }; then
  deadline=$(($(date +%s) + confirm))
  : > "$act/armed"
  put state awaiting-confirmation
  while [ ! -e "$act/confirmed" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      if mv "$act/armed" "$act/expired" 2>/dev/null; then
        revert "no confirmation within $confirm s: restoring the previous generation"
      fi
    fi
    nap
  done
fi
write_record
put state done
finish
`;

;// CONCATENATED MODULE: ./src/nix/host-activation.ts
// The host program's activation phases (host-script.ts puts them together): `closure` builds the
// new system and lists what would change, `activate` switches the profile and leaves the
// supervisor (host-supervisor.ts) running the switch, `confirm` comes back to confirm it; all
// follow the supervisor's log and report its state. Written without brace expansions, like the
// rest of the program, so it lives in a template literal untouched; it uses the program's helpers.

/** The `closure`, `activate` and `confirm` phases and what they share, as sh functions. */
const ACTIVATION_PHASES = String.raw `${SWITCH_FUNCTIONS}
take_lock() {
  if ! mkdir "$1" 2> /dev/null; then
    pid=$(cat "$1/pid" 2> /dev/null)
    [ -n "$pid" ] || fail busy "another activation is starting ($1 has no pid yet)"
    alive "$pid" && fail busy "another activation (process $pid) is running: $1"
    rm -rf "$1"
    mkdir "$1" 2> /dev/null || fail busy "another activation took $1 just now"
  fi
  echo $$ > "$1/pid"
  locked=$1
  trap '[ -n "$locked" ] && rm -rf "$locked"' EXIT
}

# The directory beside the profile where activations keep their files (what the supervisor runs,
# as root, and which systems it switches to and back to). One planted there before the first
# deploy would be used as it is, so it must be a directory, not a link, of the user running this,
# and writable by no one else: otherwise nothing is changed.
own_dir() {
  if [ -L "$1" ] || [ ! -d "$1" ]; then fail host "$1 is not a directory: nothing was changed"; fi
  read -r own_mode own_links own_uid own_rest << NIX_PLAN_LS
$(ls -ldn "$1")
NIX_PLAN_LS
  [ "$own_uid" = "$(id -u)" ] ||
    fail host "$1 belongs to uid $own_uid, not to uid $(id -u) that activates: nothing was changed"
  case $own_mode in
    ?????w* | ????????w*) fail host "$1 can be written by others than its owner ($own_mode): nothing was changed" ;;
  esac
}

follow() {
  fact=$1
  off=$2
  until=$3
  waited=0
  lost=0
  chunk="$fact/chunk.$$"
  while :; do
    st=$(cat "$fact/state" 2> /dev/null)
    if [ -f "$fact/log" ]; then
      tail -c +$((off + 1)) "$fact/log" > "$chunk" 2> /dev/null
      n=$(wc -c < "$chunk" | tr -d ' ')
      if [ "$n" -gt 0 ]; then
        cat "$chunk" >&2 || { rm -f "$chunk"; exit 1; }
        off=$((off + n))
      fi
    fi
    case $st in
      starting | switching | reverting) ;;
      awaiting-confirmation) [ "$until" = final ] || break ;;
      *) break ;;
    esac
    pid=$(cat "$fact/pid" 2> /dev/null)
    if [ -n "$pid" ]; then
      if ! alive "$pid" && [ "$(cat "$fact/state" 2> /dev/null)" = "$st" ]; then
        lost=1
        break
      fi
    else
      waited=$((waited + 1))
      if [ "$waited" -gt 300 ]; then
        lost=1
        break
      fi
    fi
    nap
  done
  rm -f "$chunk"
  say logged "$off"
}

report() {
  fact=$1
  if [ "$lost" = 1 ]; then say state lost; else say state "$(cat "$fact/state" 2> /dev/null)"; fi
  say previous "$(cat "$fact/prev" 2> /dev/null)"
  say generation "$(cat "$fact/new" 2> /dev/null)"
  for f in switch-rc revert-rc removed record-failed; do
    [ -f "$fact/$f" ] && say "$f" "$(cat "$fact/$f")"
  done
  [ -e "$fact/timed-out" ] && say timed-out "$(cat "$fact/limit")"
  [ -e "$fact/revert-timed-out" ] && say revert-timed-out "$(cat "$fact/limit")"
  if cur=$(abs_link "$(cat "$fact/profile")"); then
    say current "$cur"
    if sys=$(abs_link "$cur"); then say current-system "$sys"; fi
  fi
  say end
}

# Builds DRV (when given) and checks that it gave the system OUT, valid and a NixOS system. With
# the deploy's roots open ($rdir), the system is rooted there ($rdir/system, its other outputs
# $rdir/system-NAME) as Nix builds it, and OUT given without DRV is rooted there too.
realise_system() {
  if [ -n "$1" ] && [ -n "$rdir" ]; then
    store_path_arg "$1"
    nix-store --realise --add-root "$rdir/system" --indirect "$1" > /dev/null ||
      fail build "nix-store --realise $1 failed"
    built=$(abs_link "$rdir/system")
    [ "$built" = "$2" ] || fail build "building $1 gave '$built', not $2"
  elif [ -n "$1" ]; then
    built=$(nix-store --realise "$1") || fail build "nix-store --realise $1 failed"
    case "
$built
" in
      *"
$2
"*) ;;
      *) fail build "building $1 gave '$built', not $2" ;;
    esac
  fi
  nix-store --check-validity "$2" 2> /dev/null || fail build "$2 is not valid in the host's store"
  if [ -z "$1" ] && [ -n "$rdir" ]; then
    store_path_arg "$2"
    root_path "$2" system
  fi
  [ -n "$rdir" ] && roots_touch
  [ -x "$2/bin/switch-to-configuration" ] ||
    fail shape "$2 has no executable bin/switch-to-configuration: it is not a NixOS system"
}

# Prints the runtime closure of store path $2 as "@nix-plan $1 NAR-SIZE PATH" lines.
list_closure() {
  nix-store --query --requisites "$2" > "$tmp/paths" || fail nix "nix-store --query --requisites $2 failed"
  xargs nix-store --query --size < "$tmp/paths" > "$tmp/sizes" || fail nix "nix-store --query --size failed"
  exec 3< "$tmp/sizes"
  while read -r p; do
    read -r n <&3 || fail nix "nix-store --query --size gave fewer sizes than paths"
    say "$1" "$n $p"
  done < "$tmp/paths"
  exec 3<&-
}

# What the activation would change: builds the new system (when DRV is given), then prints the
# profile's current generation and system and the runtime closures of both systems.
closure() {
  profile=$(resolve_profile "$1")
  [ -n "$4" ] && open_roots "$1" "$4"
  realise_system "$2" "$3"
  umask 077
  tmp=$(mktemp -d "$(tmpbase)/nix-plan-closure.$$.XXXXXX" 2> /dev/null) ||
    fail host "cannot make a private directory in $(tmpbase)"
  trap 'rm -rf "$tmp"' EXIT
  if cur=$(abs_link "$profile"); then
    say current "$cur"
    if sys=$(abs_link "$cur"); then
      say current-system "$sys"
      if nix-store --check-validity "$sys" 2> /dev/null; then list_closure old "$sys"; else say old-invalid 1; fi
    fi
  fi
  list_closure new "$3"
  say end
}

activate() {
  profile=$(resolve_profile "$1")
  action=$2
  drv=$3
  out=$4
  confirm=$5
  seen=$6
  record=$7
  id=$8
  limit=$9
  # A rollback: the existing generation TO (a number) whose system is OUT, from the current
  # generation FROM (its link) as nix-plan saw it; the profile is switched, not given a new one.
  shift 9
  to=$1
  from=$2
  # The deploy's roots (host-roots.ts), when it has them.
  roots_id=$3
  case $to in *[!0-9]*) fail usage "bad generation '$to'" ;; esac
  case $action in switch | boot | test | dry-activate) ;; *) fail usage "unknown action '$action'" ;; esac
  case $id in *[!A-Za-z0-9-]* | '') fail usage "bad activation id '$id'" ;; esac
  case $limit in *[!0-9]* | '') fail usage "bad activation timeout '$limit'" ;; esac
  [ -n "$roots_id" ] && open_roots "$profile" "$roots_id"
  realise_system "$drv" "$out"
  if [ "$action" = dry-activate ]; then
    umask 077
    timer=$(mktemp -d "$(tmpbase)/nix-plan-timer.$$.XXXXXX") || fail host "cannot make a private directory in $(tmpbase)"
    trap 'rm -rf "$timer"' EXIT
    run_limited "$out" dry-activate "$limit" "$timer/timed-out" < /dev/null 1>&2
    rc=$?
    drop_roots
    if [ -e "$timer/timed-out" ]; then say timed-out "$limit"; fi
    say switch-rc "$rc"
    say state dry-activated
    if cur=$(abs_link "$profile"); then
      say current "$cur"
      say previous "$cur"
      if sys=$(abs_link "$cur"); then say current-system "$sys"; fi
    fi
    say end
    exit 0
  fi
  state="$profile.nix-plan.d"
  # Its mode whatever the umask (a umask of 002 would make it one that own_dir refuses); the
  # profile's directory is made too when it is not there yet, as nix-env would.
  [ -d "$state" ] || mkdir -p -m 755 "$state" || fail host "cannot create $state"
  own_dir "$state"
  say profile "$profile"
  take_lock "$state/lock"
  rec="$profile.nix-plan.json"
  now=none
  if [ -f "$rec" ]; then now=$(nix-hash --type sha256 --flat "$rec") || fail nix "nix-hash failed"; fi
  [ "$now" = "$seen" ] || fail changed "$rec changed since nix-plan read it (another deploy?): nothing was changed"
  dir=$(dirname "$profile")
  base=$(basename "$profile")
  prev=$(abs_link "$profile") || prev=
  prevsys=
  [ -n "$prev" ] && prevsys=$(abs_link "$prev")
  case $prev$prevsys in
    *"$nl"* | *"$cr"*) fail host "$profile links to a path holding a line break: nothing was changed" ;;
  esac
  before=$(cd "$dir" && ls -d "$base"-*-link 2> /dev/null)
  if [ -n "$to" ]; then
    [ "$prev" = "$from" ] ||
      fail changed "$profile points at $prev now, not at $from as when nix-plan looked (another deploy?): nothing was changed"
    [ "$(abs_link "$dir/$base-$to-link")" = "$out" ] ||
      fail changed "generation $to of $profile is no longer $out: nothing was changed"
  fi
  new=$prev
  created=0
  if [ -n "$to" ] && { [ "$action" = switch ] || [ "$action" = boot ]; }; then
    nix-env -p "$profile" --switch-generation "$to" >&2 ||
      fail nix "nix-env --switch-generation $to failed: $profile is unchanged"
    new=$(abs_link "$profile") || fail nix "$profile is not a link after nix-env --switch-generation"
  elif [ "$action" = switch ] || [ "$action" = boot ]; then
    nix-env -p "$profile" --set "$out" >&2 || fail nix "nix-env --set failed: $profile is unchanged"
    new=$(abs_link "$profile") || fail nix "$profile is not a link after nix-env --set"
    case "
$before
" in
      *"
$(basename "$new")
"*) ;;
      *) created=1 ;;
    esac
  fi
  # From here the profile holds the new system (switch, boot) or it is being switched to (test):
  # the deploy's roots have done their work.
  drop_roots
  act="$state/act-$id"
  mkdir "$act" || fail host "cannot create $act"
  systemd=0
  [ -d /run/systemd/system ] && systemd=1
  for name in profile action out prev prevsys new created confirm record systemd limit; do
    eval "printf '%s\\n' \"\$$name\"" > "$act/$name"
  done
  export -p > "$act/env"
  : > "$act/log"
  echo starting > "$act/state"
  cat > "$act/supervise.sh" << 'NIX_PLAN_SUPERVISOR'
${SUPERVISOR}NIX_PLAN_SUPERVISOR
  if [ "$systemd" = 1 ]; then
    systemd-run --unit="nix-plan-activation-$id" --description="nix-plan activation $id" --collect --quiet \
      --no-ask-password --service-type=exec /bin/sh "$act/supervise.sh" "$act" >&2 ||
      fail host "systemd-run could not start the activation: nothing was activated"
  elif command -v setsid > /dev/null 2>&1; then
    (trap '' HUP INT QUIT; exec setsid sh "$act/supervise.sh" "$act") < /dev/null >> "$act/supervisor.log" 2>&1 &
  else
    (trap '' HUP INT QUIT; exec sh "$act/supervise.sh" "$act") < /dev/null >> "$act/supervisor.log" 2>&1 &
  fi
  locked=
  say activation "$id"
  say previous "$prev"
  say previous-system "$prevsys"
  say generation "$new"
  follow "$act" 0 switched
  report "$act"
}

confirm() {
  profile=$(resolve_profile "$1")
  id=$2
  off=$3
  case $id in *[!A-Za-z0-9-]* | '') fail usage "bad activation id '$id'" ;; esac
  own_dir "$profile.nix-plan.d"
  act="$profile.nix-plan.d/act-$id"
  [ -d "$act" ] || fail usage "there is no activation $id for $profile on this host"
  follow "$act" "$off" switched
  if [ "$lost" = 0 ] && [ "$(cat "$act/state" 2> /dev/null)" = awaiting-confirmation ]; then
    if mv "$act/armed" "$act/confirmed" 2> /dev/null; then say confirmed 1; else say confirmed 0; fi
    follow "$act" "$off" final
  fi
  report "$act"
}
`;

;// CONCATENATED MODULE: ./src/nix/host-roots.ts
// The host program's garbage collector roots for what one deploy stages on the host (host-script.ts
// puts them in): from the import until the deploy ends, the plan's root .drv (so the closure it
// holds) and the system built from it stay alive whatever `nix-store --gc` runs between the
// deploy's SSH sessions. They live in a private directory beside the profile,
// PROFILE.nix-plan.d/roots/ID, whose links Nix registers as indirect roots (`--add-root
// --indirect`); the activation removes it once the profile holds the new system (or the deploy
// ends short of that: the `release` phase), and a later deploy removes one whose deploy was cut
// off (stale_roots). Written without brace expansions, like the
// rest of the program; it uses the program's helpers and own_dir (host-activation.ts).
/** Seconds after its last session that a deploy's roots count as left behind. */
const ROOTS_STALE_SECONDS = 600;
/** The roots helpers and the `release` phase, as sh functions. */
const ROOTS_FUNCTIONS = String.raw `# Seconds since the epoch, or nothing where date cannot say.
epoch() {
  e=$(date +%s 2> /dev/null)
  case $e in '' | *[!0-9]*) e= ;; esac
  printf '%s\n' "$e"
}

# Marks the roots directory $rdir as in use by this session: its pid, and when it last was.
roots_touch() {
  echo $$ > "$rdir/pid"
  epoch > "$rdir/time"
}

# open_roots PROFILE ID: makes (or reopens) PROFILE.nix-plan.d/roots/ID, sets rdir. Each level must
# be a directory of this user writable by no one else (own_dir): a planted one changes nothing.
open_roots() {
  case $2 in *[!A-Za-z0-9-]* | '') fail usage "bad deploy id '$2'" ;; esac
  r_state="$(resolve_profile "$1").nix-plan.d"
  [ -d "$r_state" ] || mkdir -p -m 755 "$r_state" || fail host "cannot create $r_state"
  own_dir "$r_state"
  [ -d "$r_state/roots" ] || mkdir -m 700 "$r_state/roots" || fail host "cannot create $r_state/roots"
  own_dir "$r_state/roots"
  rdir="$r_state/roots/$2"
  [ -d "$rdir" ] || mkdir -m 700 "$rdir" || fail host "cannot create $rdir"
  own_dir "$rdir"
  roots_touch
}

# A store path given by nix-plan, before it goes into a Nix expression: a store path's characters only.
store_path_arg() {
  case $1 in
    /*) ;;
    *) fail usage "not a store path: '$1'" ;;
  esac
  case $1 in *[!A-Za-z0-9+._?=/-]*) fail usage "not a store path: '$1'" ;; esac
}

# root_drv DRV: $rdir/drv, an indirect root of DRV (so of every .drv and source it needs). Only
# nix-instantiate roots a .drv without building it (nix-store --add-root --realise builds).
root_drv() {
  store_path_arg "$1"
  r_err=$(nix-instantiate --add-root "$rdir/drv" --indirect -E "import (builtins.storePath \"$1\")" 2>&1 > /dev/null) ||
    fail nix "cannot make $rdir/drv a garbage collector root of $1: $r_err"
}

# root_path PATH NAME: $rdir/NAME, an indirect root of the (valid, not .drv) store path PATH.
root_path() {
  r_err=$(nix-store --add-root "$rdir/$2" --indirect --realise "$1" 2>&1 > /dev/null) ||
    fail nix "cannot make $rdir/$2 a garbage collector root of $1: $r_err"
}

# Whether $1 is a directory (not a link) of this user that no one else can write, as own_dir
# demands, without failing: the probe cleans up only where a deploy would have made its roots.
is_own_dir() {
  [ -d "$1" ] && [ ! -L "$1" ] || return 1
  read -r i_mode i_links i_uid i_rest << NIX_PLAN_LS
$(ls -ldn "$1")
NIX_PLAN_LS
  [ "$i_uid" = "$(id -u)" ] || return 1
  case $i_mode in ?????w* | ????????w*) return 1 ;; esac
  return 0
}

# Removes the roots of deploys to PROFILE that are over: no session of theirs running (pid) and
# none for ROOTS_STALE_SECONDS (time). One whose time cannot be read is left alone.
stale_roots() {
  s_state="$(resolve_profile "$1").nix-plan.d"
  s_dir="$s_state/roots"
  is_own_dir "$s_state" && is_own_dir "$s_dir" || return 0
  s_now=$(epoch)
  [ -n "$s_now" ] || return 0
  for s_r in "$s_dir"/*; do
    is_own_dir "$s_r" || continue
    s_pid=$(cat "$s_r/pid" 2> /dev/null)
    alive "$s_pid" && continue
    s_t=$(cat "$s_r/time" 2> /dev/null)
    case $s_t in '' | *[!0-9]*) continue ;; esac
    [ $((s_now - s_t)) -gt ${ROOTS_STALE_SECONDS} ] || continue
    rm -rf "$s_r" 2> /dev/null
  done
  return 0
}

# The deploy's roots ($rdir, when open) go: the activation no longer needs them.
drop_roots() {
  if [ -n "$rdir" ]; then
    rm -rf "$rdir" 2> /dev/null
    rdir=
  fi
}

# release PROFILE ID: the deploy ID is over, whatever its result: its roots go, and those of
# deploys to PROFILE cut off earlier.
release() {
  case $2 in *[!A-Za-z0-9-]* | '') fail usage "bad deploy id '$2'" ;; esac
  r_state="$(resolve_profile "$1").nix-plan.d"
  if [ -d "$r_state/roots/$2" ]; then
    own_dir "$r_state"
    own_dir "$r_state/roots"
    rm -rf "$r_state/roots/$2" || fail host "cannot remove $r_state/roots/$2"
    say released "$2"
  fi
  stale_roots "$1"
  say end
}
`;

;// CONCATENATED MODULE: ./src/nix/host-transfer.ts
// The host program's transfer phases (host-script.ts puts them together): `receive` takes a plan
// into a private file, checks its size and sha256 against what the sender verified and imports
// it with `nix-store --import`; `missing` says which of the paths it is given the store lacks.
// Written without brace expansions, like the rest of the program, so it lives in a template
// literal untouched; it uses the program's helpers (`say`, `fail`, `tmpbase`).
/** The `receive` and `missing` phases, as sh functions. */
const TRANSFER_PHASES = String.raw `# receive SIZE SHA256 ENCODING [GO [PROFILE ID DRV OUT]]: the plan on stdin into a private file;
# with GO, the sender verifies the plan while it is being sent and ends it with GO only once it
# has: a plan not followed by GO is never read. With an ID, what was imported is rooted for the
# deploy ID (host-roots.ts) as soon as Nix has it: the derivation DRV, else the system OUT.
receive() {
  size=$1
  sha=$2
  enc=$3
  go=$4
  r_profile=$5
  r_id=$6
  r_drv=$7
  r_out=$8
  umask 077
  base=$(tmpbase)
  tmp=$(mktemp -d "$base/nix-plan-recv.$$.XXXXXX" 2> /dev/null) || {
    tmp="$base/nix-plan-recv.$$.0"
    mkdir "$tmp" 2> /dev/null || fail host "cannot make a private directory in $base"
  }
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cat > "$tmp/plan" || fail host "cannot write the plan into $tmp (is the disk full?)"
  got=$(wc -c < "$tmp/plan" | tr -d ' ')
  golen=$(printf '%s' "$go" | wc -c | tr -d ' ')
  if [ -n "$go" ] && [ "$got" = "$size" ]; then
    fail transfer "the sender did not confirm the plan it sent as verified: nothing was imported"
  fi
  [ "$got" = "$((size + golen))" ] ||
    fail transfer "received $got of $size bytes: the transfer was cut short, nothing was imported"
  if [ -n "$go" ]; then
    [ "$(tail -c "$golen" "$tmp/plan")" = "$go" ] || fail transfer "the plan received does not end as sent: nothing was imported"
    dd if=/dev/null of="$tmp/plan" bs=1 seek="$size" 2> /dev/null || fail host "cannot cut $tmp/plan to its size"
  fi
  # Standard output only: a warning nix-hash prints (a setting or feature in nix.conf it does not
  # know) is not the hash.
  h=$(nix-hash --type sha256 --flat "$tmp/plan" 2> "$tmp/hash.err") || fail nix "nix-hash failed: $(cat "$tmp/hash.err")"
  [ "$h" = "$sha" ] || fail transfer "the plan received has sha256 $h, not the $sha verified: nothing was imported"
  [ -n "$r_id" ] && open_roots "$r_profile" "$r_id"
  if [ "$enc" = zstd ]; then
    { zstd -d -c -q "$tmp/plan" || echo "$?" > "$tmp/zstd.rc"; } | nix-store --import > "$tmp/imported"
    rc=$?
    # Nix's failure first: when nix-store --import stops early, zstd fails too (a broken pipe),
    # so zstd is blamed only when Nix took the whole stream.
    if [ "$rc" != 0 ] && [ -f "$tmp/zstd.rc" ]; then
      fail nix "nix-store --import failed with exit code $rc (zstd, decompressing the plan into it, exited $(cat "$tmp/zstd.rc"))"
    fi
    [ "$rc" = 0 ] || fail nix "nix-store --import failed with exit code $rc"
    [ -f "$tmp/zstd.rc" ] && fail host "zstd could not decompress the verified plan (exit $(cat "$tmp/zstd.rc"))"
  else
    nix-store --import < "$tmp/plan" > "$tmp/imported"
    rc=$?
    [ "$rc" = 0 ] || fail nix "nix-store --import failed with exit code $rc"
  fi
  if [ -n "$rdir" ]; then
    if [ -n "$r_drv" ]; then
      root_drv "$r_drv"
    elif [ -n "$r_out" ] && nix-store --check-validity "$r_out" 2> /dev/null; then
      root_path "$r_out" system
    fi
    roots_touch
  fi
  say imported "$(wc -l < "$tmp/imported" | tr -d ' ')"
  say end
}

missing() {
  list=$(xargs nix-store --check-validity --print-invalid) || fail nix "nix-store --check-validity failed"
  printf '%s\n' "$list" | while read -r p; do [ -n "$p" ] && say missing "$p"; done
  say end
}
`;

;// CONCATENATED MODULE: ./src/nix/host-script.ts
// The program nix-plan runs on a deploy target (and, for `apply`, on this machine): every step of
// a deploy as POSIX sh, so the host needs only sh, Nix and the everyday tools of any NixOS system.
//
// It is passed whole on each connection (`sh -c PROGRAM nix-plan-host PHASE ARGS…`), so nothing is
// installed on the host and the host always runs the code of the nix-plan that talks to it.
// Lines for nix-plan go to stdout, each starting `@nix-plan `; what a person should read (Nix's
// build log, switch-to-configuration's output) goes to stderr. The program is written without
// brace expansions (`${…}`) so it can live in a template literal untouched. Here: the helpers every
// phase uses, the probe and the dispatch; the phases that move a plan are in host-transfer.ts, those
// that activate it in host-activation.ts, the supervisor activation leaves behind in
// host-supervisor.ts.



/** The name the program runs under (`$0`): how a host's process list and logs show it. */
const HOST_PROGRAM_NAME = 'nix-plan-host';
/** Version of the marker-line protocol below; the probe reports it. */
const HOST_PROTOCOL = 1;
/** The host program. */
const HOST_SCRIPT = String.raw `# ${HOST_PROGRAM_NAME}: nix-plan's steps on a deploy target (sh -c PROGRAM ${HOST_PROGRAM_NAME} PHASE ARGS...)
trap '' PIPE
nl='
'
cr=$(printf '\r')
rdir=
# One answer per line: a value holding a line break (a profile link's target can) would be read as
# answers of its own, so the session ends refusing it instead.
say() {
  case $* in
    *"$nl"* | *"$cr"*)
      printf '@nix-plan error host %s\n' "a $1 to report holds a line break (a link target made to look like answers?): refusing it"
      exit 1
      ;;
  esac
  printf '@nix-plan %s\n' "$*"
}
fail() {
  printf '@nix-plan error %s\n' "$*"
  exit 1
}
nap() { sleep 0.2 2>/dev/null || sleep 1; }
alive() { [ -n "$1" ] && { [ -d "/proc/$1" ] || kill -0 "$1" 2>/dev/null; }; }
abs_link() {
  t=$(readlink "$1" 2>/dev/null) || return 1
  case $t in /*) printf '%s\n' "$t" ;; *) printf '%s/%s\n' "$(dirname "$1")" "$t" ;; esac
}
# A relative profile is taken from the login's home directory on the host.
resolve_profile() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$HOME" "$1" ;; esac; }
tmpbase() { if [ -n "$TMPDIR" ]; then printf '%s\n' "$TMPDIR"; else printf '/tmp\n'; fi; }
link_number() { expr "$(basename "$1")" : '.*-\([0-9][0-9]*\)-link$'; }
# The generation nix-env --rollback goes to: PROFILE's highest-numbered PROFILE-N-link below
# the current generation CURRENT (a link path); prints nothing and fails when there is none.
generation_before() {
  g_dir=$(dirname "$1")
  g_base=$(basename "$1")
  g_cur=$(link_number "$2") || return 1
  g_best=
  for g_link in "$g_dir/$g_base"-*-link; do
    [ -L "$g_link" ] || continue
    g_n=$(link_number "$g_link") || continue
    [ "$(basename "$g_link")" = "$g_base-$g_n-link" ] || continue
    [ "$g_n" -lt "$g_cur" ] || continue
    if [ -z "$g_best" ] || [ "$g_n" -gt "$g_best" ]; then g_best=$g_n; fi
  done
  [ -n "$g_best" ] || return 1
  printf '%s/%s-%s-link\n' "$g_dir" "$g_base" "$g_best"
}

probe() {
  profile=$(resolve_profile "$1")
  say protocol ${HOST_PROTOCOL}
  # First: who we are explains a failure of what follows (a login that cannot reach the store).
  say uid "$(id -u)"
  # Standard output only: a warning Nix prints (an unknown setting in nix.conf) is not the answer.
  v=$(nix-store --version 2> /dev/null) || fail nix "nix-store --version failed: $(nix-store --version 2>&1)"
  say nix "$v"
  sd=$(nix-instantiate --eval -E builtins.storeDir 2> /dev/null) ||
    fail nix "cannot ask Nix for its store dir: $(nix-instantiate --eval -E builtins.storeDir 2>&1)"
  say store-dir "$sd"
  if [ -d /run/systemd/system ]; then say systemd 1; else say systemd 0; fi
  if command -v zstd > /dev/null 2>&1; then say zstd 1; else say zstd 0; fi
  if cur=$(abs_link "$profile"); then
    say generation "$cur"
    if sys=$(abs_link "$cur"); then say system "$sys"; fi
    # Where a rollback would go.
    if before=$(generation_before "$profile" "$cur"); then
      say previous-generation "$before"
      if sys=$(abs_link "$before"); then say previous-system "$sys"; fi
    fi
  fi
  if [ -f "$profile.nix-plan.json" ]; then
    say record "$(od -An -v -tx1 "$profile.nix-plan.json" | tr -d ' \n')"
  fi
  lock="$profile.nix-plan.d/lock"
  if [ -d "$lock" ]; then
    pid=$(cat "$lock/pid" 2>/dev/null)
    if [ -z "$pid" ] || alive "$pid"; then say busy "$pid"; fi
  fi
  # The newest activation beside the profile (their names sort by time): how it ended, so the
  # next deploy or rollback can say what the host was left running. First lines only.
  last=
  for d in "$profile.nix-plan.d"/act-*; do [ -d "$d" ] && [ ! -L "$d" ] && last=$d; done
  if [ -n "$last" ]; then
    say last-activation "$(basename "$last")"
    for f in action out state switch-rc; do
      v=
      [ -f "$last/$f" ] && read -r v < "$last/$f"
      case $v in *"$cr"*) v= ;; esac
      say "last-$f" "$v"
    done
    [ -e "$last/expired" ] && say last-expired 1
    [ -e "$last/timed-out" ] && say last-timed-out 1
  fi
  for d in "$(tmpbase)"/nix-plan-recv.* "$(tmpbase)"/nix-plan-closure.* "$(tmpbase)"/nix-plan-timer.*; do
    [ -d "$d" ] || continue
    pid=$(expr "$(basename "$d")" : 'nix-plan-[a-z]*\.\([0-9]*\)\.')
    alive "$pid" || rm -rf "$d" 2> /dev/null
  done
  # What deploys cut off before they ended left rooted (see host-roots.ts).
  stale_roots "$1"
  say end
}

# The experimental features the host's Nix has on, as its settings say them (the text form: 2.8's
# --json writes them as numbers); nothing when no \`nix\` command there says them.
features() {
  for f_cmd in show-config 'config show'; do
    # f_cmd is split on purpose: 'config show' is two words.
    # shellcheck disable=SC2086
    f_out=$(nix --extra-experimental-features nix-command $f_cmd 2> /dev/null) || continue
    f_line=$(printf '%s\n' "$f_out" | sed -n 's/^experimental-features = //p')
    [ -n "$f_line$(printf '%s\n' "$f_out" | sed -n 's/^experimental-features =$/x/p')" ] || continue
    say features "$f_line"
    say end
    return 0
  done
  say end
}

${ROOTS_FUNCTIONS}
${TRANSFER_PHASES}
${ACTIVATION_PHASES}
phase=$1
shift
case $phase in
  probe) probe "$@" ;;
  receive) receive "$@" ;;
  missing) missing "$@" ;;
  closure) closure "$@" ;;
  activate) activate "$@" ;;
  confirm) confirm "$@" ;;
  release) release "$@" ;;
  features) features ;;
  *) fail usage "unknown phase '$phase'" ;;
esac
`;
/** The argv that runs `phase` of the host program with `args` (for a HostShell). */
function hostProgramArgv(phase, args, sudo = false) {
    return [...(sudo ? ['sudo', '-n', '--'] : []), 'sh', '-c', HOST_SCRIPT, HOST_PROGRAM_NAME, phase, ...args];
}

;// CONCATENATED MODULE: ./src/nix/host-program.ts
// The client side of the host program (host-script.ts): runs its phases through a HostShell and
// turns their marker lines into typed answers and their refusals into NixPlanErrors.






/** A session that ended without its final report: the connection dropped or the program died. */
class HostSessionError extends errors_NixPlanError {
    partial;
    connectionLost;
    name = 'HostSessionError';
    constructor(message, 
    /** What the session had reported before it ended. */
    partial, 
    /** ssh itself failed (exit 255) or was killed: the connection, not the program. */
    connectionLost) {
        super('host', message);
        this.partial = partial;
        this.connectionLost = connectionLost;
    }
}
/** What follows a plan sent before it was verified, once it has been (see HostProgram.receive). */
const GO_SIGNAL = '@nix-plan-verified';
/** `input`, then, once `verified` resolves, the go signal; if it rejects, the stream fails instead. */
async function* thenGo(input, verified) {
    if (input instanceof Uint8Array)
        yield input;
    else
        yield* input;
    await verified;
    yield new TextEncoder().encode(GO_SIGNAL);
}
/** Why a login that is not root cannot activate, and what to do about it. */
function notRootText(uid) {
    return (`the login on the host is uid ${uid}, not root: building into the host's store, setting the system ` +
        'profile and switching need root there; log in as root, or as a user allowed `sudo -n` with --use-sudo');
}
/** The phases of the host program on one host. */
class HostProgram {
    shell;
    options;
    constructor(shell, options = {}) {
        this.shell = shell;
        this.options = options;
    }
    argv(phase, args) {
        return hostProgramArgv(phase, args, this.options.sudo === true);
    }
    /**
     * Runs `phase`, stopping the session once the host has sent more than HOST_OUTPUT_LIMIT bytes
     * on standard output (what it prints for a person goes to `onStderr`, passed on and not kept).
     */
    async run(phase, args, options = {}) {
        const stop = new AbortController();
        const stopNow = () => stop.abort();
        const { signal } = options;
        if (signal?.aborted === true)
            stopNow();
        signal?.addEventListener('abort', stopNow, { once: true });
        let bytes = 0;
        try {
            const result = await this.shell.run(this.argv(phase, args), {
                ...options,
                signal: stop.signal,
                onStdout: (c) => {
                    bytes += c.length;
                    if (bytes > HOST_OUTPUT_LIMIT)
                        stopNow();
                },
            });
            if (bytes > HOST_OUTPUT_LIMIT)
                throw new errors_NixPlanError('host', `${this.shell.label}: the host sent more than ${HOST_OUTPUT_LIMIT} bytes of answers during the ${phase} phase: refused`);
            return result;
        }
        finally {
            signal?.removeEventListener('abort', stopNow);
        }
    }
    /** The error kind the program named, as one of ours (a remote command failing is the host's). */
    errorFor(kind, message) {
        const where = `${this.shell.label}: ${message}`;
        const codes = {
            usage: 'internal',
            shape: 'usage',
            nix: this.shell.remote ? 'host' : 'nix',
            build: this.shell.remote ? 'host' : 'nix',
        };
        // The kind is the host's word: only our own keys, not `constructor` or `__proto__`.
        return new errors_NixPlanError(Object.hasOwn(codes, kind) ? codes[kind] : 'host', where);
    }
    /** Throws for a refusal or a session that ended without `end`; returns the markers otherwise. */
    check(result, what) {
        const markers = parseMarkers(result.stdout);
        const error = lastMarker(markers, 'error');
        if (error !== undefined) {
            const space = error.indexOf(' ');
            throw this.errorFor(error.slice(0, space < 0 ? error.length : space), error.slice(space + 1));
        }
        if (result.code === 0 && markers.some(([k]) => k === 'end'))
            return markers;
        const connectionLost = this.shell.remote && (result.code === 255 || result.signal !== undefined);
        const detail = result.stderr.trim().split('\n').slice(-5).join('\n');
        throw new HostSessionError(connectionLost
            ? `${this.shell.label}: the SSH connection failed during ${what}${detail === '' ? '' : `: ${detail}`}`
            : `${this.shell.label}: ${what} stopped (exit code ${result.code}${result.signal === undefined ? '' : `, ${result.signal}`})${detail === '' ? '' : `: ${detail}`}`, activationReport(markers), connectionLost);
    }
    /** Asks the host for its Nix, store dir, profile state and record (no part of a plan is sent). */
    async probe(profile, signal) {
        const result = await this.run('probe', [profile], { signal });
        let m;
        try {
            m = this.check(result, 'the probe');
        }
        catch (e) {
            // A refusal by a login that is not root: that is the likelier cause, say so.
            const uid = markerNumber(lastMarker(parseMarkers(result.stdout), 'uid'));
            if (e instanceof HostSessionError || !(e instanceof errors_NixPlanError) || uid === undefined || uid === 0)
                throw e;
            throw new errors_NixPlanError(e.code, `${e.message}\n(${notRootText(uid)})`, { cause: e });
        }
        const protocol = lastMarker(m, 'protocol');
        if (protocol !== String(HOST_PROTOCOL))
            throw new errors_NixPlanError('host', `${this.shell.label}: the host program answered in protocol ${protocol}`);
        let storeDir;
        try {
            storeDir = JSON.parse(lastMarker(m, 'store-dir') ?? '');
        }
        catch {
            storeDir = undefined;
        }
        if (typeof storeDir !== 'string')
            throw new errors_NixPlanError('host', `${this.shell.label}: cannot read the host's store dir from Nix (it said '${lastMarker(m, 'store-dir') ?? ''}')`);
        const record = lastMarker(m, 'record');
        // Links and systems are shown, passed back to the host and written into the record: absolute
        // paths of printable characters, or the host is not answering as the program does.
        for (const key of ['generation', 'system', 'previous-generation', 'previous-system']) {
            const value = lastMarker(m, key);
            if (value !== undefined && (!value.startsWith('/') || unsafeCharacter(value) !== undefined))
                throw new errors_NixPlanError('host', `${this.shell.label}: the host sent a ${key} that is not an absolute path of printable characters: ${JSON.stringify(value.slice(0, 200))}`);
        }
        return {
            nixVersion: parseNixVersion(lastMarker(m, 'nix') ?? ''),
            storeDir,
            uid: markerNumber(lastMarker(m, 'uid')) ?? -1,
            systemd: lastMarker(m, 'systemd') === '1',
            zstd: lastMarker(m, 'zstd') === '1',
            generation: lastMarker(m, 'generation'),
            system: lastMarker(m, 'system'),
            previousGeneration: lastMarker(m, 'previous-generation'),
            previousSystem: lastMarker(m, 'previous-system'),
            record: record === undefined ? undefined : markerBytes(record),
            busy: lastMarker(m, 'busy'),
            lastActivation: parseLastActivation(m, storeDir),
        };
    }
    /**
     * Sends a plan (its export stream, raw or as zstd) to a private temp file on the host, which
     * checks its size and sha256 before `nix-store --import` reads it; returns how many paths Nix
     * imported. Anything short of the whole, exact stream is refused there and removed.
     *
     * With `verified`, the plan may be sent while it is still being verified here: the host holds
     * it unread until the stream is followed by a go signal, sent only once `verified` resolves; if
     * it rejects, the stream ends without the signal and the host removes what it received.
     */
    async receive(input, expected, output = {}) {
        const { verified, roots } = output;
        if (verified !== undefined && input instanceof FileInput)
            throw new errors_NixPlanError('internal', 'a plan sent before it is verified cannot be a file');
        const result = await this.run('receive', [
            String(expected.size),
            expected.sha256,
            expected.encoding,
            ...(verified === undefined && roots === undefined ? [] : [verified === undefined ? '' : GO_SIGNAL]),
            ...(roots === undefined ? [] : [roots.profile, roots.id, roots.drvPath ?? '', roots.out ?? '']),
        ], {
            input: verified === undefined || input instanceof FileInput ? input : thenGo(input, verified),
            onStderr: output.onOutput,
            signal: output.signal,
        });
        const m = this.check(result, 'the transfer');
        return { imported: markerNumber(lastMarker(m, 'imported')) ?? 0 };
    }
    /**
     * Which of `paths` are not valid in the host's store (asked with the paths on stdin). The answer
     * is what this machine sends next (`nix-store --export` of it), so a host naming anything it was
     * not asked about — another path of this store, an option for `nix-store` — is refused: it
     * would get that path, or steer the export. `what` names the paths asked about, for the message.
     */
    async missing(paths, signal, what = 'the paths asked about') {
        const input = new Uint8Array(Buffer.from(paths.map((p) => `${p}\n`).join(''), 'utf8'));
        const result = await this.run('missing', [], { input, signal });
        const asked = new Set(paths);
        const missing = new Set();
        for (const [k, v] of this.check(result, 'the validity query')) {
            if (k !== 'missing')
                continue;
            if (!asked.has(v))
                throw new errors_NixPlanError('host', `${this.shell.label}: the host answered that ${JSON.stringify(v.slice(0, 300))} is missing, a path it was not asked about (${what}): refused, nothing was sent`);
            missing.add(v);
        }
        // In the order asked (dependency order, as nix-store --export wants it), each once.
        return paths.filter((p) => missing.has(p));
    }
    /**
     * Builds the system `out` on the host (from `drvPath`, when given) and reports what activating
     * it would change: the profile's current generation and the runtime closures of its system and
     * of `out`, each path with its NAR size, as the host's Nix gives them (`nix-store -qR`, `-q
     * --size`). Every line is checked against `storeDir`; more than HOST_OUTPUT_LIMIT bytes is refused.
     */
    async closures(args, output = {}) {
        const argv = [
            args.profile,
            args.drvPath ?? '',
            args.out,
            ...(args.roots === undefined ? [] : [args.roots]),
        ];
        const result = await this.run('closure', argv, {
            onStderr: output.onOutput,
            signal: output.signal,
        });
        return parseClosures(this.check(result, 'the closure query'), args.storeDir, this.shell.label);
    }
    /**
     * Builds (when asked), sets the profile, starts the supervisor and follows its log until the
     * switch is over: the report says `awaiting-confirmation` or how it ended.
     */
    async activate(args, output = {}) {
        if (!/^[A-Za-z0-9-]+$/.test(args.id))
            throw new errors_NixPlanError('internal', `bad activation id '${args.id}'`);
        if (!Number.isSafeInteger(args.activationTimeout) || args.activationTimeout < 0)
            throw new errors_NixPlanError('internal', `bad activation timeout ${args.activationTimeout}`);
        const result = await this.run('activate', [
            args.profile,
            args.action,
            args.drvPath ?? '',
            args.out,
            String(args.confirmTimeout),
            args.recordSeen,
            args.record,
            args.id,
            String(args.activationTimeout),
            args.rollback === undefined ? '' : String(args.rollback.to),
            args.rollback?.from ?? '',
            args.roots ?? '',
        ], { onStderr: output.onOutput, signal: output.signal });
        return activationReport(this.check(result, 'the activation'));
    }
    /**
     * The experimental features the host's Nix has on (its `nix show-config`, or `nix config show`,
     * text form), or undefined when it could not say. Asked only of a plan with a shape that needs one.
     */
    async features(signal) {
        const line = lastMarker(this.check(await this.run('features', [], { signal }), 'the feature query'), 'features');
        return line === undefined ? undefined : new Set(line.split(' ').filter((f) => f !== ''));
    }
    /**
     * The deploy `id` to `profile` is over, whatever its result: the host removes its roots, and
     * those of deploys to `profile` that were cut off (no session for ROOTS_STALE_SECONDS).
     */
    async release(profile, id, signal) {
        if (!/^[A-Za-z0-9-]+$/.test(id))
            throw new errors_NixPlanError('internal', `bad deploy id '${id}'`);
        this.check(await this.run('release', [profile, id], { signal }), 'the release of its roots');
    }
    /**
     * Over a new connection: follows the activation on from `offset` bytes of its log and, if it
     * awaits confirmation, confirms it (an atomic rename the watchdog competes for); then reports.
     */
    async confirm(profile, id, offset, output = {}) {
        const result = await this.run('confirm', [profile, id, String(offset)], {
            onStderr: output.onOutput,
            signal: output.signal,
            freshConnection: true,
        });
        return activationReport(this.check(result, 'the confirmation'));
    }
}

;// CONCATENATED MODULE: ./src/app/deploy/activation.ts
// Safe activation, for `deploy` and `apply` alike: run the host program's activation, confirm it
// over a new connection (or find out what the watchdog did when the connection was lost), and say
// which generation is current at the end of every path.





/** Every action, for parsing and help texts. */
const ACTIVATION_ACTIONS = ['switch', 'boot', 'test', 'dry-activate'];
/** Default seconds the host waits for confirmation after switching (deploy-rs's default too). */
const DEFAULT_CONFIRM_TIMEOUT = 30;
/**
 * Default seconds switch-to-configuration may run before it is stopped and the previous
 * generation re-activated: a switch that restarts many services takes minutes, one that has not
 * finished in ten is hanging (deploy-rs has a timeout for the same reason, activationTimeout).
 */
const DEFAULT_ACTIVATION_TIMEOUT = 600;
/** An activation that failed: the error code says whether the host was restored (13) or not (14). */
class ActivationError extends errors_NixPlanError {
    report;
    name = 'ActivationError';
    constructor(code, message, report) {
        super(code, message);
        this.report = report;
    }
}
/** The generation number of a link like `/nix/var/nix/profiles/system-42-link`. */
function generationNumber(link) {
    const m = /-(\d+)-link$/.exec((0,external_node_path_namespaceObject.basename)(link ?? ''));
    return m?.[1] === undefined ? undefined : Number(m[1]);
}
/** A fresh activation id: sortable by time (the host keeps the newest few), unique by chance. */
function newActivationId(now = new Date()) {
    const stamp = now
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
    return `${stamp}-${(0,external_node_crypto_namespaceObject.randomBytes)(4).toString('hex')}`;
}
/** "generation 3 (/nix/store/…-nixos-system-…)" or "no generation". */
function describeCurrent(r) {
    const n = generationNumber(r.current);
    if (n === undefined)
        return 'the profile has no generation now';
    return `the current generation is ${n}${r.currentSystem === undefined ? '' : ` (${r.currentSystem})`}`;
}
/** The error for a report that did not end well, or undefined for one that did. */
function reportProblem(report, action, confirmTimeout, rollingBack = false) {
    // In a rollback, the generation restored is the one rolled back from.
    const earlier = rollingBack ? 'the generation rolled back from' : 'the previous generation';
    const why = report.timedOut !== undefined
        ? `switch-to-configuration ${action} did not finish within ${report.timedOut} s and was stopped`
        : report.switchRc !== undefined && report.switchRc !== 0
            ? `switch-to-configuration ${action} exited with ${report.switchRc}${report.switchRc === 4 ? ' (some units failed)' : ''}`
            : `the activation was not confirmed within ${confirmTimeout} s`;
    const previous = generationNumber(report.previous);
    switch (report.state) {
        case 'done':
            return undefined;
        case 'dry-activated':
            return report.switchRc === 0
                ? undefined
                : new ActivationError('activation', `${report.timedOut !== undefined ? why : `switch-to-configuration dry-activate exited with ${report.switchRc ?? '?'}`}; nothing was changed`, report);
        case 'reverted':
            return new ActivationError('activation', `${why}: re-activated ${earlier}${previous === undefined ? '' : ` ${previous}`}` +
                `${report.removed === undefined ? '' : ` and removed ${(0,external_node_path_namespaceObject.basename)(report.removed)}`}; ${describeCurrent(report)}`, report);
        case 'no-previous':
            return new ActivationError('activation', `${why}: there was no previous generation to re-activate` +
                `${report.removed === undefined ? '' : `; removed ${(0,external_node_path_namespaceObject.basename)(report.removed)}`}; ${describeCurrent(report)}`, report);
        case 'revert-failed':
            return new ActivationError('attention', `${why}, and restoring ${earlier} failed` +
                `${report.revertTimedOut !== undefined ? ` (its switch-to-configuration did not finish within ${report.revertTimedOut} s and was stopped)` : report.revertRc === undefined ? '' : ` (its switch-to-configuration exited with ${report.revertRc})`}: ` +
                `the host needs attention; ${describeCurrent(report)}`, report);
        default:
            return new ActivationError('attention', `the activation on the host stopped in state '${report.state ?? 'unknown'}' without finishing: ` +
                `the host needs attention; ${describeCurrent(report)}`, report);
    }
}
const realClock = {
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};
/**
 * Keeps trying the confirm phase over new connections until `deadline` (ms): the host answers
 * with the activation's outcome (and whether this confirmation or the watchdog won).
 */
async function confirmUntil(program, profile, id, offset, deadline, io) {
    const clock = io.clock ?? realClock;
    let logged = offset;
    for (let attempt = 1;; attempt++) {
        try {
            return await program.confirm(profile, id, logged, { onOutput: io.output });
        }
        catch (e) {
            if (!(e instanceof HostSessionError) || !e.connectionLost)
                throw e;
            logged = Math.max(logged, e.partial.logged);
            if (clock.now() >= deadline)
                throw e;
            io.log.debug(`${program.shell.label}: reconnecting to confirm (attempt ${attempt}): ${e.message}`);
            await clock.sleep(1000);
        }
    }
}
/**
 * Activates `request` through `program` and sees it through: confirms a switch or test over a
 * new connection (deploy-rs's magic rollback, with the race settled on the host), reconnects
 * when the session drops, and fails with the error code that says what state the host is in.
 */
async function activateSafely(program, request, io) {
    const clock = io.clock ?? realClock;
    const id = newActivationId();
    const earlier = request.rollback === undefined ? 'the previous generation' : 'the generation rolled back from';
    const window = Math.max(request.confirmTimeout, 5) * 1000;
    let report;
    try {
        report = await program.activate({ ...request, id }, { onOutput: io.output });
    }
    catch (e) {
        // A session lost after the supervisor started: the activation goes on without us. Come back
        // to follow it, and to confirm it if the host still lets us in.
        if (!(e instanceof HostSessionError) || !e.connectionLost || e.partial.id === undefined)
            throw e;
        io.log.warn(`${program.shell.label}: lost the connection during the activation; reconnecting`);
        try {
            report = await confirmUntil(program, request.profile, id, e.partial.logged, clock.now() + window, io);
        }
        catch (again) {
            if (!(again instanceof HostSessionError))
                throw again;
            throw new errors_NixPlanError('host', `${program.shell.label}: lost the connection during the activation and could not reconnect within ` +
                `${window / 1000} s. ${request.confirmTimeout > 0 && (request.action === 'switch' || request.action === 'test') ? `Unconfirmed, the host's watchdog re-activates ${earlier}${e.partial.previous === undefined ? '' : ` (${(0,external_node_path_namespaceObject.basename)(e.partial.previous)})`} ${request.confirmTimeout} s after the switch ends.` : 'The activation goes on there; check the host.'} Last error: ${again.message}`);
        }
    }
    let confirmed = false;
    if (report.state === 'awaiting-confirmation' && report.id !== undefined) {
        const first = report;
        report = await confirmUntil(program, request.profile, report.id, report.logged, clock.now() + request.confirmTimeout * 1000, io)
            .then((r) => ({
            ...r,
            previous: r.previous ?? first.previous,
            previousSystem: r.previousSystem ?? first.previousSystem,
            generation: r.generation ?? first.generation,
        }))
            .catch((e) => {
            if (!(e instanceof HostSessionError))
                throw e;
            throw new errors_NixPlanError('host', `${program.shell.label}: switched, but could not log in again to confirm within ${request.confirmTimeout} s: ` +
                `unconfirmed, the host's watchdog re-activates ${earlier}. Last error: ${e.message}`);
        });
        confirmed = report.confirmed === true && report.state === 'done';
    }
    const problem = reportProblem(report, request.action, request.confirmTimeout, request.rollback !== undefined);
    if (problem !== undefined)
        throw problem;
    return {
        report,
        confirmed,
        generation: generationNumber(report.current),
        previousGeneration: generationNumber(report.previous),
    };
}

;// CONCATENATED MODULE: ./src/core/provenance-view.ts


/** Longest list (flake inputs, promotions) shown in full. */
const ORIGIN_LIST_LIMIT = 20;
/** Most keys named per promotion (a manifest may record 64, each name up to 256 bytes). */
const PROMOTION_SIGNERS_SHOWN = 4;
/** A URL safe to link to as it is: https, a host, a path of plain characters. */
const PLAIN_HTTPS = /^https:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?\/[A-Za-z0-9._~/%+-]*$/;
/** "3 days", "5 hours", "12 minutes", "40 seconds". */
function formatAge(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    const [n, unit] = s >= 2 * 86400
        ? [Math.floor(s / 86400), 'day']
        : s >= 2 * 3600
            ? [Math.floor(s / 3600), 'hour']
            : s >= 120
                ? [Math.floor(s / 60), 'minute']
                : [s, 'second'];
    return `${n} ${unit}${n === 1 ? '' : 's'}`;
}
function created(m, now) {
    if (m.createdAt === undefined)
        return [
            {
                text: m.formatVersion === 1
                    ? 'unknown (a format 1 bundle records no creation time)'
                    : 'unknown (promoted from a format 1 bundle, which records no creation time)',
            },
        ];
    const age = now === undefined ? undefined : now.getTime() - Date.parse(m.createdAt);
    return [
        { data: m.createdAt },
        ...(age === undefined
            ? []
            : [{ text: age < 0 ? ` (${formatAge(age)} in the future)` : ` (${formatAge(age)} ago)` }]),
    ];
}
/**
 * The rows describing a plan's origin and trust: creation time, repository, commit, ref,
 * workflow, run, flake and its inputs, each promotion, and the signature status. A version-1
 * plan says its origin is unknown. `now` adds the plan's age.
 */
function originRows(manifest, trust, options = {}) {
    const rows = [{ label: 'created', value: created(manifest, options.now) }];
    const p = manifest.provenance;
    if (p === undefined || Object.keys(p).length === 0)
        rows.push({
            label: 'source',
            value: [
                { text: manifest.formatVersion === 1 ? 'unknown (a format 1 bundle records none)' : 'not recorded' },
            ],
        });
    else {
        if (p.repository !== undefined)
            rows.push({ label: 'repository', value: [{ data: p.repository }] });
        if (p.commit !== undefined)
            rows.push({
                label: 'commit',
                value: [{ data: p.commit }, ...(p.dirty === true ? [{ text: ' with uncommitted changes' }] : [])],
            });
        if (p.ref !== undefined)
            rows.push({ label: 'ref', value: [{ data: p.ref }] });
        if (p.workflow !== undefined)
            rows.push({ label: 'workflow', value: [{ data: p.workflow }] });
        if (p.runUrl !== undefined) {
            const name = runName(p.runUrl, p.runAttempt, p.repository);
            rows.push({
                label: 'run',
                value: name !== undefined ? [{ link: name, url: p.runUrl }] : [{ data: p.runUrl }],
            });
        }
        if (p.flake !== undefined) {
            rows.push({ label: 'flake', value: [{ data: p.flake.url }] });
            const shown = p.flake.inputs.slice(0, ORIGIN_LIST_LIMIT);
            for (const input of shown)
                rows.push({ label: '  input', value: [{ data: input.name }, { text: ' ' }, { data: input.url }] });
            if (p.flake.inputs.length > shown.length)
                rows.push({
                    label: '  inputs',
                    value: [{ text: `…and ${p.flake.inputs.length - shown.length} more` }],
                });
        }
    }
    // The most recent promotions (the last one says who signed this plan's input); a plan may
    // record 256, each naming 64 keys: shown whole they would push everything after them out of a
    // summary.
    const promotions = manifest.promotions ?? [];
    const earlier = Math.max(0, promotions.length - ORIGIN_LIST_LIMIT);
    if (earlier > 0)
        rows.push({
            label: 'promotions',
            value: [
                {
                    text: `${earlier} earlier promotion${earlier === 1 ? '' : 's'} not shown (inspect --json lists them)`,
                },
            ],
        });
    // A promotion is the promoter's statement, under the plan's signature: it says who verified the
    // input only as far as a key the reader trusts signed this plan. Otherwise anyone could have
    // written it (a forger with a key of their own names ci's key and fingerprint), and it is shown
    // as a claim, never in the words of a check.
    // Each promotion copies the records before it from its input: a trusted signature on this plan
    // vouches for those only as far back as every later promoter verified its input with a key. A
    // record from before a promotion that took its input unproven (--no-check-sigs, or no key) is
    // whatever that input said: a claim, however this plan is signed.
    const vouched = options.signedHere === true || (trust?.verifiedBy.length ?? 0) > 0;
    let unproven = -1;
    for (const [j, pr] of promotions.entries())
        if (pr.noCheckSigs === true || pr.signedBy.length === 0)
            unproven = j;
    for (const [i, pr] of promotions.entries()) {
        if (i < earlier)
            continue;
        const claim = !vouched || i < unproven;
        const signers = pr.signedBy.slice(0, PROMOTION_SIGNERS_SHOWN);
        const more = pr.signedBy.length - signers.length;
        rows.push({
            label: `promotion ${i + 1}`,
            value: [
                { text: 'from ' },
                { data: pr.storeDir },
                { text: ' at ' },
                { data: pr.at },
                { text: ', input ' },
                { data: pr.digest },
                ...(pr.noCheckSigs === true
                    ? [{ text: ', accepted NOT CHECKED (--no-check-sigs)' }]
                    : pr.signedBy.length === 0
                        ? [{ text: ', input not verified by any key' }]
                        : [
                            { text: claim ? ', unverified claim: input verified by ' : ', input verified by ' },
                            ...signers.flatMap((s, j) => [
                                ...(j > 0 ? [{ text: ', ' }] : []),
                                { data: s.key },
                                { text: ' (' },
                                { data: s.fingerprint },
                                { text: ')' },
                            ]),
                            ...(more > 0 ? [{ text: ` and ${more} more key${more === 1 ? '' : 's'}` }] : []),
                        ]),
            ],
        });
    }
    rows.push({ label: 'trust', value: trustSegments(manifest, trust, options.signedHere === true) });
    return rows;
}
/** A run's URL: `https://HOST/OWNER/NAME/actions/runs/ID`, maybe `/attempts/N`. */
const RUN_URL = /^https:\/\/([A-Za-z0-9.-]+(?::\d{1,5})?)\/([A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+)\/actions\/runs\/(\d+)(?:\/attempts\/\d+)?\/?$/;
/**
 * The text of a link to a plan's run, or undefined when it must be shown whole instead: a link
 * reading "run 42" beside the repository row must lead to that repository's run 42, so only a
 * plain run URL of the repository the plan names is linked (another server's is named in the
 * text). Our own words, from the URL's digits and host only: the text never holds bundle text.
 */
function runName(url, attempt, repository) {
    const m = RUN_URL.exec(url);
    if (m === null || !PLAIN_HTTPS.test(url) || repository?.toLowerCase() !== m[2]?.toLowerCase())
        return undefined;
    const host = m[1] === 'github.com' ? '' : ` on ${m[1] ?? ''}`;
    return `run ${m[3] ?? ''}${host}${attempt === undefined ? '' : `, attempt ${attempt}`}`;
}
/** The trust status with the key names marked as bundle data. */
function trustSegments(manifest, trust, signedHere) {
    if (signedHere && trust === undefined && manifest.signatures.length > 0)
        return [
            { text: 'signed in this job by ' },
            ...manifest.signatures.flatMap((g, i) => [...(i > 0 ? [{ text: ', ' }] : []), { data: g.key }]),
        ];
    const status = trustStatus(manifest, trust);
    const prefix = 'verified: signed by trusted key ';
    if (!status.startsWith(prefix) || trust === undefined)
        return [{ text: status }];
    return [
        { text: prefix },
        ...trust.verifiedBy.flatMap((k, i) => [...(i > 0 ? [{ text: ', ' }] : []), { data: k }]),
    ];
}
/** A row's value for a terminal: bundle text escaped (no control sequence gets through). */
function segmentsText(value) {
    return value
        .map((s) => 'data' in s ? escapeTerminal(s.data) : 'url' in s ? `${s.link} ${s.url}` : escapeTerminal(s.text))
        .join('');
}
/**
 * A row's value in Markdown: bundle text in code spans, links only to plain https URLs, our own
 * words as they are (they never hold bundle text, and read better unescaped in the source).
 */
function segmentsMarkdown(value) {
    return value
        .map((s) => ('data' in s ? markdownCode(s.data) : 'url' in s ? `[${s.link}](${s.url})` : s.text))
        .join('');
}
/**
 * The origin and trust of a plan for a terminal: `label: value` lines, aligned, every value from
 * the bundle escaped. The same facts as `originMarkdown`.
 */
function originText(manifest, trust, options = {}) {
    const rows = originRows(manifest, trust, options);
    const width = Math.max(...rows.map((r) => r.label.length)) + 1;
    return rows.map((r) => `${`${r.label}:`.padEnd(width)} ${segmentsText(r.value)}\n`).join('');
}
/**
 * The origin and trust of a plan as a two-column Markdown table for a job summary, every value
 * from the bundle in a code span (and `|` escaped for the table).
 */
function originMarkdown(manifest, trust, options = {}) {
    const rows = originRows(manifest, trust, options);
    const cell = (s) => s.replace(/\|/g, '\\|');
    return [
        '| origin | |',
        '| --- | --- |',
        ...rows.map((r) => `| ${cell(r.label.trim())} | ${cell(segmentsMarkdown(r.value))} |`),
        '',
    ].join('\n');
}

;// CONCATENATED MODULE: ./src/core/freshness.ts
// Freshness: refusing a plan older than a given age, or older than the plan last applied to the
// same profile or out-link (a rollback by whoever can hand a host an old, validly signed file).
// Pure: the record's schema and the decision; reading and writing the record is app/freshness.ts.




/** A stale-plan refusal (exit code 11). */
function staleError(message) {
    return new errors_NixPlanError('stale', message);
}
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const freshness_HEX64 = /^[0-9a-f]{64}$/;
/** The refusal of a last-applied record at `where` that is not one (`why`). */
function unreadableRecord(where, why, names) {
    return staleError(`the last-applied record '${where}' is unreadable (${why}): nix-plan cannot tell whether this plan is older ` +
        `than the one applied before; repair or remove the record, or pass ${optionSet(names, 'allowDowngrade')}`);
}
/**
 * Parses a last-applied record; throws a 'stale' error naming `where` when it is not one (and the
 * option that waives it as `names` spells it: the command line's by default).
 */
function parseLastApplied(text, where, names) {
    const fail = (why) => unreadableRecord(where, why, names);
    let v;
    try {
        v = JSON.parse(text);
    }
    catch {
        throw fail('not JSON');
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v))
        throw fail('not a JSON object');
    const r = v;
    if (r['version'] !== 1)
        throw fail(`version ${JSON.stringify(r['version'])?.slice(0, 16)} is not 1`);
    const str = (k, pattern) => {
        const x = r[k];
        if (typeof x !== 'string' || !pattern.test(x))
            throw fail(`'${k}' is missing or malformed`);
        return x;
    };
    const time = (k) => {
        try {
            return timestamp(r[k], k);
        }
        catch {
            throw fail(`'${k}' is not an RFC 3339 UTC time`);
        }
    };
    const roots = r['roots'];
    if (!Array.isArray(roots) || !roots.every((x) => typeof x === 'string'))
        throw fail("'roots' is not a list of paths");
    return {
        version: 1,
        ...(r['createdAt'] !== undefined && { createdAt: time('createdAt') }),
        digest: str('digest', DIGEST),
        checksum: str('checksum', freshness_HEX64),
        storeDir: str('storeDir', /^\/\S*$/),
        roots: roots,
        appliedAt: time('appliedAt'),
    };
}
/** The record for `manifest`, applied now from a bundle file with `digest`. */
function lastAppliedOf(manifest, digest, appliedAt) {
    return {
        version: 1,
        ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
        digest,
        checksum: manifest.checksum,
        storeDir: manifest.storeDir,
        roots: manifest.roots.map((r) => r.drvPath),
        appliedAt,
    };
}
const UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/**
 * A duration like `90m`, `12h`, `7d`, `2w` or `1d12h` in milliseconds; a usage error naming
 * `option` otherwise.
 */
function parseDuration(text, option = '--max-age') {
    const parts = /^(?:\d+[smhdw])+$/.test(text) ? [...text.matchAll(/(\d+)([smhdw])/g)] : [];
    const ms = parts.reduce((n, [, count, unit]) => n + Number(count) * (UNITS[unit ?? ''] ?? NaN), 0);
    if (parts.length === 0 || !Number.isSafeInteger(ms) || ms <= 0)
        throw new errors_NixPlanError('usage', `${option} '${text}' is not a duration; accepted: a number and a unit (s, m, h, d, w), e.g. 12h, 7d or 1d12h`);
    return ms;
}
/**
 * Why `manifest` may not be applied under `policy` at `now` (a 'stale' error), or undefined when
 * it may. A plan of the same age as the last one passes (the same plan again, or a relocation of
 * it); a plan without createdAt (format 1) passes neither an age limit nor an existing record.
 * `--allow-downgrade` waives the record, never --max-age (drop the option instead).
 */
function freshnessProblem(manifest, policy, now) {
    const created = manifest.createdAt;
    const unknown = manifest.formatVersion === 1
        ? 'the plan records no creation time (a format 1 bundle)'
        : 'the plan records no creation time (it was promoted from a format 1 bundle)';
    const names = policy.optionNames;
    const force = `${optionSet(names, 'allowDowngrade')} to force`;
    if (policy.maxAgeMs !== undefined) {
        const limit = optionSet(names, 'maxAge', policy.maxAgeText ?? `${policy.maxAgeMs / 1000}s`);
        if (created === undefined)
            return staleError(`${unknown}, so it cannot be shown to be younger than ${limit}; re-export it`);
        const age = now.getTime() - Date.parse(created);
        if (age > policy.maxAgeMs)
            return staleError(`the plan was created at ${created}, ${formatAge(age)} ago: older than ${limit} allows`);
    }
    const last = policy.last;
    if (last === undefined || policy.allowDowngrade === true || last.record.checksum === manifest.checksum)
        return undefined;
    const before = `${last.target} was last given a plan created at ${last.record.createdAt ?? '(unknown)'} (applied ${last.record.appliedAt}, ${last.record.digest})`;
    if (created === undefined)
        return staleError(`${unknown}, and ${before}: it may be older; refusing it (${force})`);
    if (last.record.createdAt !== undefined && Date.parse(created) < Date.parse(last.record.createdAt))
        return staleError(`the plan was created at ${created}, before the one ${before}: refusing a downgrade (${force})`);
    return undefined;
}

;// CONCATENATED MODULE: ./src/core/shell-words.ts
// Shell-style words: splitting a line of arguments as a POSIX shell would (quotes and backslashes,
// no expansion), and quoting arguments back so a printed command can be pasted into a shell.

/**
 * Splits `text` into words the way `sh` splits a command line, without running anything:
 * whitespace separates words; '…' keeps everything literally; "…" keeps everything but lets a
 * backslash escape `"`, `\`, `$` and `` ` `` (and join lines); a backslash outside quotes takes the
 * next character literally. `$`, `~`, globs and `#` are plain characters: nothing is expanded.
 * Throws a usage error for an unterminated quote or a trailing backslash, naming `what`.
 */
function splitShellWords(text, what = 'the arguments') {
    const words = [];
    let word = '';
    let inWord = false;
    for (let i = 0; i < text.length; i++) {
        const c = text[i] ?? '';
        if (c === "'") {
            const end = text.indexOf("'", i + 1);
            if (end < 0)
                throw unterminated(what, "'");
            word += text.slice(i + 1, end);
            inWord = true;
            i = end;
        }
        else if (c === '"') {
            let j = i + 1;
            for (; j < text.length && text[j] !== '"'; j++) {
                const d = text[j] ?? '';
                const next = text[j + 1];
                if (d === '\\' && next !== undefined && '"\\$`\n'.includes(next)) {
                    if (next !== '\n')
                        word += next;
                    j++;
                }
                else
                    word += d;
            }
            if (j >= text.length)
                throw unterminated(what, '"');
            inWord = true;
            i = j;
        }
        else if (c === '\\') {
            const next = text[i + 1];
            if (next === undefined)
                throw new errors_NixPlanError('usage', `${what}: a backslash ends the text`);
            if (next !== '\n') {
                word += next;
                inWord = true;
            }
            i++;
        }
        else if (/\s/.test(c)) {
            if (inWord)
                words.push(word);
            word = '';
            inWord = false;
        }
        else {
            word += c;
            inWord = true;
        }
    }
    if (inWord)
        words.push(word);
    return words;
}
function unterminated(what, quote) {
    return new errors_NixPlanError('usage', `${what}: a ${quote} quote is not closed`);
}
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;
/** One argument as a shell reads it back: as it is when that is safe, else in single quotes. */
function quoteShellWord(word) {
    if (SAFE.test(word))
        return word;
    return `'${word.replace(/'/g, `'\\''`)}'`;
}
/** A command line (`cmd` and its arguments) that a shell reads back as the same argv. */
function formatCommandLine(cmd, args) {
    return [cmd, ...args].map(quoteShellWord).join(' ');
}

;// CONCATENATED MODULE: ./src/app/inspect.ts
// inspectPlan: what a bundle holds (roots, counts, sizes, signatures), from its manifest alone,
// without decompressing the stream or touching any store.


/**
 * Reads and validates a bundle file's manifest frame (header, size limit, schema, checksum) and
 * its length against the manifest, so truncation is caught before any decoding.
 */
async function inspect_readBundleHead(bundlePath) {
    const source = await openBundle(bundlePath);
    try {
        const head = await readBundleHead(source);
        return { manifest: head.manifest, dataOffset: head.dataOffset, fileSize: head.bundleBytes };
    }
    finally {
        await source.close();
    }
}
/** The label of a root: its installable, its attribute, or its derivation name. */
function rootLabel(root) {
    return root.installable ?? root.attribute ?? nameOf(root.drvPath).replace(/\.drv$/, '');
}
/** The summary of a manifest in a file of `bundleBytes` bytes. */
function summarise(manifest, bundleBytes) {
    return {
        bundleBytes,
        storeDir: manifest.storeDir,
        include: manifest.include,
        systems: manifest.systems,
        roots: manifest.roots.map((r) => ({ label: rootLabel(r), drvPath: r.drvPath, outputs: r.outputs })),
        paths: manifest.paths,
        counts: manifest.counts,
        narBytes: manifest.narBytes,
        streamBytes: manifest.stream.size,
        ratio: manifest.stream.compressedSize === 0 ? 0 : manifest.stream.size / manifest.stream.compressedSize,
        signatures: manifest.signatures.map((s) => s.key),
        trust: trustStatus(manifest),
        ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
        ...(manifest.provenance !== undefined && { provenance: manifest.provenance }),
        ...(manifest.promotions !== undefined && { promotions: manifest.promotions }),
        formatVersion: manifest.formatVersion,
        ...(manifest.relocatedFrom !== undefined && { relocatedFrom: manifest.relocatedFrom.storeDir }),
        tool: manifest.tool,
        nixVersion: manifest.nixVersion,
    };
}
/** The manifest and a summary of a bundle; reads only the manifest frame. */
async function inspectPlan(bundlePath) {
    const head = await inspect_readBundleHead(bundlePath);
    return { manifest: head.manifest, summary: summarise(head.manifest, head.fileSize) };
}

;// CONCATENATED MODULE: ./src/core/diff/packages.ts
// The package-level difference of two sets of derivations, the way nvd and `nix store
// diff-closures` show closures: derivations grouped by package name (`builtins.parseDrvName`),
// then per package a version change, an addition, a removal, or a rebuild at the same version.

/** Every kind, in the order a diff lists them. */
const PACKAGE_CHANGE_KINDS = [
    'upgrade',
    'downgrade',
    'changed',
    'added',
    'removed',
    'rebuilt',
];
/** Counts with every kind at zero. */
function packages_emptyCounts() {
    return { upgrade: 0, downgrade: 0, changed: 0, added: 0, removed: 0, rebuilt: 0 };
}
/** Version changes of any direction. */
function versionChanges(c) {
    return c.upgrade + c.downgrade + c.changed;
}
function setOf(nodes) {
    const paths = new Set();
    for (const n of nodes)
        paths.add(n.path);
    return (p) => paths.has(p);
}
const byVersion = (a, b) => compareVersions(a, b) || (a < b ? -1 : a > b ? 1 : 0);
const byString = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
/** Versions of the package names in `wanted`, over a whole set. */
function versionsByName(nodes, wanted) {
    const out = new Map();
    for (const n of nodes) {
        if (!wanted.has(n.pname))
            continue;
        let set = out.get(n.pname);
        if (set === undefined)
            out.set(n.pname, (set = new Set()));
        set.add(n.version);
    }
    return out;
}
function side(versions, changed) {
    const outputs = new Set();
    const kinds = new Set();
    for (const n of changed)
        for (const o of n.outputs) {
            outputs.add(o.name);
            kinds.add(o.kind);
        }
    return {
        versions: [...(versions ?? [])].sort(byVersion),
        drvs: changed.map((n) => n.path).sort(byString),
        outputs: [...outputs].sort(byString),
        outputKinds: [...kinds].sort(byString),
    };
}
/** Versions on one side only: `a` without those in `b`. */
function versionsOnlyIn(a, b) {
    const other = new Set(b);
    return a.filter((v) => !other.has(v));
}
function kindOf(old, now, inOld, inNew) {
    if (!inNew)
        return 'removed';
    if (!inOld)
        return 'added';
    const gone = versionsOnlyIn(old.versions, now.versions);
    const came = versionsOnlyIn(now.versions, old.versions);
    if (gone.length === 0 && came.length === 0)
        return 'rebuilt';
    if (gone.length === 1 && came.length === 1) {
        const c = compareVersions(gone[0], came[0]);
        if (c < 0)
            return 'upgrade';
        if (c > 0)
            return 'downgrade';
    }
    return 'changed';
}
/**
 * The package-level difference of two sets of derivations (each a closure or a whole plan). Two
 * derivations are the same when their paths are: a .drv path is the hash of its whole closure, so
 * everything else is a change, and only the derivations in one set alone are looked at closely.
 * `inOld`/`inNew` say which paths each set holds (default: a set made from its nodes).
 */
function diffClosures(old, now, membership = {}) {
    const inOld = membership.inOld ?? setOf(old);
    const inNew = membership.inNew ?? setOf(now);
    const groups = new Map();
    const group = (pname) => {
        let g = groups.get(pname);
        if (g === undefined)
            groups.set(pname, (g = { old: [], new: [] }));
        return g;
    };
    let removed = 0;
    let added = 0;
    for (const n of old)
        if (!inNew(n.path)) {
            group(n.pname).old.push(n);
            removed++;
        }
    for (const n of now)
        if (!inOld(n.path)) {
            group(n.pname).new.push(n);
            added++;
        }
    const oldVersions = versionsByName(old, groups);
    const newVersions = versionsByName(now, groups);
    const counts = packages_emptyCounts();
    const packages = [];
    for (const [name, g] of groups) {
        const o = side(oldVersions.get(name), g.old);
        const n = side(newVersions.get(name), g.new);
        const change = kindOf(o, n, oldVersions.has(name), newVersions.has(name));
        counts[change]++;
        packages.push({ name, change, old: o, new: n });
    }
    packages.sort((a, b) => byString(a.name, b.name) ||
        PACKAGE_CHANGE_KINDS.indexOf(a.change) - PACKAGE_CHANGE_KINDS.indexOf(b.change));
    return {
        derivations: { old: old.length, new: now.length, added, removed },
        counts,
        packages,
    };
}

;// CONCATENATED MODULE: ./src/core/diff/describe.ts
// The phrases a diff is told in, shared by the terminal and the job summaries: version changes,
// counts, signature status. Plain text; callers escape it for where it goes.



/** How an empty version reads (`builtins.parseDrvName` gives "" for `source`, `foo-`). */
const NO_VERSION = '(none)';
const describe_show = (vs) => vs.length === 0 ? '∅' : vs.map((v) => (v === '' ? NO_VERSION : v)).join(', ');
/**
 * A package's versions as `old → new`: only the versions that changed when some did (as
 * `nix store diff-closures` shows them), all of them for an addition, removal or rebuild.
 */
function versionsText(p) {
    switch (p.change) {
        case 'added':
            return describe_show(p.new.versions);
        case 'removed':
            return describe_show(p.old.versions);
        case 'rebuilt':
            return describe_show(p.new.versions);
        default:
            return `${describe_show(versionsOnlyIn(p.old.versions, p.new.versions))} → ${describe_show(versionsOnlyIn(p.new.versions, p.old.versions))}`;
    }
}
/** What else changed in a package's derivations: output names and kinds. */
function outputsText(p) {
    if (p.change === 'added' || p.change === 'removed')
        return undefined;
    const parts = [];
    const names = (xs) => xs.join(', ') || '∅';
    if (p.old.outputs.join(' ') !== p.new.outputs.join(' '))
        parts.push(`outputs ${names(p.old.outputs)} → ${names(p.new.outputs)}`);
    if (p.old.outputKinds.join(' ') !== p.new.outputKinds.join(' '))
        parts.push(`${names(p.old.outputKinds)} → ${names(p.new.outputKinds)}`);
    return parts.length === 0 ? undefined : parts.join('; ');
}
/** nvd's tags: `U` upgrade, `D` downgrade, `C` changed, `A` added, `R` removed, `B` rebuilt. */
const CHANGE_TAGS = {
    upgrade: 'U',
    downgrade: 'D',
    changed: 'C',
    added: 'A',
    removed: 'R',
    rebuilt: 'B',
};
/** `2 version changes (1 upgrade, 1 downgrade), 1 added, 3 rebuilt` or `no package changes`. */
function countsText(c) {
    const parts = [];
    const v = versionChanges(c);
    if (v > 0) {
        const detail = [
            c.upgrade > 0 ? plural(c.upgrade, 'upgrade') : '',
            c.downgrade > 0 ? plural(c.downgrade, 'downgrade') : '',
            c.changed > 0 ? `${c.changed} other` : '',
        ].filter((s) => s !== '');
        parts.push(`${plural(v, 'version change')} (${detail.join(', ')})`);
    }
    if (c.added > 0)
        parts.push(`${groupDigits(c.added)} added`);
    if (c.removed > 0)
        parts.push(`${groupDigits(c.removed)} removed`);
    if (c.rebuilt > 0)
        parts.push(`${groupDigits(c.rebuilt)} rebuilt`);
    return parts.length === 0 ? 'no package changes' : parts.join(', ');
}
/**
 * A bundle's signature status in the words every front end uses (core/bundle/trust-report.ts):
 * "verified: signed by trusted key ci", "signatures: 2 (not verified)", "unsigned", or, read with
 * --no-check-sigs and no trusted signature, "NOT CHECKED (--no-check-sigs): 3 unproven paths".
 */
function signatureText(signatures, proof = {}) {
    if (signatures === undefined)
        return 'not a bundle (no signatures)';
    const report = {
        keysGiven: signatures.some((s) => s.status !== 'not-checked'),
        verifiedBy: signatures.filter((s) => s.status === 'verified').map((s) => s.key),
        signatures: [...signatures],
        noCheckSigs: proof.noCheckSigs === true,
        unproven: proof.unproven ?? 0,
    };
    return trustStatus({ signatures: signatures.map((s) => ({ key: s.key, sig: '' })) }, report);
}

;// CONCATENATED MODULE: ./src/app/display.ts
// What both front ends show the same way (the terminal and the Actions job summary).
/** `1.5 MiB`-style sizes. */
function formatBytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

;// CONCATENATED MODULE: ./src/app/deploy/changes.ts
// What activating a system changes on a host, for the person who approves it (deploy on each host,
// apply on this machine): the generation it replaces and the package-level difference of the two
// systems' runtime closures in that host's store, the way nvd and `nix store diff-closures` show
// them (names read as `builtins.parseDrvName` reads them, grouped and compared by core/diff, the
// same code `nix-plan diff` uses for plans).







/**
 * An output path's name without its output suffix, as `nix store diff-closures` strips it
 * (`openssl-3.0.13-dev` → `openssl-3.0.13`, `dev`); the rule is Nix's, ambiguity included
 * (`foo-unstable` reads as output `unstable` of `foo`).
 */
function splitOutputName(name) {
    const m = /^(.*)-([a-z]+|lib32|lib64)$/s.exec(name);
    return m?.[1] === undefined || m[2] === undefined ? { name, output: 'out' } : { name: m[1], output: m[2] };
}
/** A runtime closure as the nodes the package diff groups (no inputs, system or output kinds). */
function nodesOf(paths) {
    return paths.map((p, id) => {
        const split = splitOutputName(nameOf(p.path));
        const { name, version } = parseDrvName(split.name);
        return {
            id,
            path: p.path,
            name: split.name,
            pname: name,
            version,
            system: '',
            outputs: [{ name: split.output, path: p.path, kind: 'input-addressed', hashAlgo: '', hash: '' }],
            firstInput: 0,
            inputCount: 0,
        };
    });
}
function sizeOf(paths) {
    let bytes = 0;
    for (const p of paths)
        bytes += p.narSize;
    return { paths: paths.length, bytes };
}
/** What the host's closures say the deploy of `system` changes. */
function hostChanges(closures, system) {
    const old = closures.old;
    const status = closures.currentSystem === undefined
        ? 'first'
        : old === undefined
            ? 'unknown'
            : closures.currentSystem === system
                ? 'unchanged'
                : 'changed';
    const before = old ?? [];
    const diff = diffClosures(nodesOf(before), nodesOf(closures.new));
    const side = (s) => ({ versions: s.versions, paths: s.drvs });
    return {
        status,
        previous: closures.currentSystem === undefined
            ? undefined
            : { generation: generationNumber(closures.current), system: closures.currentSystem },
        system,
        closure: {
            old: old === undefined ? undefined : sizeOf(old),
            new: sizeOf(closures.new),
            added: diff.derivations.added,
            removed: diff.derivations.removed,
        },
        counts: diff.counts,
        packages: diff.packages.map((p) => ({
            name: p.name,
            change: p.change,
            old: side(p.old),
            new: side(p.new),
        })),
    };
}
/** A runtime change in the shape core/diff/describe.ts words (no outputs to compare). */
function asPackageChange(p) {
    const side = (s) => ({
        versions: s.versions,
        drvs: s.paths,
        outputs: [],
        outputKinds: [],
    });
    return { name: p.name, change: p.change, old: side(p.old), new: side(p.new) };
}
/** `+3.4 MiB`, `−512 B`, `±0 B`. */
function changes_signedBytes(delta) {
    if (delta === 0)
        return '±0 B';
    return `${delta > 0 ? '+' : '−'}${formatBytes(Math.abs(delta))}`;
}
/**
 * `generation 11 (/nix/store/…-nixos-system-a) → /nix/store/…-nixos-system-b`, or
 * `no generation yet → …`. Plain text of paths the host sent: callers escape it.
 */
function generationText(c) {
    const from = c.previous === undefined
        ? 'no generation yet'
        : `${c.previous.generation === undefined ? 'the current generation' : `generation ${c.previous.generation}`} (${c.previous.system})`;
    return `${from} → ${c.system}`;
}
/** `812 → 815 paths (4 added, 1 removed), 1.2 GiB → 1.2 GiB (+3.4 MiB)`. */
function closureText(c) {
    const { old, new: now, added, removed } = c.closure;
    if (old === undefined)
        return `${groupDigits(now.paths)} paths, ${formatBytes(now.bytes)}`;
    return (`${groupDigits(old.paths)} → ${groupDigits(now.paths)} paths (${groupDigits(added)} added, ${groupDigits(removed)} removed), ` +
        `${formatBytes(old.bytes)} → ${formatBytes(now.bytes)} (${changes_signedBytes(now.bytes - old.bytes)})`);
}
/** One line on what changes: the package counts and the closure, or why there is no comparison. */
function changesHeadline(c) {
    switch (c.status) {
        case 'first':
            return `first deployment: the profile has no generation to compare with; the new system's closure is ${closureText(c)} (${groupDigits(c.counts.added)} packages)`;
        case 'unknown':
            return `the current generation's system is not in the host's store: nothing to compare with; the new system's closure is ${closureText(c)}`;
        case 'unchanged':
            return 'the host already runs this system: no package changes';
        case 'changed':
            return `${countsText(c.counts)}; closure ${closureText(c)}`;
    }
}
/**
 * Asks the host program what activating `query.out` changes (its closure phase, which builds the
 * system when given its derivation), says it on `io.log` — the generation replaced, then the
 * headline — and returns it. Deploy runs this on each host, apply on this machine, both before
 * activating, so the change is known whatever the activation does (dry-activate included).
 */
async function readChanges(program, query, io) {
    const closures = await program.closures(query, { onOutput: io.output, signal: io.signal });
    const changes = hostChanges(closures, query.out);
    const lead = io.label === undefined ? '' : `${io.label}: `;
    io.log.info(`${lead}${generationText(changes)}`);
    io.log.info(`${lead}${changesHeadline(changes)}`);
    return changes;
}

;// CONCATENATED MODULE: ./src/core/diff/text.ts
// Bytes from a plan shown as text a person can read and nothing can abuse: valid UTF-8 stays as it
// is, everything that could hide, move or rewrite what a reviewer sees (control characters,
// terminal escapes, bidirectional overrides, invisible characters, invalid UTF-8) is written as
// an escape. The escaping is reversible (`\\` for a backslash), so distinct bytes stay distinct.
// Strings (store paths, names) use core/text.ts's escapes, as every other display does.

/** Code points shown as `\u{…}`: C1 controls, invisible and direction-changing characters. */
function isHidden(cp) {
    return ((cp >= 0x80 && cp <= 0x9f) || // C1 controls (0x9b is a terminal CSI)
        cp === 0xad || // soft hyphen
        cp === 0x061c || // Arabic letter mark
        (cp >= 0x200b && cp <= 0x200f) || // zero width space/joiners, LRM/RLM
        (cp >= 0x2028 && cp <= 0x202e) || // line/paragraph separators, bidi embeddings and overrides
        (cp >= 0x2060 && cp <= 0x2069) || // word joiner, invisible operators, bidi isolates
        cp === 0xfeff || // zero width no-break space
        (cp >= 0xfff9 && cp <= 0xfffb) || // interlinear annotations
        (cp >= 0xe0000 && cp <= 0xe007f) // tags
    );
}
const hex2 = (b) => b.toString(16).padStart(2, '0');
/**
 * `bytes` as safe text: `\\`, `\r`, `\xNN` for other control bytes and for bytes that are not
 * valid UTF-8, `\u{NNNN}` for hidden code points; a newline stays a newline and a tab a tab
 * unless `escapeLayout` (then `\n`, `\t`).
 */
function showBytes(bytes, escapeLayout = false) {
    let out = '';
    let i = 0;
    while (i < bytes.length) {
        const b = bytes[i];
        if (b < 0x80) {
            if (b === 0x5c)
                out += '\\\\';
            else if (b === 0x0a)
                out += escapeLayout ? '\\n' : '\n';
            else if (b === 0x09)
                out += escapeLayout ? '\\t' : '\t';
            else if (b === 0x0d)
                out += '\\r';
            else if (b < 0x20 || b === 0x7f)
                out += `\\x${hex2(b)}`;
            else
                out += String.fromCharCode(b);
            i++;
            continue;
        }
        const cp = decodeOne(bytes, i);
        if (cp === undefined) {
            out += `\\x${hex2(b)}`;
            i++;
            continue;
        }
        out += isHidden(cp.codePoint) ? `\\u{${cp.codePoint.toString(16)}}` : String.fromCodePoint(cp.codePoint);
        i += cp.length;
    }
    return out;
}
/** A string from a plan (a store path, a name) for a terminal: core/text.ts's escapes. */
function showText(text) {
    return escapeTerminal(text);
}
/** One well-formed UTF-8 sequence at `i` (shortest form, no surrogates, ≤ U+10FFFF), or undefined. */
function decodeOne(bytes, i) {
    const b0 = bytes[i];
    let length;
    let cp;
    let min;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        length = 2;
        cp = b0 & 0x1f;
        min = 0x80;
    }
    else if (b0 >= 0xe0 && b0 <= 0xef) {
        length = 3;
        cp = b0 & 0x0f;
        min = 0x800;
    }
    else if (b0 >= 0xf0 && b0 <= 0xf4) {
        length = 4;
        cp = b0 & 0x07;
        min = 0x10000;
    }
    else
        return undefined;
    if (i + length > bytes.length)
        return undefined;
    for (let k = 1; k < length; k++) {
        const c = bytes[i + k];
        if ((c & 0xc0) !== 0x80)
            return undefined;
        cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return undefined;
    return { codePoint: cp, length };
}

;// CONCATENATED MODULE: ./src/cli/diff-format.ts




const t = (s) => showText(s);
const n = (x) => groupDigits(x);
/** Rebuilt packages listed by name at most; the rest are counted (`--json` has all). */
const REBUILT_SHOWN = 40;
function sideLine(mark, s) {
    const what = s.kind === 'bundle' ? 'plan' : s.kind === 'drv' ? 'derivation' : 'profile';
    const parts = [`${what} for ${t(s.storeDir)}`, `${n(s.derivations)} derivations`];
    if (s.bundle !== undefined) {
        parts.push(signatureText(s.bundle.signatures, s.bundle));
        if (s.bundle.createdAt !== undefined)
            parts.push(`evaluated ${t(s.bundle.createdAt)}`);
    }
    return `${mark} ${t(s.source)} (${parts.join('; ')})`;
}
/**
 * One row of a table after `indent`: each cell starts where its column does, the columns `widths`
 * wide and two spaces apart (the last cell is not padded). The widths are capped, so that one long
 * name does not push every row right: a cell wider than its column ends its line, and the row goes
 * on below at the next column's place, so every cell still starts in its column. The text is
 * measured in UTF-16 units, one terminal column each, which holds for what the tables show: names
 * and versions come from store path names (ASCII), output names are read as Latin-1, systems are
 * last (not padded), and the escapes of unsafe characters are ASCII.
 */
function tableRow(indent, cells, widths) {
    const lines = [];
    let line = indent;
    let start = indent.length;
    cells.forEach((cell, i) => {
        if (i > 0) {
            if (line.length + 2 > start) {
                lines.push(line);
                line = ' '.repeat(start);
            }
            else
                line = line.padEnd(start);
        }
        line += cell;
        start += (widths[i] ?? 0) + 2;
    });
    lines.push(line);
    return lines.join('\n');
}
function packageLines(packages) {
    const width = Math.min(40, Math.max(0, ...packages.map((p) => t(p.name).length)));
    return packages.map((p) => {
        const extra = outputsText(p);
        const versions = `${t(versionsText(p))}${extra === undefined ? '' : `  (${t(extra)})`}`;
        return tableRow(`  [${CHANGE_TAGS[p.change]}] `, [t(p.name), versions], [width]);
    });
}
/**
 * nvd's sections of a package diff: version changes, added and removed packages, then the
 * packages rebuilt at the same version (the first REBUILT_SHOWN of them; `--json` has all).
 */
function packageSections(packages) {
    const lines = [];
    const by = (kinds) => packages.filter((p) => kinds.includes(p.change));
    const sections = [
        ['Version changes:', by(['upgrade', 'downgrade', 'changed'])],
        ['Added packages:', by(['added'])],
        ['Removed packages:', by(['removed'])],
    ];
    for (const [title, list] of sections)
        if (list.length > 0)
            lines.push(title, ...packageLines(list));
    const rebuilt = by(['rebuilt']);
    if (rebuilt.length > 0) {
        lines.push(`Rebuilt at the same version (inputs changed): ${n(rebuilt.length)}`);
        lines.push(...packageLines(rebuilt.slice(0, REBUILT_SHOWN)));
        if (rebuilt.length > REBUILT_SHOWN)
            lines.push(`  …and ${n(rebuilt.length - REBUILT_SHOWN)} more (--json lists all)`);
    }
    return lines;
}
/**
 * What activating a system changes on `where` (a deploy's host, apply's profile): the generation
 * replaced, the package counts and closure, then nvd's sections (not on a first activation,
 * where every package is new). Paths and names come from the host: escaped.
 */
function changesLines(where, c) {
    if (c === undefined)
        return [];
    const lines = [`Changes on ${t(where)}: ${t(generationText(c))}`, `  ${t(changesHeadline(c))}`];
    if (c.status === 'changed')
        lines.push(...packageSections(c.packages.map(asPackageChange)).map((l) => `  ${l}`));
    lines.push('');
    return lines;
}
/** The human form of a diff. */
function formatDiff(d) {
    const lines = [sideLine('<<<', d.old), sideLine('>>>', d.new)];
    if (d.realm.relocated)
        lines.push(`The old plan was relocated from ${t(d.realm.old)} to ${t(d.realm.new)} to be compared; old paths below are the relocated ones.`);
    if (d.identical) {
        lines.push(d.realm.relocated
            ? `Same plan, other realm: relocated to ${t(d.realm.new)}, the old plan is exactly the new one (${n(d.total.derivations.new)} derivations).`
            : `No changes: both hold the same ${n(d.total.derivations.new)} derivations and roots.`);
    }
    const fields = d.fields.filter((f) => !(d.realm.relocated && (f.field === 'storeDir' || f.field === 'relocatedFrom')));
    if (fields.length > 0) {
        lines.push('Plan facts that differ:');
        for (const f of fields)
            lines.push(`  ${t(f.field)}: ${t(f.old ?? '∅')} → ${t(f.new ?? '∅')}`);
    }
    lines.push(...packageSections(d.total.packages));
    if (d.roots.length > 1 || d.roots.some((r) => r.status !== 'changed' && r.status !== 'unchanged')) {
        lines.push('Roots:');
        for (const r of d.roots)
            lines.push(`  ${t(r.label)}: ${r.status}${r.counts === undefined ? '' : ` — ${countsText(r.counts)}`}`);
    }
    const dv = d.total.derivations;
    lines.push(`Total: ${countsText(d.total.counts)}; derivations ${n(dv.old)} → ${n(dv.new)} (${n(dv.added)} new, ${n(dv.removed)} gone).`);
    for (const x of d.drv ?? [])
        lines.push('', ...drvLines(x, ''));
    return `${lines.join('\n')}\n`;
}
function outputText(o) {
    return `${t(o.name)} ${o.kind}${o.hashAlgo === '' ? '' : ` ${t(o.hashAlgo)}`}${o.hash === '' ? '' : ` ${t(o.hash)}`}`;
}
function editLines(edits, indent) {
    const mark = { same: '  ', old: '- ', new: '+ ' };
    const out = [];
    for (const e of edits) {
        const items = e.op === 'same' && e.items.length > 6
            ? [...e.items.slice(0, 2), `… ${e.items.length - 4} unchanged …`, ...e.items.slice(-2)]
            : e.items;
        for (const item of items)
            for (const line of item.split('\n'))
                out.push(`${indent}${mark[e.op]}${line}`);
    }
    return out;
}
/** nix-diff's layout for one pair, nested changed inputs indented below it. */
function drvLines(d, indent) {
    const i2 = `${indent}    `;
    const out = [`${indent}- ${t(d.old)}`, `${indent}+ ${t(d.new)}`];
    const o = d.outputs;
    if (o.removed.length + o.added.length + o.changed.length > 0) {
        out.push(`${indent}• The outputs differ:`);
        for (const x of o.removed)
            out.push(`${i2}- ${outputText(x)}`);
        for (const x of o.added)
            out.push(`${i2}+ ${outputText(x)}`);
        for (const x of o.changed)
            out.push(`${i2}- ${outputText(x.old)}`, `${i2}+ ${outputText(x.new)}`);
    }
    if (d.system !== undefined)
        out.push(`${indent}• The systems differ:`, `${i2}- ${d.system.old}`, `${i2}+ ${d.system.new}`);
    if (d.builder !== undefined)
        out.push(`${indent}• The builders differ:`, `${i2}- ${d.builder.old}`, `${i2}+ ${d.builder.new}`);
    if (d.args !== undefined)
        out.push(`${indent}• The arguments differ:`, ...editLines(d.args, i2));
    const s = d.inputSrcs;
    if (s.removed.length + s.added.length + s.changed.length > 0) {
        out.push(`${indent}• The input sources differ:`);
        for (const p of s.removed)
            out.push(`${i2}- ${t(p)}`);
        for (const p of s.added)
            out.push(`${i2}+ ${t(p)}`);
        for (const c of s.changed) {
            out.push(`${i2}• ${c.name}: ${t(c.old)} → ${t(c.new)}`);
            if (c.lines !== undefined)
                out.push(...editLines(c.lines, `${i2}    `));
        }
    }
    const e = d.env;
    if (e.removed.length + e.added.length + e.changed.length > 0) {
        out.push(`${indent}• The environments differ:`);
        for (const x of e.removed)
            out.push(`${i2}- ${x.key}=${x.value.split('\n').join(`\n${i2}  `)}`);
        for (const x of e.added)
            out.push(`${i2}+ ${x.key}=${x.value.split('\n').join(`\n${i2}  `)}`);
        for (const x of e.changed) {
            if (x.lines === undefined)
                out.push(`${i2}• ${x.key}:`, `${i2}    - ${x.old}`, `${i2}    + ${x.new}`);
            else
                out.push(`${i2}• ${x.key}:`, ...editLines(x.lines, `${i2}    `));
        }
    }
    if (e.pathsOnly.length > 0)
        out.push(`${indent}• ${e.pathsOnly.length} environment variable${e.pathsOnly.length === 1 ? '' : 's'} differ only by the new store paths of changed inputs: ${e.pathsOnly.join(', ')}`);
    const i = d.inputDrvs;
    for (const r of i.removed)
        out.push(`${indent}• An input derivation was removed: ${t(r.path)} {${r.outputs.map(t).join(',')}}`);
    for (const r of i.added)
        out.push(`${indent}• An input derivation was added: ${t(r.path)} {${r.outputs.map(t).join(',')}}`);
    for (const c of i.changed) {
        if (c.old.path === c.new.path) {
            out.push(`${indent}• The outputs used of input ${t(c.name)} differ: {${c.old.outputs.map(t).join(',')}} → {${c.new.outputs.map(t).join(',')}}`);
            continue;
        }
        out.push(`${indent}• The input derivation ${t(c.name)} differs:`);
        if (c.diff !== undefined)
            out.push(...drvLines(c.diff, `${indent}  `));
        else
            out.push(`${indent}  - ${t(c.old.path)}`, `${indent}  + ${t(c.new.path)}`, `${indent}  (${c.note === 'already-compared' ? 'compared above' : c.note === 'limit' ? 'not compared: too many derivations differ' : 'not compared: its .drv is not available'})`);
    }
    return out;
}
/** `inspect --contents`: each root's packages in aligned columns. */
function formatContents(c) {
    const lines = [];
    const b = c.plan.bundle;
    if (b?.noCheckSigs === true)
        lines.push(`trust: ${t(signatureText(b.signatures, b))}`);
    for (const r of c.roots) {
        lines.push(`packages of ${t(r.label)} (${n(r.packages.length)} derivations):`);
        const rows = r.packages.map((p) => [
            t(p.name),
            t(p.version === '' ? NO_VERSION : p.version),
            p.outputs.map(t).join(','),
            `${t(p.system)}${p.fixed ? '  (fixed output)' : ''}`,
        ]);
        const widths = [0, 1, 2].map((i) => Math.min(48, Math.max(0, ...rows.map((row) => row[i].length))));
        for (const row of rows)
            lines.push(tableRow('  ', row, widths));
    }
    return `${lines.join('\n')}\n`;
}

;// CONCATENATED MODULE: ./src/cli/terminal.ts

/** setInterval that does not keep the process alive. */
function every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
}
const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** Elapsed time as the spinner and the closing line show it: `4.2 s`, `1 min 03 s`. */
function formatElapsed(ms) {
    const s = ms / 1000;
    if (s < 60)
        return `${s.toFixed(1)} s`;
    const whole = Math.floor(s);
    return `${Math.floor(whole / 60)} min ${String(whole % 60).padStart(2, '0')} s`;
}
/**
 * A Logger writing lines to stderr. Messages may quote a bundle (a path, a relocation warning),
 * so control characters in them are made visible; newlines stay.
 */
function terminalLogger(io, verbosity) {
    const line = (m) => `${escapeTerminal(m, { multiline: true })}\n`;
    return {
        info: (m) => {
            if (!verbosity.quiet)
                io.stderr.write(line(m));
        },
        warn: (m) => {
            io.stderr.write(`warning: ${line(m)}`);
        },
        debug: (m) => {
            if (verbosity.verbose)
                io.stderr.write(line(m));
        },
    };
}


const REDRAW_MS = 100;
/** One bar line: `label [#####-----] 123/456 1.2 MiB`. */
function renderBar(label, count, total, bytes, width) {
    const tail = `${count}${total === undefined ? '' : `/${total}`}${bytes > 0 ? ` ${formatBytes(bytes)}` : ''}`;
    if (total === undefined || total <= 0)
        return `${label} ${tail}`.slice(0, width);
    const barWidth = Math.max(10, Math.min(40, width - label.length - tail.length - 4));
    const filled = Math.min(barWidth, Math.round((count / total) * barWidth));
    return `${label} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${tail}`.slice(0, width);
}
/**
 * Progress on stderr: on a terminal a bar redrawn at most every 100 ms and cleared when done, or,
 * for a phase without a known total (evaluating, waiting on Nix), a spinner with the elapsed
 * time redrawn every 100 ms; otherwise one line per phase when it ends. Quiet shows nothing.
 */
function terminalProgress(io, verbosity) {
    const now = io.now ?? Date.now;
    const tty = io.stderr.isTTY === true;
    return {
        start(label, total) {
            let count = 0;
            let bytes = 0;
            let last = -Infinity;
            let ended = false;
            let frame = 0;
            const started = now();
            const width = () => Math.max(20, (io.stderr.columns ?? 80) - 1);
            const line = () => total === undefined
                ? `${SPINNER[frame % SPINNER.length] ?? ''} ${label} ${formatElapsed(now() - started)}${count > 0 ? ` ${count}` : ''}${bytes > 0 ? ` ${formatBytes(bytes)}` : ''}`.slice(0, width())
                : renderBar(label, count, total, bytes, width());
            const draw = () => {
                io.stderr.write(`\r${line()}\x1b[K`);
            };
            const stop = total === undefined && tty && !verbosity.quiet
                ? (io.every ?? every)(REDRAW_MS, () => {
                    frame++;
                    draw();
                })
                : undefined;
            if (stop !== undefined)
                draw();
            return {
                tick(n = 1, b = 0) {
                    count += n;
                    bytes += b;
                    if (verbosity.quiet || !tty || ended)
                        return;
                    const t = now();
                    if (t - last >= REDRAW_MS) {
                        last = t;
                        draw();
                    }
                },
                done() {
                    if (ended)
                        return;
                    ended = true;
                    stop?.();
                    if (verbosity.quiet)
                        return;
                    if (tty)
                        io.stderr.write('\r\x1b[K');
                    const counted = total === undefined && count === 0
                        ? ''
                        : ` ${count}${total === undefined || total === count ? '' : `/${total}`}${bytes > 0 ? ` (${formatBytes(bytes)})` : ''}`;
                    const elapsed = total === undefined ? ` in ${formatElapsed(now() - started)}` : '';
                    io.stderr.write(`${label}:${counted}${elapsed}\n`);
                },
            };
        },
    };
}

;// CONCATENATED MODULE: ./src/cli/format.ts






/**
 * One JSON document, pretty-printed, with a trailing newline. JSON escapes C0 controls itself;
 * C1 controls, bidi controls and the line separators are escaped too (`\u009b`), so the document
 * is as safe on a terminal as the text output.
 */
function toJson(value) {
    return `${JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}\n`;
}
function counts(m) {
    const parts = OBJECT_KINDS.filter((k) => m.counts[k] > 0).map((k) => plural(m.counts[k], k));
    return parts.length === 0 ? 'nothing' : parts.join(', ');
}
function summaryLines(s, manifest, now) {
    const lines = [
        `store dir:  ${escapeTerminal(s.storeDir)}${s.relocatedFrom === undefined ? '' : ` (relocated from ${escapeTerminal(s.relocatedFrom)})`}`,
        `include:    ${s.include}`,
        `systems:    ${escapeTerminal(s.systems.join(', ')) || '-'}`,
        `paths:      ${s.paths} (${counts(s)})`,
        `size:       ${formatBytes(s.bundleBytes)} bundle, ${formatBytes(s.streamBytes)} uncompressed (${s.ratio.toFixed(1)}×)`,
        `written by: ${escapeTerminal(s.tool)}, evaluated with Nix ${escapeTerminal(s.nixVersion)} (bundle format ${s.formatVersion})`,
        ...originText(manifest, undefined, { now }).trimEnd().split('\n'),
        `roots (${s.roots.length}):`,
    ];
    // The indices right-aligned, so that a root's .drv and outputs start under its label however
    // many digits its index has.
    const digits = String(Math.max(0, s.roots.length - 1)).length;
    const under = ' '.repeat(2 + digits + 2);
    s.roots.forEach((r, i) => {
        lines.push(`  ${String(i).padStart(digits)}  ${escapeTerminal(r.label)}`);
        lines.push(`${under}${escapeTerminal(r.drvPath)}`);
        for (const [name, path] of Object.entries(r.outputs))
            lines.push(`${under}${escapeTerminal(name)} → ${escapeTerminal(path) || '(known after building)'}`);
    });
    return lines;
}
/** `export`: what was written. */
function formatExport(r) {
    const s = summarise(r.manifest, r.bundleBytes);
    return [
        `wrote ${escapeTerminal(r.bundlePath)}: ${plural(r.manifest.roots.length, 'root')}, ${plural(s.paths, 'path')} (${counts(r.manifest)}), ${formatBytes(r.bundleBytes)}`,
        `  ${trustStatus(r.manifest) === 'unsigned' ? 'unsigned' : `signed by ${escapeTerminal(r.manifest.signatures.map((g) => g.key).join(', '))}`}`,
        `  evaluate ${r.timings.evaluateMs} ms, collect ${r.timings.collectMs} ms, write ${r.timings.writeMs} ms`,
        '',
    ].join('\n');
}
/** `inspect`: the summary (signatures are listed, never called verified: inspect checks none). */
function formatInspect(r, now = new Date()) {
    return [...summaryLines(r.summary, r.manifest, now), ''].join('\n');
}
/**
 * `verify`: the verdict, then where the plan came from and who vouches for it (its origin rows,
 * promotions read against the keys given). With trusted keys, `OK` and who signed; without, it
 * says that only the bundle's integrity was checked, not who made it.
 */
function formatVerify(r, now = new Date()) {
    const what = `${escapeTerminal(r.bundlePath)}: ${plural(r.paths, 'path')} (${counts(r)}) for ${escapeTerminal(r.manifest.storeDir)}`;
    const origin = originText(r.manifest, r.trust, { now });
    if (!r.trust.keysGiven)
        return (`integrity OK: ${what}\n${origin}` +
            `integrity only: no --trusted-key given, so who made this plan was not checked (${escapeTerminal(trustStatus(r.manifest, r.trust))})\n`);
    return `OK: ${what}\n${origin}`;
}
/** `import`: what was added, and what was proven about who made it. */
function formatImport(r) {
    const how = r.method === 'none'
        ? ''
        : ` with ${r.method === 'import' ? 'nix-store --import' : 'a binary cache (nix copy)'}`;
    return (`imported ${plural(r.imported, 'path')}${how}; ${r.alreadyValid} ${r.alreadyValid === 1 ? 'was' : 'were'} valid already\n` +
        (r.trust === undefined ? '' : `${escapeTerminal(trustStatus(r.manifest, r.trust))}\n`));
}
/** `realise`: the output paths, one per line (like nix-store --realise). */
function formatRealise(r) {
    const paths = Object.values(r.outPaths).flatMap((o) => Object.values(o));
    return paths.map((p) => `${escapeTerminal(p)}\n`).join('');
}
/** `relocate`: where, and the report. */
function formatRelocate(r) {
    const rep = r.report;
    const lines = [
        `input ${escapeTerminal(trustStatus(r.manifest, r.trust))}`,
        `wrote ${escapeTerminal(r.bundlePath)}: ${plural(r.manifest.paths, 'path')} relocated from ${escapeTerminal(r.manifest.relocatedFrom?.storeDir ?? '?')} to ${escapeTerminal(r.manifest.storeDir)}`,
        `  ${plural(rep.objects.drv, 'drv')}, ${plural(rep.objects.text, 'text')}, ${plural(rep.objects.source, 'source')}; ${plural(rep.hashesRewritten, 'hash', 'hashes')} rewritten in strings`,
        `  verify ${r.timings.verifyMs} ms, relocate and write ${r.timings.relocateMs} ms`,
    ];
    if (rep.bareHashRewrites > 0)
        lines.push(`  ${rep.bareHashRewrites} bare hashes rewritten (computed path strings)`);
    for (const m of rep.bareStoreDirMentions)
        lines.push(`  ${escapeTerminal(m.path)} still mentions the old store dir ${m.count}×`);
    for (const w of rep.warnings)
        lines.push(`  warning: ${escapeTerminal(w)}`);
    return [...lines, ''].join('\n');
}
/** `apply`: what ran, then what it changed (or, for dry-activate, would change) in the profile. */
function formatApply(r) {
    const back = r.rollback === undefined ? '' : `, rolled back from ${r.rollback.from}`;
    const gen = r.generation === undefined ? '' : ` (generation ${r.generation}${back})`;
    const changes = r.changes === undefined ? '' : `\n${changesLines(r.profile, r.changes).join('\n')}`;
    return `${r.output}${r.output === '' || r.output.endsWith('\n') ? '' : '\n'}${r.action}: ${escapeTerminal(r.systemPath)}${r.profileChanged ? ` is now ${escapeTerminal(r.profile)}${gen}` : ''}\n${changes}`;
}

;// CONCATENATED MODULE: ./src/cli/command.ts
// What every \`nix-plan\` subcommand is made of: its spec and context, the options several share,
// and the helpers that turn arguments into use-case options and results into output.









const COMMON = {
    json: { type: 'boolean', help: 'print the result as one JSON document on stdout' },
    quiet: { type: 'boolean', short: 'q', help: 'print no progress or messages, only the result and errors' },
    verbose: {
        type: 'boolean',
        short: 'v',
        multiple: true,
        help: 'print each Nix command run; -vv also passes -v to Nix and shows its messages',
    },
    help: { type: 'boolean', short: 'h', help: 'show this help' },
};
const TRUSTED_KEY = {
    type: 'string',
    multiple: true,
    value: 'KEY',
    help: 'a public key (NAME:base64) or a file of them; the bundle must be signed by one',
};
const STORE = {
    type: 'string',
    value: 'URI',
    help: "the Nix store to use (Nix's --store; default: Nix's default)",
};
const CACHE_KEY = {
    type: 'string',
    value: 'FILE',
    help: 'for an untrusted import of build outputs: sign them with this secret key (the daemon must trust its public key)',
};
/** Nix's `--log-format` values. */
const LOG_FORMATS = [
    'raw',
    'internal-json',
    'bar',
    'bar-with-logs',
    'multiline',
    'multiline-with-logs',
];
const LOG_FORMAT = {
    type: 'string',
    value: 'FORMAT',
    choices: LOG_FORMATS,
    help: `Nix's --log-format for the Nix output nix-plan shows (${LOG_FORMATS.join(', ')}); internal-json feeds nom --json`,
};
const NIX_ARG = {
    type: 'string',
    multiple: true,
    dashValue: true,
    value: 'ARGS',
    help: 'extra arguments for Nix, split as a shell would: --nix-arg \'--option extra-substituters "a b"\'',
};
/** `--nix-arg` values split shell-style, then everything after `--`. */
function nixArgs(args) {
    return [...list(args, 'nix-arg').flatMap((v) => splitShellWords(v, '--nix-arg')), ...args.rest];
}
const NO_CHECK_SIGS = {
    type: 'boolean',
    help: 'accept a plan no --trusted-key vouches for, on purpose (warned; recorded when it is promoted)',
};
const MAX_SIZE = {
    type: 'string',
    value: 'BYTES',
    help: 'refuse a plan larger than this uncompressed, e.g. 128G (default 64G; it is written to TMPDIR, then the store)',
};
const MAX_AGE = {
    type: 'string',
    value: 'DURATION',
    help: 'refuse a plan created longer ago than DURATION (e.g. 12h, 7d, 1d12h)',
};
/** apply's and deploy's limit on how long switch-to-configuration may run. */
const ACTIVATION_TIMEOUT = {
    type: 'string',
    value: 'SECONDS',
    help: `stop switch-to-configuration after this long and re-activate the previous generation (default ${DEFAULT_ACTIVATION_TIMEOUT}; 0: no limit)`,
};
const ALLOW_DOWNGRADE = {
    type: 'boolean',
    help: 'accept a plan older than the one last applied to the same target (see docs/security.md)',
};
const METHOD = {
    type: 'string',
    value: 'METHOD',
    choices: IMPORT_METHODS,
    help: 'auto (default), import (nix-store --import; needs a trusted user) or copy (binary cache; works untrusted)',
};
/** The operand of the commands that read one bundle. */
const BUNDLE = { value: 'BUNDLE', complete: 'file' };
function command_define(spec) {
    const options = { ...spec.options, ...COMMON };
    return { ...spec, options, parse: (argv) => parseCommandArgs(argv, options) };
}
function print(ctx, args, value, human) {
    ctx.io.stdout.write(flag(args, 'json') ? toJson(value) : human());
}
/**
 * A result with its trust report: the one the use case made, or one made here from the keys the
 * verifier required a signature by.
 */
function withTrust(result, trustedKeys, noCheckSigs) {
    return {
        ...result,
        trust: result.trust ?? trustReportOf(result.manifest, trustedKeys.map(parsePublicKey), { noCheckSigs }),
    };
}
/** `--max-age` in milliseconds (and as written), or nothing. */
function maxAge(args) {
    const text = str(args, 'max-age');
    return text === undefined ? {} : { maxAgeMs: parseDuration(text), maxAgeText: text };
}
/** The secret keys of the repeatable `--sign-key FILE`. */
function signingKeys(args) {
    return Promise.all(list(args, 'sign-key').map((f) => readSecretKeyFile(f)));
}
function noRest(args, command) {
    if (args.rest.length > 0)
        throw usageError(`${command} takes no arguments after --`);
}
/** zstd levels the bundle writer accepts, as `--level` says them. */
const LEVELS = `${MIN_LEVEL}-${MAX_LEVEL}`;
/**
 * The deps of commands that import: the untrusted route, signing outputs with --sign-key. That
 * key signs build outputs so a daemon accepts them: only outputs of a plan verified against
 * --trusted-key (or, on purpose, --no-check-sigs).
 */
async function importDeps(args, ctx, trustedKeys) {
    const keyFile = list(args, 'sign-key')[0];
    const noCheckSigs = flag(args, 'no-check-sigs');
    assertSignable(keyFile !== undefined, trustedKeys.length > 0, noCheckSigs);
    if (noCheckSigs && trustedKeys.length === 0)
        ctx.deps.log.warn('--no-check-sigs: accepting a plan no trusted key vouches for');
    const signingKey = keyFile === undefined ? undefined : await readSecretKeyFile(keyFile);
    return { ...ctx.deps, copyImport: ctx.useCases.copyImport({ signingKey }) };
}
/** A command's help page. */
function commandHelp(cmd) {
    return [
        `Usage: ${cmd.usage.join('\n       ')}`,
        '',
        `${cmd.summary[0]?.toUpperCase() ?? ''}${cmd.summary.slice(1)}.`,
        '',
        wrap(cmd.description, 78),
        '',
        'Options:',
        optionsHelp(cmd.options),
        '',
        'Examples:',
        ...cmd.examples.map((e) => `  ${e}`),
        '',
    ].join('\n');
}
function wrap(text, width) {
    const out = [];
    let line = '';
    for (const word of text.split(/\s+/)) {
        if (line !== '' && line.length + 1 + word.length > width) {
            out.push(line);
            line = word;
        }
        else
            line = line === '' ? word : `${line} ${word}`;
    }
    if (line !== '')
        out.push(line);
    return out.join('\n');
}

;// CONCATENATED MODULE: ./src/cli/completions.ts
/** The shells `nix-plan completions` writes a script for. */
const SHELLS = ['bash', 'zsh', 'fish'];
const FILE_VALUES = new Set(['FILE', 'OUT', 'PATH', 'PREFIX', 'KEY', 'BUNDLE']);
/** How an option's value completes, from its spec (choices, else its placeholder's kind). */
function valueCompletion(spec) {
    if (spec.type === 'boolean')
        return undefined;
    if (spec.choices !== undefined)
        return { choices: spec.choices };
    if (spec.value === 'DIR')
        return 'dir';
    return spec.value !== undefined && FILE_VALUES.has(spec.value) ? 'file' : 'none';
}
/** The words after `nix-plan help`. */
function helpTopics(commands) {
    return [...commands.map((c) => c.name), 'exit-codes'];
}
const TOP_LEVEL = ['help', 'version', '--help', '--version'];
/** The completion script for `shell`. */
function completionScript(shell, commands) {
    if (shell === 'bash')
        return bash(commands);
    if (shell === 'zsh')
        return zsh(commands);
    return fish(commands);
}
// ---- bash ----
function bash(commands) {
    const words = (xs) => `'${xs.join(' ')}'`;
    const lines = [
        '# bash completion for nix-plan, generated by `nix-plan completions bash` from its command table.',
        '_nix_plan() {',
        '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
        '  COMPREPLY=()',
        '  if ((COMP_CWORD == 1)); then',
        `    mapfile -t COMPREPLY < <(compgen -W ${words([...commands.map((c) => c.name), ...TOP_LEVEL])} -- "$cur")`,
        '    return 0',
        '  fi',
        '  case ${COMP_WORDS[1]} in',
        '  help)',
        `    ((COMP_CWORD == 2)) && mapfile -t COMPREPLY < <(compgen -W ${words(helpTopics(commands))} -- "$cur")`,
        '    return 0',
        '    ;;',
    ];
    for (const c of commands) {
        lines.push(`  ${c.name})`, '    case $prev in');
        const byKind = new Map();
        for (const [name, spec] of Object.entries(c.options)) {
            const kind = valueCompletion(spec);
            if (kind === undefined)
                continue;
            const key = typeof kind === 'string' ? kind : `compgen -W ${words(kind.choices)}`;
            byKind.set(key, [
                ...(byKind.get(key) ?? []),
                ...(spec.short === undefined ? [] : [`-${spec.short}`]),
                `--${name}`,
            ]);
        }
        for (const [key, flags] of byKind) {
            const action = key === 'file'
                ? 'mapfile -t COMPREPLY < <(compgen -f -- "$cur")'
                : key === 'dir'
                    ? 'mapfile -t COMPREPLY < <(compgen -d -- "$cur")'
                    : key === 'none'
                        ? ':'
                        : `mapfile -t COMPREPLY < <(${key} -- "$cur")`;
            lines.push(`    ${flags.join(' | ')})`, `      ${action}`, '      return 0', '      ;;');
        }
        lines.push('    esac');
        const flags = Object.entries(c.options).flatMap(([name, spec]) => [
            ...(spec.short === undefined ? [] : [`-${spec.short}`]),
            `--${name}`,
        ]);
        const operand = c.operand?.complete ?? 'none';
        lines.push('    if [[ $cur == -* ]]; then', `      mapfile -t COMPREPLY < <(compgen -W ${words(flags)} -- "$cur")`);
        if (operand === 'file')
            lines.push('    else', '      mapfile -t COMPREPLY < <(compgen -f -- "$cur")');
        else if (operand !== 'none')
            lines.push('    else', `      mapfile -t COMPREPLY < <(compgen -W ${words(operand)} -- "$cur")`);
        lines.push('    fi', '    ;;');
    }
    lines.push('  esac', '  return 0', '}', 'complete -o filenames -o bashdefault -F _nix_plan nix-plan', '');
    return lines.join('\n');
}
// ---- zsh ----
/** Text inside a zsh single-quoted _arguments spec's `[description]`. */
function zshDescription(text) {
    return text
        .replace(/\\/g, '\\\\')
        .replace(/([[\]:])/g, '\\$1')
        .replace(/'/g, `'\\''`);
}
function zshAction(kind) {
    if (kind === 'file')
        return '_files';
    if (kind === 'dir')
        return '_files -/';
    if (kind === 'none')
        return ' ';
    return `(${kind.choices.join(' ')})`;
}
function zsh(commands) {
    const lines = [
        '#compdef nix-plan',
        '# zsh completion for nix-plan, generated by `nix-plan completions zsh` from its command table.',
        '_nix_plan() {',
        '  local -a commands',
        '  commands=(',
        ...commands.map((c) => `    '${c.name}:${zshDescription(c.summary)}'`),
        `    'help:show help for a command or the exit codes'`,
        `    'version:print the version'`,
        '  )',
        '  if ((CURRENT == 2)); then',
        "    _describe -t commands 'nix-plan command' commands",
        '    return',
        '  fi',
        '  local cmd=$words[2]',
        '  shift words',
        '  ((CURRENT--))',
        '  case $cmd in',
        `  (help) _values 'topic' ${helpTopics(commands).join(' ')} ;;`,
    ];
    for (const c of commands) {
        const specs = [];
        for (const [name, spec] of Object.entries(c.options)) {
            const spellings = [...(spec.short === undefined ? [] : [`-${spec.short}`]), `--${name}`];
            const exclusive = spec.multiple === true ? '*' : spellings.length > 1 ? `(${spellings.join(' ')})` : '';
            const kind = valueCompletion(spec);
            const value = kind === undefined ? '' : `:${spec.value ?? 'VALUE'}:${zshAction(kind)}`;
            for (const s of spellings)
                specs.push(`'${exclusive}${s}[${zshDescription(spec.help)}]${value}'`);
        }
        if (c.operand !== undefined) {
            const kind = typeof c.operand.complete === 'string' ? c.operand.complete : { choices: c.operand.complete };
            specs.push(`'*:${c.operand.value}:${zshAction(kind)}'`);
        }
        lines.push(`  (${c.name})`, '    _arguments -s -S \\', ...specs.map((s, i) => `      ${s}${i === specs.length - 1 ? '' : ' \\'}`), '    ;;');
    }
    lines.push('  esac', '}', '_nix_plan "$@"', '');
    return lines.join('\n');
}
// ---- fish ----
/** A fish single-quoted string. */
function fishQuote(text) {
    return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
function fish(commands) {
    // The subcommand is always the first word after nix-plan (an option value may be `import`).
    const first = '-n __fish_nix_plan_first';
    const lines = [
        '# fish completion for nix-plan, generated by `nix-plan completions fish` from its command table.',
        'function __fish_nix_plan_first',
        '    test (count (commandline -opc)) -eq 1',
        'end',
        'function __fish_nix_plan_is',
        '    set -l words (commandline -opc)',
        '    test (count $words) -ge 2; and test "$words[2]" = "$argv[1]"',
        'end',
        'complete -c nix-plan -f',
        ...commands.map((c) => `complete -c nix-plan ${first} -a ${c.name} -d ${fishQuote(c.summary)}`),
        `complete -c nix-plan ${first} -a help -d ${fishQuote('show help for a command or the exit codes')}`,
        `complete -c nix-plan ${first} -a version -d ${fishQuote('print the version')}`,
        `complete -c nix-plan ${first} -l help -d ${fishQuote('show help')}`,
        `complete -c nix-plan ${first} -l version -d ${fishQuote('print the version')}`,
        `complete -c nix-plan -n ${fishQuote('__fish_nix_plan_is help')} -a ${fishQuote(helpTopics(commands).join(' '))}`,
    ];
    for (const c of commands) {
        const when = `-n ${fishQuote(`__fish_nix_plan_is ${c.name}`)}`;
        for (const [name, spec] of Object.entries(c.options)) {
            const kind = valueCompletion(spec);
            const short = spec.short === undefined ? '' : ` -s ${spec.short}`;
            const value = kind === undefined
                ? ''
                : kind === 'file'
                    ? ' -r -F'
                    : kind === 'dir'
                        ? " -x -a '(__fish_complete_directories)'"
                        : kind === 'none'
                            ? ' -x'
                            : ` -x -a ${fishQuote(kind.choices.join(' '))}`;
            lines.push(`complete -c nix-plan ${when}${short} -l ${name}${value} -d ${fishQuote(spec.help)}`);
        }
        const operand = c.operand?.complete;
        if (operand === 'file')
            lines.push(`complete -c nix-plan ${when} -F`);
        else if (operand !== undefined && operand !== 'none')
            lines.push(`complete -c nix-plan ${when} -x -a ${fishQuote(operand.join(' '))}`);
    }
    lines.push('');
    return lines.join('\n');
}

;// CONCATENATED MODULE: ./src/nix/profile.ts
// A Nix profile's generations as their links and `nix-env --list-generations` name them. Setting,
// switching and activating generations is the host program's (host-script.ts), here and on hosts.

/** The generation number of a profile link target like `system-42-link`. */
function generationOf(linkTarget) {
    const m = /-(\d+)-link$/.exec((0,external_node_path_namespaceObject.basename)(linkTarget));
    return m?.[1] === undefined ? undefined : Number(m[1]);
}
/** The generation numbers `nix-env --list-generations` prints, in its order. */
function parseGenerations(text) {
    return text
        .split('\n')
        .map((l) => /^\s*(\d+)\s/.exec(l)?.[1])
        .filter((n) => n !== undefined)
        .map(Number);
}

;// CONCATENATED MODULE: ./src/nix/ssh.ts
// Running a program on a host: over the system `ssh` (the user's config, agent and known_hosts
// apply) or locally, as argv arrays, with standard input streamed and output handed on as it comes.


const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;
// A name or alias from ssh_config, or an IPv4/IPv6 address: nothing ssh could read as an option.
const HOST = /^[A-Za-z0-9_][A-Za-z0-9._-]*$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%A-Za-z]*$/;
/** Parses `[USER@]HOST[:PORT]`; a usage error names what is wrong. */
function parseSshTarget(text) {
    const bad = (why) => new errors_NixPlanError('usage', `bad host '${text}': ${why} (expected [USER@]HOST[:PORT])`);
    const at = text.lastIndexOf('@');
    const user = at < 0 ? undefined : text.slice(0, at);
    let rest = at < 0 ? text : text.slice(at + 1);
    if (user !== undefined && !USER.test(user))
        throw bad('the user name has characters ssh would not accept');
    let port;
    let host;
    if (rest.startsWith('[')) {
        const close = rest.indexOf(']');
        if (close < 0)
            throw bad('an unclosed [');
        host = rest.slice(1, close);
        rest = rest.slice(close + 1);
        if (rest !== '' && !rest.startsWith(':'))
            throw bad('text after ]');
        if (rest !== '')
            port = parsePort(rest.slice(1), bad);
    }
    else {
        const colon = rest.indexOf(':');
        if (colon >= 0 && rest.indexOf(':', colon + 1) < 0) {
            port = parsePort(rest.slice(colon + 1), bad);
            host = rest.slice(0, colon);
        }
        else
            host = rest;
    }
    if (host === '' || !HOST.test(host))
        throw bad('not a host name or address');
    return { user, host, port };
}
function parsePort(text, bad) {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > 65535)
        throw bad(`port '${text}' is not 1-65535`);
    return n;
}
/** `user@host:port` as a person writes it (for logs and tables). */
function formatSshTarget(t) {
    const host = t.host.includes(':') ? `[${t.host}]` : t.host;
    return `${t.user === undefined ? '' : `${t.user}@`}${host}${t.port === undefined ? '' : `:${t.port}`}`;
}
const SAFE_WORD = /^[A-Za-z0-9_/.,:@%+=-]+$/;
/**
 * One argument quoted for the remote login shell, which parses what ssh sends: a POSIX shell
 * (sh, bash, dash, zsh) or fish. Inside single quotes fish, unlike POSIX, reads `\\` as one
 * backslash, so quotes and backslashes are written outside the quotes, escaped, which both read
 * alike.
 */
function shellQuote(arg) {
    if (arg.includes('\0'))
        throw new errors_NixPlanError('internal', 'an argument for the remote shell holds a NUL byte');
    if (SAFE_WORD.test(arg))
        return arg;
    return `'${arg.replace(/['\\]/g, (c) => `'\\${c}'`)}'`;
}
/** ssh joins its command arguments with spaces for the remote shell: quote each so argv survives. */
function remoteCommandLine(argv) {
    return argv.map(shellQuote).join(' ');
}
/**
 * Spawns `cmd args`, feeding `input` and handing output on as it comes. Never throws for a
 * non-zero exit; throws a `host` error only when the program cannot be started at all.
 */
async function runStreaming(cmd, args, env, options = {}) {
    const started = startChild(cmd, args, { env }, options);
    const { child } = started;
    const onAbort = () => {
        child.kill('SIGTERM');
    };
    if (options.signal?.aborted === true)
        onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const exited = new Promise((resolve, reject) => {
        child.on('error', (e) => reject(new errors_NixPlanError('host', `cannot run ${cmd}: ${e.message}`, { cause: e })));
        child.on('close', (code, signal) => resolve(signal === null ? { code: code ?? 1 } : { code: 128, signal }));
    });
    try {
        const { code, signal } = await exited;
        return { code, signal, stdout: started.stdout(), stderr: started.stderr() };
    }
    finally {
        options.signal?.removeEventListener('abort', onAbort);
    }
}
/**
 * Options nix-plan adds after the user's: no password prompts (a deploy runs unattended), no
 * terminal, and keep-alives so a host that drops off the network ends the session within a
 * minute instead of never. ssh takes the first value given for an option, so the user's
 * `--ssh-option`s (and their ssh_config) can override every one.
 */
const DEFAULT_SSH_ARGS = [
    '-T',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=20',
    '-o',
    'ServerAliveInterval=15',
    '-o',
    'ServerAliveCountMax=4',
];
/** A host reached with the system `ssh`. */
class SshHost {
    target;
    options;
    remote = true;
    label;
    constructor(target, options = {}) {
        this.target = target;
        this.options = options;
        this.label = formatSshTarget(target);
    }
    /** The full `ssh` argv for running `argv` on the host. */
    sshArgs(argv, fresh = false) {
        return [
            // A fresh connection must not ride on a multiplexed master: it proves the host still
            // accepts logins. These come first so nothing in the user's options overrides them.
            ...(fresh ? ['-o', 'ControlMaster=no', '-o', 'ControlPath=none'] : []),
            ...(this.options.sshOptions ?? []),
            ...DEFAULT_SSH_ARGS,
            ...(this.target.port === undefined ? [] : ['-p', String(this.target.port)]),
            ...(this.target.user === undefined ? [] : ['-l', this.target.user]),
            '--',
            this.target.host,
            remoteCommandLine(argv),
        ];
    }
    async run(argv, options = {}) {
        return runStreaming(this.options.program ?? 'ssh', this.sshArgs(argv, options.freshConnection === true), childEnv(this.options.env ?? {}), options);
    }
}
/**
 * This machine, for `apply`: the same host program, run by the local `sh` through a
 * CommandRunner (so it gets the runner's Nix environment); `env` adds variables (e.g. NIX_REMOTE
 * for `--store`) with `env NAME=VALUE`.
 */
class LocalHost {
    runner;
    env;
    remote = false;
    label = 'localhost';
    constructor(runner, env = {}) {
        this.runner = runner;
        this.env = env;
    }
    async run(argv, options = {}) {
        const vars = Object.entries(this.env).map(([k, v]) => `${k}=${v}`);
        const [cmd, ...args] = vars.length === 0 ? argv : ['env', ...vars, ...argv];
        if (cmd === undefined)
            throw new errors_NixPlanError('internal', 'no command to run');
        const out = [];
        const result = await this.runner.run(cmd, args, {
            ...(options.input !== undefined && { input: options.input }),
            allowFailure: true,
            onStdout: (c) => {
                out.push(Buffer.from(c));
                options.onStdout?.(c);
            },
            onStderr: options.onStderr,
        });
        return { code: result.code, stdout: Buffer.concat(out), stderr: result.stderr };
    }
}

;// CONCATENATED MODULE: ./src/core/provenance.ts
// Where a plan came from, made from facts the adapters read: the GitHub Actions run, the git
// worktree, the evaluated flake's lock. Pure: values in, a `Provenance` (manifest v2) out.
//
// Every value is checked against the manifest's own rules as it is taken, so a writer never emits
// a field its reader would refuse; a value that does not fit is left out and named in `dropped`
// (the caller warns), rather than failing an evaluation over, say, an odd branch name.


/** `date` as nix-plan writes times: RFC 3339, UTC, whole seconds (`2026-12-06T10:17:30Z`). */
function rfc3339(date) {
    if (Number.isNaN(date.getTime()))
        throw new errors_NixPlanError('internal', 'cannot write an invalid date');
    return `${date.toISOString().slice(0, 19)}Z`;
}
/** The GitHub Actions variables provenance is made from. */
const GITHUB_ENV = {
    Actions: 'GITHUB_ACTIONS',
    Repository: 'GITHUB_REPOSITORY',
    Sha: 'GITHUB_SHA',
    Ref: 'GITHUB_REF',
    WorkflowRef: 'GITHUB_WORKFLOW_REF',
    ServerUrl: 'GITHUB_SERVER_URL',
    RunId: 'GITHUB_RUN_ID',
    RunAttempt: 'GITHUB_RUN_ATTEMPT',
};
/**
 * What a GitHub Actions run says about itself: repository, commit, ref, workflow, and the run's
 * URL with its attempt. Empty outside Actions (`GITHUB_ACTIONS` is not `true`).
 */
function githubProvenance(env) {
    if (env(GITHUB_ENV.Actions) !== 'true')
        return {};
    const repository = env(GITHUB_ENV.Repository);
    const server = (env(GITHUB_ENV.ServerUrl) ?? 'https://github.com').replace(/\/+$/, '');
    const runId = env(GITHUB_ENV.RunId);
    const attempt = env(GITHUB_ENV.RunAttempt);
    const attemptNumber = attempt !== undefined && /^[1-9]\d{0,8}$/.test(attempt) ? Number(attempt) : undefined;
    return {
        repository,
        commit: env(GITHUB_ENV.Sha),
        ref: env(GITHUB_ENV.Ref),
        workflow: env(GITHUB_ENV.WorkflowRef),
        ...(repository !== undefined &&
            runId !== undefined &&
            /^\d+$/.test(runId) && {
            runUrl: `${server}/${repository}/actions/runs/${runId}${attemptNumber === undefined ? '' : `/attempts/${attemptNumber}`}`,
        }),
        runAttempt: attemptNumber,
    };
}
/**
 * A URL without credentials: `https://user:token@host/x` → `https://host/x`. An scp-like git
 * address (`git@host:owner/name`) has a user name but no secret, and is kept.
 */
function withoutCredentials(url) {
    return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, '$1');
}
/** Provenance from git facts (the CLI's). */
function gitProvenance(git) {
    return {
        repository: git.remoteUrl === undefined ? undefined : withoutCredentials(git.remoteUrl),
        commit: git.commit,
        ref: git.ref,
        dirty: git.dirty,
    };
}
function provenance_isRecord(v) {
    return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function query(attrs, skip) {
    const params = Object.keys(attrs)
        .filter((k) => !skip.includes(k) && ['string', 'number', 'boolean'].includes(typeof attrs[k]))
        .sort()
        .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(attrs[k]))}`);
    return params.length === 0 ? '' : `?${params.join('&')}`;
}
/**
 * A lock file's `locked` attributes as a flake reference URL, in Nix's syntax for the common
 * types (`github:owner/repo/rev`, `git+https://…?rev=…`, `path:…`, `tarball+https://…`); other
 * types as `TYPE:?attrs`. `narHash` and `lastModified` are left out (recorded beside it), and
 * credentials are removed.
 */
function lockedUrl(locked) {
    const type = locked['type'];
    if (typeof type !== 'string')
        return undefined;
    const s = (k) => (typeof locked[k] === 'string' ? locked[k] : undefined);
    const dropped = ['type', 'narHash', 'lastModified', '__final'];
    let url;
    switch (type) {
        case 'github':
        case 'gitlab':
        case 'sourcehut': {
            const owner = s('owner');
            const repo = s('repo');
            if (owner === undefined || repo === undefined)
                return undefined;
            const rev = s('rev') ?? s('ref');
            url = `${type}:${owner}/${repo}${rev === undefined ? '' : `/${rev}`}${query(locked, [...dropped, 'owner', 'repo', 'rev', 'ref'])}`;
            break;
        }
        case 'git':
        case 'mercurial':
        case 'tarball':
        case 'file': {
            const u = s('url');
            if (u === undefined)
                return undefined;
            const prefix = { git: 'git+', mercurial: 'hg+', tarball: 'tarball+', file: 'file+' }[type];
            url = `${prefix}${u}${query(locked, [...dropped, 'url'])}`;
            break;
        }
        case 'path': {
            const p = s('path');
            if (p === undefined)
                return undefined;
            url = `path:${p}${query(locked, [...dropped, 'path'])}`;
            break;
        }
        case 'indirect': {
            const id = s('id');
            if (id === undefined)
                return undefined;
            url = `flake:${id}${[s('ref'), s('rev')]
                .filter((x) => x !== undefined)
                .map((x) => `/${x}`)
                .join('')}`;
            break;
        }
        default:
            url = `${type}:${query(locked, dropped)}`;
    }
    return withoutCredentials(url);
}
/**
 * The evaluated flake and every locked node of its lock file, from `nix flake metadata --json`
 * (the same shape from Nix 2.8 to 2.34): `url` is the locked URL Nix prints; each input is a lock
 * node other than the root, by its node name, sorted. Undefined when the JSON is not metadata.
 */
function flakeProvenance(metadata) {
    if (!provenance_isRecord(metadata) || typeof metadata['url'] !== 'string')
        return undefined;
    const inputs = [];
    const locks = metadata['locks'];
    const nodes = provenance_isRecord(locks) && provenance_isRecord(locks['nodes']) ? locks['nodes'] : {};
    const rootName = provenance_isRecord(locks) && typeof locks['root'] === 'string' ? locks['root'] : 'root';
    for (const [name, node] of Object.entries(nodes)) {
        if (name === rootName || !provenance_isRecord(node) || !provenance_isRecord(node['locked']))
            continue;
        const locked = node['locked'];
        const url = lockedUrl(locked);
        if (url === undefined)
            continue;
        inputs.push({
            name,
            url,
            ...(typeof locked['narHash'] === 'string' && { narHash: locked['narHash'] }),
            ...(typeof locked['lastModified'] === 'number' && { lastModified: locked['lastModified'] }),
        });
    }
    inputs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { url: withoutCredentials(metadata['url']), inputs };
}
/**
 * Combines candidate values, first source first (a later source fills only what earlier ones
 * left out), keeping each value that passes the manifest's rules and naming the others.
 */
function combineProvenance(...sources) {
    const candidate = {};
    for (const source of sources)
        for (const [k, v] of Object.entries(source))
            if (v !== undefined && !(k in candidate))
                candidate[k] = v;
    const provenance = {};
    const dropped = [];
    for (const [k, v] of Object.entries(candidate)) {
        try {
            Object.assign(provenance, validateProvenance({ [k]: v }));
        }
        catch (e) {
            dropped.push(`${k} (${e.message.replace(/^bundle manifest: /, '')})`);
        }
    }
    return { provenance, dropped };
}

;// CONCATENATED MODULE: ./src/app/freshness.ts
// Downgrade protection and --max-age around a use case that applies a plan: the last-applied
// record beside a profile or out-link (`<target>.nix-plan.json`), read before and written after.
//
// The check runs on a private copy of the bundle, made first, and the use case is given that
// copy: the bytes whose age was checked are the bytes imported and applied, even if the file
// named on the command line is replaced meanwhile. The record is written (atomically, 0644)
// only once the use case succeeded, with the manifest it verified.









/** The record beside a profile or out-link: `/nix/var/nix/profiles/system.nix-plan.json`. */
function recordPathFor(target) {
    return `${(0,external_node_path_namespaceObject.resolve)(target)}.nix-plan.json`;
}
/**
 * Most bytes a last-applied record may have: it names a plan's roots, which fit in a manifest
 * (16 MiB); anything larger is not a record nix-plan wrote.
 */
const MAX_RECORD_BYTES = 32 * 1024 * 1024;
/**
 * The last-applied record at `path`, or undefined when there is none. Whoever can write the
 * directory beside an out-link or profile can plant something else there: it is opened without
 * following a link (O_NOFOLLOW) or waiting on a FIFO (O_NONBLOCK), must be a regular file of at
 * most MAX_RECORD_BYTES, and no more than that is read; anything else is an unreadable record.
 */
async function readLastApplied(path, names) {
    const unreadable = (why) => unreadableRecord(path, why, names);
    let fh;
    try {
        fh = await (0,external_node_fs_promises_namespaceObject.open)(path, external_node_fs_namespaceObject.constants.O_RDONLY | external_node_fs_namespaceObject.constants.O_NOFOLLOW | external_node_fs_namespaceObject.constants.O_NONBLOCK);
    }
    catch (e) {
        const code = e.code;
        if (code === 'ENOENT')
            return undefined;
        if (code === 'ELOOP')
            throw unreadable('a symbolic link, which nix-plan never writes there');
        throw new errors_NixPlanError('stale', `cannot read the last-applied record '${path}': ${e.message}`);
    }
    let bytes;
    try {
        const st = await fh.stat();
        if (!st.isFile())
            throw unreadable('not a regular file');
        if (st.size > MAX_RECORD_BYTES)
            throw unreadable(`${st.size} bytes, more than a record holds (${MAX_RECORD_BYTES})`);
        // What it held when it was opened, however it grows meanwhile.
        const buffer = Buffer.alloc(st.size);
        let got = 0;
        while (got < buffer.length) {
            const { bytesRead } = await fh.read(buffer, got, buffer.length - got, got);
            if (bytesRead === 0)
                break;
            got += bytesRead;
        }
        bytes = buffer.subarray(0, got);
    }
    finally {
        await fh.close();
    }
    return parseLastApplied(bytes.toString('utf8'), path, names);
}
/**
 * Writes the record atomically: a new file beside it (never following a link planted there),
 * synced, then renamed over the old one. Mode 0644: anyone may read what a host runs.
 */
async function writeLastApplied(path, record) {
    const temp = tempPathNear(path);
    try {
        const fh = await (0,external_node_fs_promises_namespaceObject.open)(temp, 'wx', 0o644);
        try {
            await fh.writeFile(`${JSON.stringify(record)}\n`);
            await fh.chmod(0o644); // the umask may have narrowed it
            await fh.sync();
        }
        finally {
            await fh.close();
        }
        await (0,external_node_fs_promises_namespaceObject.rename)(temp, path);
    }
    catch (e) {
        await (0,external_node_fs_promises_namespaceObject.rm)(temp, { force: true });
        throw new errors_NixPlanError('internal', `cannot write the last-applied record '${path}': ${e.message}`);
    }
}
/**
 * Refuses (exit 11) a plan older than `--max-age`, or older than the one `last` says was applied
 * at its target; with `--allow-downgrade` an older plan is let through with a warning. A plan
 * from the future (beyond ordinary clock skew) is let through with a warning too: `realise`,
 * `apply` and `deploy` all come here before they record it.
 */
function checkPlanAge(manifest, checks, last, now, log) {
    const policy = {
        maxAgeMs: checks.maxAgeMs,
        maxAgeText: checks.maxAgeText,
        ...(last !== undefined && { last }),
        allowDowngrade: checks.allowDowngrade,
        optionNames: checks.optionNames,
    };
    const problem = freshnessProblem(manifest, policy, now);
    if (problem !== undefined)
        throw problem;
    warnIfFromTheFuture(manifest, now, log);
    if (checks.allowDowngrade === true && last !== undefined) {
        const strict = freshnessProblem(manifest, { ...policy, allowDowngrade: false }, now);
        if (strict !== undefined)
            log.warn(`${optionSet(checks.optionNames, 'allowDowngrade')}: applying anyway: ${strict.message}`);
    }
}
/**
 * Checks the plan's age against `options` before `run` touches anything, runs `run` on a private
 * copy (the bytes checked are the bytes used; `run` is given the copy's path, and the user's name
 * for the bundle to use in messages), and records the plan as applied to `options.target` once
 * `run` succeeded (unless `record` is false, as for `dry-activate`). `run` returns the manifest it
 * verified, which must be the one checked. Without a limit or a target it just runs `run` on the
 * bundle itself.
 */
async function withFreshness(bundlePath, options, log, run, record = true) {
    const now = options.now ?? (() => new Date());
    if (options.maxAgeMs === undefined && options.target === undefined)
        return run(bundlePath, bundlePath);
    const copy = await privateBundle(bundlePath, {
        prefix: 'nix-plan-fresh-',
        optionNames: options.optionNames,
    });
    try {
        const { manifest } = await readBundleHead(copy.source);
        const recordPath = options.target === undefined ? undefined : recordPathFor(options.target);
        const last = recordPath === undefined
            ? undefined
            : await readLastApplied(recordPath, options.optionNames).catch((e) => waiveUnreadable(e, options, log));
        const target = options.target;
        try {
            checkPlanAge(manifest, options, last !== undefined && target !== undefined ? { record: last, target } : undefined, now(), log);
        }
        catch (e) {
            // A store that cannot say its dir leaves the stale refusal standing (the use case, not run,
            // would have met that failure itself).
            const storeDir = e instanceof errors_NixPlanError && e.code === 'stale'
                ? await options.storeDir?.().catch(() => undefined)
                : undefined;
            if (storeDir !== undefined)
                checkRealm(manifest, storeDir, bundlePath, options.optionNames);
            throw e;
        }
        const result = await run(copy.path, bundlePath);
        if (result.manifest.checksum !== manifest.checksum)
            throw new errors_NixPlanError('internal', 'the plan verified is not the plan whose age was checked');
        if (recordPath !== undefined && record)
            await writeLastApplied(recordPath, lastAppliedOf(result.manifest, copy.digest, rfc3339(now())));
        return result;
    }
    finally {
        await copy.dispose();
    }
}
/**
 * An unreadable record's refusal `e` rethrown, or with `--allow-downgrade` said as a warning: the
 * plan is applied as if there were no record, and the record written afterwards replaces it.
 */
function waiveUnreadable(e, checks, log) {
    if (checks.allowDowngrade !== true || !(e instanceof errors_NixPlanError) || e.code !== 'stale')
        throw e;
    log.warn(`${optionSet(checks.optionNames, 'allowDowngrade')}: applying anyway: ${e.message}`);
    return undefined;
}
/** Five minutes of clock skew between the machine that evaluated and this one is ordinary. */
const SKEW_MS = 5 * 60 * 1000;
/**
 * A plan created in the future (a runner's clock ahead) would, once recorded, make every later
 * plan look older: say so while it is still one plan.
 */
function warnIfFromTheFuture(manifest, now, log) {
    if (manifest.createdAt !== undefined && Date.parse(manifest.createdAt) - now.getTime() > SKEW_MS)
        log.warn(`the plan says it was created at ${manifest.createdAt}, in the future by this machine's clock: ` +
            'check the clocks of this machine and of the one that evaluated it');
}

;// CONCATENATED MODULE: ./src/app/deploy/record.ts




/** The record's suffix beside the profile. */
const RECORD_SUFFIX = '.nix-plan.json';
/** The record of applying `manifest` (from a bundle file with `digest`) to one host: its root(s). */
function recordFor(manifest, digest, roots, at) {
    return { ...lastAppliedOf(manifest, digest, rfc3339(at)), roots: [...roots] };
}
/** How the host program names the record it saw: sha256 hex of its bytes, or `none`. */
function recordSeen(bytes) {
    return bytes === undefined ? 'none' : toHex(sha256(bytes));
}
/**
 * Refuses (exit 11) a plan older than `--max-age`, or older than the one the record `bytes` (read
 * from `target`, e.g. `web:/nix/var/nix/profiles/system.nix-plan.json`) says was applied there.
 */
function checkFreshness(manifest, bytes, checks, target, now, log) {
    let record;
    try {
        record =
            bytes === undefined
                ? undefined
                : parseLastApplied(Buffer.from(bytes).toString('utf8'), `${target}${RECORD_SUFFIX}`, checks.optionNames);
    }
    catch (e) {
        record = waiveUnreadable(e, checks, log);
    }
    checkPlanAge(manifest, checks, record === undefined ? undefined : { record, target }, now, log);
}

;// CONCATENATED MODULE: ./src/app/deploy/host.ts
// One host of a deploy: what it says about itself (probe), the checks that need its answers (realm,
// a running activation), the transfer of the plan (or of locally built outputs), and activation.


















/** Every transfer encoding, for parsing and help texts. */
const TRANSFER_ENCODINGS = ['auto', 'zstd', 'none'];
/** Every place a deploy can build, for parsing and help texts. */
const BUILD_ON = ['host', 'local'];
/** Refuses, from the probe alone, a host the plan cannot go to: another realm, a busy host. */
function checkProbe(job, manifest, probe, activating = true, names) {
    if (probe.storeDir !== manifest.storeDir)
        throw new errors_NixPlanError('realm', `${job.label}: the plan is for store dir ${manifest.storeDir}, the host's Nix uses ${probe.storeDir}: ` +
            `relocate the plan to the host's realm first (${names?.style === 'input' ? relocateAdvice(names, probe.storeDir) : 'nix-plan relocate --to …'}); nothing was sent`);
    if (activating && probe.uid !== 0)
        throw new errors_NixPlanError('host', `${job.label}: ${notRootText(probe.uid)}; nothing was sent`);
    if (activating && probe.busy !== undefined)
        throw new errors_NixPlanError('host', `${job.label}: another activation is running on the host${probe.busy === '' ? '' : ` (process ${probe.busy})`}; nothing was sent`);
}
/** Counts bytes of a stream into a progress task as they pass. */
async function* counted(chunks, tick) {
    for await (const c of chunks) {
        tick(c.length);
        yield c;
    }
}
/**
 * Sends the verified plan's export stream (zstd as in the bundle when the host can read it) and
 * has the host import it; returns how many paths Nix imported. This is all `--action push` does.
 */
async function sendPlan(job, plan, probe, io, roots) {
    const zstd = job.encoding === 'zstd' || (job.encoding === 'auto' && probe.zstd);
    if (job.encoding === 'zstd' && !probe.zstd)
        throw new errors_NixPlanError('host', `${job.label}: --compress zstd, but the host has no zstd on its PATH`);
    const { stream } = plan.manifest;
    const task = progressOf(io.deps).start(`${job.label}: sending`, undefined);
    try {
        const chunks = zstd ? plan.source.stream(plan.dataOffset) : exportStream(plan.source);
        const { imported } = await job.program.receive(counted(chunks, (n) => task.tick(0, n)), zstd
            ? { size: stream.compressedSize, sha256: stream.compressedSha256, encoding: 'zstd' }
            : { size: stream.size, sha256: stream.sha256, encoding: 'raw' }, { onOutput: io.output, signal: io.signal, verified: io.verified, roots });
        return imported;
    }
    finally {
        task.done();
    }
}
/**
 * Sends the locally built system's closure, only the paths the host lacks, as one export stream
 * checked (size, sha256) on the host like a plan.
 */
async function sendOutputs(job, io, roots, rooting) {
    const store = new NixStore(io.deps.runner);
    const closure = await store.requisites([job.system]);
    const missing = await job.program.missing(closure, io.signal, `the closure of ${job.system}`);
    if (missing.length === 0)
        return 0;
    rooting();
    const dir = await (0,external_node_fs_promises_namespaceObject.mkdtemp)((0,external_node_path_namespaceObject.join)((0,external_node_os_namespaceObject.tmpdir)(), 'nix-plan-deploy-'));
    try {
        const file = (0,external_node_path_namespaceObject.join)(dir, 'export');
        const out = (0,external_node_fs_namespaceObject.createWriteStream)(file, { mode: 0o600 });
        const hash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
        let size = 0;
        try {
            await store.export(missing, (c) => {
                hash.update(c);
                size += c.length;
                out.write(c);
            });
        }
        finally {
            out.end();
            await (0,promises_namespaceObject.finished)(out);
        }
        const { imported } = await job.program.receive(new FileInput(file), { size, sha256: hash.digest('hex'), encoding: 'raw' }, { onOutput: io.output, signal: io.signal, roots });
        return imported;
    }
    finally {
        await (0,external_node_fs_promises_namespaceObject.rm)(dir, { recursive: true, force: true });
    }
}
/**
 * Deploys to one host whose probe is `probe` (already checked): sends what it needs, then
 * activates safely. The plan reaches Nix on the host only once `io.verified` (if given) resolves.
 */
async function deployToHost(job, plan, probe, io) {
    // What this deploy stages on the host stays rooted there, from the import until it ends: a
    // garbage collection between its sessions cannot take the plan or the system built from it.
    // The activation removes them once the profile holds the new system; a deploy that ends short
    // of that releases them (a deploy cut off leaves them to the next deploy to the host).
    const id = newActivationId();
    // Whether a session that makes roots has started (a deploy refused before needs no release).
    let rooting = false;
    try {
        return await stageAndActivate(job, plan, probe, io, id, () => (rooting = true));
    }
    catch (e) {
        if (rooting && io.signal?.aborted !== true)
            await job.program
                .release(job.profile, id, io.signal)
                .catch((r) => io.log.warn(`${job.label}: could not remove this deploy's garbage collector roots on the host, ` +
                `if it made any (${job.profile}.nix-plan.d/roots/${id}): ${stringifyError(r)}; ` +
                `the next deploy to it removes them once no session has used them for ${ROOTS_STALE_SECONDS / 60} minutes`));
        throw e;
    }
}
async function stageAndActivate(job, plan, probe, io, id, rooting) {
    const roots = {
        profile: job.profile,
        id,
        ...(job.buildOn === 'local' ? { out: job.system } : { drvPath: job.drvPath }),
    };
    let imported;
    if (job.buildOn === 'local')
        imported = await sendOutputs(job, io, roots, rooting);
    else {
        rooting();
        imported = await sendPlan(job, plan, probe, io, roots);
    }
    io.log.info(`${job.label}: ${imported} path${imported === 1 ? '' : 's'} imported`);
    // Build the system there and compare its closure with the current one before activating.
    rooting();
    const changes = await readChanges(job.program, {
        profile: job.profile,
        drvPath: job.buildOn === 'local' ? undefined : job.drvPath,
        out: job.system,
        storeDir: probe.storeDir,
        roots: id,
    }, { log: io.log, label: job.label, output: io.output, signal: io.signal });
    io.onChanges?.(changes);
    const activation = await activateSafely(job.program, {
        profile: job.profile,
        action: job.action,
        drvPath: job.buildOn === 'local' ? undefined : job.drvPath,
        out: job.system,
        confirmTimeout: job.confirmTimeout,
        activationTimeout: job.activationTimeout,
        recordSeen: recordSeen(probe.record),
        record: job.action === 'switch' || job.action === 'boot' ? job.record : '',
        roots: id,
    }, { log: io.log, output: io.output, clock: io.clock });
    return { probe, imported, changes, activation };
}

;// CONCATENATED MODULE: ./src/app/deploy/last-activation.ts

/** "2026-12-07T23:03:00Z" from an activation id ("20261207T230300Z-…"). */
function startedAt(id) {
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(id);
    return m === null ? id : `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}
/**
 * Warnings about the newest activation the probe found beside `profile` on the host `label`, for
 * a deploy or (`rollback`) a rollback about to start; none when it ended as planned.
 */
function lastActivationNotes(probe, label, profile, rollback) {
    const last = probe.lastActivation;
    if (last === undefined)
        return [];
    const what = `${label}: the last activation here (${last.action} of ${last.out ?? 'a system'}, started ${startedAt(last.id)})`;
    const log = `${profile}.nix-plan.d/act-${last.id}/log on the host`;
    const current = generationNumber(probe.generation);
    const why = last.expired
        ? 'was not confirmed in time'
        : last.timedOut
            ? 'did not finish within its activation timeout'
            : last.switchRc !== undefined && last.switchRc !== 0
                ? `failed (switch-to-configuration exited with ${last.switchRc})`
                : 'did not complete';
    switch (last.state) {
        case 'reverted':
            return [
                `${what} ${why}: ${last.expired ? "the host's watchdog" : 'the supervisor'} re-activated the generation before it` +
                    (rollback && current !== undefined
                        ? `. The host runs generation ${current} again, and a rollback goes one further back`
                        : ''),
            ];
        case 'no-previous':
            return [`${what} ${why}, and was undone; there was no generation before it to re-activate`];
        case 'revert-failed':
            return [
                `${what} failed, and re-activating the generation before it failed too: the host may need attention (${log})`,
            ];
        case 'starting':
        case 'switching':
        case 'awaiting-confirmation':
        case 'reverting':
            return probe.busy !== undefined
                ? []
                : [`${what} never finished: its supervisor is gone (was the host restarted?); see ${log}`];
        case 'done':
            if (last.action !== 'test' || last.out === undefined || last.out === probe.system)
                return [];
            return [
                `${what} is not in the profile: unless the host restarted since, it runs that system, not generation ${current ?? '-'}'s` +
                    (rollback && current !== undefined
                        ? `. A rollback goes from generation ${current} to the one before it; it does not re-activate generation ${current} (to undo only the test, run that generation's bin/switch-to-configuration switch on the host, or restart it)`
                        : ''),
            ];
        default:
            return [];
    }
}

;// CONCATENATED MODULE: ./src/app/deploy/prefix.ts
// Per-host log prefixes: whole lines of a host's output, each led by `[NAME] `, so the output of
// hosts deployed in parallel stays readable when interleaved. What follows a prefix cannot hide
// it or pass for another host's line: a bare `\r` starts a new prefixed line (instead of sending
// the cursor back over the prefix), and every other control character (an escape sequence that
// moves the cursor or clears the line, a bidi override) is made visible as escapeTerminal does.


const NEWLINE = Buffer.from('\n');
/**
 * A message of ours about one host, each of its lines led by `prefix`: a message may quote what
 * the host sent (the tail of its standard error, an error it reported), and a line of that
 * without the prefix could pass for another host's, or for nix-plan's own. Control characters
 * are left to the logger, which escapes them (a `\r` included).
 */
function prefixLines(prefix, message) {
    return prefix === '' ? message : `${prefix}${message.split('\n').join(`\n${prefix}`)}`;
}
/**
 * Lines of `write`'s chunks, each prefixed and made safe to show after it (see the module
 * comment); an empty prefix (one host) passes chunks through unchanged, as the host printed them.
 * A line longer than the core's line splitter holds is written as it comes, in pieces, each on a
 * line of its own with the prefix: a host printing one endless line is not held in memory.
 */
function linePrefixer(prefix, out) {
    if (prefix === '')
        return { write: (c) => out(c), flush: () => undefined };
    const head = Buffer.from(prefix, 'utf8');
    const lines = lineSplitter((bytes) => {
        for (const text of shownLines(bytes))
            out(Buffer.concat([head, Buffer.from(text, 'utf8'), NEWLINE]));
    });
    return {
        write: (chunk) => lines.write(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk),
        flush: () => lines.end(),
    };
}
/**
 * What one line of a host's output (or a piece of one, with or without its line end) shows after
 * the prefix: one line per stretch between bare `\r`s (a `\r\n` ends the line like `\n`), empty
 * stretches left out, each with its control characters escaped. The line splitter cuts no piece
 * inside a UTF-8 sequence, so decoding a piece alone reads what the host wrote.
 */
function shownLines(line) {
    let end = line.length;
    if (line[end - 1] === 0x0a) {
        end -= 1;
        if (line[end - 1] === 0x0d)
            end -= 1;
    }
    const stretches = Buffer.from(line.buffer, line.byteOffset, end)
        .toString('utf8')
        .split('\r')
        .filter((s) => s !== '');
    return stretches.length === 0 ? [''] : stretches.map((s) => escapeTerminal(s, { multiline: true }));
}

;// CONCATENATED MODULE: ./src/app/deploy/pool.ts
// A bounded pool for work on several hosts at once (`--jobs`).
/** Runs `task` for each index below `count`, at most `jobs` at once; results in index order. */
async function pool(count, jobs, task) {
    const results = new Array(count);
    let next = 0;
    const worker = async () => {
        while (next < count) {
            const i = next++;
            results[i] = await task(i);
        }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, count)) }, worker));
    return results;
}

;// CONCATENATED MODULE: ./src/app/deploy/roots.ts




/** The prefix of a NixOS system toplevel's derivation name (`nixos-system-HOST-VERSION`). */
const NIXOS_SYSTEM_PREFIX = 'nixos-system-';
/**
 * How well `root` answers to the host name `name`: 3 its attribute, installable or label is the
 * name; 2 its attribute path names it as a NixOS configuration (`nixosConfigurations.NAME.…`, also
 * inside a flake installable); 1 its derivation is `nixos-system-NAME-<version>`; 0 not at all.
 */
function rootMatch(root, name) {
    if (root.attribute === name || root.installable === name || rootLabel(root) === name)
        return 3;
    const attrPath = `${root.installable ?? ''} ${root.attribute ?? ''}`;
    const quoted = `nixosConfigurations."${name}".`;
    if (attrPath.includes(`nixosConfigurations.${name}.`) || attrPath.includes(quoted))
        return 2;
    const drv = drvName(root.drvPath);
    if (drv.startsWith(`${NIXOS_SYSTEM_PREFIX}${name}-`)) {
        const rest = drv.slice(NIXOS_SYSTEM_PREFIX.length + name.length + 1);
        // NixOS versions are dotted (24.05.20240101.abcdef): `web-2-24.05` is host web-2, not web.
        if (/^\d+\.\d+/.test(rest))
            return 1;
    }
    return 0;
}
/**
 * The root each named host gets. With one host and no name the plan must have exactly one root;
 * otherwise each name must pick exactly one root (the best match) and no root may go to two
 * hosts' names by accident. Usage errors list the roots, and name the option as `names` spells it.
 */
function assignRoots(roots, hosts, names) {
    const list = () => roots.map((r, i) => `${i}=${rootLabel(r)}`).join(', ');
    const named = optionSet(names, 'host', 'NAME=[USER@]HOST');
    if (hosts.length === 1 && hosts[0]?.name === undefined) {
        const [only] = roots;
        if (roots.length !== 1 || only === undefined)
            throw new errors_NixPlanError('usage', `the plan has ${roots.length} roots (${list()}): name the host after its root (${named}) to deploy one`);
        return [only];
    }
    return hosts.map((h) => {
        const name = h.name;
        if (name === undefined)
            throw new errors_NixPlanError('usage', `with several hosts, give each a name: ${named}`);
        const scored = roots.map((r) => [r, rootMatch(r, name)]).filter(([, s]) => s > 0);
        const best = Math.max(0, ...scored.map(([, s]) => s));
        const chosen = scored.filter(([, s]) => s === best).map(([r]) => r);
        const [root] = chosen;
        if (root === undefined)
            throw new errors_NixPlanError('usage', `no root of the plan is for host '${name}'; its roots are: ${list()}`);
        if (chosen.length > 1)
            throw new errors_NixPlanError('usage', `host '${name}' matches ${chosen.length} roots of the plan (${chosen.map(rootLabel).join(', ')}): name it after one`);
        return root;
    });
}
/**
 * The system a root builds, checked to be a NixOS toplevel by its derivation name (unless
 * `allowAnyRoot`) with a known `out` path: refused here, before anything is built. The way out
 * the refusal offers is the option as `names` spells it, when that front end has one.
 */
function systemOfRoot(root, allowAnyRoot, names) {
    const name = drvName(root.drvPath);
    if (!allowAnyRoot && !name.startsWith(NIXOS_SYSTEM_PREFIX))
        throw new errors_NixPlanError('usage', `root '${rootLabel(root)}' builds '${name}', not a NixOS system (${NIXOS_SYSTEM_PREFIX}…): export the ` +
            'system attribute, e.g. nixosConfigurations.HOST.config.system.build.toplevel' +
            (offers(names, 'allowAnyRoot') ? ` (or pass ${optionSet(names, 'allowAnyRoot')})` : ''));
    const outputs = Object.keys(root.outputs);
    const out = root.outputs['out'];
    if (out === undefined)
        throw new errors_NixPlanError('usage', `root '${rootLabel(root)}' has no 'out' output (it has ${outputs.join(', ')}): a system has one`);
    if (out === '')
        throw new errors_NixPlanError('usage', `root '${rootLabel(root)}' is content-addressed (its output path is known only after building): ` +
            'deploying one is not supported');
    return out;
}

;// CONCATENATED MODULE: ./src/app/deploy/types.ts

/** NixOS's system profile. */
const DEFAULT_PROFILE = '/nix/var/nix/profiles/system';
/** Every deploy action, for parsing and help texts. */
const DEPLOY_ACTIONS = [...ACTIVATION_ACTIONS, 'push'];

;// CONCATENATED MODULE: ./src/app/deploy/index.ts
// deployPlan: a verified plan to one host or a fleet over SSH — each host needs only Nix, sh and an
// SSH server. Verify here, ask each host about itself, send, build there, activate safely.
























const OUTCOME = {
    push: 'pushed',
    switch: 'switched',
    boot: 'booted',
    test: 'tested',
    'dry-activate': 'dry-activated',
};
/** The outcome a failed host's error code stands for. */
function failedOutcome(code) {
    if (code === 'activation')
        return 'rolled-back';
    if (code === 'attention')
        return 'needs-attention';
    return 'failed';
}
/**
 * The checks deploy and deploy --rollback make of their host list and profile before asking any
 * host: each host's name (`--host NAME=…`, else its address), given once, and the profile (absolute
 * with `--use-sudo`). Messages name the options as `options.optionNames` spells them.
 */
function checkHosts(options, command) {
    const spelling = options.optionNames;
    if (options.hosts.length === 0)
        throw new ArgumentError(`${command} needs at least one ${optionName(spelling, 'host')}`);
    const names = options.hosts.map((h) => h.name ?? formatSshTarget(h.target));
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
        throw new ArgumentError(`host '${dup}' is given twice`);
    const profile = options.profile ?? DEFAULT_PROFILE;
    if (profile === '' || profile.includes('\0'))
        throw new ArgumentError(`${optionName(spelling, 'profile')} must be a path`);
    // A relative profile is taken from $HOME on the host, and under sudo that is whatever home sudo
    // sets (root's by default, the login's where sudoers keeps HOME): not one path to name.
    if (options.useSudo === true && !profile.startsWith('/'))
        throw new ArgumentError(`${optionName(spelling, 'profile')} '${profile}' is relative: with ${optionSet(spelling, 'useSudo')} give an absolute path ` +
            "(a relative one would be taken from the home sudo chooses, not the login's)");
    return { names, profile };
}
/** The program run on a host over SSH (or the shell the deps give, in tests). */
function hostProgram(target, options, deps) {
    const shell = deps.shellFor !== undefined
        ? deps.shellFor(target)
        : new SshHost(target, { sshOptions: options.sshOptions ?? [] });
    return new HostProgram(shell, { sudo: options.useSudo });
}
/**
 * What a host's result says of an activation that went through (warning when the host could
 * not write its last-applied record).
 */
function hostActivated(label, action, activation, log) {
    if (activation.report.recordFailed)
        log.warn(`${label}: the host could not write its last-applied record`);
    return {
        outcome: OUTCOME[action],
        generation: activation.generation,
        previousGeneration: activation.previousGeneration,
        currentSystem: activation.report.currentSystem,
        confirmed: activation.confirmed,
    };
}
/**
 * What a host's result says of the error that ended it: the outcome its code stands for, the
 * error, and the generations the host reported with it (an activation error carries them).
 */
function hostFailure(e) {
    const code = e instanceof errors_NixPlanError ? e.code : 'internal';
    const report = e.report;
    return {
        outcome: failedOutcome(code),
        ...(report !== undefined && {
            generation: generationOfLink(report.current),
            previousGeneration: generationOfLink(report.previous),
            currentSystem: report.currentSystem,
        }),
        error: { code, message: stringifyError(e) },
    };
}
/**
 * The trust rules of import, here before anything is sent: the verifier proves every path (a
 * .drv, text or source by its content; a build output only by a trusted key's signature) and
 * refuses what nothing proves, unless the user opted out. Even then, a plan with unproven build
 * outputs is never activated (as apply): only `push` stages it.
 */
async function verifyForDeploy(source, options, activates, deps) {
    const noCheckSigs = options.noCheckSigs === true;
    const trusted = (options.trustedKeys ?? []).map(parsePublicKey);
    const report = await verifyWithProgress(source, { trustedKeys: trusted, noCheckSigs, optionNames: options.optionNames }, deps.progress, deps.signal);
    const trust = trustReportOf(report.manifest, trusted, {
        noCheckSigs: report.noCheckSigs,
        unproven: report.unproven,
    });
    deps.log.info(`plan ${trustStatus(report.manifest, trust)}`);
    const outputs = `${report.unproven} build output${report.unproven === 1 ? '' : 's'} no trusted key signed`;
    const names = options.optionNames;
    if (report.unproven > 0 && activates)
        throw new errors_NixPlanError('signature', `the plan holds ${outputs}: deploy activates only a proven system (give ${optionName(names, 'trustedKey')}; ` +
            `${optionSet(names, 'action', 'push')} only stages it)`);
    if (report.unproven > 0)
        deps.log.warn(`${optionSet(names, 'noCheckSigs')}: sending ${outputs}`);
    return { signedBy: report.trustedSignatures, trust, shapes: report.shapes };
}
/** The refusals of checkHostReads, told apart from the transfer failures they cause. */
const hostRefusals = new WeakSet();
/**
 * Refuses to send a host a plan with a .drv its Nix cannot read: one older than the shape (the
 * probe's `nix-store --version`), or one needing an experimental feature the host has off (asked
 * only then, one more small query); warns when the host could not say its features.
 */
async function checkHostReads(shapes, probe, program, label, log, signal) {
    if (shapes.length === 0)
        return;
    const target = { version: probe.nixVersion, label: `the host ${label}` };
    let verdict = checkShapes(shapes, { kind: 'other', ...target });
    if (verdict.refusal === undefined && verdict.unchecked.length > 0) {
        // The host's own Nix imports the plan (the login is root there), so its settings are the ones.
        const features = await program.features(signal).catch(() => undefined);
        if (features !== undefined)
            verdict = checkShapes(shapes, { kind: 'local', features, ...target });
    }
    if (verdict.refusal !== undefined) {
        const refusal = new errors_NixPlanError('bundle', `${label}: the plan cannot be imported there: ${verdict.refusal}; nothing was imported`);
        hostRefusals.add(refusal);
        throw refusal;
    }
    for (const w of verdict.unchecked)
        log.warn(`${label}: ${w}`);
}
/**
 * Whether the plan's head holds all its verification will rest on: every trusted key given has
 * signed the manifest as one must (the check the verifier starts with), and build outputs, which
 * only such a signature proves, are covered by one or absent. Only then may it be sent early.
 */
function provenByHead(manifest, options) {
    let signed;
    try {
        signed = checkSignatures(manifest, options.trustedKeys, undefined);
    }
    catch {
        return false;
    }
    return manifest.counts.output === 0 || signed.length > 0;
}
/**
 * Deploys the plan in `bundlePath`: checks its shape for every host and verifies it completely
 * here before any of it is sent; asks each host (store dir, Nix, profile, record) meanwhile; then
 * per host sends it, builds the system there (or here), sets the profile and activates safely.
 * Hosts fail one by one: the result lists each (`ok` false when any failed). Errors about the plan
 * itself or the command line are thrown.
 */
async function deployPlan(bundlePath, options, deps) {
    const { names, profile } = checkHosts(options, 'deploy');
    const action = options.action ?? 'switch';
    const confirmTimeout = options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT;
    const buildOn = options.buildOn ?? 'host';
    // Everything below reads a private copy: the plan verified is the plan sent and built, even if
    // the file named is rewritten in place or replaced meanwhile (and `digest` is checked on it).
    const copy = await privateBundle(bundlePath, { digest: options.digest, optionNames: options.optionNames });
    const { source } = copy;
    try {
        // The plan's shape, from its manifest: which root goes where, and that each is a system.
        const head = await readBundleHead(source);
        const { manifest } = head;
        // `push` sends the whole plan to every host and activates nothing: no root to choose.
        const push = action === 'push';
        const roots = push ? undefined : assignRoots(manifest.roots, options.hosts, options.optionNames);
        const systems = roots?.map((r) => systemOfRoot(r, options.allowAnyRoot === true, options.optionNames));
        const programs = options.hosts.map((h) => hostProgram(h.target, options, deps));
        const outputs = deps.hostOutputs ?? defaultOutputs(deps, options.hosts.length > 1);
        // Verify here while the hosts answer their probes.
        const verified = verifyForDeploy(source, options, !push, deps);
        const built = buildOn === 'local' ? buildLocally(copy.path, bundlePath, deps) : Promise.resolve();
        const ready = Promise.all([verified, built]);
        // The probes and transfers stop (their ssh is killed) when the plan is refused here.
        const stopping = new AbortController();
        const stop = () => stopping.abort();
        deps.signal?.addEventListener('abort', stop, { once: true });
        const probes = programs.map((p) => p.probe(profile, stopping.signal));
        for (const p of [verified, built, ready, ...probes])
            p.catch(() => undefined);
        // A plan whose head already holds what its verification rests on (a trusted key's signature
        // on the manifest, or no build outputs to prove) is sent while it is verified: the host holds
        // it unread until the verification here succeeds. Any other plan is verified before any of it
        // is sent, so a plan the head alone shows will be refused never leaves this machine.
        const early = buildOn === 'host' && provenByHead(manifest, options);
        let failed = false;
        const runHosts = () => pool(options.hosts.length, options.jobs ?? Math.min(8, options.hosts.length), async (i) => {
            const name = names[i] ?? '';
            const spec = options.hosts[i];
            const root = roots?.[i];
            const system = systems?.[i];
            const program = programs[i];
            const probe = probes[i];
            const started = performance.now();
            const base = {
                name,
                target: spec === undefined ? '' : formatSshTarget(spec.target),
                root: root?.drvPath,
                system,
                action,
            };
            if (spec === undefined || program === undefined || probe === undefined)
                throw new errors_NixPlanError('internal', 'host list out of step');
            if (failed && options.keepGoing !== true)
                return { ...base, outcome: 'skipped', seconds: 0 };
            const out = outputs(name);
            const label = options.hosts.length > 1 ? name : program.shell.label;
            const plan = { manifest, source, dataOffset: head.dataOffset };
            let changes;
            // The host's Nix parses the plan's .drv files: one it cannot read is refused before the
            // host imports any of it (a plan sent early is held there until this resolves).
            const hostReads = buildOn === 'host'
                ? Promise.all([ready, probe]).then(([[v], answer]) => checkHostReads(v.shapes, answer, program, label, out.log, stopping.signal))
                : ready;
            hostReads.catch(() => undefined);
            const io = {
                log: out.log,
                output: out.output,
                deps,
                clock: deps.clock,
                signal: stopping.signal,
                verified: hostReads,
                onChanges: (c) => (changes = c),
            };
            try {
                const answer = await probe;
                checkProbe({ label }, manifest, answer, !push, options.optionNames);
                for (const note of lastActivationNotes(answer, label, profile, false))
                    out.log.warn(note);
                if (buildOn === 'host' && !early)
                    await hostReads;
                if (push || root === undefined || system === undefined) {
                    if (!push)
                        throw new errors_NixPlanError('internal', 'no root for the host');
                    const imported = await sendPlan({ label, program, encoding: options.compress ?? 'auto' }, plan, answer, io);
                    out.log.info(`${label}: ${imported} path${imported === 1 ? '' : 's'} imported; nothing activated`);
                    return { ...base, outcome: 'pushed', imported, seconds: (performance.now() - started) / 1000 };
                }
                // An older plan than the host last applied (its record, read by the probe) goes no further.
                const now = (deps.now ?? (() => new Date()))();
                checkFreshness(manifest, answer.record, options, `${label}:${profile}`, now, out.log);
                const record = JSON.stringify(recordFor(manifest, copy.digest, [root.drvPath], now));
                const job = {
                    label,
                    program,
                    drvPath: root.drvPath,
                    system,
                    profile,
                    action,
                    confirmTimeout,
                    activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
                    encoding: options.compress ?? 'auto',
                    buildOn,
                    record,
                };
                out.log.info(`deploying ${rootLabel(root)} to ${program.shell.label} (${action})`);
                const done = await deployToHost(job, plan, answer, io);
                return {
                    ...base,
                    ...hostActivated(label, action, done.activation, out.log),
                    imported: done.imported,
                    changes,
                    seconds: (performance.now() - started) / 1000,
                };
            }
            catch (e) {
                failed = true;
                // A plan sent early fails on the host when refused for it: the refusal is the error.
                const refused = await hostReads.then(() => undefined, (r) => (hostRefusals.has(r) ? r : undefined));
                const failure = hostFailure(refused ?? e);
                // A session stopped because the plan was refused here says nothing of the host.
                if (options.hosts.length > 1 && !stopping.signal.aborted)
                    out.log.warn(failure.error.message);
                return { ...base, ...failure, changes, seconds: (performance.now() - started) / 1000 };
            }
            finally {
                out.done();
            }
        });
        const deploying = early ? runHosts() : ready.then(runHosts);
        deploying.catch(() => undefined);
        let signedBy;
        let trust;
        let hosts;
        try {
            try {
                ({ signedBy, trust } = await verified);
                await built;
            }
            catch (e) {
                // Refused here: every session stops, and a host holding part or all of the plan removes it.
                stop();
                await Promise.allSettled([deploying, ...probes]);
                throw e;
            }
            hosts = await deploying;
        }
        finally {
            deps.signal?.removeEventListener('abort', stop);
        }
        return {
            bundle: bundlePath,
            digest: copy.digest,
            storeDir: manifest.storeDir,
            signedBy,
            trust,
            manifest,
            hosts,
            ok: hosts.every((h) => h.error === undefined && h.outcome !== 'skipped'),
        };
    }
    finally {
        await copy.dispose();
    }
}
/** Builds the plan here from the private copy `copyPath`; messages name the user's file, `name`. */
async function buildLocally(copyPath, name, deps) {
    if (deps.realise === undefined)
        throw new errors_NixPlanError('internal', '--build-on local needs a local realise');
    await deps.realise(copyPath, name);
}
/**
 * One host's outputs: messages about it to `log` and its raw output to `write`, every line of both
 * led by `prefix` (empty for a single host) — the library default, the command line and the deploy
 * action differ only in where the two go.
 */
function prefixedOutput(prefix, log, write) {
    const raw = linePrefixer(prefix, write);
    return {
        log: {
            info: (m) => log.info(prefixLines(prefix, m)),
            warn: (m) => log.warn(prefixLines(prefix, m)),
            debug: (m) => log.debug(prefixLines(prefix, m)),
        },
        output: (c) => raw.write(c),
        done: () => raw.flush(),
    };
}
/** deps.log and deps.nixLog, each line led by `[NAME] ` when several hosts share the terminal. */
function defaultOutputs(deps, prefixed) {
    return (name) => prefixedOutput(prefixed ? `[${name}] ` : '', deps.log, (c) => deps.nixLog?.(typeof c === 'string' ? Buffer.from(c) : c));
}
/** The generation number of a profile's generation link, if the host reported one. */
function generationOfLink(link) {
    return link === undefined ? undefined : generationOf(link);
}

;// CONCATENATED MODULE: ./src/app/deploy/hosts.ts
// How a host is named on the command line and in the action's `hosts` input.


/** One host: `[NAME=][USER@]HOST[:PORT]` (NAME picks the plan's root for it). */
function parseHostOption(text) {
    const eq = text.indexOf('=');
    const name = eq < 0 ? undefined : text.slice(0, eq);
    if (name !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name))
        throw new errors_NixPlanError('usage', `host '${text}': the name before '=' must be a plain word (letters, digits, . _ -)`);
    return { name, target: parseSshTarget(eq < 0 ? text : text.slice(eq + 1)) };
}

;// CONCATENATED MODULE: ./src/cli/deploy-command.ts
// `nix-plan deploy`: its options, how `--host` values are read, and the final table per host.







/** Options about the plan, meaningless for --rollback (which sends none): refused with it. */
const PLAN_OPTIONS = [
    'build-on',
    'trusted-key',
    'no-check-sigs',
    'max-age',
    'allow-downgrade',
    'allow-any-root',
    'compress',
];
const RESULT_WORDS = {
    pushed: 'plan imported',
    switched: 'switched',
    booted: 'set for next boot',
    tested: 'tested',
    'dry-activated': 'dry-activated',
    'rolled-back': 'FAILED, rolled back',
    reverted: 'rollback FAILED, undone',
    failed: 'FAILED',
    'needs-attention': 'FAILED, NEEDS ATTENTION',
    skipped: 'skipped',
};
/**
 * A failed host's result, saying where it was left: a deploy rolled back to generation N (or
 * undone with no generation before it), a rollback that failed and was undone (back on the
 * generation it went back from), or one that needs attention — so that a failed rollback never
 * reads as a host rolled back.
 */
function failureWords(h) {
    const g = h.generation;
    if (h.outcome === 'rolled-back')
        return g === undefined ? 'FAILED, undone (no generation before it)' : `FAILED, rolled back to ${g}`;
    if (h.outcome === 'reverted')
        return g === undefined ? 'rollback FAILED, undone' : `rollback FAILED, ${g} re-activated`;
    if (h.outcome === 'needs-attention' && h.rollback !== undefined)
        return 'rollback FAILED, NEEDS ATTENTION';
    return RESULT_WORDS[h.outcome];
}
/**
 * What a rollback did, in the table: `switch` and `boot` went back to generation N; `test` and
 * `dry-activate` only ran its script and left the profile where it was.
 */
function rollbackWords(action, to) {
    if (action === 'switch')
        return `rolled back to ${to}, switched`;
    if (action === 'boot')
        return `rolled back to ${to} for next boot`;
    if (action === 'test')
        return `generation ${to} tested, profile unchanged`;
    return `generation ${to} dry-activated, nothing changed`;
}
/** The final table: host, generation, result, time (a rollback's results say so). */
function formatDeploy(result) {
    const rows = result.hosts.map((h) => [
        h.name,
        h.generation === undefined
            ? '-'
            : `${h.generation}${h.previousGeneration !== undefined && h.previousGeneration !== h.generation ? ` (was ${h.previousGeneration})` : ''}`,
        h.rollback !== undefined && h.error === undefined && h.outcome !== 'skipped'
            ? rollbackWords(h.action, h.rollback.to)
            : failureWords(h),
        h.outcome === 'skipped' ? '-' : `${h.seconds.toFixed(1)} s`,
    ]);
    const header = ['HOST', 'GENERATION', 'RESULT', 'TIME'];
    const widths = header.map((t, i) => Math.max(t.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells) => cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd();
    return [
        line(header),
        ...rows.map(line),
        '',
        ...result.hosts.flatMap((h) => changesLines(h.name, h.changes)),
    ].join('\n');
}
/** The error that makes the exit code: the first failed host's (in --host order). */
function failure(result) {
    const failed = result.hosts.filter((h) => h.error !== undefined);
    const [first] = failed;
    if (first?.error === undefined)
        return undefined;
    if (result.hosts.length === 1)
        return new errors_NixPlanError(first.error.code, first.error.message);
    const skipped = result.hosts.filter((h) => h.outcome === 'skipped').length;
    return new errors_NixPlanError(first.error.code, `${failed.length} of ${result.hosts.length} hosts failed${skipped > 0 ? `, ${skipped} skipped` : ''}` +
        ` (first: ${first.name}: ${first.error.message})`);
}
/** The `deploy` command. */
function deployCommand() {
    return command_define({
        name: 'deploy',
        summary: 'send a NixOS system plan to hosts over SSH, build it there and switch safely',
        usage: [
            'nix-plan deploy BUNDLE --host [USER@]HOST[:PORT] [--action ACTION] [--trusted-key KEY…] [OPTIONS]',
            'nix-plan deploy BUNDLE --host NAME=[USER@]HOST … [--jobs N] [--keep-going]',
            'nix-plan deploy --rollback --host [USER@]HOST[:PORT] … [--action ACTION] [OPTIONS]',
        ],
        description: 'Verifies the plan here and, for each host: asks it for its store dir, Nix, profile and last-applied record, ' +
            'streams the plan with the system ssh into a private temp file there (read by Nix only once the plan is ' +
            'verified here and its sha256 checked there; a plan signed by a trusted key, or without build outputs, is sent ' +
            'while it is verified, any other only after), ' +
            'imports it with nix-store --import, builds the system, sets the profile and runs switch-to-configuration ' +
            '(under systemd-run when the host runs systemd). A failed activation re-activates the previous generation. A ' +
            'switch must be confirmed over a new connection within --confirm-timeout seconds, or a watchdog on the host ' +
            'restores the previous generation. The host needs only Nix, sh and an SSH server. With several hosts, each ' +
            "--host NAME=… gets the plan's root named NAME (its attribute, nixosConfigurations.NAME, or nixos-system-NAME-…). " +
            'Exit codes: 12 SSH or a host command failed, 13 activation failed and the previous generation was restored, ' +
            '14 activation failed and could not be undone. --rollback (no BUNDLE) takes each host back one generation of ' +
            'its profile instead, as nixos-rebuild --rollback does, with the same safety: what changes is shown first, ' +
            'a failed activation re-activates the generation rolled back from, an unconfirmed switch is undone by the ' +
            'watchdog; a host with no generation before the current one is refused (exit 2).',
        options: {
            host: {
                type: 'string',
                multiple: true,
                value: '[NAME=][USER@]HOST[:PORT]',
                help: 'a host to deploy to (required); NAME picks the root for it',
            },
            action: {
                type: 'string',
                value: 'ACTION',
                choices: DEPLOY_ACTIONS,
                help: 'switch (default), boot, test, dry-activate, or push (send and import the plan only)',
            },
            profile: {
                type: 'string',
                value: 'PATH',
                help: `the system profile on the host (default ${DEFAULT_PROFILE}; relative: from the login's home, refused with --use-sudo)`,
            },
            'confirm-timeout': {
                type: 'string',
                value: 'SECONDS',
                help: `revert a switch not confirmed within this time (default ${DEFAULT_CONFIRM_TIMEOUT}; 0: no confirmation)`,
            },
            'activation-timeout': ACTIVATION_TIMEOUT,
            'build-on': {
                type: 'string',
                value: 'WHERE',
                choices: BUILD_ON,
                help: 'host (default: build there) or local (build here, copy outputs)',
            },
            'trusted-key': TRUSTED_KEY,
            'no-check-sigs': NO_CHECK_SIGS,
            'max-age': MAX_AGE,
            'allow-downgrade': ALLOW_DOWNGRADE,
            'allow-any-root': { type: 'boolean', help: 'deploy a root that is not a nixos-system-… derivation' },
            jobs: { type: 'string', value: 'N', help: 'hosts deployed at once (default: all, at most 8)' },
            'keep-going': { type: 'boolean', help: 'go on with the other hosts after one fails' },
            rollback: {
                type: 'boolean',
                help: "no BUNDLE: go back to each host's previous generation and activate it",
            },
            'ssh-option': {
                type: 'string',
                multiple: true,
                dashValue: true,
                value: 'ARG',
                help: 'one raw argument for ssh, e.g. --ssh-option=-F./ssh_config or --ssh-option=-oPort=2222',
            },
            'use-sudo': {
                type: 'boolean',
                help: 'log in as a user allowed `sudo -n` and run the host side with it',
            },
            compress: {
                type: 'string',
                value: 'HOW',
                choices: TRANSFER_ENCODINGS,
                help: 'auto (default: zstd when the host has it), zstd, or none (the raw export stream)',
            },
        },
        examples: [
            'nix-plan deploy host.nixplan --host root@10.0.0.5 --trusted-key ci.pub',
            'nix-plan deploy fleet.nixplan --host web=root@10.0.0.5 --host db=root@10.0.0.6 --trusted-key ci.pub --keep-going',
            'nix-plan deploy host.nixplan --host deploy@host --use-sudo --action boot --ssh-option=-F./ssh_config',
            'nix-plan deploy --rollback --host root@10.0.0.5',
        ],
        async run(args, ctx) {
            noRest(args, 'deploy');
            const hosts = list(args, 'host').map(parseHostOption);
            if (hosts.length === 0)
                throw usageError('missing --host [USER@]HOST');
            const quiet = flag(args, 'quiet');
            const hostOutputs = (name) => prefixedOutput(hosts.length > 1 ? `[${name}] ` : '', ctx.deps.log, (c) => {
                if (!quiet)
                    ctx.io.stderr.write(c);
            });
            if (flag(args, 'rollback')) {
                if (args.positionals.length > 0)
                    throw usageError(`--rollback takes no BUNDLE: it goes back to a generation the host has (got ${args.positionals.join(' ')})`);
                for (const name of PLAN_OPTIONS)
                    if (args.values[name] !== undefined)
                        throw usageError(`--${name} is about a plan; --rollback sends none`);
                const action = oneOf(str(args, 'action'), 'action', ACTIVATION_ACTIONS);
                const rolled = await ctx.useCases.deployRollback({
                    hosts,
                    action,
                    profile: str(args, 'profile'),
                    confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
                    activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
                    jobs: integer(str(args, 'jobs'), 'jobs', 1, 1024),
                    keepGoing: flag(args, 'keep-going'),
                    sshOptions: list(args, 'ssh-option'),
                    useSudo: flag(args, 'use-sudo'),
                }, { ...ctx.deps, hostOutputs });
                print(ctx, args, rolled, () => formatDeploy(rolled));
                const error = failure(rolled);
                if (error !== undefined)
                    throw error;
                return;
            }
            const trustedKeys = await readKeys(list(args, 'trusted-key'));
            const result = await ctx.useCases.deployPlan(onePositional(args, 'BUNDLE'), {
                hosts,
                action: oneOf(str(args, 'action'), 'action', DEPLOY_ACTIONS),
                profile: str(args, 'profile'),
                confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
                activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
                buildOn: oneOf(str(args, 'build-on'), 'build-on', BUILD_ON),
                trustedKeys,
                noCheckSigs: flag(args, 'no-check-sigs'),
                allowAnyRoot: flag(args, 'allow-any-root'),
                jobs: integer(str(args, 'jobs'), 'jobs', 1, 1024),
                keepGoing: flag(args, 'keep-going'),
                sshOptions: list(args, 'ssh-option'),
                useSudo: flag(args, 'use-sudo'),
                ...maxAge(args),
                allowDowngrade: flag(args, 'allow-downgrade'),
                compress: oneOf(str(args, 'compress'), 'compress', TRANSFER_ENCODINGS),
            }, {
                ...ctx.deps,
                realise: (bundle, name) => ctx.useCases.realisePlan(bundle, { trustedKeys, noCheckSigs: flag(args, 'no-check-sigs'), name }, ctx.deps),
                hostOutputs,
            });
            print(ctx, args, result, () => formatDeploy(result));
            const error = failure(result);
            if (error !== undefined)
                throw error;
        },
    });
}

;// CONCATENATED MODULE: ./src/cli/exit-codes.ts
// The `nix-plan` exit codes: one per error code, so scripts can tell a bad bundle from a failed build.

/** Every exit code `nix-plan` uses (documented in docs/cli.md, "Exit codes"). */
const ExitCode = {
    /** Success. */
    ok: 0,
    /** A bug in nix-plan, or an error it did not expect (please report it). */
    internal: 1,
    /** Bad command line: unknown command or option, missing or invalid argument. */
    usage: 2,
    /** The bundle is corrupt, truncated, inconsistent, or not a plan bundle (includes malformed bytes). */
    bundle: 3,
    /** A signature is missing, made by an untrusted key, or does not verify. */
    signature: 4,
    /** Wrong realm: the bundle is for another store dir, or the target store dir is invalid. */
    realm: 5,
    /** The closure cannot be relocated faithfully. */
    relocate: 6,
    /** The closure is not closed, has a cycle, or is out of order. */
    closure: 7,
    /** A size or count limit was exceeded. */
    limit: 8,
    /** A Nix command failed (evaluation, import, build). */
    nix: 9,
    /** An artifact could not be uploaded or downloaded. */
    transport: 10,
    /** The plan is older than the one last applied to the same profile or out-link, or than --max-age. */
    stale: 11,
    /** The host: an SSH connection or a command on the host failed. */
    host: 12,
    /** Activation failed; the previous generation was restored (re-activated). */
    activation: 13,
    /** Activation failed and could not be undone: the host needs attention. */
    attention: 14,
    /** Interrupted by SIGHUP (after cleaning up and rolling back what it had added). */
    hangup: 129,
    /** Interrupted by SIGINT (Ctrl-C), after cleaning up and rolling back. */
    interrupted: 130,
    /** Terminated by SIGTERM, after cleaning up and rolling back. */
    terminated: 143,
};
/** What each exit code means, in the order `nix-plan help exit-codes` and the man page list them. */
const EXIT_CODE_MEANINGS = [
    [ExitCode.ok, 'success'],
    [ExitCode.internal, 'internal error (a bug: please report it)'],
    [ExitCode.usage, 'bad command line'],
    [ExitCode.bundle, 'the bundle is corrupt, truncated, inconsistent or not a bundle'],
    [ExitCode.signature, 'a signature is missing, untrusted or invalid, or a path is unproven'],
    [ExitCode.realm, 'the bundle is for another store dir, or the store dir is invalid'],
    [ExitCode.relocate, 'the closure cannot be relocated faithfully'],
    [ExitCode.closure, 'the closure is not closed, has a cycle, or is out of order'],
    [ExitCode.limit, 'a size or count limit was exceeded'],
    [ExitCode.nix, 'a Nix command failed (evaluation, import, build)'],
    [ExitCode.transport, 'an artifact could not be uploaded or downloaded'],
    [ExitCode.stale, 'the plan is older than the one last applied there, or than --max-age'],
    [ExitCode.host, 'the host: an SSH connection or a command on the host failed'],
    [ExitCode.activation, 'activation failed; the previous generation was restored'],
    [ExitCode.attention, 'activation failed and could not be undone: the host needs attention'],
    [ExitCode.hangup, 'interrupted by SIGHUP, after cleaning up (what it had imported is removed again)'],
    [ExitCode.interrupted, 'interrupted by SIGINT (Ctrl-C), after cleaning up the same way'],
    [ExitCode.terminated, 'terminated by SIGTERM, after cleaning up the same way'],
];
const BY_ERROR = {
    usage: ExitCode.usage,
    malformed: ExitCode.bundle,
    bundle: ExitCode.bundle,
    signature: ExitCode.signature,
    realm: ExitCode.realm,
    relocate: ExitCode.relocate,
    closure: ExitCode.closure,
    limit: ExitCode.limit,
    nix: ExitCode.nix,
    transport: ExitCode.transport,
    stale: ExitCode.stale,
    interrupted: ExitCode.interrupted,
    host: ExitCode.host,
    activation: ExitCode.activation,
    attention: ExitCode.attention,
    internal: ExitCode.internal,
};
/** The exit code for anything thrown: its NixPlanError code, else internal; 128 + n for signal n. */
function exitCodeFor(error) {
    if (error instanceof InterruptedError)
        return (128 + STOP_SIGNAL_NUMBERS[error.signal]);
    if (error instanceof errors_NixPlanError)
        return BY_ERROR[error.code] ?? ExitCode.internal;
    return ExitCode.internal;
}

;// CONCATENATED MODULE: ./src/cli/manpage.ts
/**
 * Text for roff: backslashes and hyphens escaped, characters beyond ASCII as `\[uXXXX]` (troff
 * reads its input as Latin-1), no line starting with a control character.
 */
function roff(text) {
    return text
        .replace(/\\/g, '\\e')
        .replace(/-/g, '\\-')
        .replace(/[^\t\n -~]/gu, (c) => `\\[u${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}]`)
        .split('\n')
        .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
        .join('\n');
}
function optionTag(name, spec) {
    const spellings = [
        ...(spec.short === undefined ? [] : [`\\fB\\-${spec.short}\\fR`]),
        `\\fB\\-\\-${roff(name)}\\fR`,
    ];
    const value = spec.type === 'boolean' ? '' : ` \\fI${roff(spec.value ?? 'VALUE')}\\fR`;
    return `${spellings.join(', ')}${value}`;
}
function optionList(options, skip = {}) {
    const lines = [];
    for (const [name, spec] of Object.entries(options)) {
        if (name in skip)
            continue;
        const choices = spec.choices === undefined ? '' : ` One of: ${spec.choices.join(', ')}.`;
        lines.push('.TP', optionTag(name, spec), roff(`${spec.help}${spec.multiple === true ? ' (repeatable)' : ''}.${choices}`));
    }
    return lines;
}
/** The page, in roff with the man macros (`man -l`, `groff -man`). */
function manPage(source) {
    const lines = [
        `.TH NIX\\-PLAN 1 "" "nix\\-plan ${roff(source.version)}" "User Commands"`,
        '.SH NAME',
        'nix\\-plan \\- evaluate a Nix configuration once, carry its build plan as one file, realise or relocate it anywhere',
        '.SH SYNOPSIS',
        '.B nix\\-plan',
        '.I COMMAND',
        '[\\fIOPTIONS\\fR] [\\fB\\-\\-\\fR \\fIARGS\\fR]',
        '.br',
        '.B nix\\-plan',
        '.B help',
        '[\\fICOMMAND\\fR | \\fBexit\\-codes\\fR]',
        '.SH DESCRIPTION',
        roff('nix-plan evaluates a Nix configuration once and writes its build plan (the closure of .drv files and ' +
            'their sources) as one small compressed file, a plan bundle. Elsewhere the bundle is verified, imported and ' +
            'realised without evaluating, or relocated into another store dir (a realm).'),
        '.PP',
        roff('Results go to standard output, messages and progress to standard error.'),
        '.SH COMMANDS',
    ];
    for (const c of source.commands) {
        lines.push(`.SS ${roff(c.name)}`, roff(`${c.summary[0]?.toUpperCase() ?? ''}${c.summary.slice(1)}.`), '.PP', '.nf');
        lines.push(...c.usage.map(roff), '.fi', '.PP', roff(c.description));
        const own = optionList(c.options, source.common);
        if (own.length > 0)
            lines.push('.PP', 'Options:', '.RS', ...own, '.RE');
        if (c.examples.length > 0)
            lines.push('.PP', 'Examples:', '.RS', '.nf', ...c.examples.map(roff), '.fi', '.RE');
    }
    lines.push('.SH "COMMON OPTIONS"', roff('Every command takes:'), ...optionList(source.common));
    lines.push('.SH "EXIT STATUS"');
    for (const [code, meaning] of source.exitCodes)
        lines.push('.TP', `.B ${code}`, roff(meaning));
    lines.push('.SH ENVIRONMENT', roff("Nix is found on PATH and reads its usual environment (NIX_REMOTE, NIX_STORE_DIR, NIX_CONF_DIR, …); nix-plan's " +
        'commands run against whatever store that selects.'), '.SH "SEE ALSO"', '\\fBnix\\fR(1), \\fBnix\\-store\\fR(1), \\fBnix\\-instantiate\\fR(1)', '');
    return lines.join('\n');
}

;// CONCATENATED MODULE: ./src/cli/diff-command.ts


/** A bundle file, or a .drv store path (anything ending in `.drv`). */
function locate(path) {
    return { kind: path.endsWith('.drv') ? 'drv' : 'bundle', path };
}
/** The spec of `nix-plan diff`. */
function diffCommand(kit) {
    return {
        name: 'diff',
        summary: 'show what changes between two plans, package by package, before anything is built',
        usage: [
            'nix-plan diff OLD NEW [--drv NAME] [--trusted-key KEY…] [--no-check-sigs] [--json]',
            'nix-plan diff --profile PATH NEW [--drv NAME] [--store URI]',
        ],
        description: 'Compares two plans (bundles, or .drv paths in the store; OLD may be the current generation of a profile ' +
            'with --profile, when its deriver is still in the store) the way nvd compares closures: version changes, ' +
            'packages added and removed, and packages rebuilt at the same version because an input changed, with counts, ' +
            'per root and in total, plus the plan facts that differ (store dir, provenance, signatures). A plan for ' +
            "another store dir is relocated into NEW's first, so a promoted plan compares with its original as the same " +
            'plan in another realm. --drv NAME explains why the derivations of that package (or derivation name, or ' +
            '.drv path) differ: outputs, builder, arguments, environment, inputs, following changed inputs. Each bundle ' +
            'is verified as it is read, as verify does (no store is asked: a path it refers to but does not hold is ' +
            'refused), and refused with the same exit code: its build outputs need a signature by a --trusted-key, or ' +
            '--no-check-sigs, which shows them as unproven. A signature is not required of a plan without build ' +
            'outputs: who signed each side is shown. Nothing is imported or built.',
        options: {
            profile: {
                type: 'string',
                value: 'PATH',
                help: "compare the profile's current generation (through its deriver) as OLD",
            },
            drv: {
                type: 'string',
                value: 'NAME',
                help: 'explain why the derivations NAME differ (a package or derivation name, or a .drv path)',
            },
            store: kit.store,
            'trusted-key': kit.trustedKey,
            'no-check-sigs': kit.noCheckSigs,
        },
        examples: [
            'nix-plan diff main.nixplan pr.nixplan',
            'nix-plan diff --profile /nix/var/nix/profiles/system host.nixplan',
            'nix-plan diff old.nixplan new.nixplan --drv openssl',
            'nix-plan diff alpha.nixplan beta.nixplan --json | jq .identical',
        ],
        async run(args, ctx) {
            kit.noRest(args, 'diff');
            const profile = str(args, 'profile');
            let old;
            let now;
            if (profile !== undefined) {
                if (profile === '')
                    throw usageError('--profile needs a path');
                old = { kind: 'profile', path: profile };
                now = locate(onePositional(args, 'NEW (a bundle or a .drv path)'));
            }
            else {
                if (args.positionals.length !== 2)
                    throw usageError(`expected OLD and NEW (bundles or .drv paths), got ${args.positionals.length} argument${args.positionals.length === 1 ? '' : 's'}`);
                old = locate(args.positionals[0] ?? '');
                now = locate(args.positionals[1] ?? '');
            }
            const trustedKeys = await readKeys(list(args, 'trusted-key'));
            const noCheckSigs = flag(args, 'no-check-sigs');
            if (noCheckSigs && trustedKeys.length === 0)
                ctx.deps.log.warn('--no-check-sigs: showing plans whose build outputs no trusted key vouches for');
            const result = await ctx.useCases.diffPlanSources(old, now, {
                store: str(args, 'store'),
                trustedKeys,
                noCheckSigs,
                drv: str(args, 'drv'),
            }, ctx.deps);
            kit.print(ctx, args, result, () => formatDiff(result));
        },
    };
}

;// CONCATENATED MODULE: ./src/cli/plan-commands.ts
// The subcommands that make and read plans: export, inspect, diff, verify and keygen.








/** `nix-plan export`. */
const exportCommand = command_define({
    name: 'export',
    operand: { value: 'INSTALLABLE', complete: 'none' },
    summary: 'evaluate once and write a plan bundle',
    usage: [
        'nix-plan export [INSTALLABLE…] [-f FILE [-A ATTR…]] [--drv PATH…] -o OUT.nixplan [OPTIONS] [-- EVAL ARGS]',
    ],
    description: 'Evaluates flake installables (with nix), a file (with nix-instantiate) and/or takes existing .drv paths, ' +
        'collects their closure from the store and writes it as one zstd-compressed plan bundle. ' +
        'Arguments after -- (or in --nix-arg) go to the evaluator (e.g. -- --arg system \'"x86_64-linux"\').',
    options: {
        file: { type: 'string', short: 'f', value: 'FILE', help: 'a Nix file to instantiate' },
        attr: { type: 'string', short: 'A', multiple: true, value: 'ATTR', help: 'an attribute of FILE' },
        drv: { type: 'string', multiple: true, value: 'PATH', help: 'a .drv path already in the store' },
        output: { type: 'string', short: 'o', value: 'OUT', help: 'where to write the bundle (required)' },
        include: {
            type: 'string',
            value: 'KIND',
            choices: INCLUDE_KINDS,
            help: 'drvs (default: .drv files and sources), sources (plus fetched fixed outputs), outputs (plus the built outputs)',
        },
        level: {
            type: 'string',
            value: 'N',
            help: `zstd level ${LEVELS} (default: a tuned level 10 in a 64 MiB window, see docs/bundle-format.md)`,
        },
        'sign-key': {
            type: 'string',
            multiple: true,
            value: 'FILE',
            help: 'sign the manifest with this secret key file',
        },
        'relocate-to': {
            type: 'string',
            value: 'DIR',
            help: 'relocate the plan to store dir DIR before writing',
        },
        store: STORE,
        'nix-arg': NIX_ARG,
        'log-format': LOG_FORMAT,
    },
    examples: [
        'nix-plan export -f default.nix -A hello -o hello.nixplan',
        'nix-plan export .#packages.x86_64-linux.default -o app.nixplan --sign-key ci.sec',
        'nix-plan export --drv /nix/store/…-hello.drv -o hello.nixplan',
    ],
    async run(args, ctx) {
        const keys = await signingKeys(args);
        const result = await ctx.useCases.exportPlan({
            installables: [...args.positionals],
            file: str(args, 'file'),
            attributes: list(args, 'attr'),
            drvPaths: list(args, 'drv'),
            evalArgs: nixArgs(args),
            output: required(args, 'output', 'OUT (where to write the bundle)'),
            include: oneOf(str(args, 'include'), 'include', INCLUDE_KINDS),
            level: integer(str(args, 'level'), 'level', MIN_LEVEL, MAX_LEVEL),
            signingKeys: keys,
            relocateTo: str(args, 'relocate-to'),
            store: str(args, 'store'),
            provenance: { env: ctx.io.env },
        }, ctx.deps);
        print(ctx, args, result, () => formatExport(result));
    },
});
/** `nix-plan inspect`. */
const inspectCommand = command_define({
    name: 'inspect',
    operand: BUNDLE,
    summary: 'show what a bundle holds (touches no store)',
    usage: ['nix-plan inspect BUNDLE [--contents [--trusted-key KEY…] [--no-check-sigs]] [--json]'],
    description: 'Reads the manifest and prints the roots, counts and sizes. Checks the manifest, not the stream: use verify for that. ' +
        'With --contents it also reads the whole bundle, verified as verify does (build outputs need a --trusted-key ' +
        'signature, or --no-check-sigs), and lists the packages of each root: name, version, outputs, system.',
    options: {
        contents: { type: 'boolean', help: "list each root's packages (reads and verifies the whole bundle)" },
        'trusted-key': TRUSTED_KEY,
        'no-check-sigs': NO_CHECK_SIGS,
    },
    examples: [
        'nix-plan inspect hello.nixplan',
        'nix-plan inspect hello.nixplan --json | jq .manifest.roots',
        'nix-plan inspect hello.nixplan --contents',
    ],
    async run(args, ctx) {
        noRest(args, 'inspect');
        const bundle = onePositional(args, 'BUNDLE');
        const result = await ctx.useCases.inspectPlan(bundle);
        if (!flag(args, 'contents')) {
            print(ctx, args, result, () => formatInspect(result));
            return;
        }
        const contents = await ctx.useCases.planContents(bundle, { trustedKeys: await readKeys(list(args, 'trusted-key')), noCheckSigs: flag(args, 'no-check-sigs') }, ctx.deps);
        print(ctx, args, { ...result, contents }, () => formatInspect(result) + formatContents(contents));
    },
});
/** `nix-plan diff`. */
const diffPlansCommand = command_define(diffCommand({ print: print, noRest: noRest, store: STORE, trustedKey: TRUSTED_KEY, noCheckSigs: NO_CHECK_SIGS }));
/** `nix-plan verify`. */
const verifyCommand = command_define({
    name: 'verify',
    operand: BUNDLE,
    summary: 'check a bundle completely: framing, checksums, every NAR and path, signatures',
    usage: [
        'nix-plan verify BUNDLE [--trusted-key KEY…] [--no-check-sigs] [--store-dir DIR] [--max-age DURATION]',
    ],
    description: 'Streams the whole bundle and validates everything import would, without touching a store. ' +
        'With --trusted-key the manifest must carry a valid signature by one of the keys; without, only the ' +
        "bundle's integrity is checked, not who made it.",
    options: {
        'trusted-key': TRUSTED_KEY,
        'no-check-sigs': NO_CHECK_SIGS,
        'store-dir': { type: 'string', value: 'DIR', help: 'require the bundle to be for this store dir' },
        'max-age': MAX_AGE,
    },
    examples: ['nix-plan verify hello.nixplan --trusted-key ci.pub'],
    async run(args, ctx) {
        noRest(args, 'verify');
        const age = maxAge(args);
        // Not a store dir at all (relative, a trailing slash): said so, not "relocate it there".
        const storeDir = str(args, 'store-dir');
        if (storeDir !== undefined)
            assertStoreDir(storeDir);
        const report = await ctx.useCases.verifyPlan(onePositional(args, 'BUNDLE'), {
            trustedKeys: await readKeys(list(args, 'trusted-key')),
            storeDir,
            noCheckSigs: flag(args, 'no-check-sigs'),
        }, ctx.deps);
        // verify changes nothing, so the age is checked on the manifest it verified.
        const stale = age.maxAgeMs === undefined ? undefined : freshnessProblem(report.manifest, age, new Date());
        if (stale !== undefined)
            throw stale;
        print(ctx, args, report, () => formatVerify(report));
    },
});
/** `nix-plan keygen`. */
const keygenCommand = command_define({
    name: 'keygen',
    operand: { value: 'NAME', complete: 'none' },
    summary: 'create a signing key pair (the format of nix-store --generate-binary-cache-key)',
    usage: ['nix-plan keygen NAME --secret FILE --public FILE'],
    description: 'Writes NAME:base64 secret and public key files. The secret file is created with mode 0600 and never overwritten.',
    options: {
        secret: { type: 'string', value: 'FILE', help: 'where to write the secret key (required)' },
        public: { type: 'string', value: 'FILE', help: 'where to write the public key (required)' },
    },
    examples: ['nix-plan keygen ci-1 --secret ci.sec --public ci.pub'],
    async run(args, ctx) {
        noRest(args, 'keygen');
        const name = onePositional(args, 'NAME');
        const secretFile = required(args, 'secret', 'FILE');
        const publicFile = required(args, 'public', 'FILE');
        const pair = ctx.useCases.keygen(name);
        await ctx.useCases.writeKeyPair(pair, { secretFile, publicFile });
        print(ctx, args, { name, publicKey: pair.publicKey, secretFile, publicFile }, () => `${pair.publicKey}\n`);
    },
});

;// CONCATENATED MODULE: ./src/app/deploy/rollback.ts
// Going back one generation on a host (`deploy --rollback` over SSH, `apply --rollback` here), as
// `nix-env --profile P --rollback` and `nixos-rebuild --rollback` do, with the safety of a deploy:
// the host program finds the generation before the current one, the comparison of the two systems
// is shown before anything changes, and the switch runs under the same supervisor — a failed
// switch re-activates the generation rolled back from, an unconfirmed one is undone by the watchdog.









/** What the host's probe says a rollback of `profile` would do; refuses (usage, exit 2) when nothing can. */
function rollbackStep(probe, label, profile) {
    const fromGeneration = generationNumber(probe.generation);
    if (probe.generation === undefined || fromGeneration === undefined)
        throw new errors_NixPlanError('usage', `${label}: profile '${profile}' has no generation, so there is nothing to roll back; nothing was changed`);
    const to = generationNumber(probe.previousGeneration);
    if (to === undefined)
        throw new errors_NixPlanError('usage', `${label}: profile '${profile}' has no generation before the current one (${fromGeneration}) to roll back to; nothing was changed`);
    // nix-env makes generations as links to store paths: anything else (a link to a link, to a
    // directory elsewhere) is not a generation to activate, and what it shows could change under it.
    if (probe.previousSystem === undefined || !isStorePath(probe.previousSystem, probe.storeDir))
        throw new errors_NixPlanError('host', `${label}: generation ${to} of '${profile}' (${(0,external_node_path_namespaceObject.basename)(probe.previousGeneration ?? '')}) is not a link to a system in ${probe.storeDir}; nothing was changed`);
    return {
        from: probe.generation,
        fromGeneration,
        fromSystem: probe.system,
        to,
        toSystem: probe.previousSystem,
    };
}
/**
 * The last-applied record after a rollback (`bytes`, as the probe read it): the plan it names
 * stays the host's downgrade floor — a rollback goes to a generation the host already had, it
 * does not make older plans acceptable again — and `rolledBack` says the host no longer runs that
 * plan's system: which generation it went back to, from which, and when. Readers that do not know
 * the member ignore it; the next deploy writes a record without it. Only the record's own members
 * are written back (a host's record is not trusted to hold nothing else: a member nested 100,000
 * deep would stop the rollback at JSON.stringify). '' (leave the record alone) when there is none,
 * or when it is not a record (said so: a deploy refuses it until repaired).
 */
function rolledBackRecord(bytes, step, at, where, log) {
    if (bytes === undefined)
        return '';
    let record;
    try {
        record = parseLastApplied(Buffer.from(bytes).toString('utf8'), `${where}${RECORD_SUFFIX}`);
    }
    catch {
        log.warn(`${where}${RECORD_SUFFIX} is not a last-applied record: left as it is`);
        return '';
    }
    return JSON.stringify({
        ...record,
        rolledBack: {
            generation: step.to,
            system: step.toSystem,
            from: step.fromGeneration,
            at: rfc3339(at),
        },
    });
}
/**
 * Rolls one host back, its probe already read: refuses when there is no generation before the
 * current one, says what changes (the current system → the previous one, package by package),
 * then activates the previous generation safely — `switch`/`boot` switch the profile to it
 * (`nix-env --switch-generation`, no new generation), `test`/`dry-activate` leave the profile
 * alone. The record is updated (see rolledBackRecord) only once a switch is confirmed or a boot set.
 */
async function rollBackHost(program, probe, request, io) {
    const step = rollbackStep(probe, request.label, request.profile);
    io.onStep?.(step);
    const lastActivation = lastActivationNotes(probe, request.label, request.profile, true);
    for (const note of lastActivation)
        io.log.warn(note);
    io.log.info(`${request.label}: rolling back from generation ${step.fromGeneration} to ${step.to} (${request.action})`);
    const changes = await readChanges(program, { profile: request.profile, out: step.toSystem, storeDir: probe.storeDir }, {
        log: io.log,
        label: io.labelled === true ? request.label : undefined,
        output: io.output,
        signal: io.signal,
    });
    io.onChanges?.(changes);
    const persistent = request.action === 'switch' || request.action === 'boot';
    const now = (io.now ?? (() => new Date()))();
    const activation = await activateSafely(program, {
        profile: request.profile,
        action: request.action,
        out: step.toSystem,
        confirmTimeout: request.confirmTimeout,
        activationTimeout: request.activationTimeout,
        recordSeen: recordSeen(probe.record),
        record: persistent ? rolledBackRecord(probe.record, step, now, request.profile, io.log) : '',
        rollback: { to: step.to, from: step.from },
    }, { log: io.log, output: io.output, clock: io.clock });
    return { step, changes, activation, lastActivation };
}

;// CONCATENATED MODULE: ./src/app/apply.ts
// applyPlan: put a realised NixOS system plan into effect, as nixos-rebuild does: set the system
// profile's generation, then run the system's `bin/switch-to-configuration`; or roll back one.













/** Every ApplyAction, for parsing and help texts. */
const APPLY_ACTIONS = ['switch', 'boot', 'test', 'dry-activate'];
/** Actions that make the system the profile's new generation (`test` and `dry-activate` do not). */
const SETS_PROFILE = new Set(['switch', 'boot']);
/** The one system output of a realised plan (a NixOS plan has one root with output `out`). */
function systemOutput(realised) {
    const outs = Object.values(realised.outPaths).flatMap((o) => Object.entries(o));
    const out = outs.filter(([name]) => name === 'out');
    if (out.length !== 1 || out[0] === undefined)
        throw new errors_NixPlanError('usage', `apply needs a plan of one NixOS system (one root with an 'out' output); this one has ${outs.length} outputs: ` +
            outs.map(([n, p]) => `${n}=${p}`).join(', '));
    return out[0][1];
}
/**
 * Applies a NixOS system plan like `nixos-rebuild ACTION`, safely: checks from the manifest that
 * the plan is one NixOS system (before building anything), realises that root (through
 * `deps.realise`), then activates it with the host program on this machine — the same code a
 * deploy runs on its hosts: profile set for `switch`/`boot`, switch-to-configuration under
 * systemd-run when the machine runs systemd with its output streamed, the previous generation
 * re-activated when it fails, and a switch confirmed within `confirmTimeout` or reverted by the
 * watchdog (so a switch that kills this process, e.g. a self-hosted runner's own service, undoes
 * itself). With `rollback` no bundle is needed: the generation before the current one, with the
 * same safety (deploy/rollback.ts) — `switch`/`boot` switch the profile to it and run its script,
 * `test`/`dry-activate` run its script and leave the profile alone.
 */
async function applyPlan(bundlePath, options, deps) {
    const action = options.action ?? 'switch';
    if (!APPLY_ACTIONS.includes(action))
        throw new ArgumentError(`unknown action '${String(action)}'; use one of ${APPLY_ACTIONS.join(', ')}`);
    if (options.rollback === true)
        return apply_rollBack(options, action, deps);
    if (bundlePath === undefined)
        throw new ArgumentError('apply needs a plan bundle (or --rollback)');
    const profile = (0,external_node_path_namespaceObject.resolve)(options.profile);
    const record = await readRecord(`${profile}${RECORD_SUFFIX}`);
    const now = deps.now?.() ?? new Date();
    // Everything about the plan is read from one private copy: the manifest whose age is checked,
    // what is verified, imported and built, and the digest the record names, even if the file named
    // is rewritten in place or replaced meanwhile. Messages name what the user gave, not a copy.
    const label = options.label ?? bundlePath;
    const copy = await privateBundle(bundlePath, { prefix: 'nix-plan-apply-', name: label });
    let manifest;
    let root;
    let system;
    let realised;
    let digest;
    try {
        // The plan's shape, from its manifest, before anything is built.
        ({ manifest } = await readBundleHead(copy.source));
        const [first] = assignRoots(manifest.roots, [{}]);
        if (first === undefined)
            throw new errors_NixPlanError('internal', 'no root');
        root = first;
        system = systemOfRoot(root, options.allowAnyRoot === true);
        // An older plan than the one last applied here is refused before anything is imported.
        checkFreshness(manifest, record, options, profile, now, deps.log);
        realised = await deps.realise(copy.path, [root.drvPath], label);
        digest = copy.digest;
    }
    finally {
        await copy.dispose();
    }
    // Never activate a system some of whose paths nothing proved.
    const unproven = realised.import?.unproven ?? 0;
    if (unproven > 0)
        throw new errors_NixPlanError('signature', `the plan holds ${unproven} build output${unproven === 1 ? '' : 's'} no trusted key signed: apply activates only a proven system (give --trusted-key)`);
    const built = systemOutput(realised);
    if (built !== system ||
        (realised.manifest !== undefined && realised.manifest.checksum !== manifest.checksum))
        throw new errors_NixPlanError('internal', `the plan built from '${label}' is not the plan read`);
    const program = localProgram(options, deps);
    // How the last activation here ended, when not as planned, before this one changes anything.
    const lastActivation = lastActivationNotes(await program.probe(profile, deps.signal), profile, profile, false);
    for (const note of lastActivation)
        deps.log.warn(note);
    // What activating it changes — the profile's current generation → this system, package by
    // package — said before anything is activated, whatever the action, as deploy says it per host.
    const changes = await readChanges(program, { profile, out: system, storeDir: manifest.storeDir }, { log: deps.log, output: deps.output ?? deps.nixLog });
    deps.log.info(`activating ${system} (${action})`);
    const outcome = await activateSafely(program, {
        profile,
        action,
        out: system,
        confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
        activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
        recordSeen: recordSeen(record),
        record: SETS_PROFILE.has(action)
            ? JSON.stringify(recordFor(realised.manifest ?? manifest, digest, [root.drvPath], now))
            : '',
    }, { log: deps.log, output: deps.output ?? deps.nixLog, clock: deps.clock });
    return { ...applied(action, system, profile, outcome, changes, deps.log), lastActivation };
}
/** This machine, as the host program sees a deploy's host (its store: `options.store`). */
function localProgram(options, deps) {
    return new HostProgram(new LocalHost(deps.runner, options.store === undefined ? {} : { NIX_REMOTE: options.store }));
}
/** The result of an activation that went through (warning when the record could not be written). */
function applied(action, systemPath, profile, outcome, changes, log) {
    if (outcome.report.recordFailed)
        log.warn(`could not write ${profile}${RECORD_SUFFIX}`);
    return {
        action,
        systemPath,
        profile,
        profileChanged: SETS_PROFILE.has(action),
        generation: outcome.generation,
        previousGeneration: outcome.previousGeneration,
        confirmed: outcome.confirmed,
        changes,
        output: '',
    };
}
/** The record beside the profile, if there is one. */
async function readRecord(path) {
    try {
        return new Uint8Array(await (0,external_node_fs_promises_namespaceObject.readFile)(path));
    }
    catch (e) {
        if (e.code === 'ENOENT')
            return undefined;
        throw new errors_NixPlanError('usage', `cannot read ${path}: ${e.message}`);
    }
}
/**
 * `--rollback`: one generation back, as nixos-rebuild --rollback does, through the same host
 * program and safety as a deploy's rollback: what changes is said first, a failed switch
 * re-activates the generation rolled back from, an unconfirmed one is undone by the watchdog.
 */
async function apply_rollBack(options, action, deps) {
    const profile = (0,external_node_path_namespaceObject.resolve)(options.profile);
    const program = localProgram(options, deps);
    const probe = await program.probe(profile, deps.signal);
    const { step, changes, activation, lastActivation } = await rollBackHost(program, probe, {
        label: profile,
        profile,
        action,
        confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
        activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
    }, {
        log: deps.log,
        output: deps.output ?? deps.nixLog,
        clock: deps.clock,
        now: deps.now,
        signal: deps.signal,
    });
    return {
        ...applied(action, step.toSystem, profile, activation, changes, deps.log),
        rollback: { from: step.fromGeneration, to: step.to },
        lastActivation,
    };
}

;// CONCATENATED MODULE: ./src/cli/format-dry-run.ts

/** `realise --dry-run`: the paths to import, the derivations to build, the paths to fetch. */
function formatDryRun(r) {
    const lines = [
        `import: ${plural(r.import.missing, 'path')} to add, ${r.import.alreadyValid} already in the store`,
    ];
    if (r.build.length === 0)
        lines.push('build: nothing');
    else {
        lines.push(`build: ${plural(r.build.length, 'derivation')}`);
        for (const d of r.build)
            lines.push(`  ${d}${r.unknownOutputs.includes(d) ? ' (output paths known only after building)' : ''}`);
    }
    if (r.fetch.length === 0)
        lines.push('fetch: nothing');
    else {
        lines.push(`fetch: ${plural(r.fetch.length, 'path')}${r.fetchSize === undefined ? '' : ` (${r.fetchSize})`}`);
        for (const p of r.fetch)
            lines.push(`  ${p}`);
    }
    if (r.present > 0)
        lines.push(`already built: ${plural(r.present, 'output')}`);
    lines.push('dry run: the bundle was verified and the store and its substituters were asked; nothing was imported, built or fetched', '');
    return lines.join('\n');
}

;// CONCATENATED MODULE: ./src/cli/stdin-bundle.ts
// `-` for a bundle: standard input copied into a private temp file (0600 in a 0700 directory)
// first, so the use case reads a file nobody else can change, and removed afterwards. Whoever
// sends the plan chose every byte of it, as with a file: its head is read and checked before
// anything is written, then the room for the length its manifest declares, and exactly that many
// bytes are copied; a stream that is shorter, or goes on past them, is refused.






/** How messages name a plan read from standard input. */
const STDIN = 'standard input';
/**
 * Runs `use` with `bundle`, or with a private copy of standard input when `bundle` is `-`; `label`
 * is how messages name the plan: what the user gave (`standard input`), never the copy's path.
 */
async function withBundleFile(bundle, stdin, use) {
    if (bundle !== '-')
        return use(bundle, bundle);
    if (stdin === undefined)
        throw new errors_NixPlanError('usage', 'no standard input to read the plan from (BUNDLE -)');
    const dir = await (0,external_node_fs_promises_namespaceObject.mkdtemp)((0,external_node_path_namespaceObject.join)((0,external_node_os_namespaceObject.tmpdir)(), 'nix-plan-stdin-'));
    try {
        const file = (0,external_node_path_namespaceObject.join)(dir, 'plan.nixplan');
        await copyBundle(new StreamReader(stdin), file);
        return await use(file, STDIN);
    }
    finally {
        await (0,external_node_fs_promises_namespaceObject.rm)(dir, { recursive: true, force: true });
    }
}
/** Copies the bundle `input` holds into the new file `file` (see the module comment). */
async function copyBundle(input, file) {
    try {
        const header = await input.take(SKIPPABLE_HEADER_SIZE);
        const { size } = parseSkippableHeader(header, DEFAULT_MAX_MANIFEST_SIZE, `plan bundle '${STDIN}'`);
        const frame = await input.take(size);
        if (frame.length < size)
            throw new errors_NixPlanError('bundle', `plan bundle '${STDIN}' is truncated: its manifest frame needs ${SKIPPABLE_HEADER_SIZE + size} bytes, the stream had ${SKIPPABLE_HEADER_SIZE + frame.length}`);
        const head = Buffer.concat([header, frame]);
        const length = head.length + parseManifest(frame).stream.compressedSize;
        // The head as a bundle of the length it declares: the same checks a bundle file's head gets.
        await readCheckedHead({ ...memorySource(head, STDIN), size: length });
        await requireRoom((0,external_node_os_namespaceObject.tmpdir)(), length, `the bundle on ${STDIN} is ${length} bytes`, TMPDIR_ADVICE);
        const out = await (0,external_node_fs_promises_namespaceObject.open)(file, 'wx', 0o600);
        try {
            await out.write(head);
            for (let at = head.length; at < length;) {
                const chunk = await input.next(length - at);
                if (chunk === undefined)
                    throw new errors_NixPlanError('bundle', `plan bundle '${STDIN}' is truncated: the manifest says ${length} bytes, the stream had ${at}`);
                await out.write(chunk);
                at += chunk.length;
            }
        }
        finally {
            await out.close();
        }
        if ((await input.next(1)) !== undefined)
            throw new errors_NixPlanError('bundle', `plan bundle '${STDIN}' is followed by extra bytes: the manifest says ${length} bytes, the stream goes on`);
    }
    catch (e) {
        await input.stop();
        if (e instanceof errors_NixPlanError)
            throw e;
        throw new errors_NixPlanError('usage', `cannot read the plan from ${STDIN}: ${e.message}`);
    }
}
/** Reads a stream a few bytes at a time, as the copy asks for them. */
class StreamReader {
    chunks;
    rest = Buffer.alloc(0);
    ended = false;
    constructor(stream) {
        this.chunks = stream[Symbol.asyncIterator]();
    }
    /** The next bytes, at most `max` of them; undefined at the end of the stream. */
    async next(max) {
        while (this.rest.length === 0) {
            if (this.ended)
                return undefined;
            const r = await this.chunks.next();
            if (r.done === true) {
                this.ended = true;
                return undefined;
            }
            this.rest = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
        }
        const out = this.rest.subarray(0, max);
        this.rest = this.rest.subarray(out.length);
        return out;
    }
    /** Exactly `n` bytes, or fewer when the stream ends first. */
    async take(n) {
        const parts = [];
        for (let got = 0; got < n;) {
            const chunk = await this.next(n - got);
            if (chunk === undefined)
                break;
            parts.push(chunk);
            got += chunk.length;
        }
        return Buffer.concat(parts);
    }
    /** Stops reading (the rest of the stream is not wanted). */
    async stop() {
        if (!this.ended)
            await this.chunks.return?.().catch(() => undefined);
        this.ended = true;
    }
}

;// CONCATENATED MODULE: ./src/cli/store-commands.ts
// The subcommands that change a store or a system: import, realise, relocate and apply.









/**
 * The `--roots` selectors, split on commas. No `--roots` means every root; a `--roots` that names
 * nothing (`--roots ""`, `--roots "$UNSET"`, `--roots ,`) is refused rather than read as every root.
 */
function rootSelectors(args) {
    const selectors = list(args, 'roots', true);
    if (selectors.length === 0 && args.values['roots'] !== undefined)
        throw usageError('--roots names no root (an empty value); give an index, label or .drv path, or leave --roots out to build every root');
    return selectors;
}
/** `nix-plan import`. */
const importCommand = command_define({
    name: 'import',
    operand: BUNDLE,
    summary: 'verify a bundle, then add its paths to a store',
    usage: [
        'nix-plan import BUNDLE [--store URI] [--trusted-key KEY…] [--method auto|import|copy] [--max-age DURATION]',
    ],
    description: 'Verifies the whole bundle first (nothing reaches the store before), then imports it: with nix-store --import ' +
        'when the user may (root on a local store, or a trusted user), otherwise through a temporary binary cache ' +
        'that Nix accepts from untrusted users for content-addressed paths. Paths already valid are skipped.',
    options: {
        store: STORE,
        'trusted-key': TRUSTED_KEY,
        method: METHOD,
        'sign-key': CACHE_KEY,
        'no-check-sigs': NO_CHECK_SIGS,
        'max-age': MAX_AGE,
        'max-size': MAX_SIZE,
    },
    examples: ['nix-plan import hello.nixplan', 'nix-plan import hello.nixplan --method copy --store daemon'],
    async run(args, ctx) {
        noRest(args, 'import');
        const trustedKeys = await readKeys(list(args, 'trusted-key'));
        const options = {
            store: str(args, 'store'),
            trustedKeys,
            noCheckSigs: flag(args, 'no-check-sigs'),
            method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
            maxSize: byteSize(str(args, 'max-size'), 'max-size'),
        };
        const deps = await importDeps(args, ctx, trustedKeys);
        const result = await ctx.useCases.withFreshness(onePositional(args, 'BUNDLE'), { ...maxAge(args), storeDir: storeDirAsker(deps, options.store) }, ctx.deps.log, (bundle, name) => ctx.useCases.importPlan(bundle, { ...options, name }, deps));
        const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
        print(ctx, args, shown, () => formatImport(shown));
    },
});
/** `nix-plan realise`. */
const realiseCommand = command_define({
    name: 'realise',
    operand: BUNDLE,
    summary: 'import a bundle and build its roots',
    usage: [
        'nix-plan realise BUNDLE [--out-link PREFIX] [--store URI] [--roots SEL…] [--trusted-key KEY…] [--max-age DURATION] [--dry-run] [-- NIX ARGS]',
    ],
    description: "Imports the bundle (as import does), then builds every output of the selected roots by .drv path with the host's " +
        'substituters. --roots selects roots by index (0-based), attribute, installable, .drv path or the label inspect ' +
        'shows (comma-separated or repeated), e.g. one shard of a build matrix. Arguments after -- (or in --nix-arg) go to nix-store --realise ' +
        '(e.g. -- --max-jobs 4). Prints the output paths, one per line. With --out-link, the plan is remembered in ' +
        'PREFIX.nix-plan.json and an older plan for the same link is refused (exit 11) unless --allow-downgrade.',
    options: {
        'out-link': {
            type: 'string',
            value: 'PREFIX',
            help: 'make GC roots (symlinks to the outputs) named as Nix names them: PREFIX, PREFIX-doc, PREFIX-2, …',
        },
        store: STORE,
        roots: { type: 'string', multiple: true, value: 'SEL', help: 'build only these roots' },
        'trusted-key': TRUSTED_KEY,
        method: METHOD,
        'sign-key': CACHE_KEY,
        'nix-arg': NIX_ARG,
        'log-format': LOG_FORMAT,
        'dry-run': {
            type: 'boolean',
            help: 'verify, then list what would be imported, built and fetched; change nothing',
        },
        'no-check-sigs': NO_CHECK_SIGS,
        'max-age': MAX_AGE,
        'allow-downgrade': ALLOW_DOWNGRADE,
        'max-size': MAX_SIZE,
    },
    examples: [
        'nix-plan realise hello.nixplan --out-link result',
        'nix-plan realise plan.nixplan --roots 0,2 -- --keep-going',
        'nix-plan realise plan.nixplan --dry-run',
    ],
    async run(args, ctx) {
        if (flag(args, 'dry-run')) {
            const plan = await ctx.useCases.dryRunRealise(onePositional(args, 'BUNDLE'), {
                store: str(args, 'store'),
                roots: rootSelectors(args),
                trustedKeys: await readKeys(list(args, 'trusted-key')),
            }, ctx.deps);
            print(ctx, args, plan, () => formatDryRun(plan));
            return;
        }
        const trustedKeys = await readKeys(list(args, 'trusted-key'));
        const outLink = str(args, 'out-link');
        const options = {
            store: str(args, 'store'),
            outLink,
            roots: rootSelectors(args),
            trustedKeys,
            noCheckSigs: flag(args, 'no-check-sigs'),
            method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
            maxSize: byteSize(str(args, 'max-size'), 'max-size'),
            nixArgs: nixArgs(args),
            logFormat: str(args, 'log-format'),
        };
        const deps = await importDeps(args, ctx, trustedKeys);
        // With --out-link, the link's last-applied record: an older plan is refused.
        const result = await ctx.useCases.withFreshness(onePositional(args, 'BUNDLE'), {
            ...maxAge(args),
            target: outLink,
            allowDowngrade: flag(args, 'allow-downgrade'),
            storeDir: storeDirAsker(deps, options.store),
        }, ctx.deps.log, (bundle, name) => ctx.useCases.realisePlan(bundle, { ...options, name }, deps));
        const shown = withTrust(result, trustedKeys, flag(args, 'no-check-sigs'));
        // stdout holds the output paths only (scripts read them); who made the plan goes to stderr.
        ctx.deps.log.info(`plan ${trustStatus(shown.manifest, shown.trust)}`);
        print(ctx, args, shown, () => formatRealise(shown));
    },
});
/** `nix-plan relocate`. */
const relocateCommand = command_define({
    name: 'relocate',
    operand: BUNDLE,
    summary: 'rewrite a bundle for another store dir (realm)',
    usage: [
        'nix-plan relocate BUNDLE --to DIR -o OUT.nixplan [--sign-key FILE (--trusted-key KEY… | --no-check-sigs)] [--level N] [--max-age DURATION]',
    ],
    description: 'Rewrites every derivation, text file and source of the plan from its store dir to DIR, so the result is what ' +
        'evaluating natively with that store dir would give, and writes a new bundle. Refuses what it cannot relocate faithfully. ' +
        "The new manifest keeps when and where the plan was made, and records what it was promoted from (the input's " +
        'digest, store dir and the trusted keys that signed it). --sign-key needs --trusted-key (or --no-check-sigs): ' +
        'a key signs only what was verified.',
    options: {
        to: { type: 'string', value: 'DIR', help: 'the target store dir (required)' },
        output: {
            type: 'string',
            short: 'o',
            value: 'OUT',
            help: 'where to write the relocated bundle (required)',
        },
        'sign-key': {
            type: 'string',
            multiple: true,
            value: 'FILE',
            help: 'sign the new manifest with this secret key file',
        },
        'trusted-key': TRUSTED_KEY,
        'no-check-sigs': NO_CHECK_SIGS,
        'max-age': MAX_AGE,
        level: {
            type: 'string',
            value: 'N',
            help: `zstd level ${LEVELS} (default 3 without long-distance matching: promotion favours speed)`,
        },
    },
    examples: [
        'nix-plan relocate hello.nixplan --to /beta/store -o hello-beta.nixplan',
        'nix-plan relocate hello.nixplan --to /beta/store -o hello-beta.nixplan --trusted-key ci.pub --sign-key beta.sec',
    ],
    async run(args, ctx) {
        noRest(args, 'relocate');
        const keys = await signingKeys(args);
        const trustedKeys = await readKeys(list(args, 'trusted-key'));
        const noCheckSigs = flag(args, 'no-check-sigs');
        assertSignable(keys.length > 0, trustedKeys.length > 0, noCheckSigs);
        const options = {
            to: required(args, 'to', 'DIR (the target store dir)'),
            output: required(args, 'output', 'OUT (where to write the bundle)'),
            signingKeys: keys,
            trustedKeys,
            noCheckSigs,
            level: integer(str(args, 'level'), 'level', MIN_LEVEL, MAX_LEVEL),
        };
        if (noCheckSigs && trustedKeys.length === 0)
            ctx.deps.log.warn('--no-check-sigs: relocating a plan no trusted key vouches for (the promotion records it)');
        const result = await ctx.useCases.withFreshness(onePositional(args, 'BUNDLE'), maxAge(args), ctx.deps.log, (bundle, name) => ctx.useCases.relocatePlan(bundle, { ...options, name }, ctx.deps));
        print(ctx, args, result, () => formatRelocate(result));
    },
});
/** `nix-plan apply`. */
const applyCommand = command_define({
    name: 'apply',
    operand: BUNDLE,
    summary: 'realise a NixOS system plan and switch a profile to it, safely',
    usage: [
        'nix-plan apply BUNDLE|- --profile PATH [--action switch|boot|test|dry-activate] [--trusted-key KEY…] [--max-age DURATION]',
        'nix-plan apply --rollback --profile PATH [--action …]',
    ],
    description: 'Checks that the bundle is one NixOS system, realises its root, sets it as the next generation of PATH and runs ' +
        'its bin/switch-to-configuration ACTION (under systemd-run when the machine runs systemd), showing its output. ' +
        'A failed activation re-activates the previous generation (exit 13; 14 if that fails too). A switch or test is ' +
        'confirmed within --confirm-timeout seconds or a watchdog reverts it, so a switch that kills this process undoes ' +
        'itself. The plan applied is remembered in PATH.nix-plan.json; a plan older than it is refused (exit 11) unless ' +
        '--allow-downgrade. BUNDLE - reads the plan from standard input. --rollback goes back to the previous ' +
        'generation instead, saying first what changes, with the same safety (exit 2 when there is none).',
    options: {
        profile: {
            type: 'string',
            value: 'PATH',
            help: 'the system profile (e.g. /nix/var/nix/profiles/system) (required)',
        },
        action: {
            type: 'string',
            value: 'ACTION',
            choices: APPLY_ACTIONS,
            help: 'switch (default), boot, test or dry-activate',
        },
        'confirm-timeout': {
            type: 'string',
            value: 'SECONDS',
            help: 'revert a switch not confirmed within this time (default 30; 0: no confirmation)',
        },
        'activation-timeout': ACTIVATION_TIMEOUT,
        'allow-any-root': { type: 'boolean', help: 'apply a root that is not a nixos-system-… derivation' },
        rollback: { type: 'boolean', help: 'go back one generation' },
        store: STORE,
        'trusted-key': TRUSTED_KEY,
        method: METHOD,
        'sign-key': CACHE_KEY,
        'nix-arg': NIX_ARG,
        'log-format': LOG_FORMAT,
        'no-check-sigs': NO_CHECK_SIGS,
        'max-age': MAX_AGE,
        'allow-downgrade': ALLOW_DOWNGRADE,
        'max-size': MAX_SIZE,
    },
    examples: [
        'nix-plan apply host.nixplan --profile /nix/var/nix/profiles/system --trusted-key ci.pub --max-age 7d',
        'curl -fsS https://example.org/host.nixplan | nix-plan apply - --profile /nix/var/nix/profiles/system --trusted-key ci.pub',
    ],
    async run(args, ctx) {
        noRest(args, 'apply');
        const rollback = flag(args, 'rollback');
        const bundle = rollback && args.positionals.length === 0 ? undefined : onePositional(args, 'BUNDLE');
        const store = str(args, 'store');
        const trustedKeys = await readKeys(list(args, 'trusted-key'));
        // Never noCheckSigs here: apply does not activate a system whose build outputs nothing proves.
        const realiseOptions = {
            store,
            trustedKeys,
            method: oneOf(str(args, 'method'), 'method', IMPORT_METHODS),
            maxSize: byteSize(str(args, 'max-size'), 'max-size'),
            nixArgs: nixArgs(args),
            logFormat: str(args, 'log-format'),
        };
        const deps = await importDeps(args, ctx, trustedKeys);
        const result = await withBundleFile(bundle, ctx.io.stdin, (file, label) => ctx.useCases.applyPlan(file, {
            label,
            profile: required(args, 'profile', 'PATH'),
            action: oneOf(str(args, 'action'), 'action', APPLY_ACTIONS),
            rollback,
            store,
            confirmTimeout: integer(str(args, 'confirm-timeout'), 'confirm-timeout', 0, 86400),
            activationTimeout: integer(str(args, 'activation-timeout'), 'activation-timeout', 0, 86400),
            allowAnyRoot: flag(args, 'allow-any-root'),
            // The profile's last-applied record (on the activating side): an older plan is refused.
            ...maxAge(args),
            allowDowngrade: flag(args, 'allow-downgrade'),
        }, {
            ...deps,
            realise: (b, roots, name) => ctx.useCases.realisePlan(b, { ...realiseOptions, roots, name }, deps),
        }));
        print(ctx, args, result, () => formatApply(result));
    },
});

;// CONCATENATED MODULE: ./src/cli/commands.ts
// The \`nix-plan\` subcommands, in the order help lists them: plan-commands.ts (export, inspect,
// diff, verify, keygen), store-commands.ts (import, realise, relocate, apply) and
// deploy-command.ts, built from the parts in command.ts; and the two that describe the command table itself (completions, man).









/** `nix-plan completions`. */
const completionsCommand = command_define({
    name: 'completions',
    operand: { value: 'SHELL', complete: SHELLS },
    summary: 'print a shell completion script (bash, zsh or fish)',
    usage: ['nix-plan completions bash|zsh|fish'],
    description: 'Prints a completion script for SHELL, generated from the commands and options --help lists. Install it ' +
        'where the shell looks: bash ~/.local/share/bash-completion/completions/nix-plan, zsh a file _nix-plan in ' +
        'a directory of $fpath, fish ~/.config/fish/completions/nix-plan.fish (the Nix package installs all three).',
    options: {},
    examples: [
        'nix-plan completions bash > ~/.local/share/bash-completion/completions/nix-plan',
        'source <(nix-plan completions bash)',
        'nix-plan completions fish > ~/.config/fish/completions/nix-plan.fish',
    ],
    run(args, ctx) {
        noRest(args, 'completions');
        const given = onePositional(args, 'SHELL (bash, zsh or fish)');
        const shell = SHELLS.find((s) => s === given);
        if (shell === undefined)
            throw usageError(`SHELL must be one of ${SHELLS.join(', ')} (got '${given}')`);
        ctx.io.stdout.write(completionScript(shell, COMMANDS));
        return Promise.resolve();
    },
});
/** `nix-plan man`. */
const manCommand = command_define({
    name: 'man',
    summary: 'print the nix-plan(1) man page (roff)',
    usage: ['nix-plan man'],
    description: 'Prints the manual page, generated from the same command table as --help and the exit codes: ' +
        'read it with `nix-plan man | man -l -`, or install it as man1/nix-plan.1 (the Nix package does).',
    options: {},
    examples: ['nix-plan man | man -l -', 'nix-plan man > ~/.local/share/man/man1/nix-plan.1'],
    run(args, ctx) {
        noRest(args, 'man');
        if (args.positionals.length > 0)
            throw usageError('man takes no arguments');
        ctx.io.stdout.write(manPage({ version: VERSION, commands: COMMANDS, common: COMMON, exitCodes: EXIT_CODE_MEANINGS }));
        return Promise.resolve();
    },
});
/** Every subcommand, in the order help lists them. */
const COMMANDS = [
    exportCommand,
    inspectCommand,
    diffPlansCommand,
    verifyCommand,
    importCommand,
    realiseCommand,
    relocateCommand,
    keygenCommand,
    applyCommand,
    deployCommand(),
    completionsCommand,
    manCommand,
];

;// CONCATENATED MODULE: ./src/nix/missing.ts
// What Nix would fetch for store paths that are not valid, asked without changing anything:
// `nix-store --realise --dry-run PATH…` on output paths (no .drv needed), read from Nix's
// printMissing listing ("these N paths will be fetched (…):", "don't know how to build …").


/** Reads printMissing's listing: the paths under each header. */
function parseMissing(text) {
    const fetch = [];
    const unknown = [];
    let fetchSize;
    let section;
    for (const line of text.split('\n')) {
        if (/will be fetched/.test(line)) {
            section = fetch;
            fetchSize = /\(([^)]*)\):\s*$/.exec(line)?.[1];
        }
        else if (/don't know how to build/.test(line))
            section = unknown;
        else if (/will be built/.test(line))
            section = undefined;
        else if (/^ {2}\//.test(line))
            section?.push(line.trim());
        else if (line.trim() !== '')
            section = undefined;
    }
    return { fetch, unknown, ...(fetchSize === undefined ? {} : { fetchSize }) };
}
/** `nix-store --realise --dry-run` on `paths` (output paths, not .drv files): read-only. */
async function queryMissing(store, paths) {
    const fetch = [];
    const unknown = [];
    const batches = batchPaths(paths);
    let fetchSize;
    for (const batch of batches) {
        const args = [...store.storeArgs(), '--realise', '--dry-run', ...batch];
        // The listing grows with the paths: collect it whole (the runner keeps only a tail).
        const chunks = [];
        const result = await store.runner.run('nix-store', args, {
            allowFailure: true,
            onStderr: (c) => chunks.push(Buffer.from(c)),
        });
        const text = Buffer.concat(chunks).toString('utf8');
        NixCommandError.check('nix-store', args, { code: result.code, stderr: text });
        const m = parseMissing(text);
        fetch.push(...m.fetch);
        unknown.push(...m.unknown);
        if (batches.length === 1)
            fetchSize = m.fetchSize;
    }
    return { fetch, unknown, ...(fetchSize === undefined ? {} : { fetchSize }) };
}

;// CONCATENATED MODULE: ./src/nix/build-log.ts
// Nix's machine-readable log (`--log-format internal-json`, the same on Nix 2.8 and 2.34): what
// was built and what was substituted, when each finished, and the human log Nix would have
// printed, written on from it. Each stderr line is `@nix {json}`: `msg` (level 0 error … 3 info),
// `start`/`stop` of activities (105 a build, fields [drvPath, …]; 108 a substitution, fields
// [storePath, substituter]), `result` (101 a build log line, 104 a post-build hook line).
/** Activity types Nix numbers in `start` events (libutil/logging.hh). */
const ACT_BUILD = 105;
const ACT_SUBSTITUTE = 108;
/** Result types (libutil/logging.hh). */
const RES_BUILD_LOG_LINE = 101;
const RES_POST_BUILD_LOG_LINE = 104;
/** Nix's default verbosity (lvlInfo): messages and activities above it are not shown. */
const LVL_INFO = 3;
const PREFIX = '@nix ';
/** Lines of the human log an error carries when it was not shown. */
const TAIL_LINES = 40;
/** Nix colours its messages in this log even when stderr is not a terminal; its plain log does not. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
/** Reads an internal-json log as it streams by; see the module comment. */
class NixLogReader {
    sink;
    now;
    events = { built: [], substituted: [], finished: new Map(), errors: [] };
    activities = new Map(); // activity id → the path it is about
    pending = '';
    started;
    /** The last lines of the human log, kept for an error when nothing was shown. */
    lastLines = [];
    /**
     * @param write where the human log goes (what Nix would print at its default verbosity)
     * @param now a millisecond clock (finish times are relative to when the reader was made)
     */
    constructor(sink, now = () => performance.now()) {
        this.sink = sink;
        this.now = now;
        this.started = now();
    }
    /** The human log's last lines (at most TAIL_LINES), as text. */
    tail() {
        return this.lastLines.join('');
    }
    write(text) {
        this.lastLines.push(text);
        if (this.lastLines.length > TAIL_LINES)
            this.lastLines.shift();
        this.sink?.(text);
    }
    /** Takes a chunk of stderr. */
    push(chunk) {
        this.pending += Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
        let nl = this.pending.indexOf('\n');
        while (nl >= 0) {
            this.line(this.pending.slice(0, nl));
            this.pending = this.pending.slice(nl + 1);
            nl = this.pending.indexOf('\n');
        }
    }
    /** Takes what is left after the last newline. */
    end() {
        if (this.pending !== '')
            this.line(this.pending);
        this.pending = '';
    }
    line(line) {
        if (!line.startsWith(PREFIX)) {
            this.write(`${line}\n`); // not Nix's JSON (a wrapper's message): passed on as it is
            return;
        }
        let e;
        try {
            e = JSON.parse(line.slice(PREFIX.length));
        }
        catch {
            this.write(`${line}\n`);
            return;
        }
        const level = typeof e.level === 'number' ? e.level : LVL_INFO;
        const id = typeof e.id === 'number' || typeof e.id === 'string' ? String(e.id) : '';
        const fields = Array.isArray(e.fields) ? e.fields : [];
        switch (e.action) {
            case 'msg': {
                if (typeof e.msg !== 'string')
                    return;
                const msg = e.msg.replace(ANSI, '');
                if (level === 0)
                    this.events.errors.push(msg);
                if (level <= LVL_INFO)
                    this.write(`${msg}\n`);
                return;
            }
            case 'start': {
                const subject = typeof fields[0] === 'string' ? fields[0] : undefined;
                if (e.type === ACT_BUILD && subject !== undefined) {
                    this.events.built.push(subject);
                    this.activities.set(id, subject);
                }
                else if (e.type === ACT_SUBSTITUTE && subject !== undefined) {
                    this.events.substituted.push(subject);
                    this.activities.set(id, subject);
                }
                if (typeof e.text === 'string' && e.text !== '' && level <= LVL_INFO)
                    this.write(`${e.text.replace(ANSI, '')}\n`);
                return;
            }
            case 'stop': {
                const subject = this.activities.get(id);
                if (subject !== undefined) {
                    this.events.finished.set(subject, Math.max(0, this.now() - this.started));
                    this.activities.delete(id);
                }
                return;
            }
            case 'result':
                if ((e.type === RES_BUILD_LOG_LINE || e.type === RES_POST_BUILD_LOG_LINE) &&
                    typeof fields[0] === 'string')
                    this.write(`${fields[0]}\n`);
                return;
            default:
                return;
        }
    }
}
/** The arguments that make Nix log this way (unless the caller chose a log format itself). */
function internalJsonArgs(extraArgs = []) {
    return extraArgs.includes('--log-format')
        ? [...extraArgs]
        : ['--log-format', 'internal-json', ...extraArgs];
}

;// CONCATENATED MODULE: ./src/app/build-report.ts



/**
 * Builds `roots` with one `nix-store --realise` (unless `nixArgs` choose a log format, Nix logs
 * as internal-json, and the log is read as it comes); returns what Nix printed and the report.
 */
async function realiseWithReport(store, roots, options) {
    const now = options.now ?? (() => performance.now());
    const timed = options.userLogFormat !== true && !(options.nixArgs ?? []).includes('--log-format');
    const nixLog = options.nixLog;
    const reader = new NixLogReader(nixLog === undefined ? undefined : (text) => nixLog(Buffer.from(text)), now);
    const started = now();
    let printed;
    try {
        printed = await store.realise(roots.map((r) => r.drvPath), {
            addRoot: options.addRoot,
            extraArgs: timed ? internalJsonArgs(options.nixArgs) : options.nixArgs,
            onLog: timed ? (chunk) => reader.push(chunk) : nixLog,
        });
    }
    catch (e) {
        reader.end();
        // The failure's stderr is JSON: the log was shown as text as it came (then the error points
        // at it), or, when nothing was shown, the error carries the tail of that text instead.
        if (timed && e instanceof NixCommandError)
            throw new NixCommandError(e.command, e.args, e.exitCode, reader.tail(), {
                what: 'nix-store --realise',
                shown: nixLog !== undefined,
            });
        throw e;
    }
    reader.end();
    const totalMs = Math.max(0, now() - started);
    const { built, substituted, finished } = reader.events;
    const builtSet = new Set(built);
    const substitutedSet = new Set(substituted);
    const report = {
        built,
        substituted,
        totalMs,
        roots: roots.map((r) => {
            const label = rootLabel(r);
            if (!timed)
                return { drvPath: r.drvPath, label, how: 'unknown', readyMs: undefined };
            if (builtSet.has(r.drvPath))
                return { drvPath: r.drvPath, label, how: 'built', readyMs: finished.get(r.drvPath) };
            const outs = Object.values(r.outputs).filter((p) => substitutedSet.has(p));
            if (outs.length > 0)
                return {
                    drvPath: r.drvPath,
                    label,
                    how: 'substituted',
                    readyMs: Math.max(...outs.map((p) => finished.get(p) ?? 0)),
                };
            return { drvPath: r.drvPath, label, how: 'valid', readyMs: 0 };
        }),
    };
    return { printed, report };
}

;// CONCATENATED MODULE: ./src/app/realise.ts
// realisePlan: import a bundle, then build the chosen roots' outputs by .drv path with the host's
// substituters, optionally keeping GC roots; no evaluation anywhere.












/**
 * The roots `selectors` name: each an index (0-based), a label (installable, attribute or
 * derivation name) or a .drv path. No selectors: every root. Unknown ones are usage errors, naming
 * the option as `names` spells it (default: `--roots`).
 */
function selectRoots(roots, selectors = [], names) {
    if (selectors.length === 0)
        return [...roots];
    const chosen = new Set();
    for (const sel of selectors) {
        const matches = /^\d+$/.test(sel)
            ? roots.filter((_, i) => i === Number(sel))
            : roots.filter((r) => r.drvPath === sel || r.installable === sel || r.attribute === sel || rootLabel(r) === sel);
        if (matches.length === 0)
            throw new errors_NixPlanError('usage', `${optionName(names, 'roots')} '${sel}' matches no root of the bundle; its roots are: ${roots.map((r, i) => `${i}=${rootLabel(r)}`).join(', ')}`);
        for (const m of matches)
            chosen.add(m);
    }
    return roots.filter((r) => chosen.has(r));
}
/**
 * Imports the bundle and builds the selected roots, checking that what Nix built for each root is
 * the output its .drv (verified with the plan) names. If building fails or is interrupted, what
 * this run added (the imported paths and the outputs it built) is removed again.
 */
async function realisePlan(bundlePath, options, deps) {
    // A selector that names no root is a usage error found in the manifest: refused before any of
    // the plan reaches the store, not after importing it.
    const checkManifest = (m) => {
        options.checkManifest?.(m);
        selectRoots(m.roots, options.roots, options.optionNames);
    };
    const imported = await importPlan(bundlePath, { ...options, checkManifest }, deps);
    const { manifest } = imported;
    const roots = selectRoots(manifest.roots, options.roots, options.optionNames);
    const store = new NixStore(deps.runner, { store: options.store });
    const drvs = roots.map((r) => r.drvPath);
    // What building can add: the outputs of the plan's derivations that are not valid yet.
    const declared = imported.declaredOutputs();
    const unbuilt = declared.length === 0 ? new Set() : await store.invalidPaths(declared);
    try {
        return await build(store, imported, roots, drvs, options, deps);
    }
    catch (e) {
        deps.log.info('the build failed: removing what this run added…');
        const cleanup = new NixStore(cleanupRunner(deps.runner), { store: options.store });
        cleanup.setStoreDir(manifest.storeDir);
        throw withRollbackNote(e, await rollBack(cleanup, [...imported.addedPaths(), ...unbuilt]));
    }
}
async function build(store, imported, roots, drvs, options, deps) {
    const { manifest } = imported;
    deps.log.info(`building ${drvs.length} root${drvs.length === 1 ? '' : 's'}…`);
    const { printed, report } = await realiseWithReport(store, roots, {
        addRoot: options.outLink === undefined ? undefined : (0,external_node_path_namespaceObject.resolve)(options.outLink),
        nixArgs: options.nixArgs,
        userLogFormat: options.logFormat !== undefined,
        nixLog: deps.nixLog,
    });
    // With --add-root Nix prints the links it made; the outputs are their targets.
    const links = options.outLink === undefined ? [] : printed;
    const built = options.outLink === undefined ? printed : await Promise.all(printed.map((l) => (0,external_node_fs_promises_namespaceObject.readlink)(l)));
    const builtSet = new Set(built);
    const builtByName = new Map(built.map((p) => [nameOf(p), p]));
    const outPaths = {};
    for (const r of roots) {
        const outs = Object.entries(r.outputs).map(([name, path]) => {
            // The root's .drv (verified with the plan) names this output: Nix must have built exactly it.
            if (path !== '' && !builtSet.has(path))
                throw new errors_NixPlanError('nix', `Nix built ${[...builtSet].filter((p) => nameOf(p) === nameOf(path)).join(', ') || 'nothing'} for output '${name}' of '${r.drvPath}', not '${path}' that its .drv names`);
            return [name, path !== '' ? path : (builtByName.get(outputPathName(drvName(r.drvPath), name)) ?? '')];
        });
        outPaths[r.drvPath] = Object.fromEntries(outs);
    }
    const all = Object.values(outPaths).flatMap((o) => Object.values(o));
    const missing = all.filter((p) => p === '');
    if (missing.length > 0)
        throw new errors_NixPlanError('nix', 'Nix did not report every output path of the roots');
    const invalid = await store.invalidPaths(all);
    if (invalid.size > 0)
        throw new errors_NixPlanError('nix', `after building, '${[...invalid][0]}' is not valid`);
    const { manifest: _m, ...importSummary } = imported;
    return { manifest, outPaths, import: importSummary, links, trust: imported.trust, build: report };
}

;// CONCATENATED MODULE: ./src/app/dry-run.ts
// realise --dry-run: what realising a bundle would import, build and fetch, answered without
// changing the store. A dry run cannot import, and without the .drv files in the store Nix
// cannot plan a build itself (`nix-store --realise --dry-run` needs them). What can be answered
// without them is answered here:
// - the bundle is verified completely, as import would (nothing reaches the store);
// - the store is asked which of the bundle's paths it has (the rest import would add);
// - the .drv files in the bundle give every output path the selected roots need; the store is
//   asked which of those it has, and Nix (`nix-store --realise --dry-run` on the missing output
//   paths, which needs no .drv) which its substituters have;
// - Nix's own rule (queryMissing) then decides: a derivation whose needed outputs are all there or
//   fetchable is not built, and only a derivation that is built needs its inputs.
// An output whose path is known only after building (floating content-addressed) counts as built.







function factsOf(bytes) {
    const drv = parseDerivation(bytes);
    return {
        outputs: new Map(drv.outputs.map((o) => [o.name, o.path])),
        inputDrvs: drv.inputDrvs.map((i) => ({ path: i.path, outputs: [...i.outputs] })),
    };
}
/** What `realisePlan` would import, build and fetch; changes nothing. */
async function dryRunRealise(bundlePath, options, deps) {
    const store = new NixStore(deps.runner, { store: options.store });
    const storeDir = await store.storeDir();
    // As plain realise does: roots that name none of the plan's are refused from its manifest,
    // before the plan is read whole, unless the plan is for another realm (no choice of roots
    // makes it importable here; the verifier's realm refusal says what would).
    const { manifest: claimed } = await inspect_readBundleHead(bundlePath);
    if (claimed.storeDir === storeDir)
        selectRoots(claimed.roots, options.roots, options.optionNames);
    const paths = [];
    const drvs = new Map();
    const report = await verifyWithProgress(bundlePath, {
        trustedKeys: options.trustedKeys,
        storeDir,
        isValidInStore: async (p) => (await store.invalidPaths([p])).size === 0,
        onEntry: (e) => {
            paths.push(e.path);
            if (e.kind === 'drv' && e.nar.file !== undefined)
                drvs.set(e.path, factsOf(e.nar.file.contents));
        },
    }, deps.progress);
    const { manifest } = report;
    const missing = await store.invalidPaths(paths);
    const roots = selectRoots(manifest.roots, options.roots, options.optionNames);
    // Every derivation the roots can need, and every output path they know.
    const facts = async (drv) => {
        const known = drvs.get(drv);
        if (known !== undefined)
            return known;
        // An input already valid in the store instead of in the bundle.
        const read = factsOf(await store.readFile(drv));
        drvs.set(drv, read);
        return read;
    };
    const reachable = [];
    const seen = new Set();
    const queue = roots.map((r) => r.drvPath);
    while (queue.length > 0) {
        const drv = queue.pop() ?? '';
        if (seen.has(drv))
            continue;
        seen.add(drv);
        reachable.push(drv);
        for (const input of (await facts(drv)).inputDrvs)
            queue.push(input.path);
    }
    const outputPaths = [
        ...new Set(reachable.flatMap((d) => [...(drvs.get(d)?.outputs.values() ?? [])])),
    ].filter((p) => p !== '');
    const invalidOutputs = await store.invalidPaths(outputPaths);
    const substitutable = new Set(invalidOutputs.size === 0 ? [] : (await queryMissing(store, [...invalidOutputs])).fetch);
    // Nix's rule: built only when some needed output is neither there nor fetchable.
    const wanted = new Map();
    const build = new Set();
    const fetchNeeded = new Set();
    const unknownOutputs = new Set();
    let present = 0;
    const visit = (drv, outputs) => {
        const f = drvs.get(drv);
        if (f === undefined)
            throw new errors_NixPlanError('internal', `no derivation read for '${drv}'`);
        const names = outputs ?? [...f.outputs.keys()];
        const already = wanted.get(drv) ?? new Set();
        const fresh = names.filter((n) => !already.has(n));
        if (fresh.length === 0)
            return;
        for (const n of fresh)
            already.add(n);
        wanted.set(drv, already);
        if (build.has(drv))
            return;
        const needed = [...already].map((n) => f.outputs.get(n) ?? '');
        const mustBuild = needed.some((p) => p === '' || (invalidOutputs.has(p) && !substitutable.has(p)));
        if (!mustBuild) {
            for (const p of fresh.map((n) => f.outputs.get(n) ?? ''))
                if (invalidOutputs.has(p))
                    fetchNeeded.add(p);
                else
                    present++;
            return;
        }
        if (needed.includes(''))
            unknownOutputs.add(drv);
        build.add(drv);
        for (const p of needed)
            fetchNeeded.delete(p);
        for (const input of f.inputDrvs)
            visit(input.path, input.outputs);
    };
    for (const r of roots)
        visit(r.drvPath, undefined);
    // What fetching the needed outputs brings along (their references), as Nix lists it.
    const fetched = fetchNeeded.size === 0 ? { fetch: [] } : await queryMissing(store, [...fetchNeeded]);
    const order = new Map(paths.map((p, i) => [p, i]));
    return {
        dryRun: true,
        manifest,
        import: { missing: missing.size, alreadyValid: paths.length - missing.size },
        build: [...build].sort((a, b) => (order.get(a) ?? -1) - (order.get(b) ?? -1)),
        fetch: fetched.fetch,
        ...('fetchSize' in fetched && fetched.fetchSize !== undefined ? { fetchSize: fetched.fetchSize } : {}),
        present,
        unknownOutputs: [...unknownOutputs],
    };
}

;// CONCATENATED MODULE: ./src/app/deploy/rollback-hosts.ts
// deployRollback: `nix-plan deploy --rollback` — each host goes back one generation of its profile
// over SSH, with a deploy's safety (rollback.ts), in parallel as a deploy's hosts are.








/**
 * Rolls every host in `options.hosts` back one generation of `options.profile`: probes it (its
 * generations, the record, whether an activation is running), refuses a host with no generation
 * before the current one, says what changes, and activates the previous generation safely. Hosts
 * fail one by one, as in a deploy: the result lists each (`ok` false when any failed).
 */
async function deployRollback(options, deps) {
    const { names, profile } = checkHosts(options, 'deploy --rollback');
    const action = options.action ?? 'switch';
    const outputs = deps.hostOutputs ?? defaultOutputs(deps, options.hosts.length > 1);
    let failed = false;
    const hosts = await pool(options.hosts.length, options.jobs ?? Math.min(8, options.hosts.length), async (i) => {
        const name = names[i] ?? '';
        const spec = options.hosts[i];
        if (spec === undefined)
            throw new errors_NixPlanError('internal', 'host list out of step');
        const base = { name, target: formatSshTarget(spec.target), action };
        if (failed && options.keepGoing !== true)
            return { ...base, outcome: 'skipped', seconds: 0 };
        const started = performance.now();
        const program = hostProgram(spec.target, options, deps);
        const label = options.hosts.length > 1 ? name : program.shell.label;
        const out = outputs(name);
        let changes;
        let step;
        try {
            const probe = await program.probe(profile, deps.signal);
            checkProbe({ label }, { storeDir: probe.storeDir }, probe, true);
            const done = await rollBackHost(program, probe, {
                label,
                profile,
                action,
                confirmTimeout: options.confirmTimeout ?? DEFAULT_CONFIRM_TIMEOUT,
                activationTimeout: options.activationTimeout ?? DEFAULT_ACTIVATION_TIMEOUT,
            }, {
                log: out.log,
                output: out.output,
                clock: deps.clock,
                signal: deps.signal,
                now: deps.now,
                labelled: true,
                onChanges: (c) => (changes = c),
                onStep: (s) => (step = s),
            });
            return {
                ...base,
                system: done.step.toSystem,
                ...hostActivated(label, action, done.activation, out.log),
                changes,
                rollback: { from: done.step.fromGeneration, to: done.step.to },
                seconds: (performance.now() - started) / 1000,
            };
        }
        catch (e) {
            failed = true;
            const failure = hostFailure(e);
            if (options.hosts.length > 1)
                out.log.warn(failure.error.message);
            return {
                ...base,
                ...(step !== undefined && {
                    system: step.toSystem,
                    rollback: { from: step.fromGeneration, to: step.to },
                }),
                ...failure,
                // The rollback was undone, not done: never the outcome a deploy that was rolled back has.
                ...(failure.outcome === 'rolled-back' && { outcome: 'reverted' }),
                changes,
                seconds: (performance.now() - started) / 1000,
            };
        }
        finally {
            out.done();
        }
    });
    return {
        rollback: true,
        profile,
        hosts,
        ok: hosts.every((h) => h.error === undefined && h.outcome !== 'skipped'),
    };
}

;// CONCATENATED MODULE: ./src/core/diff/graph.ts




/**
 * The kind of an output from its ATerm fields, as the core classifies them, with an
 * input-addressed output that has no path yet told apart as `deferred` (Nix reads it that way).
 */
function graph_outputKind(o) {
    const kind = outputKind(o);
    return kind === 'input-addressed' && o.path === '' ? 'deferred' : kind;
}
/** Strings that repeat across a closure (systems, output names, hash algorithms) kept once. */
class Interner {
    table = new Map();
    get(s) {
        const known = this.table.get(s);
        if (known !== undefined)
            return known;
        this.table.set(s, s);
        return s;
    }
}
const latin1 = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
/**
 * The derivations of one plan, added in dependency order (a bundle's order, or Nix's
 * `--requisites` order): every input derivation must have been added before the derivations that
 * use it, so a closure is always complete.
 */
class PlanGraph {
    storeDir;
    roots;
    byPath = new Map();
    list = [];
    strings = new Interner();
    /** Every node's input ids, one after another (a small typed array per node costs more). */
    edges = new Int32Array(1024);
    edgeCount = 0;
    constructor(
    /** The store dir of every path in it. */
    storeDir, roots) {
        this.storeDir = storeDir;
        this.roots = roots;
    }
    /** How many derivations it holds. */
    get size() {
        return this.list.length;
    }
    /** Adds one derivation from its parsed head; its inputs must be in the graph already. */
    add(path, head) {
        const known = this.byPath.get(path);
        if (known !== undefined)
            return known;
        const firstInput = this.edgeCount;
        this.reserveEdges(head.inputDrvs.length);
        for (const input of head.inputDrvs)
            this.edges[this.edgeCount++] = this.inputId(path, input.path);
        const name = nameOf(path).replace(/\.drv$/, '');
        const { name: pname, version } = parseDrvName(name);
        const node = {
            id: this.list.length,
            path,
            name,
            pname,
            version,
            system: this.strings.get(latin1(head.system)),
            outputs: head.outputs.map((o) => ({
                name: this.strings.get(o.name),
                path: o.path,
                kind: graph_outputKind(o),
                hashAlgo: this.strings.get(o.hashAlgo),
                hash: o.hash,
            })),
            firstInput,
            inputCount: head.inputDrvs.length,
        };
        this.byPath.set(path, node);
        this.list.push(node);
        return node;
    }
    /**
     * Adds the derivation `node` of `other` (a plan of the same store dir), whose .drv is the one at
     * the same path here: its name, version, system and outputs are shared, not parsed again, and
     * its inputs are found here by their paths (they must be in this graph already, as for `add`).
     */
    addFrom(other, node) {
        const known = this.byPath.get(node.path);
        if (known !== undefined)
            return known;
        if (other.storeDir !== this.storeDir)
            throw new errors_NixPlanError('internal', `'${node.path}' is shared between plans of different store dirs`);
        const firstInput = this.edgeCount;
        this.reserveEdges(node.inputCount);
        for (let e = node.firstInput; e < node.firstInput + node.inputCount; e++)
            this.edges[this.edgeCount++] = this.inputId(node.path, other.list[other.edges[e]].path);
        const added = {
            id: this.list.length,
            path: node.path,
            name: node.name,
            pname: node.pname,
            version: node.version,
            system: node.system,
            outputs: node.outputs,
            firstInput,
            inputCount: node.inputCount,
        };
        this.byPath.set(node.path, added);
        this.list.push(added);
        return added;
    }
    /** The id of `input`, which `path` needs: it must have been added before. */
    inputId(path, input) {
        const node = this.byPath.get(input);
        if (node === undefined)
            throw new errors_NixPlanError('closure', `'${path}' needs '${input}', which the plan does not hold before it`);
        return node.id;
    }
    /** Room for `count` more edges. */
    reserveEdges(count) {
        const needed = this.edgeCount + count;
        if (needed > this.edges.length) {
            const grown = new Int32Array(Math.max(needed, this.edges.length * 2));
            grown.set(this.edges.subarray(0, this.edgeCount));
            this.edges = grown;
        }
    }
    /** The derivation at `path`, if the plan holds it. */
    get(path) {
        return this.byPath.get(path);
    }
    /** Whether the plan holds `path`. */
    has(path) {
        return this.byPath.has(path);
    }
    /** Every derivation, in the order added. */
    nodes() {
        return this.list;
    }
    /** The derivations `path` needs, itself included (none when the plan does not hold it). */
    closure(path) {
        const start = this.byPath.get(path);
        if (start === undefined)
            return [];
        const seen = new Uint8Array(this.list.length);
        const out = [];
        const stack = [start.id];
        seen[start.id] = 1;
        while (stack.length > 0) {
            const node = this.list[stack.pop()];
            out.push(node);
            for (let e = node.firstInput; e < node.firstInput + node.inputCount; e++) {
                const i = this.edges[e];
                if (seen[i] === 0) {
                    seen[i] = 1;
                    stack.push(i);
                }
            }
        }
        return out;
    }
}

;// CONCATENATED MODULE: ./src/app/files.ts
// Checks on the files a use case will write, made before the long work so a typo fails fast, and
// the digest of a file read.





/** Fails early, with a usage error, when a file cannot be created at `path` (before long work). */
async function assertWritable(path) {
    const dir = (0,external_node_path_namespaceObject.dirname)((0,external_node_path_namespaceObject.resolve)(path));
    try {
        await (0,external_node_fs_promises_namespaceObject.access)(dir, external_node_fs_namespaceObject.constants.W_OK);
    }
    catch (e) {
        throw new errors_NixPlanError('usage', `cannot write '${path}': ${e.code === 'ENOENT' ? `the directory '${dir}' does not exist` : `the directory '${dir}' is not writable`}`);
    }
}
/** `sha256:<hex>` of a file's bytes, streamed. */
async function fileDigest(path) {
    const hash = (0,external_node_crypto_namespaceObject.createHash)('sha256');
    for await (const chunk of (0,external_node_fs_namespaceObject.createReadStream)(path))
        hash.update(chunk);
    return `sha256:${hash.digest('hex')}`;
}

;// CONCATENATED MODULE: ./src/app/plan-side.ts



/**
 * A bundle location as a private copy of the file (other kinds as they are), and how to remove
 * the copy: every read of a comparison (store dir, manifest, digest, verified stream, drill-down
 * files) then sees the same bytes, even if the file is rewritten in place or replaced meanwhile.
 */
async function pinLocation(location, names) {
    if (location.kind !== 'bundle')
        return { location, dispose: () => Promise.resolve() };
    const copy = await privateBundle(location.path, { optionNames: names });
    return {
        location: { ...location, copy: copy.path, digest: copy.digest },
        dispose: () => copy.dispose(),
    };
}
/** Opens a bundle location (its private copy when pinned), named as the user named it. */
async function openLocation(location) {
    return { ...(await openBundle(location.copy ?? location.path)), name: location.path };
}
/** Small files fetched for a drill-down are at most this big. */
const MAX_FILE = 4 * 1024 * 1024;
/** Bytes of texts and one-file sources a drill-down keeps beyond the paths asked for. */
const FILE_BUDGET = 16 * 1024 * 1024;
/**
 * Most bytes of .drv and file contents one side of a comparison holds in memory: the objects of a
 * bundle relocated to be compared across store dirs, or the files of the paths a drill-down asks
 * for (every .drv that differs). A plan's size bounds neither (a few MiB of zstd can declare
 * gigabytes of .drv files), so past this the comparison is refused (exit 8) instead of exhausting
 * the machine's memory; a real system's .drv files take a few hundred MiB at most.
 */
const MAX_HELD_BYTES = 2 ** 30;
/** The refusal of a drill-down whose .drv files that differ hold more than `max` bytes. */
function drillDownLimit(path, max) {
    return new LimitError(`${path}: the .drv files that differ between the plans, which --drv reads to explain a difference, ` +
        `hold more than ${max} bytes: refused (compare without --drv, or plans closer to each other)`);
}

;// CONCATENATED MODULE: ./src/app/plan-side-bundle.ts
// Reading a bundle side of a comparison: verified in one streaming pass that keeps only each
// .drv's head, the manifest facts a diff shows (digest, signatures against the trusted keys,
// provenance), and the drill-down's small files read again afterwards.











/**
 * Each signature's status against `trustedKeys` (none given: `not-checked`). A signature by a
 * trusted key that does not verify means the manifest was altered: that is an error, as in verify.
 */
function signatureStatuses(manifest, trustedKeys = []) {
    if (trustedKeys.length === 0)
        return manifest.signatures.map((s) => ({ key: s.key, status: 'not-checked' }));
    const keys = trustedKeys.map(parsePublicKey);
    const message = signedBytes(manifest);
    return manifest.signatures.map((s) => {
        const check = signing_checkDetached(message, `${s.key}:${s.sig}`, keys);
        if (check === 'invalid' || check === 'malformed')
            throw new errors_NixPlanError('signature', `the bundle's signature by key '${s.key}' does not verify: the manifest was altered or signed with another key`);
        return { key: s.key, status: check === 'valid' ? 'verified' : 'untrusted-key' };
    });
}
/** `{a: {b: 1}}` → `{"a.b": "1"}`; arrays by index; only strings, numbers and booleans kept. */
function flatten(value, prefix = '', out = {}) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
        out[prefix] = String(value);
    else if (Array.isArray(value))
        value.forEach((v, i) => flatten(v, prefix === '' ? String(i) : `${prefix}.${i}`, out));
    else if (typeof value === 'object' && value !== null)
        for (const [k, v] of Object.entries(value))
            flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
    return out;
}
/** What a diff shows of a manifest (v2's createdAt, provenance and promotions when present). */
function bundleFacts(manifest, digest, signatures) {
    const v2 = manifest;
    const provenance = flatten(v2.provenance);
    return {
        digest,
        checksum: manifest.checksum,
        formatVersion: manifest.formatVersion,
        tool: manifest.tool,
        nixVersion: manifest.nixVersion,
        include: manifest.include,
        ...(typeof v2.createdAt === 'string' && { createdAt: v2.createdAt }),
        ...(Object.keys(provenance).length > 0 && { provenance }),
        ...(manifest.relocatedFrom !== undefined && { relocatedFrom: manifest.relocatedFrom.storeDir }),
        ...(Array.isArray(v2.promotions) && { promotions: v2.promotions.length }),
        signatures,
    };
}
/** The roots of a manifest as a diff pairs them. */
function manifestRoots(manifest) {
    return manifest.roots.map((r) => ({ label: rootLabel(r), drvPath: r.drvPath }));
}
/** Reads a bundle side (`readPlanSide` of a bundle location). */
async function readBundleSide(location, options, deps) {
    const { path } = location;
    const source = await openLocation(location);
    try {
        const head = await readBundleHead(source);
        const { manifest } = head;
        // Refuses a signature by a trusted key name that does not verify (the manifest was altered).
        const signatures = signatureStatuses(manifest, options.trustedKeys);
        // The private copy's digest was taken as it was copied (an unpinned file is read for it).
        const digest = location.digest ?? (await fileDigest(location.copy ?? path));
        const graph = new PlanGraph(manifest.storeDir, manifestRoots(manifest));
        const keep = options.keepObjects === true;
        const sameDir = options.known?.graph.storeDir === manifest.storeDir ? options.known : undefined;
        const knownGraph = sameDir?.graph;
        const known = sameDir?.checks === undefined
            ? undefined
            : { head: (p) => sameDir.graph.get(p), checks: sameDir.checks };
        const objects = [];
        const maxHeld = options.maxHeldBytes ?? MAX_HELD_BYTES;
        let held = 0;
        const task = progressOf(deps).start(`reading ${path}`, manifest.paths);
        let report;
        try {
            // Every check verify makes, with the same limits: each .drv is parsed (or, when the other
            // side checked one at the same path, taken from there), its output paths computed as Nix
            // does, build outputs proven by a trusted signature (or counted with --no-check-sigs), and
            // no store is asked about references the bundle does not hold: they are refused, as by
            // verify. A trusted key proves; a signature is not required (who signed is shown).
            report = await verifyBundle(source, {
                ...(signatures.some((s) => s.status === 'verified') && { trustedKeys: options.trustedKeys }),
                noCheckSigs: options.noCheckSigs === true,
                optionNames: options.optionNames,
                keptFiles: keep ? 'copy' : 'view',
                known,
                onEntry: (e) => {
                    task.tick(1, e.nar.narSize);
                    if (e.kind === 'drv') {
                        if (e.derivation !== undefined)
                            graph.add(e.path, e.derivation);
                        else {
                            const same = knownGraph?.get(e.path);
                            if (same === undefined)
                                throw new errors_NixPlanError('internal', `the derivation '${e.path}' was neither parsed nor known`);
                            graph.addFrom(knownGraph, same);
                        }
                    }
                    if (keep) {
                        if (e.kind === 'output')
                            throw new errors_NixPlanError('relocate', `'${e.path}' is a build output, which cannot be relocated to compare plans of different store dirs`);
                        const file = e.nar.file?.contents;
                        held += file?.length ?? 0;
                        if (held > maxHeld)
                            throw new LimitError(`${path} is for another store dir than the plan it is compared with, and relocating it to ` +
                                `compare them holds its .drv and file contents in memory: more than ${maxHeld} bytes, refused ` +
                                `(relocate it first, with ${relocateAdvice(options.optionNames, options.relocateTo ?? 'DIR')}, and compare that)`);
                        objects.push({
                            path: e.path,
                            kind: e.kind,
                            references: e.references,
                            ...(file !== undefined && { contents: file }),
                            ...(e.kind === 'source' && { narHash: e.nar.narHash }),
                            ca: e.ca,
                        });
                    }
                },
            });
        }
        finally {
            task.done();
        }
        const facts = {
            ...bundleFacts(manifest, digest, signatures),
            ...(report.noCheckSigs && { noCheckSigs: true, unproven: report.unproven }),
        };
        return {
            side: {
                kind: 'bundle',
                source: path,
                storeDir: manifest.storeDir,
                derivations: graph.size,
                systems: manifest.systems,
                roots: graph.roots,
                bundle: facts,
            },
            graph,
            checks: report.outputChecks,
            ...(keep && { objects }),
            files: (paths, max) => bundleFiles(location, paths, max),
        };
    }
    finally {
        await source.close();
    }
}
/**
 * The bytes of `paths` that are small single files in a bundle, read again (the first pass kept
 * none of them). The stream's digests are checked again at its end, so a bundle changed since
 * the first pass fails here instead of showing other bytes.
 */
async function bundleFiles(location, paths, maxHeld = MAX_HELD_BYTES) {
    const out = new Map();
    const source = await openLocation(location);
    let budget = FILE_BUDGET;
    let held = 0;
    try {
        for await (const e of readExport(exportStream(source), { keepFileUpTo: MAX_FILE })) {
            const file = e.nar.file?.contents;
            if (file === undefined)
                continue;
            if (paths.has(e.path)) {
                held += file.length;
                if (held > maxHeld)
                    throw drillDownLimit(location.path, maxHeld);
                out.set(e.path, file);
            }
            else if (!e.path.endsWith('.drv') && file.length <= budget) {
                budget -= file.length;
                out.set(e.path, file);
            }
        }
    }
    finally {
        await source.close();
    }
    return out;
}

;// CONCATENATED MODULE: ./src/app/plan-side-store.ts
// Reading a store side of a comparison: a .drv in a store, or the current generation of a profile
// through its deriver, with the closure's .drv heads read from the store and its small files
// fetched for a drill-down.









/** The store path a profile's current generation is: its symlinks followed into the store dir. */
async function profileTarget(profile, storeDir) {
    let at = (0,external_node_path_namespaceObject.isAbsolute)(profile) ? profile : (0,external_node_path_namespaceObject.resolve)(profile);
    for (let hops = 0; hops < 40; hops++) {
        if (at.startsWith(`${storeDir}/`)) {
            const rest = at.slice(storeDir.length + 1);
            return `${storeDir}/${rest.split('/')[0] ?? ''}`;
        }
        let target;
        try {
            target = await (0,external_node_fs_promises_namespaceObject.readlink)(at);
        }
        catch (e) {
            throw new errors_NixPlanError('usage', `cannot read the profile '${profile}': ${e.code === 'EINVAL' ? `'${at}' is not a symlink into ${storeDir}` : e.message}`);
        }
        at = (0,external_node_path_namespaceObject.isAbsolute)(target) ? target : (0,external_node_path_namespaceObject.resolve)((0,external_node_path_namespaceObject.dirname)(at), target);
    }
    throw new errors_NixPlanError('usage', `the profile '${profile}' is a chain of more than 40 symlinks`);
}
/**
 * Refuses a deriver that does not build the profile's system. The store records whatever deriver
 * a path came with (a substituter's narinfo, an import's export stream), unchecked: a .drv that
 * declares none of its outputs at `out` would be compared as the profile's plan. A deriver whose
 * outputs are all known only once built (content-addressed) cannot be checked, and is taken.
 */
function checkDeriver(profile, out, drvPath, head) {
    if (head.outputs.some((o) => o.path === out) || head.outputs.every((o) => o.path === ''))
        return;
    throw new errors_NixPlanError('usage', `the store names ${drvPath} as the deriver of the current generation of '${profile}' (${out}), but that .drv does not build it ` +
        '(a deriver is whatever the path came with, unchecked), so its plan cannot be read; compare against a plan bundle or a .drv path instead');
}
/** Reads a .drv or profile side (`readPlanSide` of those locations). */
async function readStoreSide(location, options, deps) {
    const store = new NixStore(deps.runner, { store: options.store });
    const storeDir = await store.storeDir();
    let drvPath = location.path;
    let label;
    let profileOutput;
    if (location.kind === 'profile') {
        const out = await profileTarget(location.path, storeDir);
        profileOutput = out;
        const deriver = await store.deriver(out);
        if (deriver === undefined)
            throw new errors_NixPlanError('usage', `the current generation of '${location.path}' (${out}) has no known deriver, so its plan cannot be read; compare against a plan bundle or a .drv path instead`);
        drvPath = deriver;
        label = nameOf(out);
    }
    else {
        if (!drvPath.startsWith(`${storeDir}/`) ||
            !drvPath.endsWith('.drv') ||
            baseName(drvPath).length <= HASH_PART_LENGTH + 5)
            throw new errors_NixPlanError('usage', `'${drvPath}' is not a .drv path in the store ${storeDir}`);
        label = nameOf(drvPath).replace(/\.drv$/, '');
    }
    let closure;
    try {
        closure = await store.requisites([drvPath]);
    }
    catch (e) {
        throw new errors_NixPlanError('usage', location.kind === 'profile'
            ? `the deriver ${drvPath} of the current generation of '${location.path}' is not in the store (garbage-collected?), so its plan cannot be read; compare against a plan bundle instead`
            : `'${drvPath}' is not a valid path in the store: ${e.message.split('\n')[0] ?? ''}`, { cause: e });
    }
    store.setStoreDir(storeDir);
    if (profileOutput !== undefined) {
        // Before anything of it is compared (the other plan may hold the same .drv).
        const file = store.readRegularFileSync(drvPath);
        if (file === undefined)
            throw new errors_NixPlanError('nix', `'${drvPath}' is not a regular file`);
        checkDeriver(location.path, profileOutput, drvPath, parseDerivationHead(file.bytes));
    }
    const graph = new PlanGraph(storeDir, [{ label, drvPath }]);
    const known = options.known?.graph.storeDir === storeDir ? options.known.graph : undefined;
    const systems = new Set();
    const task = progressOf(deps).start(`reading ${drvPath}`, closure.length);
    try {
        for (const p of closure) {
            task.tick(1);
            if (!p.endsWith('.drv'))
                continue;
            const same = known?.get(p);
            if (same !== undefined) {
                systems.add(graph.addFrom(known, same).system);
                continue;
            }
            const file = store.readRegularFileSync(p);
            if (file === undefined)
                throw new errors_NixPlanError('nix', `'${p}' is not a regular file`);
            const node = graph.add(p, parseDerivationHead(file.bytes));
            systems.add(node.system);
        }
    }
    finally {
        task.done();
    }
    return {
        side: {
            kind: location.kind,
            source: location.path,
            storeDir,
            derivations: graph.size,
            systems: [...systems].sort(),
            roots: graph.roots,
        },
        graph,
        files: (paths, maxHeld = MAX_HELD_BYTES) => {
            const out = new Map();
            let budget = FILE_BUDGET;
            let held = 0;
            const read = (p) => {
                try {
                    return store.readRegularFileSync(p, MAX_FILE)?.bytes;
                }
                catch {
                    return undefined;
                }
            };
            for (const p of paths) {
                const bytes = read(p);
                if (bytes === undefined)
                    continue;
                held += bytes.length;
                if (held > maxHeld)
                    throw drillDownLimit(location.path, maxHeld);
                out.set(p, bytes);
            }
            for (const p of closure)
                if (!p.endsWith('.drv') && !out.has(p) && budget > 0) {
                    const bytes = read(p);
                    if (bytes !== undefined && bytes.length <= budget) {
                        budget -= bytes.length;
                        out.set(p, bytes);
                    }
                }
            return Promise.resolve(out);
        },
    };
}

;// CONCATENATED MODULE: ./src/app/plan-reader.ts
// Reading one side of a comparison into a PlanGraph: a bundle (verified in one streaming pass,
// keeping only each .drv's head), a .drv in a store, or the current generation of a profile
// (through its deriver). Each side can fetch the whole bytes of chosen paths afterwards, for a
// drill-down, without having held them.





/** Reads the store dir of a bundle, a .drv path or a profile without reading the rest. */
async function plan_reader_storeDirOf(location, options, deps) {
    if (location.kind === 'bundle') {
        const source = await openLocation(location);
        try {
            return (await readBundleHead(source)).manifest.storeDir;
        }
        finally {
            await source.close();
        }
    }
    return new NixStore(deps.runner, { store: options.store }).storeDir();
}
/** Reads one side of a comparison. */
async function readPlanSide(location, options, deps) {
    return location.kind === 'bundle'
        ? readBundleSide(location, options, deps)
        : readStoreSide(location, options, deps);
}

;// CONCATENATED MODULE: ./src/app/contents.ts



function entry(n) {
    return {
        name: n.pname,
        version: n.version,
        outputs: n.outputs.map((o) => o.name),
        system: n.system,
        fixed: n.outputs.some((o) => o.kind === 'fixed'),
        drvPath: n.path,
    };
}
const order = (a, b) => a.name < b.name
    ? -1
    : a.name > b.name
        ? 1
        : compareVersions(a.version, b.version) || (a.drvPath < b.drvPath ? -1 : 1);
/** Verifies a bundle as it reads it and lists each root's packages. */
async function planContents(bundlePath, options, deps) {
    const pinned = await pinLocation({ kind: 'bundle', path: bundlePath });
    let read;
    try {
        read = await readPlanSide(pinned.location, options, deps);
    }
    finally {
        await pinned.dispose();
    }
    const { side, graph } = read;
    return {
        plan: side,
        roots: graph.roots.map((r) => ({
            label: r.label,
            drvPath: r.drvPath,
            packages: graph.closure(r.drvPath).map(entry).sort(order),
        })),
    };
}

;// CONCATENATED MODULE: ./src/core/diff/sequence.ts
// The shortest edit script between two sequences (Myers' O(ND) algorithm), for a derivation's
// arguments and the lines of its environment values. Bounded: past `maxEdits` differences it
// gives up and reports the two sides as replaced whole, so a hostile pair of values cannot make
// it quadratic.
/** Differences beyond which `diffSequences` stops looking for the shortest script. */
const DEFAULT_MAX_EDITS = 2000;
function push(out, op, item) {
    const last = out[out.length - 1];
    if (last?.op === op)
        last.items.push(item);
    else
        out.push({ op, items: [item] });
}
/**
 * The edits that turn `a` into `b`, as runs: `same` runs of equal items, `old` runs (only in `a`)
 * before `new` runs (only in `b`) where both change. Items compare with `===`.
 */
function diffSequences(a, b, maxEdits = DEFAULT_MAX_EDITS) {
    // Equal heads and tails need no search.
    let start = 0;
    while (start < a.length && start < b.length && a[start] === b[start])
        start++;
    let endA = a.length;
    let endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
        endA--;
        endB--;
    }
    const out = [];
    for (let i = 0; i < start; i++)
        push(out, 'same', a[i]);
    const middle = script(a.slice(start, endA), b.slice(start, endB), maxEdits);
    for (const e of middle)
        for (const item of e.items)
            push(out, e.op, item);
    for (let i = endA; i < a.length; i++)
        push(out, 'same', a[i]);
    return out;
}
/** Myers' greedy forward search with the trace kept for the backtrack. */
function script(a, b, maxEdits) {
    const n = a.length;
    const m = b.length;
    if (n === 0 && m === 0)
        return [];
    const whole = () => [
        ...(n > 0 ? [{ op: 'old', items: a }] : []),
        ...(m > 0 ? [{ op: 'new', items: b }] : []),
    ];
    if (n === 0 || m === 0)
        return whole();
    const max = Math.min(n + m, maxEdits);
    const offset = max + 1;
    let v = new Int32Array(2 * max + 3);
    const trace = [];
    for (let d = 0; d <= max; d++) {
        trace.push(v.slice());
        const next = v.slice();
        for (let k = -d; k <= d; k += 2) {
            let x = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1])
                ? v[offset + k + 1]
                : v[offset + k - 1] + 1;
            let y = x - k;
            while (x < n && y < m && a[x] === b[y]) {
                x++;
                y++;
            }
            next[offset + k] = x;
            if (x >= n && y >= m)
                return backtrack(a, b, trace, next, d, k, offset);
        }
        v = next;
    }
    return whole();
}
function backtrack(a, b, trace, last, dEnd, kEnd, offset) {
    const steps = [];
    let x = last[offset + kEnd];
    let y = x - kEnd;
    for (let d = dEnd; d > 0; d--) {
        const v = trace[d];
        const k = x - y;
        const down = k === -d || (k !== d && v[offset + k - 1] < v[offset + k + 1]);
        const prevK = down ? k + 1 : k - 1;
        const prevX = v[offset + prevK];
        const prevY = prevX - prevK;
        while (x > prevX + (down ? 0 : 1) && y > prevY + (down ? 1 : 0)) {
            steps.push({ op: 'same', item: a[--x] });
            y--;
        }
        if (down)
            steps.push({ op: 'new', item: b[--y] });
        else
            steps.push({ op: 'old', item: a[--x] });
    }
    while (x > 0 && y > 0) {
        steps.push({ op: 'same', item: a[--x] });
        y--;
    }
    steps.reverse();
    const out = [];
    // Within a changed stretch, old items come before new ones (as a unified diff shows them).
    let pendingNew = [];
    for (const s of steps) {
        if (s.op === 'new')
            pendingNew.push(s.item);
        else {
            if (s.op === 'same') {
                for (const item of pendingNew)
                    push(out, 'new', item);
                pendingNew = [];
            }
            push(out, s.op, s.item);
        }
    }
    for (const item of pendingNew)
        push(out, 'new', item);
    return out;
}

;// CONCATENATED MODULE: ./src/core/diff/derivation-diff.ts





const derivation_diff_latin1 = (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
function describeOutput(o) {
    return { name: o.name, kind: graph_outputKind(o), hashAlgo: o.hashAlgo, hash: o.hash };
}
const sameOutput = (a, b) => a.kind === b.kind && a.hashAlgo === b.hashAlgo && a.hash === b.hash;
/** `drvName` without throwing: a derivation path's name without `.drv`. */
const drvNameOf = (path) => nameOf(path).replace(/\.drv$/, '');
/** Replaces old store paths by new ones in latin1 text: each known path where it occurs whole. */
class PathRewriter {
    storeDir;
    byHash = new Map();
    constructor(storeDir) {
        this.storeDir = storeDir;
    }
    add(oldPath, newPath) {
        if (oldPath === '' || newPath === '' || oldPath === newPath)
            return;
        const hash = oldPath.slice(this.storeDir.length + 1, this.storeDir.length + 1 + HASH_PART_LENGTH);
        let list = this.byHash.get(hash);
        if (list === undefined)
            this.byHash.set(hash, (list = []));
        list.push([oldPath, newPath]);
    }
    rewrite(text) {
        const prefix = `${this.storeDir}/`;
        let out = '';
        let from = 0;
        for (let at = text.indexOf(prefix); at >= 0; at = text.indexOf(prefix, at + 1)) {
            const hash = text.slice(at + prefix.length, at + prefix.length + HASH_PART_LENGTH);
            const candidates = this.byHash.get(hash);
            if (candidates === undefined)
                continue;
            // The longest old path that occurs here (a name may extend another's).
            let best;
            for (const c of candidates)
                if (text.startsWith(c[0], at) && (best === undefined || c[0].length > best[0].length))
                    best = c;
            if (best === undefined)
                continue;
            out += text.slice(from, at) + best[1];
            from = at + best[0].length;
            at = from - 1;
        }
        return out + text.slice(from);
    }
}
function splitLines(text) {
    const lines = text.split('\n');
    if (lines.length > 1 && lines[lines.length - 1] === '')
        lines.pop();
    return lines;
}
/** Compares derivation pairs, each once, up to a limit. */
class Comparer {
    old;
    now;
    options;
    compared = new Set();
    maxCompared;
    maxValueBytes;
    constructor(old, now, options) {
        this.old = old;
        this.now = now;
        this.options = options;
        this.maxCompared = options.maxCompared ?? 100;
        this.maxValueBytes = options.maxValueBytes ?? 64 * 1024;
    }
    show(bytes) {
        if (bytes.length <= this.maxValueBytes)
            return showBytes(bytes);
        return `${showBytes(bytes.subarray(0, this.maxValueBytes))}… (${bytes.length - this.maxValueBytes} more bytes not shown)`;
    }
    /** The diff of one pair, or a note saying why it is not compared. */
    pair(oldPath, newPath) {
        const key = `${oldPath}\0${newPath}`;
        if (this.compared.has(key))
            return { note: 'already-compared' };
        if (this.compared.size >= this.maxCompared)
            return { note: 'limit' };
        const a = this.old.derivation(oldPath);
        const b = this.now.derivation(newPath);
        if (a === undefined || b === undefined)
            return { note: 'unavailable' };
        this.compared.add(key);
        return { diff: this.diff(oldPath, a, newPath, b) };
    }
    diff(oldPath, a, newPath, b) {
        const rewriter = new PathRewriter(this.options.storeDir);
        rewriter.add(oldPath, newPath);
        // Outputs, by name.
        const oldOuts = new Map(a.outputs.map((o) => [o.name, o]));
        const newOuts = new Map(b.outputs.map((o) => [o.name, o]));
        const outputs = {
            removed: a.outputs.filter((o) => !newOuts.has(o.name)).map(describeOutput),
            added: b.outputs.filter((o) => !oldOuts.has(o.name)).map(describeOutput),
            changed: a.outputs.flatMap((o) => {
                const n = newOuts.get(o.name);
                if (n === undefined)
                    return [];
                rewriter.add(o.path, n.path);
                const [x, y] = [describeOutput(o), describeOutput(n)];
                return sameOutput(x, y) ? [] : [{ name: o.name, old: x, new: y }];
            }),
        };
        const inputDrvs = this.inputs(a.inputDrvs, b.inputDrvs, rewriter);
        const inputSrcs = this.sources(a.inputSrcs, b.inputSrcs, rewriter);
        // Environment, by key (keys are sorted by bytes in both).
        const env = {
            removed: [],
            added: [],
            changed: [],
            pathsOnly: [],
        };
        const oldEnv = new Map(a.env.map((e) => [derivation_diff_latin1(e.key), e.value]));
        const newEnv = new Map(b.env.map((e) => [derivation_diff_latin1(e.key), e.value]));
        const keyText = (k) => showBytes(Buffer.from(k, 'latin1'), true);
        for (const [k, v] of oldEnv)
            if (!newEnv.has(k))
                env.removed.push({ key: keyText(k), value: this.show(v) });
        for (const [k, v] of newEnv)
            if (!oldEnv.has(k))
                env.added.push({ key: keyText(k), value: this.show(v) });
        for (const [k, v] of oldEnv) {
            const w = newEnv.get(k);
            if (w === undefined || Buffer.compare(v, w) === 0)
                continue;
            if (rewriter.rewrite(derivation_diff_latin1(v)) === derivation_diff_latin1(w)) {
                env.pathsOnly.push(keyText(k));
                continue;
            }
            const [x, y] = [this.show(v), this.show(w)];
            const [xl, yl] = [splitLines(x), splitLines(y)];
            env.changed.push({
                key: keyText(k),
                old: x,
                new: y,
                ...((xl.length > 1 || yl.length > 1) && { lines: diffSequences(xl, yl) }),
            });
        }
        const text = (bytes) => this.show(bytes);
        const field = (x, y) => Buffer.compare(x, y) === 0 ? undefined : { old: text(x), new: text(y) };
        const system = field(a.system, b.system);
        const builder = rewriter.rewrite(derivation_diff_latin1(a.builder)) === derivation_diff_latin1(b.builder) ? undefined : field(a.builder, b.builder);
        const oldArgs = a.args.map((x) => derivation_diff_latin1(x));
        const newArgs = b.args.map((x) => derivation_diff_latin1(x));
        const argsSame = oldArgs.length === newArgs.length && oldArgs.every((x, i) => rewriter.rewrite(x) === newArgs[i]);
        return {
            old: oldPath,
            new: newPath,
            outputs,
            ...(system !== undefined && { system }),
            ...(builder !== undefined && { builder }),
            ...(!argsSame && {
                args: diffSequences(a.args.map(text), b.args.map(text)),
            }),
            env,
            inputSrcs,
            inputDrvs,
        };
    }
    /** Input derivations: equal paths, then pairs by derivation name, then by package name. */
    inputs(a, b, rewriter) {
        const ref = (i) => ({ path: i.path, outputs: i.outputs });
        const changed = [];
        const newByPath = new Map(b.map((i) => [i.path, i]));
        const oldByPath = new Map(a.map((i) => [i.path, i]));
        for (const i of a) {
            const j = newByPath.get(i.path);
            if (j !== undefined && i.outputs.join(' ') !== j.outputs.join(' '))
                changed.push({ name: drvNameOf(i.path), old: ref(i), new: ref(j) });
        }
        let oldRest = a.filter((i) => !newByPath.has(i.path));
        let newRest = b.filter((i) => !oldByPath.has(i.path));
        const pairs = [];
        const pairBy = (key) => {
            const byKey = new Map();
            for (const j of newRest) {
                const list = byKey.get(key(j.path));
                if (list === undefined)
                    byKey.set(key(j.path), [j]);
                else
                    list.push(j);
            }
            const oldByKey = new Map();
            for (const i of oldRest)
                oldByKey.set(key(i.path), (oldByKey.get(key(i.path)) ?? 0) + 1);
            const used = new Set();
            for (const i of oldRest) {
                const k = key(i.path);
                const list = byKey.get(k);
                // Pair only when the name picks exactly one derivation on each side.
                if (list?.length !== 1 || oldByKey.get(k) !== 1)
                    continue;
                pairs.push([i, list[0], k]);
                used.add(i).add(list[0]);
            }
            oldRest = oldRest.filter((i) => !used.has(i));
            newRest = newRest.filter((j) => !used.has(j));
        };
        pairBy(drvNameOf);
        pairBy((p) => parseDrvName(drvNameOf(p)).name);
        for (const [i, j] of pairs)
            this.mapOutputs(i.path, j.path, rewriter);
        for (const [i, j, name] of pairs) {
            const compared = this.pair(i.path, j.path);
            changed.push({ name, old: ref(i), new: ref(j), ...compared });
        }
        changed.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
        return { removed: oldRest.map(ref), added: newRest.map(ref), changed };
    }
    /** Teaches the rewriter a changed input's drv path and output paths, by output name. */
    mapOutputs(oldPath, newPath, rewriter) {
        rewriter.add(oldPath, newPath);
        const a = this.old.derivation(oldPath);
        const b = this.now.derivation(newPath);
        if (a === undefined || b === undefined)
            return;
        const newOuts = new Map(b.outputs.map((o) => [o.name, o.path]));
        for (const o of a.outputs)
            rewriter.add(o.path, newOuts.get(o.name) ?? '');
    }
    /** Input sources: pairs by name, the rest removed or added. */
    sources(a, b, rewriter) {
        const inNew = new Set(b);
        const inOld = new Set(a);
        const oldRest = a.filter((p) => !inNew.has(p));
        const newRest = b.filter((p) => !inOld.has(p));
        const count = (xs) => {
            const m = new Map();
            for (const p of xs)
                m.set(nameOf(p), (m.get(nameOf(p)) ?? 0) + 1);
            return m;
        };
        const oldNames = count(oldRest);
        const newNames = count(newRest);
        const changed = [];
        const paired = new Set();
        for (const p of oldRest) {
            const name = nameOf(p);
            if (oldNames.get(name) !== 1 || newNames.get(name) !== 1)
                continue;
            const q = newRest.find((x) => nameOf(x) === name);
            paired.add(p).add(q);
            rewriter.add(p, q);
            const x = this.old.file(p);
            const y = this.now.file(q);
            changed.push({
                name: showText(name),
                old: p,
                new: q,
                ...(x !== undefined &&
                    y !== undefined && { lines: diffSequences(splitLines(this.show(x)), splitLines(this.show(y))) }),
            });
        }
        return {
            removed: oldRest.filter((p) => !paired.has(p)),
            added: newRest.filter((p) => !paired.has(p)),
            changed,
        };
    }
}
/**
 * Why `newPath` differs from `oldPath` (both derivations of the plans `old` and `now` can read),
 * following changed inputs of the same name (each pair once, at most `maxCompared`).
 */
function diffDerivations(oldPath, newPath, old, now, options) {
    const result = new Comparer(old, now, options).pair(oldPath, newPath);
    return 'diff' in result ? result.diff : undefined;
}

;// CONCATENATED MODULE: ./src/core/diff/plan-diff.ts


/** The `schema` member of every diff document; bumped when its shape changes incompatibly. */
const PLAN_DIFF_SCHEMA = 'nix-plan-diff/1';
const join = (xs) => xs === undefined || xs.length === 0 ? undefined : xs.join(', ');
function fieldChanges(old, now) {
    const out = [];
    const compare = (field, a, b) => {
        if (a !== b)
            out.push({ field, ...(a !== undefined && { old: a }), ...(b !== undefined && { new: b }) });
    };
    compare('storeDir', old.storeDir, now.storeDir);
    compare('systems', join(old.systems), join(now.systems));
    const a = old.bundle;
    const b = now.bundle;
    if (a === undefined || b === undefined)
        return out;
    compare('include', a.include, b.include);
    compare('nixVersion', a.nixVersion, b.nixVersion);
    compare('tool', a.tool, b.tool);
    compare('formatVersion', String(a.formatVersion), String(b.formatVersion));
    compare('createdAt', a.createdAt, b.createdAt);
    compare('relocatedFrom', a.relocatedFrom, b.relocatedFrom);
    compare('signedBy', join(a.signatures.map((s) => s.key)) ?? 'unsigned', join(b.signatures.map((s) => s.key)) ?? 'unsigned');
    const keys = [...new Set([...Object.keys(a.provenance ?? {}), ...Object.keys(b.provenance ?? {})])].sort();
    for (const k of keys)
        compare(`provenance.${k}`, a.provenance?.[k], b.provenance?.[k]);
    return out;
}
/** `…/hash-name.drv` → `name`. */
const plan_diff_drvNameOf = (p) => p
    .slice(p.lastIndexOf('/') + 1)
    .slice(33)
    .replace(/\.drv$/, '');
/**
 * Pairs roots: by label, then the rest by derivation name, then by package name (a root named by
 * an attribute on one side and by its .drv on the other); one unpaired root on each side is
 * paired too (a renamed single root).
 */
function pairRoots(old, now) {
    const pairs = [];
    let removed = [...old];
    let added = [...now];
    const pass = (key) => {
        const byKey = new Map();
        for (const r of added) {
            const list = byKey.get(key(r));
            if (list === undefined)
                byKey.set(key(r), [r]);
            else
                list.push(r);
        }
        const used = new Set();
        for (const r of removed) {
            const match = byKey.get(key(r))?.find((c) => !used.has(c));
            if (match === undefined)
                continue;
            used.add(match).add(r);
            pairs.push([r, match]);
        }
        removed = removed.filter((r) => !used.has(r));
        added = added.filter((r) => !used.has(r));
    };
    pass((r) => r.label);
    pass((r) => plan_diff_drvNameOf(r.drvPath));
    pass((r) => parseDrvName(plan_diff_drvNameOf(r.drvPath)).name);
    if (removed.length === 1 && added.length === 1) {
        pairs.push([removed[0], added[0]]);
        removed = [];
        added = [];
    }
    return { pairs, removed, added };
}
function rootDiff(label, old, now, a, b) {
    if (old.drvPath === now.drvPath)
        return { label, status: 'unchanged', old: old.drvPath, new: now.drvPath };
    const d = diffClosures(a.closure(old.drvPath), b.closure(now.drvPath));
    const names = (kinds) => d.packages.filter((p) => kinds.includes(p.change)).map((p) => p.name);
    return {
        label,
        status: 'changed',
        old: old.drvPath,
        new: now.drvPath,
        counts: d.counts,
        derivations: d.derivations,
        packages: {
            versions: names(['upgrade', 'downgrade', 'changed']),
            added: names(['added']),
            removed: names(['removed']),
            rebuilt: names(['rebuilt']),
        },
    };
}
/**
 * The difference of two plans read into graphs (`old` already relocated into `now`'s realm when
 * their store dirs differ: then `relocated` is true and `oldSide.storeDir` still says where the
 * old plan came from).
 */
function diffPlans(oldSide, old, newSide, now, options) {
    const total = diffClosures(old.nodes(), now.nodes(), {
        inOld: (p) => old.has(p),
        inNew: (p) => now.has(p),
    });
    const { pairs, removed, added } = pairRoots(old.roots, now.roots);
    const roots = [
        ...pairs.map(([o, n]) => rootDiff(n.label, o, n, old, now)),
        ...removed.map((r) => ({ label: r.label, status: 'removed', old: r.drvPath })),
        ...added.map((r) => ({ label: r.label, status: 'added', new: r.drvPath })),
    ];
    const identical = total.derivations.added === 0 &&
        total.derivations.removed === 0 &&
        roots.every((r) => r.status === 'unchanged');
    return {
        schema: PLAN_DIFF_SCHEMA,
        old: oldSide,
        new: newSide,
        realm: { old: oldSide.storeDir, new: newSide.storeDir, relocated: options.relocated },
        identical,
        fields: fieldChanges(oldSide, newSide),
        total,
        roots,
        ...(options.drv !== undefined && { drv: options.drv }),
    };
}
/** Counts of a diff that has none (for summaries of an identical plan). */
const NO_CHANGES = Object.freeze(packages_emptyCounts());

;// CONCATENATED MODULE: ./src/core/closure.ts
// Closure order: each path after the paths it depends on, iterative, so chains of any length are fine.

/**
 * Orders `paths` so each comes after those it depends on, keeping the given order wherever it
 * already is one (an iterative depth-first post-order, so chains of any length are fine).
 * `dependencies(path)` may list anything: the path itself and paths outside `paths` are ignored.
 * `onCycle(path, dependency)` is called when two paths depend on each other, and must throw.
 */
function dependenciesFirst(paths, dependencies, onCycle) {
    const inSet = new Set(paths);
    const state = new Map();
    const order = [];
    for (const start of paths) {
        if (state.has(start))
            continue;
        const stack = [
            { path: start, deps: dependencies(start), next: 0 },
        ];
        state.set(start, 'active');
        while (stack.length > 0) {
            const top = stack[stack.length - 1];
            if (top.next < top.deps.length) {
                const dep = top.deps[top.next++];
                if (dep === top.path || !inSet.has(dep))
                    continue;
                const s = state.get(dep);
                if (s === 'done')
                    continue;
                if (s === 'active')
                    onCycle(top.path, dep);
                state.set(dep, 'active');
                stack.push({ path: dep, deps: dependencies(dep), next: 0 });
                continue;
            }
            stack.pop();
            state.set(top.path, 'done');
            order.push(top.path);
        }
    }
    return order;
}
/**
 * Sorts `paths` so every path comes after its references (those inside the set), keeping the
 * given order otherwise; throws a 'closure' error on a cycle between distinct paths.
 */
function dependencyOrder(paths, references) {
    return dependenciesFirst(paths, references, (path, ref) => {
        throw new errors_NixPlanError('closure', `reference cycle through '${ref}' and '${path}'`);
    });
}

;// CONCATENATED MODULE: ./src/core/relocate/checks.ts
// The refusals of relocation, as docs/relocation.md lists them: what cannot be relocated faithfully
// is refused by name, before any work where the index can tell (the self-check, the kinds, the
// closure), and as it is met otherwise (the environment, the references of a .drv).





/** Throws the 'relocate' error that says why an object cannot be relocated. */
function refuse(message) {
    throw new errors_NixPlanError('relocate', message);
}
/** Refuses what cannot be relocated faithfully, and says how the derivation names its outputs. */
function drvType(path, drv) {
    if (drv.outputs.some((o) => o.hash === 'impure'))
        refuseImpure(path);
    const { kind, problem } = classifyDerivation(drv);
    // A floating output has no path yet: one with a path is not what Nix writes.
    if (problem === 'mixed' || (kind === 'floating' && drv.outputs.some((o) => o.path !== '')))
        refuse(`cannot relocate ${path}: its outputs mix input-addressed, fixed and floating kinds`);
    return derivationKind(drv, path); // malformed (no outputs, a fixed one not alone) throws
}
const IMPURE_KEY = new TextEncoder().encode('__impure');
/**
 * Refuses a derivation with an `__impure` variable. Nix writes its outputs as impure, which the
 * index refuses before any work; this catches one written by hand, once its environment is read.
 */
function refuseImpureEnv(path, keys) {
    for (const key of keys)
        if (compareBytes(key, IMPURE_KEY) === 0)
            refuseImpure(path);
}
/** Refuses an impure derivation by name. */
function refuseImpure(path) {
    return refuse(`cannot relocate ${path}: it is an impure derivation (__impure), which has no fixed plan to relocate`);
}
/**
 * The kind `obj.ca`, verified by the caller, gives it; undefined when it cannot be its content
 * address. A source's path must follow from it (with its references and name) under `from`.
 */
function checkGivenContentAddress(obj, from) {
    const name = nameOf(obj.path);
    const { ca } = obj;
    const method = contentAddressMethod(ca);
    // A text address plays no part in relocating the file: its digest need not be read.
    if (method === 'text')
        return obj.contents === undefined && obj.readContents === undefined
            ? undefined
            : { kind: name.endsWith('.drv') ? 'drv' : 'text', ca };
    if (method === 'nar') {
        if (obj.narHash === undefined)
            return undefined;
        const address = { method, hash: { algo: 'sha256', bytes: obj.narHash } };
        if (ca !== formatContentAddress(address))
            return undefined;
        const others = obj.references.filter((r) => r !== obj.path);
        const self = others.length !== obj.references.length;
        return makeContentAddressedPath(name, address, from, others, self) === obj.path
            ? { kind: 'source', ca }
            : undefined;
    }
    // A flat or git-hashed file: its path follows from the address alone (no references).
    if ((method === 'flat' || method === 'git') && obj.contents !== undefined && obj.references.length === 0)
        return makeContentAddressedPath(name, parseContentAddress(ca), from) === obj.path
            ? { kind: 'source', ca }
            : undefined;
    return undefined;
}
/** Checks that `obj` is what its path says under `from`; returns its content address. */
function selfCheck(obj, from) {
    if (obj.kind !== 'source' && obj.contents === undefined && obj.readContents === undefined)
        refuseWithoutContents(obj);
    const contents = obj.ca === undefined ? bytesOf(obj) : undefined;
    const ca = obj.ca !== undefined
        ? checkGivenContentAddress({ ...obj, ca: obj.ca }, from)
        : identifyContentAddress({
            path: obj.path,
            references: obj.references,
            narHash: obj.narHash,
            file: contents === undefined ? undefined : { executable: false, contents },
        }, from);
    if (ca === undefined && obj.kind === 'source' && obj.narHash === undefined)
        refuseWithoutNarHash(obj);
    if (ca === undefined)
        refuse(`cannot relocate ${obj.path}: it is not content-addressed (its path does not follow from its ` +
            'contents, so it is a build output, e.g. brought in by builtins.storePath or ' +
            'import-from-derivation) or its contents do not match its path');
    if (ca.kind !== obj.kind)
        refuse(`cannot relocate ${obj.path}: it is given as a ${obj.kind} but its path says it is a ${ca.kind}`);
    return ca.ca;
}
/** The object's file bytes, when it has them (read now when the caller reads them). */
function bytesOf(obj) {
    return obj.contents ?? obj.readContents?.();
}
/** The file bytes of a drv or text, which it must have. */
function contentsOf(obj) {
    return bytesOf(obj) ?? refuseWithoutContents(obj);
}
/** Refuses a source given without the NAR hash it is checked and relocated by. */
function refuseWithoutNarHash(obj) {
    return refuse(`cannot relocate ${obj.path}: it is given as a source without its NAR hash, and its contents ` +
        'do not make it a flat fixed-output path; a recursive source is checked, and relocated, by its NAR hash');
}
/** Refuses a drv or text given without its contents. */
function refuseWithoutContents(obj) {
    return refuse(`cannot relocate ${obj.path}: a ${obj.kind} needs its contents`);
}
/** Refuses a source with references: native evaluation never makes one. */
function refuseSourceWithReferences(obj) {
    if (obj.kind === 'source' && obj.references.length > 0)
        refuse(`cannot relocate ${obj.path}: it is a source with references (${obj.references.join(', ')}); ` +
            'native evaluation could not have produced it');
}
/** Refuses a .drv whose references are not its input derivations and sources. */
function checkReferences(obj, drv) {
    if (!sameReferences(drv, obj.references))
        refuse(`cannot relocate ${obj.path}: its references are not its input derivations and sources`);
}
/** True when a .drv's references are exactly its input sources and input derivations. */
function sameReferences(drv, references) {
    const inputs = derivationReferences(drv);
    if (inputs.length === references.length && inputs.every((r, i) => r === references[i]))
        return true;
    // The caller's references may come in another order.
    const given = new Set(references);
    return given.size === inputs.length && inputs.every((r) => given.has(r));
}

;// CONCATENATED MODULE: ./src/core/relocate/names.ts
// Store path names that carry a store hash, and how native evaluation in another store dir names
// them. `builtins.path` and `builtins.filterSource` name a copy after the base name of what they
// copy (Nix's `addPath`, `path.baseName()`); for a store path that is `<hash>-<name>`, so the copy
// is `<hash2>-<hash>-<name>`, and `<hash>` is the copied path's hash in the store dir evaluation
// ran with. Relocation must give such a name the hash the copied path has in the target.





function names_refuse(message) {
    throw new errors_NixPlanError('relocate', message);
}
/** True when `name` starts with what Nix's `baseName` of a store path gives: a hash and a dash. */
function startsWithHash(name) {
    return (name.length > HASH_PART_LENGTH + 1 &&
        name.charCodeAt(HASH_PART_LENGTH) === 0x2d && // '-'
        isHashPart(name.slice(0, HASH_PART_LENGTH)));
}
/** The offset of the first hash of the closure anywhere in `name`, or -1. */
function knownHashIn(name, index) {
    for (let i = 0; i + HASH_PART_LENGTH <= name.length; i++) {
        const window = name.slice(i, i + HASH_PART_LENGTH);
        if (isHashPart(window) && index.ownerOf(window) !== undefined)
            return i;
    }
    return -1;
}
/** The path the `rule` way of adding an object with `content` under `name` gives in `storeDir`. */
function copyPath(rule, name, content, storeDir) {
    const { file } = content;
    switch (rule) {
        case 'source': {
            const narHash = content.narHash ??
                (file === undefined ? undefined : sha256(...regularFileNar(file.contents, file.executable)));
            return narHash === undefined ? undefined : makeSourcePath(name, narHash, storeDir);
        }
        case 'flat':
            return file === undefined
                ? undefined
                : makeFixedOutputPath(name, { algo: 'sha256', bytes: sha256(file.contents) }, 'flat', storeDir);
        case 'text':
            return file === undefined || file.executable
                ? undefined
                : makeTextPath(name, sha256(file.contents), [], storeDir);
    }
}
const RULES = ['source', 'flat', 'text'];
/** What the name rule may hash of an object: its NAR hash, and its bytes when it is one file. */
function namedContent(obj) {
    const contents = obj.kind === 'source' ? obj.contents : undefined;
    return {
        narHash: obj.narHash,
        file: contents === undefined ? undefined : { contents, executable: false },
    };
}
/**
 * How the name of `obj` (an object of the closure being relocated out of `from`) is made from
 * store hashes, checked against what the object holds. Refuses (a 'relocate' error naming the
 * object) a name that carries a store hash by a rule relocation cannot know: a hash of the
 * closure anywhere but at the start of the name (or of what follows an earlier hash), a hash of
 * the closure followed by anything but the name of the path it belongs to, a hash at the start
 * that belongs to no path of the closure and that no unfiltered copy of this object's bytes has
 * (a filtered copy, or an output built while evaluating that the plan does not carry), and any
 * store hash at the start of the name of a .drv or text file (only copies are named that way by
 * Nix itself: anything else computed its name from a path string).
 */
function planName(obj, content, from, index, names) {
    const { path } = obj;
    const name = nameOf(path);
    if (obj.kind !== 'source' && startsWithHash(name)) {
        const hash = name.slice(0, HASH_PART_LENGTH);
        const owner = index.ownerOf(hash);
        names_refuse(`cannot relocate ${path}: its name starts with the store hash ${hash}` +
            (owner === undefined ? '' : ` of ${owner}`) +
            ' (an expression computed the name from a path string), and only copies of store paths ' +
            '(builtins.path, builtins.filterSource) are renamed, so the name native evaluation gives it ' +
            'in the target store dir cannot be known');
    }
    const steps = [];
    let rest = name;
    while (startsWithHash(rest)) {
        const hash = rest.slice(0, HASH_PART_LENGTH);
        const after = rest.slice(HASH_PART_LENGTH + 1);
        const owner = index.ownerOf(hash);
        if (owner !== undefined) {
            if (nameOf(owner) !== after)
                names_refuse(`cannot relocate ${path}: its name holds the hash of ${owner} followed by '${after}', not by ` +
                    `that path's name, so how evaluation made the name cannot be known`);
            steps.push({ hash, owner, output: index.isOutput(owner) });
            return { name, steps };
        }
        const rule = RULES.find((r) => {
            const p = copyPath(r, after, content, from);
            return p !== undefined && hashPartOf(p) === hash;
        });
        if (rule === undefined)
            names_refuse(`cannot relocate ${path}: its name starts with the hash of ${from}/${rest}, a store path that is ` +
                'not in the plan (builtins.path or builtins.filterSource of a store path, or an output built ' +
                'while evaluating) and whose bytes this copy does not have (a filter changed them), so its ' +
                'hash in the target store dir cannot be known; give the copy a name (builtins.path { name = …; }) ' +
                `or ${includeAdvice(names, 'sources')} if it was built while evaluating`);
        steps.push({ hash, copied: rule });
        rest = after;
    }
    const at = knownHashIn(rest, index);
    if (at >= 0) {
        const hash = rest.slice(at, at + HASH_PART_LENGTH);
        names_refuse(`cannot relocate ${path}: its name holds the hash of ${index.ownerOf(hash)} inside it, made in a ` +
            'way relocation cannot know (a computation on a path string), so the name native evaluation ' +
            'gives it in the target store dir cannot be known');
    }
    return { name, steps };
}
/**
 * The name native evaluation in `to` gives an object named by `plan`: each hash replaced by the
 * one its path has in `to` (`newPath` of an owner; a copied path's recomputed from the same bytes
 * under its own new name). `{ waitFor }` when an owner is not relocated yet.
 */
function relocatedName(plan, content, to, newPath) {
    const { steps } = plan;
    if (steps.length === 0)
        return plan.name;
    // From the innermost hash out: each copy is named after the path it copied, in `to`.
    let cur;
    let i = steps.length - 1;
    const last = steps[i];
    if ('owner' in last) {
        const moved = newPath(last.owner);
        if (moved === undefined)
            return { waitFor: last.hash };
        cur = baseName(moved);
        i--;
    }
    else {
        let plain = plan.name;
        for (let k = 0; k < steps.length; k++)
            plain = plain.slice(HASH_PART_LENGTH + 1);
        cur = plain;
    }
    for (; i >= 0; i--) {
        const step = steps[i];
        if (!('copied' in step))
            throw new errors_NixPlanError('internal', `a name step of ${plan.name} is out of order`);
        const p = copyPath(step.copied, cur, content, to);
        if (p === undefined)
            throw new errors_NixPlanError('internal', `the copy rule of ${plan.name} lost its bytes`);
        cur = `${hashPartOf(p)}-${cur}`;
    }
    return cur;
}
/**
 * The hashes of paths outside the closure a plan's name carries (copied paths), each with the
 * hash that path has in `to`: what strings mentioning the name must be rewritten with too.
 */
function copiedHashes(plan, newName) {
    const out = [];
    for (let i = 0; i < plan.steps.length; i++) {
        const step = plan.steps[i];
        if ('copied' in step)
            out.push({
                from: step.hash,
                to: newName.slice(i * (HASH_PART_LENGTH + 1), i * (HASH_PART_LENGTH + 1) + HASH_PART_LENGTH),
            });
    }
    return out;
}

;// CONCATENATED MODULE: ./src/core/relocate/dynamic.ts
// Dynamic derivations (RFC 92): a derivation can depend on an output of a derivation that another
// derivation builds (`builtins.outputOf`). Its .drv is written DrvWithVersion("xp-dyn-drv", …),
// with the outputs used of each such input as a child map in its input list, and it mentions
// those outputs by placeholders: Nix's DownstreamPlaceholder, made from the producing
// derivation's path and the chain of output names. Relocation recomputes every placeholder from
// the producer's new path.




var C;
(function (C) {
    C[C["Quote"] = 34] = "Quote";
    C[C["LParen"] = 40] = "LParen";
    C[C["RParen"] = 41] = "RParen";
    C[C["Comma"] = 44] = "Comma";
    C[C["LBracket"] = 91] = "LBracket";
    C[C["RBracket"] = 93] = "RBracket";
})(C || (C = {}));
/** A reader of the child-map syntax, which holds only quoted output names (never escaped). */
class Reader {
    b;
    at = 0;
    constructor(b) {
        this.b = b;
    }
    fail(what) {
        throw new MalformedError('derivation', this.at, `dynamic outputs: ${what}`);
    }
    expect(c) {
        if (this.b[this.at] !== c)
            this.fail(`expected '${String.fromCharCode(c)}'`);
        this.at++;
    }
    peek() {
        return this.b[this.at];
    }
    string() {
        this.expect(C.Quote);
        const end = this.b.indexOf(C.Quote, this.at);
        if (end < 0)
            this.fail('an unterminated string');
        const s = Buffer.from(this.b.buffer, this.b.byteOffset + this.at, end - this.at).toString('latin1');
        this.at = end + 1;
        return s;
    }
    /** `[` item (`,` item)* `]`, or `[]`. */
    list(item) {
        this.expect(C.LBracket);
        const out = [];
        if (this.peek() === C.RBracket) {
            this.at++;
            return out;
        }
        for (;;) {
            out.push(item());
            if (this.peek() === C.Comma)
                this.at++;
            else
                break;
        }
        this.expect(C.RBracket);
        return out;
    }
    /** A node: `["o",…]`, or `(["o",…],[child,…])`. */
    node(name, depth) {
        if (depth > 64)
            this.fail('nested too deep');
        if (this.peek() === C.LBracket)
            return { name, outputs: this.list(() => this.string()), children: [] };
        this.expect(C.LParen);
        const outputs = this.list(() => this.string());
        this.expect(C.Comma);
        const children = this.children(depth + 1);
        this.expect(C.RParen);
        return { name, outputs, children };
    }
    /** `[("name",node),…]`. */
    children(depth) {
        return this.list(() => {
            this.expect(C.LParen);
            const name = this.string();
            this.expect(C.Comma);
            const n = this.node(name, depth);
            this.expect(C.RParen);
            return n;
        });
    }
}
/** Parses the child map of a dynamic input as a .drv writes it (`[("out",["out"]),…]`). */
function parseDynamicOutputs(bytes) {
    const r = new Reader(bytes);
    const out = r.children(1);
    if (r.at !== bytes.length)
        r.fail('bytes after the child map');
    return out;
}
/**
 * The hash of the placeholder Nix renders for output `output` of a derivation whose outputs are
 * not known before it is built (`DownstreamPlaceholder::unknownCaOutput`).
 */
function unknownOutputHash(drvPath, output) {
    return sha256(`nix-upstream-output:${hashPartOf(drvPath)}:${outputPathName(drvName(drvPath), output)}`);
}
/**
 * The hash of the placeholder for output `output` of the derivation a placeholder stands for
 * (`DownstreamPlaceholder::unknownDerivation`).
 */
function unknownDerivationOutputHash(placeholder, output) {
    return sha256(`nix-computed-output:${nix32Encode(foldHash(placeholder))}:${output}`);
}
/**
 * Every placeholder a derivation may mention for the dynamic outputs it uses of input `drvPath`
 * (the chains of output names in `children`), as their 52 nix32 characters (rendered with a
 * leading slash).
 */
function dynamicPlaceholders(drvPath, children) {
    const out = [];
    const walk = (parent, nodes) => {
        for (const n of nodes) {
            const self = unknownDerivationOutputHash(parent, n.name);
            for (const o of n.outputs)
                out.push(nix32Encode(unknownDerivationOutputHash(self, o)));
            walk(self, n.children);
        }
    };
    for (const n of children) {
        const self = unknownOutputHash(drvPath, n.name);
        for (const o of n.outputs)
            out.push(nix32Encode(unknownDerivationOutputHash(self, o)));
        walk(self, n.children);
    }
    return out;
}

;// CONCATENATED MODULE: ./src/core/relocate/drv.ts
// The .drv path of relocation: a derivation whose dependencies are relocated gets its inputs
// mapped, its strings rewritten, its fixed outputs recomputed and (input-addressed) its output
// paths filled in under the new store dir; then its own path follows from its bytes.




/** Relocates one derivation whose dependencies are all relocated: parsed whole, serialised again. */
function relocateDrv(obj, drv, type, cx) {
    cx.onDerivation?.(obj, drv);
    const name = drvName(obj.path);
    checkReferences(obj, drv);
    refuseImpureEnv(obj.path, drv.env.map((e) => e.key));
    if (cx.hasherA !== undefined) {
        if (type !== 'input-addressed')
            cx.hasherA.record(obj.path, drv);
        else
            checkFilledInA(obj, drv, cx.hasherA.fillOutputs(drv, name), cx.hasherA);
    }
    const outputs = fixOutputs(drv.outputs, type, name, cx);
    // Input-addressed: the own output paths in env are what is being computed: mask them first.
    const masked = type === 'input-addressed';
    const env = drv.env
        .map((e) => ({
        key: cx.rewrite(e.key),
        value: masked && outputNamed(drv.outputs, e.key) !== undefined ? new Uint8Array(0) : cx.rewrite(e.value),
    }))
        .sort((a, b) => compareBytes(a.key, b.key));
    const relocated = {
        ...relocatedHead(drv, outputs, masked, cx),
        builder: cx.rewrite(drv.builder),
        args: drv.args.map((a) => cx.rewrite(a)),
        env,
    };
    return completeDrv(obj, drv.outputs, relocated, 
    // Output paths, the bytes with them filled in and the modulo hash, from one serialisation.
    masked ? cx.hasher.fillOutputs(relocated, name) : serialiseDerivation(relocated), cx);
}
/**
 * `relocateDrv` without unescaping the strings after the system and escaping them again: the
 * builder, arguments and environment are rewritten as written and spliced after the new head
 * (what `rewrite` finds in escaped strings is what it finds in their text). Undefined, having
 * done nothing, when an environment key mentions a store path, as rewriting it could change the
 * order of the environment: relocateDrv sorts it again.
 */
function spliceDrv(obj, bytes, type, cx) {
    const spans = { outputPaths: [], inputDrvsStart: 0, inputDrvsEnd: 0 };
    const { head, tail } = parseDerivationSpans(bytes, spans);
    cx.onDerivation?.(obj, head);
    refuseImpureEnv(obj.path, tail.keys);
    for (const key of tail.keys)
        if (key.length >= HASH_PART_LENGTH && cx.mentionsAny(key))
            return undefined;
    const name = drvName(obj.path);
    checkReferences(obj, head);
    const outputs = fixOutputs(head.outputs, type, name, cx);
    const masked = type === 'input-addressed';
    // The tail as written, rewritten; masked, it is cut around the values of the env variables
    // named after outputs, which are left empty (their paths are filled in later).
    const pieces = [];
    const holeOutputs = [];
    let r = tail.start;
    // Plain loops: a closure per environment variable added up to tens of MB of garbage.
    if (masked)
        for (let i = 0; i < tail.keys.length; i++) {
            const o = outputNamed(head.outputs, tail.keys[i]);
            if (o === undefined)
                continue;
            pieces.push(cx.rewrite(bytes.subarray(r, tail.values[2 * i]), true));
            holeOutputs.push(o.name);
            r = tail.values[2 * i + 1];
        }
    pieces.push(cx.rewrite(bytes.subarray(r), true));
    if (cx.hasherA !== undefined)
        checkSplicedInA(obj, bytes, head, tail, spans, masked, cx.hasherA);
    const relocated = relocatedHead(head, outputs, masked, cx);
    if (!masked)
        return completeDrv(obj, head.outputs, relocated, spliceDerivation(relocated, pieces), cx);
    const layout = { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
    const maskedBytes = spliceDerivation(relocated, pieces, layout);
    const maskedDrv = {
        bytes: maskedBytes,
        layout,
        envHoles: holeOutputs.map((output, i) => ({ at: layout.envValues[i], output })),
    };
    return completeDrv(obj, head.outputs, relocated, cx.hasher.fillMasked(maskedDrv, relocated, name), cx);
}
/**
 * The check of `relocateDrv`'s, from the spans `spliceDrv` has: the original masked around its
 * output paths and the variables named after its outputs, its outputs filled in as the hasher in
 * A gives them, must be the original bytes. Records its modulo hash in A for its dependents.
 */
function checkSplicedInA(obj, bytes, head, tail, spans, masked, hasherA) {
    if (!masked) {
        hasherA.record(obj.path, head);
        return;
    }
    const holes = [];
    for (let i = 0; i < tail.keys.length; i++) {
        const o = outputNamed(head.outputs, tail.keys[i]);
        if (o !== undefined)
            holes.push({ start: tail.values[2 * i], end: tail.values[2 * i + 1], output: o.name });
    }
    // Checked on the .drv's own bytes; written out masked and filled in only to say what is wrong.
    const name = drvName(obj.path);
    const checked = hasherA.checkFilled(bytes, spans, holes, head, name);
    if (checked !== undefined) {
        hasherA.record(obj.path, head, checked.hash);
        return;
    }
    const pieces = [];
    let r = tail.start;
    for (const h of holes) {
        pieces.push(bytes.subarray(r, h.start));
        r = h.end;
    }
    pieces.push(bytes.subarray(r));
    const layout = { inputDrvsStart: 0, inputDrvsEnd: 0, outputPaths: [], envValues: [] };
    const maskedHead = { ...head, outputs: head.outputs.map((o) => ({ ...o, path: '' })) };
    const maskedBytes = spliceDerivation(maskedHead, pieces, layout);
    const maskedDrv = {
        bytes: maskedBytes,
        layout,
        envHoles: holes.map((h, i) => ({ at: layout.envValues[i], output: h.output })),
    };
    checkFilledInA(obj, head, hasherA.fillMasked(maskedDrv, head, name), hasherA, bytes);
}
/**
 * Refuses an input-addressed .drv whose output paths (or the variables named after them) are not
 * what its contents give in A, as Nix refuses it on import: relocation recomputes them in B, so
 * relocating it there and back would not give it back. Records its modulo hash in A.
 */
function checkFilledInA(obj, drv, filled, hasherA, original = bytesOf(obj)) {
    if (compareBytes(filled.bytes, original) !== 0) {
        const i = drv.outputs.findIndex((o, k) => o.path !== filled.paths[k]);
        const wrong = drv.outputs[i];
        refuse(`cannot relocate ${obj.path}: ` +
            (wrong !== undefined
                ? `its output ${wrong.name} is ${wrong.path === '' ? 'empty' : wrong.path}, but its contents give ${filled.paths[i] || 'none before it is built'}`
                : 'the variables named after its outputs do not hold their paths') +
            ' (Nix refuses it on import), so relocating it there and back would not give it back');
    }
    hasherA.record(obj.path, drv, filled.hash);
}
/**
 * The outputs of a relocated .drv before its strings are rewritten: a fixed output's path
 * follows from its hash alone, so it is known (and recorded) now; other paths are kept.
 */
function fixOutputs(outputs, type, name, cx) {
    const copy = outputs.map((o) => ({ ...o }));
    if (type !== 'fixed')
        return copy;
    const paths = cx.hasher.fixedOutputPaths({ outputs: copy }, name);
    for (const o of copy) {
        const p = paths.get(o.name);
        cx.setHash(o.path, p);
        o.path = p;
    }
    return copy;
}
/** Outputs (masked: with empty paths), inputs mapped and sorted, and the system rewritten. */
function relocatedHead(drv, outputs, masked, cx) {
    return {
        version: drv.version,
        outputs: masked ? outputs.map((o) => ({ ...o, path: '' })) : outputs,
        inputDrvs: drv.inputDrvs
            // Output names (and a dynamic input's child map of them) are read, never changed.
            .map((i) => ({ ...i, path: cx.mapPath(i.path) }))
            .sort((a, b) => compareStrings(a.path, b.path)),
        inputSrcs: drv.inputSrcs.map(cx.mapPath).sort(compareStrings),
        system: cx.rewrite(drv.system),
    };
}
/**
 * The relocated .drv from its written form: the final bytes, or (input-addressed) the masked
 * form with its outputs filled in, whose paths are recorded against the original ones.
 */
function completeDrv(obj, original, relocated, written, cx) {
    const name = drvName(obj.path);
    let contents;
    let hash;
    if (written instanceof Uint8Array)
        contents = written;
    else {
        contents = written.bytes;
        hash = written.hash;
        for (let i = 0; i < original.length; i++) {
            const o = original[i];
            const p = written.paths[i] ?? '';
            if ((o.path === '') !== (p === ''))
                refuse(`cannot relocate ${obj.path}: output ${o.name} is deferred in one store dir and not the other`);
            if (o.path !== '')
                cx.setHash(o.path, p);
        }
    }
    const references = derivationReferences(relocated);
    const path = computeDrvPath(cx.to, name, contents, references);
    cx.hasher.record(path, relocated, hash);
    return { oldPath: obj.path, path, kind: 'drv', references, contents };
}

;// CONCATENATED MODULE: ./src/core/relocate/tokens.ts
// The rewriter's table of known tokens (store hashes, placeholder hashes): fixed-length nix32
// strings found in bytes by their first six digits, each with the value that replaces it.


/** nix32 digit of each byte, -1 for bytes outside the alphabet. */
const tokens_DIGIT = new Int8Array(256).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++)
    tokens_DIGIT[NIX32_ALPHABET.charCodeAt(i)] = i;
/** A 30-bit key from the first six nix32 digits at `p` (the caller has checked they are digits). */
function keyAt(b, p) {
    return (((tokens_DIGIT[b[p]] << 25) |
        (tokens_DIGIT[b[p + 1]] << 20) |
        (tokens_DIGIT[b[p + 2]] << 15) |
        (tokens_DIGIT[b[p + 3]] << 10) |
        (tokens_DIGIT[b[p + 4]] << 5) |
        tokens_DIGIT[b[p + 5]]) >>>
        0);
}
function checkNix32(s, length, what) {
    let ok = s.length === length;
    for (let i = 0; ok && i < length; i++)
        ok = (tokens_DIGIT[s.charCodeAt(i) & 0xff] ?? -1) >= 0 && s.charCodeAt(i) < 256;
    if (!ok)
        throw new errors_NixPlanError('internal', `${what} '${s}' is not ${length} nix32 characters`);
}
/**
 * A table of fixed-length nix32 tokens (old → new): an open-addressing hash table keyed by the
 * 30 bits of their first six digits (random, so the low bits index well), each hit confirmed byte
 * by byte. New values may be set after the old ones are declared.
 */
class TokenTable {
    length;
    what;
    slots = new Int32Array(1024); // id + 1, 0 when empty
    keys = new Int32Array(1024);
    old = new Uint8Array(0);
    repl = new Uint8Array(0);
    hasRepl = new Uint8Array(0);
    /** A token's bytes, to look it up in the table by (no map of strings: it is asked per path). */
    probe;
    strings = [];
    constructor(length, what) {
        this.length = length;
        this.what = what;
        this.probe = new Uint8Array(length);
    }
    get size() {
        return this.strings.length;
    }
    declare(token) {
        const known = this.idOf(token);
        if (known >= 0)
            return known;
        checkNix32(token, this.length, this.what);
        const id = this.strings.length;
        const n = this.length;
        if (id >= this.hasRepl.length)
            this.grow(Math.max(64, this.hasRepl.length * 2));
        if ((id + 1) * 4 > this.slots.length)
            this.rehash(this.slots.length * 2);
        const old = this.old;
        for (let k = 0, base = id * n; k < n; k++)
            old[base + k] = token.charCodeAt(k);
        this.strings.push(token);
        this.insert(id);
        return id;
    }
    /** The id of `token`, or -1 when it is not declared (or not a token at all). */
    idOf(token) {
        const n = this.length;
        if (token.length !== n)
            return -1;
        const probe = this.probe;
        for (let k = 0; k < n; k++) {
            const c = token.charCodeAt(k);
            if (c > 0xff || tokens_DIGIT[c] < 0)
                return -1;
            probe[k] = c;
        }
        return this.find(probe, 0);
    }
    /** Sets the new value of `token` (declaring it if needed); a second, different one is refused. */
    set(token, replacement) {
        const id = this.declare(token);
        const n = this.length;
        const repl = this.repl;
        const base = id * n;
        if (this.hasRepl[id] === 1) {
            let same = replacement.length === n;
            for (let k = 0; same && k < n; k++)
                same = repl[base + k] === replacement.charCodeAt(k);
            if (!same)
                throw new errors_NixPlanError('internal', `${this.what} ${token} would be replaced by two different values`);
            return;
        }
        checkNix32(replacement, n, this.what);
        for (let k = 0; k < n; k++)
            repl[base + k] = replacement.charCodeAt(k);
        this.hasRepl[id] = 1;
    }
    /** True when token `id` has its new value. */
    ready(id) {
        return this.hasRepl[id] === 1;
    }
    /** Writes the replacement of token `id` into `out` at `w`. */
    write(id, out, w) {
        if (this.hasRepl[id] !== 1)
            throw new errors_NixPlanError('internal', `relocation rewrote a mention of ${this.strings[id]} before its new hash was known`);
        const n = this.length;
        const repl = this.repl;
        for (let k = 0, base = id * n; k < n; k++)
            out[w + k] = repl[base + k];
    }
    /** The id of the token at `b[p…]` (whose first six bytes are digits), or -1. */
    find(b, p) {
        const key = keyAt(b, p);
        const mask = this.slots.length - 1;
        const n = this.length;
        const old = this.old;
        for (let slot = key & mask;; slot = (slot + 1) & mask) {
            const v = this.slots[slot];
            if (v === 0)
                return -1;
            if (this.keys[slot] !== key)
                continue;
            const id = v - 1;
            const base = id * n;
            let k = 6; // the key already matched the first six digits
            while (k < n && old[base + k] === b[p + k])
                k++;
            if (k === n)
                return id;
        }
    }
    insert(id) {
        const key = keyAt(this.old, id * this.length);
        const mask = this.slots.length - 1;
        let slot = key & mask;
        while (this.slots[slot] !== 0)
            slot = (slot + 1) & mask;
        this.slots[slot] = id + 1;
        this.keys[slot] = key;
    }
    grow(capacity) {
        const n = this.length;
        const o = new Uint8Array(capacity * n);
        o.set(this.old);
        this.old = o;
        const r = new Uint8Array(capacity * n);
        r.set(this.repl);
        this.repl = r;
        const h = new Uint8Array(capacity);
        h.set(this.hasRepl);
        this.hasRepl = h;
    }
    rehash(size) {
        this.slots = new Int32Array(size);
        this.keys = new Int32Array(size);
        for (let id = 0; id < this.strings.length; id++)
            this.insert(id);
    }
}

;// CONCATENATED MODULE: ./src/core/relocate/rewrite.ts
// One-pass byte rewriter for relocation: known store hashes of realm A become those of realm B.



/** Length of a rendered placeholder's hash (sha256 in nix32), without its leading slash. */
const PLACEHOLDER_HASH_LENGTH = 52;
const H = HASH_PART_LENGTH;
const P = PLACEHOLDER_HASH_LENGTH;
const SLASH = 0x2f;
const rewrite_BACKSLASH = 0x5c;
/** Bytes that may continue a store dir component: a match of A followed by one is not A itself. */
const DIR_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-')
    DIR_CHAR[c.charCodeAt(0)] = 1;
// Match kinds, recorded in position order.
const PATH = 0; // `A/<known hash>`
const BARE = 1; // a known hash anywhere else
const PLACEHOLDER = 2; // a known placeholder hash
const UNKNOWN = 3; // `A/<32 nix32 chars>` that is not known
const NAME = 4; // a known hash right after `A/<hash>-` (or after such a one): part of a path's name
const DASH = 0x2d;
function asciiBytes(s) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++)
        out[i] = s.charCodeAt(i);
    return out;
}
/**
 * Rewrites byte strings from store dir A to store dir B in one pass: `A/<known old hash>` becomes
 * `B/<new hash>`, a known old hash anywhere else becomes the new one (counted: it was computed from
 * a path string), and known placeholder hashes are swapped. Only known hashes at exact positions
 * are replaced, so A being a prefix of B, or dirs of different lengths, cannot cause collisions.
 */
class StoreRewriter {
    from;
    to;
    hashes = new TokenTable(H, 'store hash');
    placeholderTable = new TokenTable(P, 'placeholder hash');
    fromBytes;
    toBytes;
    fromSkip;
    // Matches of the last scan as (position, kind, token id) triples, reused between calls.
    m = new Int32Array(3 * 256);
    /** `from` and `to` are store dirs (A and B), without trailing slashes. */
    constructor(from, to) {
        this.from = from;
        this.to = to;
        this.fromBytes = asciiBytes(from);
        this.toBytes = asciiBytes(to);
        // Horspool's shifts for A: how far the search may move on, by the byte under A's last one.
        const lenA = this.fromBytes.length;
        this.fromSkip = new Uint8Array(256).fill(Math.min(lenA, 255));
        for (let k = 0; k < lenA - 1; k++)
            this.fromSkip[this.fromBytes[k]] = Math.min(lenA - 1 - k, 255);
    }
    /** Makes `oldHash` (32 nix32 characters) known, so that scans report it; its new value may come later. */
    declare(oldHash) {
        this.hashes.declare(oldHash);
    }
    /**
     * Sets the new hash of `oldHash` (declaring it if needed). Setting it again to the same value
     * does nothing; to another value is an internal error (one path cannot relocate to two).
     */
    set(oldHash, newHash) {
        this.hashes.set(oldHash, newHash);
    }
    /** Makes a placeholder known (its 52 nix32 characters, without the leading slash). */
    declarePlaceholder(oldHash) {
        this.placeholderTable.declare(oldHash);
    }
    /** Sets the new value of a placeholder (52 nix32 characters each, without the leading slash), as `set`. */
    setPlaceholder(oldHash, newHash) {
        this.placeholderTable.set(oldHash, newHash);
    }
    /**
     * Finds what `bytes` mentions without replacing anything (declared hashes need no new value).
     * `escaped`: as `rewrite`.
     */
    mentions(bytes, options = {}) {
        const count = this.scan(bytes, options.escaped === true);
        const hashes = new Set();
        const placeholders = new Set();
        const unknownPaths = [];
        for (let m = 0; m < count; m++) {
            const kind = this.m[3 * m + 1];
            const id = this.m[3 * m + 2];
            if (kind === PATH || kind === BARE || kind === NAME)
                hashes.add(this.hashes.strings[id]);
            else if (kind === PLACEHOLDER)
                placeholders.add(this.placeholderTable.strings[id]);
            else
                unknownPaths.push(this.unknownText(bytes, this.m[3 * m]));
        }
        return {
            hashes: [...hashes],
            placeholders: [...placeholders],
            unknownPaths,
            bareStoreDirs: this.countBareStoreDirs(bytes),
        };
    }
    /**
     * Rewrites `bytes`. When a known hash or placeholder found has no new value yet, nothing is
     * replaced and `waiting` names them (so a caller can relocate what they belong to first).
     * `countBareStoreDirs: false` skips counting bare A (when the caller counts them itself).
     * `escaped`: the bytes are strings as a .drv writes them (`\n` `\r` `\t` `\"` `\\` escaped),
     * and are rewritten exactly as their unescaped text would be: the letter of a `\n` or `\r`
     * (both nix32 digits) does not count as part of the digits after it.
     */
    rewrite(bytes, options = {}) {
        const count = this.scan(bytes, options.escaped === true);
        const bareStoreDirs = options.countBareStoreDirs === false ? 0 : this.countBareStoreDirs(bytes);
        const matches = this.m;
        let storePaths = 0;
        let bareHashes = 0;
        let placeholders = 0;
        const unknownPaths = [];
        let delta = 0;
        const dirDelta = this.toBytes.length - this.fromBytes.length;
        let waiting = false;
        for (let m = 0; m < count; m++) {
            const kind = matches[3 * m + 1];
            const id = matches[3 * m + 2];
            if (kind === PATH) {
                storePaths++;
                delta += dirDelta;
            }
            else if (kind === BARE)
                bareHashes++;
            else if (kind === PLACEHOLDER)
                placeholders++;
            else if (kind === UNKNOWN)
                unknownPaths.push(this.unknownText(bytes, matches[3 * m]));
            // NAME: part of a path already counted.
            if (kind !== UNKNOWN && !(kind === PLACEHOLDER ? this.placeholderTable : this.hashes).ready(id))
                waiting = true;
        }
        if (waiting)
            return {
                bytes,
                storePaths: 0,
                bareHashes: 0,
                placeholders: 0,
                unknownPaths,
                bareStoreDirs,
                waiting: this.waitingFor(count),
            };
        if (storePaths + bareHashes + placeholders === 0)
            return { bytes, storePaths, bareHashes, placeholders, unknownPaths, bareStoreDirs };
        const out = allocBytes(bytes.length + delta); // every byte is written below
        const lenA = this.fromBytes.length;
        let r = 0;
        let w = 0;
        const to = this.toBytes;
        for (let m = 0; m < count; m++) {
            const kind = matches[3 * m + 1];
            if (kind === UNKNOWN)
                continue;
            const pos = matches[3 * m];
            const id = matches[3 * m + 2];
            const start = kind === PATH ? pos - lenA - 1 : pos;
            w = copy(bytes, r, start, out, w);
            if (kind === PLACEHOLDER) {
                this.placeholderTable.write(id, out, w);
                w += P;
                r = pos + P;
                continue;
            }
            if (kind === PATH) {
                for (let k = 0; k < to.length; k++)
                    out[w++] = to[k];
                out[w++] = SLASH;
            }
            this.hashes.write(id, out, w);
            w += H;
            r = pos + H;
        }
        copy(bytes, r, bytes.length, out, w);
        return { bytes: out, storePaths, bareHashes, placeholders, unknownPaths, bareStoreDirs };
    }
    /** The known tokens among the last scan's `count` matches that have no new value yet. */
    waitingFor(count) {
        const hashes = new Set();
        const placeholders = new Set();
        for (let m = 0; m < count; m++) {
            const kind = this.m[3 * m + 1];
            const id = this.m[3 * m + 2];
            if (kind === PLACEHOLDER) {
                if (!this.placeholderTable.ready(id))
                    placeholders.add(this.placeholderTable.strings[id]);
            }
            else if (kind !== UNKNOWN && !this.hashes.ready(id))
                hashes.add(this.hashes.strings[id]);
        }
        return { hashes: [...hashes], placeholders: [...placeholders] };
    }
    unknownText(bytes, pos) {
        return this.from + '/' + Buffer.from(bytes.buffer, bytes.byteOffset + pos, H).toString('latin1');
    }
    /** True when `A/` ends right before `p`. */
    fromSlashBefore(b, p) {
        const a = this.fromBytes;
        const start = p - 1 - a.length;
        if (start < 0 || b[p - 1] !== SLASH)
            return false;
        for (let k = 0; k < a.length; k++)
            if (b[start + k] !== a[k])
                return false;
        return true;
    }
    /**
     * The single scan: finds runs of at least 32 nix32 digits (the only places a hash can be) and
     * looks up each 32-digit window in them; records matches in position order, returns their count.
     * `escaped`: a run that starts with the letter of an escape starts after it (unescaped, the
     * letter is a control byte, which ends a run).
     */
    scan(b, escaped) {
        const n = b.length;
        let count = 0;
        // Each run of 32+ digits yields at most len/32 + 2 matches; grow before a run, never inside.
        let m = this.m;
        const hashes = this.hashes;
        const haveHashes = hashes.size > 0;
        const placeholders = this.placeholderTable;
        const havePlaceholders = placeholders.size > 0;
        // Where the last path (or hash in a path's name) ended: a known hash right after it and a
        // dash is part of that path's name (`A/<hash>-<hash>-name`, a copy of a store path).
        let pathEnd = -2;
        // Invariant: i is 0 or b[i - 1] is not a nix32 digit.
        let i = 0;
        while (i + H <= n) {
            // No run of 32 digits can start in [i, i + 31] unless b[i + 31] is a digit.
            if (tokens_DIGIT[b[i + H - 1]] < 0) {
                i += H;
                continue;
            }
            let s = i + H - 1;
            while (s > i && tokens_DIGIT[b[s - 1]] >= 0)
                s--;
            let e = i + H; // [s, i + 31] are digits
            while (e < n && tokens_DIGIT[b[e]] >= 0)
                e++;
            i = e + 1;
            if (escaped && s > 0 && b[s - 1] === rewrite_BACKSLASH && escapeStartsAt(b, s - 1))
                s++;
            if (e - s < H)
                continue;
            // A run [s, e) of at least 32 digits.
            const need = 3 * (count + Math.floor((e - s) / H) + 2);
            if (need > m.length) {
                const grown = new Int32Array(Math.max(need, m.length * 2));
                grown.set(m);
                this.m = m = grown;
            }
            let p = s;
            if (havePlaceholders && e - s >= P) {
                const id = placeholders.find(b, s);
                if (id >= 0) {
                    m[3 * count] = s;
                    m[3 * count + 1] = PLACEHOLDER;
                    m[3 * count++ + 2] = id;
                    p = s + P;
                }
            }
            const isPath = p === s && this.fromSlashBefore(b, s);
            let pathMatched = false;
            if (haveHashes) {
                while (p + H <= e) {
                    const id = hashes.find(b, p);
                    if (id < 0) {
                        p++;
                        continue;
                    }
                    const kind = p === s && isPath ? PATH : p === s && pathEnd === s - 1 && b[s - 1] === DASH ? NAME : BARE;
                    if (kind === PATH)
                        pathMatched = true;
                    if (kind === PATH || kind === NAME)
                        pathEnd = p + H;
                    m[3 * count] = p;
                    m[3 * count + 1] = kind;
                    m[3 * count++ + 2] = id;
                    p += H;
                }
            }
            if (isPath && !pathMatched) {
                m[3 * count] = s;
                m[3 * count + 1] = UNKNOWN;
                m[3 * count++ + 2] = -1;
            }
        }
        return count;
    }
    /** Occurrences of A that end a path component and are not `A/<32 nix32 digits>`. */
    countBareStoreDirs(bytes) {
        // A Horspool search over the bytes: a .drv mentions A tens of times, and this skips most of
        // its bytes without making a string of each .drv (or a call per occurrence) to search in.
        const a = this.fromBytes;
        const lenA = a.length;
        const lastA = a[lenA - 1];
        const skip = this.fromSkip;
        let count = 0;
        for (let i = lenA - 1; i < bytes.length; i += skip[bytes[i]]) {
            if (bytes[i] !== lastA)
                continue;
            let k = 1;
            while (k < lenA && bytes[i - k] === a[lenA - 1 - k])
                k++;
            if (k < lenA)
                continue;
            const after = i + 1;
            if (after < bytes.length) {
                const c = bytes[after];
                if (DIR_CHAR[c] === 1)
                    continue; // a longer component, not A
                if (c === SLASH && isRun(bytes, after + 1, H))
                    continue; // a path, handled by the scan
            }
            count++;
        }
        return count;
    }
}
/**
 * True when the backslash at `k` starts an escape in an escaped string: it is the last of an odd
 * number of backslashes in a row (`\\` is one escaped backslash).
 */
function escapeStartsAt(b, k) {
    let j = k;
    while (j > 0 && b[j - 1] === rewrite_BACKSLASH)
        j--;
    return (k - j) % 2 === 0;
}
function isRun(b, p, len) {
    if (p + len > b.length)
        return false;
    for (let k = 0; k < len; k++)
        if (tokens_DIGIT[b[p + k]] < 0)
            return false;
    return true;
}
/** Copies `src[from, to)` to `dst` at `w`; short segments by hand, which beats `set` for them. */
function copy(src, from, to, dst, w) {
    const len = to - from;
    if (len > 64) {
        dst.set(src.subarray(from, to), w);
        return w + len;
    }
    for (let k = from; k < to; k++)
        dst[w++] = src[k];
    return w;
}
/**
 * One-shot rewrite with a map of old hash → new hash (32 nix32 characters each) from store dir
 * `from` to `to`. For many strings, build one `StoreRewriter` and reuse it.
 */
function rewriteStoreHashes(bytes, hashes, from, to) {
    const rw = new StoreRewriter(from, to);
    for (const [o, n] of hashes)
        rw.set(o, n);
    return rw.rewrite(bytes);
}

;// CONCATENATED MODULE: ./src/core/relocate/relocator.ts
// The relocator: the state of one relocation (the rewriter's known hashes and their new values,
// the hasher of relocated derivations, the report) and the relocation of one object of each kind.










/**
 * Thrown (and caught) while relocating an object whose strings mention hashes or placeholders
 * whose new values are not known yet: the objects they belong to are relocated first.
 */
class Waiting extends Error {
    hashes;
    placeholders;
    constructor(hashes, placeholders) {
        super('waiting for mentioned objects to be relocated first');
        this.hashes = hashes;
        this.placeholders = placeholders;
    }
}
/**
 * Path of a source under `to`: the same content address, a different store dir, and its name as
 * native evaluation in `to` gives it (`name`, when it carries store hashes).
 */
function relocatedSourcePath(obj, ca, to, name = nameOf(obj.path)) {
    // The self-check found the source's path from this address (a recursive one from its NAR hash).
    return makeContentAddressedPath(name, parseContentAddress(ca), to);
}
/** The state of one relocation: known hashes and their new values, the hasher, the report. */
class Relocator {
    from;
    to;
    options;
    relocation;
    rewriter;
    hasher;
    hasherA;
    /** For each .drv whose outputs build derivations used by others: the child maps they use. */
    dynamicUses = new Map();
    cx;
    /** The derivation whose output has hash `hash` (set when the closure is indexed). */
    ownerDrvOf = () => undefined;
    /** The object being relocated, and what its rewrites replaced so far. */
    current = '';
    rewritten = { hashes: 0, bare: 0 };
    constructor(from, to, options) {
        this.from = from;
        this.to = to;
        this.options = options;
        for (const [role, dir] of [
            ['target', to],
            ['source', from],
        ]) {
            const problem = storeDirProblem(dir);
            if (problem !== undefined)
                throw new errors_NixPlanError('realm', `invalid ${role} store directory '${dir}': ${problem}`);
        }
        this.relocation = {
            objects: [],
            pathMap: new Map(),
            report: {
                objects: { drv: 0, text: 0, source: 0 },
                hashesRewritten: 0,
                bareHashRewrites: 0,
                bareStoreDirMentions: [],
                warnings: [],
            },
        };
        this.rewriter = new StoreRewriter(from, to);
        // Each relocated derivation's modulo hash is recorded as it is made, so none is looked up;
        // and so is each original's in A, as it is checked.
        this.hasher = new DerivationHasher(to, (p) => {
            throw new errors_NixPlanError('internal', `relocated derivation ${p} is not known yet`);
        });
        this.hasherA = new DerivationHasher(from, (p) => {
            throw new errors_NixPlanError('internal', `derivation ${p} was not checked before its dependents`);
        });
        this.cx = {
            from,
            to,
            hasher: this.hasher,
            mapPath: (p) => this.mapPath(p),
            setHash: (o, n) => this.setHash(o, n),
            rewrite: (bytes, escaped) => this.rewrite(bytes, escaped),
            mentionsAny: (bytes) => {
                const m = this.rewriter.mentions(bytes);
                return m.hashes.length + m.placeholders.length + m.unknownPaths.length > 0;
            },
            onDerivation: options.onDerivation,
            hasherA: options.outputsChecked === true ? undefined : this.hasherA,
        };
    }
    setHash(oldPath, newPath) {
        this.relocation.pathMap.set(oldPath, newPath);
        // Refuses (internal) a second, different new hash for the same old one.
        this.rewriter.set(hashPartOf(oldPath), hashPartOf(newPath));
    }
    mapPath(p) {
        const n = this.relocation.pathMap.get(p);
        if (n === undefined)
            throw new errors_NixPlanError('internal', `${p} was not relocated before its dependents`);
        return n;
    }
    /** Rewrites a string of the object being relocated; throws Waiting when it must wait. */
    rewrite(bytes, escaped = false) {
        if (bytes.length < 32)
            return bytes; // too short to hold a hash: skip the call
        const r = this.rewriter.rewrite(bytes, { countBareStoreDirs: false, escaped });
        if (r.unknownPaths.length > 0)
            refuse(`cannot relocate ${this.current}: it mentions ${r.unknownPaths[0]}, which is outside the ` +
                'closure (neither an object in it nor an output of a derivation in it), so its new ' +
                'path cannot be known; include it in the plan');
        if (r.waiting !== undefined)
            throw new Waiting(r.waiting.hashes, r.waiting.placeholders);
        // Counted once the object is relocated: it may have to wait and be relocated again.
        this.rewritten.hashes += r.storePaths + r.placeholders;
        this.rewritten.bare += r.bareHashes;
        return r.bytes;
    }
    /**
     * Refuses a copy of a build output (import from derivation) whose bytes mention A, or may:
     * native evaluation in B builds that output again, and what it builds there mentions B instead.
     */
    checkCopyOfOutput(obj, output) {
        const file = obj.contents;
        const mentions = file === undefined
            ? obj.mentionsStoreDir
            : Buffer.from(file.buffer, file.byteOffset, file.byteLength).includes(this.from);
        if (mentions === false)
            return;
        const drv = this.ownerDrvOf(hashPartOf(output)) ?? 'a derivation of the plan';
        refuse(`cannot relocate ${obj.path}: it is a copy of ${output}, an output of ${drv} built while evaluating, ` +
            (mentions === true
                ? `and its bytes mention ${this.from}: `
                : `and whether its bytes mention ${this.from} is not known: `) +
            `native evaluation in ${this.to} would build that output again and copy what it builds there`);
    }
    /**
     * Checks that a .drv can be relocated and makes its output hashes (or the placeholders of its
     * deferred outputs) known, telling `owner` of each.
     */
    declareDrv(obj, owner) {
        const parsed = parseDerivationOutputs(contentsOf(obj));
        const type = drvType(obj.path, parsed);
        for (const o of parsed.outputs) {
            if (o.path !== '') {
                const h = hashPartOf(o.path);
                owner.output(h, o.path);
                this.rewriter.declare(h);
            }
            else {
                // A deferred output: dependents mention it by a placeholder made from this drv's path.
                const p = downstreamPlaceholder(obj.path, o.name);
                owner.placeholder(p);
                this.rewriter.declarePlaceholder(p);
            }
        }
        if (parsed.version !== undefined)
            this.declareDynamicInputs(contentsOf(obj), owner);
        // Only what ordering needs is kept: 10,000 parsed drvs would hold ~130 MB until the end.
        return { type, deferred: parsed.outputs.filter((o) => o.path === '').map((o) => o.name) };
    }
    /**
     * A dynamic derivation's inputs (DrvWithVersion): the outputs it uses of what an input builds
     * are mentioned by placeholders made from that input's path, known once it is relocated.
     */
    declareDynamicInputs(bytes, owner) {
        for (const input of parseDerivationSpans(bytes).head.inputDrvs) {
            if (input.dynamicOutputs === undefined)
                continue;
            const children = parseDynamicOutputs(input.dynamicOutputs);
            for (const p of dynamicPlaceholders(input.path, children)) {
                owner.placeholder(p, input.path);
                this.rewriter.declarePlaceholder(p);
            }
            let uses = this.dynamicUses.get(input.path);
            if (uses === undefined)
                this.dynamicUses.set(input.path, (uses = []));
            uses.push(children);
        }
    }
    /**
     * Relocates one object whose references are all relocated; or, having changed nothing but the
     * recorded paths of its fixed outputs, says which mentioned hashes it must wait for.
     */
    relocate(node) {
        this.current = node.obj.path;
        this.rewritten.hashes = 0;
        this.rewritten.bare = 0;
        try {
            return this.relocateNow(node);
        }
        catch (e) {
            if (e instanceof Waiting)
                return e;
            throw e;
        }
    }
    relocateNow(node) {
        const { obj } = node;
        const { from, to } = this;
        const { report } = this.relocation;
        const { warnings } = report;
        let out;
        let bytes; // a drv's or text's, read once
        if (obj.kind === 'source') {
            const name = node.name === undefined
                ? nameOf(obj.path)
                : relocatedName(node.name, namedContent(obj), to, (p) => this.relocation.pathMap.get(p));
            if (typeof name !== 'string')
                throw new Waiting([name.waitFor], []);
            out = {
                oldPath: obj.path,
                path: relocatedSourcePath(obj, node.ca, to, name),
                kind: 'source',
                references: [],
            };
            if (node.name !== undefined) {
                // The hashes of copied paths outside the closure, as strings mentioning the copy hold them.
                for (const c of copiedHashes(node.name, name))
                    this.rewriter.set(c.from, c.to);
                const last = node.name.steps[node.name.steps.length - 1];
                if ('owner' in last && last.output)
                    this.checkCopyOfOutput(obj, last.owner);
            }
            const file = obj.contents; // a source keeps its bytes: they are only looked at
            const mentions = file === undefined
                ? obj.mentionsStoreDir === true
                : Buffer.from(file.buffer, file.byteOffset, file.byteLength).includes(from) ||
                    this.rewriter.mentions(file).hashes.length > 0;
            if (mentions)
                warnings.push(`${out.path} (was ${obj.path}) is a source whose bytes mention ${from} or store hashes of the ` +
                    `plan; they are kept as they are, as native evaluation in ${to} would keep them`);
        }
        else if (obj.kind === 'text') {
            bytes = contentsOf(obj);
            // Kept to the end: copied out of the shared pool a short rewrite result may be a slice of.
            const rewritten = this.rewrite(bytes);
            const contents = rewritten === bytes ? rewritten : rewritten.slice();
            const references = obj.references.map((p) => this.mapPath(p)).sort(compareStrings);
            const ca = { method: 'text', hash: { algo: 'sha256', bytes: sha256(contents) } };
            const newPath = makeContentAddressedPath(nameOf(obj.path), ca, to, references);
            out = { oldPath: obj.path, path: newPath, kind: 'text', references, contents };
        }
        else {
            bytes = contentsOf(obj);
            const type = node.drv.type;
            out =
                (this.options.splice !== false ? spliceDrv(obj, bytes, type, this.cx) : undefined) ??
                    relocateDrv(obj, parseDerivation(bytes), type, this.cx);
        }
        this.setHash(obj.path, out.path);
        if (obj.kind === 'drv') {
            // Deferred outputs: dependents mention them by placeholders derived from this drv's path.
            for (const o of node.drv.deferred)
                this.rewriter.setPlaceholder(downstreamPlaceholder(obj.path, o), downstreamPlaceholder(out.path, o));
            // Outputs of what it builds (dynamic derivations), the same way, chained.
            for (const children of this.dynamicUses.get(obj.path) ?? []) {
                const before = dynamicPlaceholders(obj.path, children);
                const after = dynamicPlaceholders(out.path, children);
                before.forEach((p, i) => this.rewriter.setPlaceholder(p, after[i]));
            }
        }
        const bareDirs = bytes === undefined ? 0 : this.rewriter.countBareStoreDirs(bytes);
        if (bareDirs > 0) {
            report.bareStoreDirMentions.push({ path: out.path, count: bareDirs });
            warnings.push(`${out.path} (was ${obj.path}) mentions the store dir ${from} on its own ${bareDirs} time(s), e.g. ` +
                `a value computed from builtins.storeDir; it was left as is, so native evaluation in ${to} may differ`);
        }
        report.hashesRewritten += this.rewritten.hashes;
        report.bareHashRewrites += this.rewritten.bare;
        const bareHashes = this.rewritten.bare;
        if (bareHashes > 0)
            warnings.push(`${out.path} (was ${obj.path}) contains ${bareHashes} store hash(es) without a store dir before ` +
                'them (computed from a path string); they were rewritten, but anything else computed from ' +
                'those paths (hashString, stringLength, substring) cannot be');
        report.objects[obj.kind]++;
        return out;
    }
}

;// CONCATENATED MODULE: ./src/core/relocate/closure.ts
// Relocation of a closure: rewrites a closure of .drv files, text files and sources from store dir A
// to B so that it is exactly what evaluating the same expression natively with store dir B would
// write. This is the entry: it checks and indexes the closure, orders it, and hands each object
// to the relocator (relocator.ts) once what it refers to or mentions is relocated.





/**
 * Relocates a closure from store dir `from` (A) to `to` (B). Every object is self-checked under
 * A; derivations get their inputs mapped, their strings rewritten and their outputs and path
 * recomputed under B; text files are rewritten; sources keep their bytes. Throws a 'relocate'
 * NixPlanError naming the object for anything that cannot be relocated faithfully, and a 'realm'
 * error for an invalid store dir.
 */
function relocateClosure(objects, from, to, options = {}) {
    const { relocation, steps } = relocateLazily(objects, from, to, options);
    for (const o of steps)
        relocation.objects.push(o);
    return relocation;
}
/**
 * `relocateClosure`, handing out each relocated object as soon as it is made, so a caller can
 * write it (and let it go) while the rest is relocated. Every object is checked and indexed, and
 * ordered by its references, before this returns: the refusals that need no relocating come
 * first. Mentions in strings are found as they are rewritten: an object that mentions one not
 * relocated yet (a mention without a reference, e.g. after `unsafeDiscardStringContext`) waits
 * while that one is relocated first, so dependencies still come first; a mention outside the
 * closure is refused then. Each object the caller passed is released once relocated.
 * `relocation.objects` stays empty; its `pathMap` and `report` are complete once `steps` is done
 * (a refusal may still end it early).
 */
function relocateLazily(objects, from, to, options = {}) {
    const r = new Relocator(from, to, options);
    const { rewriter } = r;
    // Index the closure: objects by path and hash, output paths (not objects) by the drv making
    // them. Everything is checked before anything is relocated, so refusals come before any work.
    const byPath = new Map();
    const ownerOfHash = new Map();
    const checked = new Map();
    for (const obj of objects) {
        try {
            parseStorePath(obj.path, from);
        }
        catch (e) {
            refuse(`cannot relocate ${obj.path}: it is not a store path in ${from} (${e.message})`);
        }
        if (byPath.has(obj.path))
            refuse(`cannot relocate: ${obj.path} is in the closure twice`);
        const ca = selfCheck(obj, from);
        refuseSourceWithReferences(obj);
        byPath.set(obj.path, obj);
        ownerOfHash.set(hashPartOf(obj.path), obj.path);
        rewriter.declare(hashPartOf(obj.path));
        checked.set(obj.path, { ca, drv: undefined });
    }
    const ownerOfPlaceholder = new Map();
    const outputPathOfHash = new Map();
    for (const obj of objects) {
        if (obj.kind !== 'drv')
            continue;
        checked.get(obj.path).drv = r.declareDrv(obj, {
            output: (h, p) => {
                if (!outputPathOfHash.has(h))
                    outputPathOfHash.set(h, p);
                if (!ownerOfHash.has(h))
                    ownerOfHash.set(h, obj.path);
            },
            placeholder: (p, owner = obj.path) => ownerOfPlaceholder.set(p, owner),
        });
    }
    r.ownerDrvOf = (h) => ownerOfHash.get(h);
    // Names that carry store hashes (copies of store paths): planned now that every hash of the
    // closure is known. A copied path outside the closure gets its hash declared, owned by the copy,
    // so strings mentioning the copy's name are rewritten whole (and wait for it).
    const nameIndex = {
        ownerOf: (h) => {
            const o = ownerOfHash.get(h);
            if (o === undefined)
                return undefined;
            return hashPartOf(o) === h ? o : outputPathOfHash.get(h);
        },
        isOutput: (p) => !byPath.has(p),
    };
    const names = new Map();
    for (const obj of objects) {
        const plan = planName(obj, namedContent(obj), from, nameIndex, options.optionNames);
        if (plan.steps.length === 0)
            continue;
        names.set(obj.path, plan);
        for (const step of plan.steps)
            if ('copied' in step) {
                rewriter.declare(step.hash);
                if (!ownerOfHash.has(step.hash))
                    ownerOfHash.set(step.hash, obj.path);
            }
    }
    const nodes = new Map();
    // True while every reference comes before its referrer, as in a bundle (the verifier requires
    // it), so the given order is already one to relocate in.
    let inOrder = true;
    for (const obj of objects) {
        const refs = [];
        for (const ref of obj.references) {
            if (ref === obj.path)
                continue;
            if (!nodes.has(ref)) {
                if (!byPath.has(ref))
                    refuse(`cannot relocate ${obj.path}: it references ${ref}, which is not in the closure`);
                inOrder = false;
            }
            refs.push(ref);
        }
        const { ca, drv } = checked.get(obj.path);
        nodes.set(obj.path, { obj, ca, drv, refs, name: names.get(obj.path) });
    }
    checked.clear();
    byPath.clear(); // the nodes hold the objects now, each only until it is relocated
    // Cycles are refused: Nix cannot write them (a derivation is evaluated whole before anything
    // can refer to its paths), so only hand-made input can have them. Input in order has none.
    const given = [...nodes.keys()];
    const order = inOrder
        ? given
        : dependenciesFirst(given, (path) => nodes.get(path).refs, (path, dep) => refuse(`cannot relocate ${path}: it and ${dep} mention each other, so neither can be relocated first`));
    return { relocation: r.relocation, steps: steps() };
    function* steps() {
        for (const path of order)
            if (nodes.has(path))
                yield* relocateFirstWhatItMentions(path);
    }
    /**
     * Relocates `target`, whose references are relocated, and before it whatever it mentions that
     * is not (with their references): a walk with its own stack, as the chain may be long.
     */
    function relocateFirstWhatItMentions(target) {
        const made = [];
        const stack = [target];
        const active = new Set(stack);
        while (stack.length > 0) {
            const path = stack[stack.length - 1];
            const node = nodes.get(path);
            // Brought forward by a mention: its own references may not be relocated yet.
            let next = stack.length > 1 ? node.refs.find((p) => nodes.has(p)) : undefined;
            if (next === undefined) {
                const out = r.relocate(node);
                if (!(out instanceof Waiting)) {
                    nodes.delete(path);
                    active.delete(path);
                    stack.pop();
                    made.push(out);
                    continue;
                }
                // One at a time: once it is relocated, this object is tried again.
                const [hash] = out.hashes;
                next = hash !== undefined ? ownerOfHash.get(hash) : ownerOfPlaceholder.get(out.placeholders[0]);
                if (next === path)
                    refuse(`cannot relocate ${path}: its strings mention its own output paths outside the variables ` +
                        'named after its outputs, which native evaluation cannot write');
            }
            if (active.has(next))
                refuse(`cannot relocate ${path}: it and ${next} mention each other, so neither can be relocated first`);
            active.add(next);
            stack.push(next);
        }
        return made;
    }
}
/**
 * Maps a plan root through a relocation's `pathMap`: its drv path and its output paths (deferred
 * outputs stay ""). Throws a 'relocate' error when a path was not part of the relocation.
 */
function relocateRoot(root, pathMap) {
    const map = (p) => {
        if (p === '')
            return p;
        const n = pathMap.get(p);
        if (n === undefined)
            refuse(`root ${p} is not in the relocated closure`);
        return n;
    };
    const outputs = Object.fromEntries(Object.entries(root.outputs).map(([o, p]) => [o, map(p)]));
    return { ...root, drvPath: map(root.drvPath), outputs };
}

;// CONCATENATED MODULE: ./src/core/relocate/index.ts
// Relocation of a plan's closure to another store dir: the entry (closure.ts), what it takes and
// reports (types.ts), its refusals (checks.ts), the relocator (relocator.ts), the .drv path
// (drv.ts) and the rewriter of store hashes (rewrite.ts).





;// CONCATENATED MODULE: ./src/app/diff.ts
// diffPlanSources: what changes between two plans (bundles, .drv paths or a profile's current
// generation), before anything is built. The sides are read one after the other, each keeping
// only its derivations' heads (the new side takes those of .drv files both hold from the old
// one); a side in another realm is relocated into the other's first, so a promoted
// plan compares with its original as "same plan, other realm". `--drv NAME` then reads the bytes
// of the changed derivations again to say why NAME differs.









/** Where the bytes of one side come from during a drill-down. */
class SideFiles {
    bytes;
    parsed = new Map();
    constructor(bytes) {
        this.bytes = bytes;
    }
    derivation(path) {
        let drv = this.parsed.get(path);
        if (drv === undefined) {
            const b = this.bytes.get(path);
            if (b === undefined || !path.endsWith('.drv'))
                return undefined;
            this.parsed.set(path, (drv = parseDerivation(b)));
        }
        return drv;
    }
    file(path) {
        return path.endsWith('.drv') ? undefined : this.bytes.get(path);
    }
}
/**
 * The old side moved into the new side's realm: its objects relocated (as `nix-plan relocate`
 * would), its graph rebuilt from the relocated .drv files, and their bytes kept for a drill-down.
 */
function relocateSide(old, to, names) {
    const objects = old.objects ?? [];
    const relocation = relocateClosure(objects, old.side.storeDir, to, { optionNames: names });
    const roots = old.graph.roots.map((r) => {
        const drvPath = relocation.pathMap.get(r.drvPath);
        if (drvPath === undefined)
            throw new errors_NixPlanError('internal', `root ${r.drvPath} was not relocated`);
        return { label: r.label, drvPath };
    });
    const graph = new PlanGraph(to, roots);
    const bytes = new Map();
    for (const o of relocation.objects) {
        if (o.contents === undefined)
            continue;
        bytes.set(o.path, o.contents);
        if (o.kind === 'drv')
            graph.add(o.path, parseDerivationSpans(o.contents).head);
    }
    return { graph, bytes };
}
/** The derivations of a graph that `name` designates: by path, derivation name or package name. */
function matching(nodes, name) {
    const byPath = nodes.filter((n) => n.path === name);
    if (byPath.length > 0)
        return byPath;
    const byName = nodes.filter((n) => n.name === name);
    return byName.length > 0 ? byName : nodes.filter((n) => n.pname === name);
}
/** The pairs of changed derivations `name` designates, or a usage error saying why there are none. */
function drillPairs(old, now, name) {
    const oldChanged = old.nodes().filter((n) => !now.has(n.path));
    const newChanged = now.nodes().filter((n) => !old.has(n.path));
    let a = matching(oldChanged, name);
    let b = matching(newChanged, name);
    if (a.length === 0 && b.length === 0) {
        const same = matching(old.nodes(), name).filter((n) => now.has(n.path));
        throw new errors_NixPlanError('usage', same.length > 0
            ? `--drv '${name}': ${same.map((n) => n.path).join(', ')} ${same.length === 1 ? 'is' : 'are'} the same in both plans`
            : `--drv '${name}' names no derivation of either plan (give a package name, a derivation name or a .drv path)`);
    }
    if (a.length === 0 || b.length === 0)
        throw new errors_NixPlanError('usage', `--drv '${name}' is only in the ${a.length === 0 ? 'new' : 'old'} plan (${[...a, ...b].map((n) => n.path).join(', ')}): there is nothing to compare it with`);
    if (a.length === 1 && b.length === 1)
        return [[a[0].path, b[0].path]];
    // Several: pair those of equal derivation names, one on each side.
    const pairs = [];
    for (const x of a) {
        const same = b.filter((y) => y.name === x.name);
        if (same.length === 1 && a.filter((z) => z.name === x.name).length === 1)
            pairs.push([x.path, same[0].path]);
    }
    if (pairs.length > 0)
        return pairs;
    a = a.slice(0, 10);
    b = b.slice(0, 10);
    throw new errors_NixPlanError('usage', `--drv '${name}' is ambiguous: it names ${a.map((n) => n.name).join(', ')} in the old plan and ${b
        .map((n) => n.name)
        .join(', ')} in the new one; give a derivation name or a .drv path`);
}
/** Paths of `graph` that `other` does not hold, and the files their .drv files name as sources. */
function changedPaths(graph, other) {
    return new Set(graph
        .nodes()
        .filter((n) => !other.has(n.path))
        .map((n) => n.path));
}
/**
 * Reads the old and new sides and compares them; see the module comment. A bundle is read from a
 * private copy, so the digest, manifest and derivations shown are those of the bytes verified.
 */
async function diffPlanSources(oldLocation, newLocation, options, deps) {
    const old = await pinLocation(oldLocation, options.optionNames);
    try {
        const now = await pinLocation(newLocation, options.optionNames);
        try {
            return await diffPinned(old.location, now.location, options, deps);
        }
        finally {
            await now.dispose();
        }
    }
    finally {
        await old.dispose();
    }
}
async function diffPinned(oldLocation, newLocation, options, deps) {
    const readOptions = {
        store: options.store,
        trustedKeys: options.trustedKeys,
        noCheckSigs: options.noCheckSigs,
        optionNames: options.optionNames,
    };
    const [oldDir, newDir] = await Promise.all([
        plan_reader_storeDirOf(oldLocation, readOptions, deps),
        plan_reader_storeDirOf(newLocation, readOptions, deps),
    ]);
    const relocate = oldDir !== newDir;
    if (relocate && oldLocation.kind !== 'bundle')
        throw new errors_NixPlanError('realm', `cannot compare ${oldLocation.path} (store dir ${oldDir}) with a plan for the store dir ${newDir}: relocate the plan into ${oldDir} first (${relocateAdvice(options.optionNames, oldDir)}), or give the old side as a plan bundle`);
    // One side after the other: one bundle's decompression window in memory at a time, and the
    // new side takes the heads of the .drv files both plans hold from the old one.
    const old = await readPlanSide(oldLocation, { ...readOptions, keepObjects: relocate, relocateTo: newDir, maxHeldBytes: options.maxHeldBytes }, deps);
    const now = await readPlanSide(newLocation, {
        ...readOptions,
        ...(options.ownNew === true && { noCheckSigs: true }),
        known: relocate ? undefined : { graph: old.graph, checks: old.checks },
    }, deps);
    let oldGraph = old.graph;
    let relocatedBytes;
    if (relocate) {
        deps.log.info(`relocating ${oldLocation.path} from ${oldDir} to ${newDir} to compare it…`);
        ({ graph: oldGraph, bytes: relocatedBytes } = relocateSide(old, newDir, options.optionNames));
    }
    let drv;
    if (options.drv !== undefined) {
        const pairs = drillPairs(oldGraph, now.graph, options.drv);
        const oldFiles = relocatedBytes ?? (await old.files(changedPaths(oldGraph, now.graph), options.maxHeldBytes));
        const newFiles = await now.files(changedPaths(now.graph, oldGraph), options.maxHeldBytes);
        const lookups = { old: new SideFiles(oldFiles), new: new SideFiles(newFiles) };
        drv = pairs.flatMap(([a, b]) => {
            const d = diffDerivations(a, b, lookups.old, lookups.new, {
                storeDir: newDir,
                ...(options.maxCompared !== undefined && { maxCompared: options.maxCompared }),
            });
            return d === undefined ? [] : [d];
        });
    }
    return diffPlans(old.side, oldGraph, now.side, now.graph, {
        relocated: relocate,
        ...(drv !== undefined && { drv }),
    });
}

;// CONCATENATED MODULE: ./src/nix/built-inputs.ts
// Import from derivation, found in a plan's closure: build outputs evaluation read (an output in
// the closure itself) and copies of them evaluation made (`builtins.path`, `filterSource` of an
// output: a source named `<hash>-<output's base name>`). A plan that depends on a build output is
// not what evaluation alone writes: export says so by name, and `--include sources` carries the
// derivations that built them, which relocation needs to name the copies in another store dir.


/** The store paths a source's name says it was copied from, outermost first (`<hash>-<rest>`). */
function copiedFrom(path, storeDir) {
    const out = [];
    let name = nameOf(path);
    while (name.length > HASH_PART_LENGTH + 1 &&
        name.charCodeAt(HASH_PART_LENGTH) === 0x2d &&
        isHashPart(name.slice(0, HASH_PART_LENGTH))) {
        out.push(`${storeDir}/${name}`);
        name = name.slice(HASH_PART_LENGTH + 1);
    }
    return out;
}
/**
 * The build outputs the closure's evaluation read: every `output` member (with `include` other
 * than `outputs`, where outputs are what the bundle is for), and every build output a source's
 * name says it was copied from, as the store registered it (one validity query and one
 * `--dump-db` for all the names).
 */
async function findBuiltInputs(store, storeDir, members) {
    const found = [];
    const copies = new Map(); // a path a source was copied from → the source
    for (const m of members) {
        if (m.kind === 'output')
            found.push({ path: m.path, output: m.path, deriver: m.deriver });
        else if (m.kind === 'source')
            for (const p of copiedFrom(m.path, storeDir))
                if (!copies.has(p))
                    copies.set(p, m.path);
    }
    if (copies.size === 0)
        return found;
    const invalid = await store.invalidPaths([...copies.keys()]);
    const valid = [...copies.keys()].filter((p) => !invalid.has(p));
    const infos = await store.pathInfos(valid);
    for (const p of valid) {
        const info = infos.get(p);
        if (info === undefined)
            throw new errors_NixPlanError('internal', `no registration for '${p}'`);
        if (info.deriver !== '')
            found.push({ path: copies.get(p), output: p, deriver: info.deriver });
    }
    return found;
}
/** One sentence naming a build output the plan depends on, and where it came from. */
function describeBuiltInput(b) {
    const by = b.deriver === '' ? 'a derivation the store does not name' : b.deriver;
    return b.path === b.output
        ? `${b.output} is a build output of ${by} that evaluation read (import from derivation, or builtins.storePath)`
        : `${b.path} was copied while evaluating from ${b.output}, a build output of ${by} (import from derivation)`;
}

;// CONCATENATED MODULE: ./src/nix/classify.ts
// The kind of each member of a closure a store describes (.drv, text, source or build output),
// decided from its registration and, for a single file, its bytes, as the bundle verifier decides.

/** Largest single file read to find out whether it is content-addressed (the verifier's limit). */
const MAX_CLASSIFY_FILE = 16 * 1024 * 1024;
/**
 * The kind of a closure member, decided as the bundle verifier decides it: a `.drv`; else
 * whatever its content address says (a `toFile` text, or a source: a path literal, or a fixed
 * output, whose path is its content's hash too); anything not content-addressed is a build
 * output. `readRegularFile` gives a single-file object's bytes and mode (synchronously, as
 * `NixStore.readRegularFileSync` does: no thread-pool round trip per path).
 */
function classifySync(info, storeDir, readRegularFile) {
    const byPath = classifyWithoutContents(info, storeDir);
    if (byPath !== undefined)
        return byPath;
    const file = readRegularFile(info.path, MAX_CLASSIFY_FILE);
    if (file === undefined || file.executable)
        return 'output';
    return classifyFile(info, storeDir, file.bytes);
}
/** The kind when the path, its registration and its NAR hash decide it; undefined when the file must be read. */
function classifyWithoutContents(info, storeDir) {
    if (info.path.endsWith('.drv') && info.deriver === '')
        return 'drv';
    const narHash = new Uint8Array(Buffer.from(info.narHash, 'hex'));
    const facts = { path: info.path, references: info.references, narHash };
    // Recursive sources need only the NAR hash; flat ones and texts need the file's bytes.
    return identifyContentAddress(facts, storeDir)?.kind;
}
/** The kind of a non-executable single-file object from its bytes (a flat source or a text). */
function classifyFile(info, storeDir, contents) {
    const narHash = new Uint8Array(Buffer.from(info.narHash, 'hex'));
    const facts = { path: info.path, references: info.references, narHash };
    const byFile = identifyContentAddress({ ...facts, file: { executable: false, contents } }, storeDir);
    return byFile?.kind ?? 'output';
}

;// CONCATENATED MODULE: ./src/nix/collect.ts
// Collects what a plan carries for each `--include` kind: the .drv closure, plus realised outputs
// of fixed-output derivations (sources), or the roots' built output closure (outputs).






/** .drv files read between two turns of the event loop while Nix's --dump-db output streams in. */
const YIELD_EVERY = 512;
/**
 * Reads the closure of `rootDrvs` for `include`: one `nix-store -q --requisites` for the .drv
 * closure, at most one `nix-store --realise` and one more query for added outputs, one
 * `--dump-db` per batch, and the .drv files read directly from the store.
 */
async function collectClosure(store, storeDir, rootDrvs, include, hooks = {}) {
    const stream = await streamClosure(store, storeDir, rootDrvs, include, hooks);
    const objects = [];
    for await (const o of stream.objects) {
        const { file: _bytes, ...object } = o;
        objects.push(object);
    }
    return { objects, ...stream.summary() };
}
/** What the .drv files of a closure say for the manifest, gathered one file at a time. */
class DrvFacts {
    roots;
    rootOutputs = new Map();
    systems = new Set();
    fods = [];
    fodOutputs = [];
    rootSet;
    constructor(roots) {
        this.roots = roots;
        this.rootSet = new Set(roots);
    }
    /** Adds one .drv; returns its references (scanDerivation's). */
    add(path, bytes) {
        // Only the head (outputs) is parsed, and the rest skipped through: a full parse of every
        // .drv (env values, escapes) cost more than reading the files.
        const drv = parseDerivationOutputs(bytes);
        const { system, references } = scanDerivation(bytes, drv.version !== undefined);
        this.systems.add(system);
        if (this.rootSet.has(path))
            this.rootOutputs.set(path, outputsOf(drv));
        if (isFixedOutput(drv)) {
            this.fods.push(path);
            this.fodOutputs.push(...Object.values(outputsOf(drv)));
        }
        return references;
    }
    summary() {
        for (const root of this.roots)
            if (!this.rootOutputs.has(root))
                throw new errors_NixPlanError('nix', `'${root}' is not in its own closure`);
        return { rootOutputs: this.rootOutputs, systems: [...this.systems].sort() };
    }
}
/**
 * `collectClosure` as a stream. For `drvs` it returns once Nix has listed the closure, and each
 * .drv is read once, when its turn comes, while Nix describes the next paths: a writer starts at
 * once. The other kinds need every .drv read and the whole graph first (to realise fixed
 * outputs or roots, and to order what that adds).
 */
async function streamClosure(store, storeDir, rootDrvs, include, hooks = {}, options = {}) {
    store.setStoreDir(storeDir);
    const drvClosure = await store.requisites(rootDrvs);
    const drvsFromFiles = include === 'drvs' && options.drvsFromFiles === true;
    // Nix answers --dump-db (child processes, on the other core) while this thread reads files.
    const drvBatches = store.pathInfoBatches(drvsFromFiles ? drvClosure.filter((p) => !p.endsWith('.drv')) : drvClosure);
    const facts = new DrvFacts(rootDrvs);
    const readDrv = (p) => {
        const file = store.readRegularFileSync(p);
        if (file === undefined)
            throw new errors_NixPlanError('nix', `'${p}' is not a regular file`);
        return { ...file, references: facts.add(p, file.bytes) };
    };
    const readRegularFile = (q, maxSize) => store.readRegularFileSync(q, maxSize);
    const withKind = (info) => ({
        ...info,
        kind: classifySync(info, storeDir, readRegularFile),
    });
    if (include === 'drvs') {
        const objects = async function* () {
            const done = new Set();
            const described = drvBatches[Symbol.asyncIterator]();
            let batch = [];
            let next = 0;
            for (const p of drvClosure) {
                let object;
                if (drvsFromFiles && p.endsWith('.drv')) {
                    // What Nix registers for a .drv it writes: no deriver, its inputs as references.
                    const { references, ...file } = readDrv(p);
                    const narSize = regularFileNarSize(file.bytes.length, file.executable);
                    object = { path: p, narHash: '', narSize, deriver: '', references, kind: 'drv', file };
                }
                else {
                    while (next === batch.length) {
                        const r = await described.next();
                        if (r.done === true)
                            throw new errors_NixPlanError('internal', `nix-store --dump-db skipped '${p}'`);
                        batch = r.value;
                        next = 0;
                    }
                    const info = batch[next++];
                    if (info?.path !== p)
                        throw new errors_NixPlanError('internal', `nix-store --dump-db answered out of order at '${p}'`);
                    object = p.endsWith('.drv') ? { ...withKind(info), file: readDrv(p) } : withKind(info);
                }
                for (const r of object.references)
                    if (r !== p && !done.has(r))
                        throw new errors_NixPlanError('internal', `nix-store --query --requisites listed '${p}' before its reference '${r}'`);
                done.add(p);
                yield object;
            }
        };
        return { count: drvClosure.length, objects: objects(), summary: () => facts.summary() };
    }
    let sinceYield = 0;
    for (const p of drvClosure) {
        if (!p.endsWith('.drv'))
            continue;
        readDrv(p);
        // Let the event loop drain Nix's output now and then, so the child never waits on a full pipe.
        if (++sinceYield === YIELD_EVERY) {
            sinceYield = 0;
            await new Promise((resolve) => setImmediate(resolve));
        }
    }
    facts.summary(); // the roots are in their closure
    let extra = [];
    if (include === 'sources') {
        if (facts.fods.length > 0) {
            hooks.onRealise?.('fixed-output derivations', facts.fods.length);
            await store.realise(facts.fods);
            extra = await store.requisites(facts.fodOutputs);
        }
    }
    else {
        hooks.onRealise?.('roots', rootDrvs.length);
        const built = await store.realise(rootDrvs);
        const outs = new Set(built);
        for (const o of facts.rootOutputs.values())
            for (const p of Object.values(o))
                if (p !== '')
                    outs.add(p);
        extra = await store.requisites([...outs]);
    }
    const inClosure = new Set(drvClosure);
    let added = extra.filter((p) => !inClosure.has(p));
    const all = [...drvClosure, ...added];
    const infos = new Map();
    for await (const batch of drvBatches)
        for (const info of batch)
            infos.set(info.path, info);
    if (added.length > 0)
        for (const [p, info] of await store.pathInfos(added))
            infos.set(p, info);
    const kinds = new Map();
    const classify = (p) => {
        let o = kinds.get(p);
        if (o === undefined) {
            const info = infos.get(p);
            if (info === undefined)
                throw new errors_NixPlanError('internal', `no registration for '${p}'`);
            o = withKind(info);
            kinds.set(p, o);
        }
        return o;
    };
    // Build outputs evaluation read: `sources` carries the derivations that built them (with their
    // closures), which relocation needs to name copies of them in another store dir.
    // (A fixed output the plan builds itself is not one: its .drv's hash proves it.)
    const fixedOutputs = new Set(facts.fodOutputs);
    const builtInputs = include === 'sources'
        ? (await findBuiltInputs(store, storeDir, all.map(classify))).filter((b) => !fixedOutputs.has(b.output))
        : undefined;
    const inAll = new Set(all);
    const derivers = [...new Set((builtInputs ?? []).map((b) => b.deriver))].filter((d) => d !== '' && !inAll.has(d));
    if (derivers.length > 0) {
        const invalid = await store.invalidPaths(derivers);
        added = (await store.requisites(derivers.filter((d) => !invalid.has(d)))).filter((p) => !inAll.has(p));
        for (const [p, info] of await store.pathInfos(added))
            infos.set(p, info);
        for (const p of added) {
            all.push(p);
            if (p.endsWith('.drv'))
                readDrv(p);
        }
    }
    const refsOf = (p) => infos.get(p)?.references ?? [];
    const order = dependencyOrder(all, refsOf);
    const objects = order.map(classify);
    return { count: objects.length, objects, summary: () => facts.summary(), builtInputs };
}

;// CONCATENATED MODULE: ./src/nix/fs-tree.ts
// A NAR FileTree over real files, so a store path's NAR can be produced without running Nix.



const fs_tree_SLASH = Buffer.from('/');
/** Files up to this size are read in one call: a drv closure is thousands of small files. */
const SMALL_FILE = 1024 * 1024;
// The file system is read with synchronous calls: store files are small and local, and each
// `fs.promises` call is a round trip through libuv's thread pool (shared with zstd), which for
// tens of thousands of files cost far more than the reads themselves. Large files still stream.
/** A whole small file as a one-chunk stream, read when iteration starts (not before). */
function readWhole(p) {
    return {
        [Symbol.asyncIterator]: () => {
            let read = false;
            return {
                next: () => {
                    if (read)
                        return Promise.resolve({ done: true, value: undefined });
                    read = true;
                    try {
                        return Promise.resolve({ done: false, value: (0,external_node_fs_namespaceObject.readFileSync)(p) });
                    }
                    catch (e) {
                        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
                    }
                },
            };
        },
    };
}
/**
 * The FileTree of `path` (not following a symlink at `path` itself). Directory entries come
 * sorted by name bytes, as Nix sorts them; names are read as bytes, so non-UTF-8 names survive.
 * A regular file is executable when its owner may execute it (Nix tests S_IXUSR). Sockets,
 * FIFOs and devices are refused, as Nix refuses them.
 */
function fileTreeOf(path) {
    try {
        return Promise.resolve(fileTreeSync(typeof path === 'string' ? Buffer.from(path) : path));
    }
    catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
}
function fileTreeSync(p) {
    const st = (0,external_node_fs_namespaceObject.lstatSync)(p);
    if (st.isFile()) {
        return {
            type: 'regular',
            executable: (st.mode & 0o100) !== 0,
            size: st.size,
            contents: () => st.size <= SMALL_FILE ? readWhole(p) : (0,external_node_fs_namespaceObject.createReadStream)(p),
        };
    }
    if (st.isSymbolicLink())
        return { type: 'symlink', target: new Uint8Array((0,external_node_fs_namespaceObject.readlinkSync)(p, { encoding: 'buffer' })) };
    if (st.isDirectory()) {
        return {
            type: 'directory',
            entries: async function* () {
                const names = (0,external_node_fs_namespaceObject.readdirSync)(p, { encoding: 'buffer' });
                names.sort((a, b) => Buffer.compare(a, b));
                // One entry per turn: a huge directory still lets the compressor's callbacks run.
                for (const name of names) {
                    yield [name, fileTreeSync(Buffer.concat([p, fs_tree_SLASH, name]))];
                    await Promise.resolve();
                }
            },
        };
    }
    throw new errors_NixPlanError('malformed', `'${p.toString('utf8')}' is neither a regular file, a directory nor a symlink; a NAR cannot hold it`);
}
/** The NAR of a file, directory or symlink on disk, streamed (what `nix-store --dump` writes). */
async function* dumpPath(path) {
    yield* writeNar(await fileTreeOf(path));
}
/**
 * The NAR of `path` like `dumpPath`, but a small regular file (every `.drv` and text) is read at
 * once and returned as the chunks of its NAR, with no generator or promise per file.
 */
function narOf(path) {
    const p = typeof path === 'string' ? Buffer.from(path) : path;
    const st = (0,external_node_fs_namespaceObject.lstatSync)(p);
    if (st.isFile() && st.size <= SMALL_FILE) {
        const bytes = (0,external_node_fs_namespaceObject.readFileSync)(p);
        if (bytes.length !== st.size)
            throw new errors_NixPlanError('malformed', `'${p.toString('utf8')}' changed size while it was read`);
        return regularFileNar(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), (st.mode & 0o100) !== 0);
    }
    return dumpPath(p);
}

;// CONCATENATED MODULE: ./src/nix/flake-metadata.ts


/**
 * The flake reference of an installable (`.#hello` → `.`, `github:o/r#x` → `github:o/r`), or
 * undefined for what is not a flake reference (a store path).
 */
function flakeRefOf(installable) {
    const hash = installable.indexOf('#');
    const ref = hash < 0 ? installable : installable.slice(0, hash);
    if (ref === '' || (ref.startsWith('/') && /\/[0-9a-z]{32}-[^/]+$/.test(ref)))
        return undefined;
    return ref.replace(/\^.*$/, '');
}
/**
 * The locked flake behind `installables`, asked after evaluation (so the lock Nix evaluated with
 * exists) with the evaluator's arguments (an `--override-input` changes the lock), without
 * writing a lock file. The reason instead when the installables are not one flake or Nix
 * cannot tell.
 */
async function readFlakeMetadata(store, installables, evalArgs = []) {
    const refs = [...new Set(installables.map(flakeRefOf).filter((r) => r !== undefined))];
    if (refs.length === 0)
        return { reason: 'no flake installable' };
    if (refs.length > 1)
        return { reason: `the installables come from ${refs.length} flakes; a plan records one` };
    const r = await store.runner.run('nix', [
        ...FLAKE_FEATURES,
        ...store.storeArgs(),
        'flake',
        'metadata',
        '--json',
        '--no-write-lock-file',
        ...evalArgs,
        refs[0] ?? '',
    ], { allowFailure: true });
    if (r.code !== 0)
        return { reason: `nix flake metadata failed: ${r.stderr.trim().split('\n').pop() ?? ''}` };
    let json;
    try {
        json = JSON.parse(r.stdout.toString('utf8'));
    }
    catch {
        return { reason: 'nix flake metadata printed no JSON' };
    }
    const flake = flakeProvenance(json);
    return flake === undefined ? { reason: 'nix flake metadata printed no locked URL' } : { flake };
}

;// CONCATENATED MODULE: ./src/nix/git.ts
async function git(runner, dir, args) {
    try {
        const r = await runner.run('git', ['-C', dir, ...args], { allowFailure: true });
        return r.code === 0 ? r.stdout.toString('utf8').trim() : undefined;
    }
    catch {
        return undefined; // no git on PATH
    }
}
/**
 * The git facts of the worktree holding `dir`, or an empty object when `dir` is not in one (or
 * git is not installed). `dirty` counts untracked files too: an evaluation can read them.
 */
async function readGitFacts(runner, dir) {
    const commit = await git(runner, dir, ['rev-parse', '--verify', '-q', 'HEAD']);
    if (commit === undefined || commit === '')
        return {};
    const [ref, status, remoteUrl] = await Promise.all([
        git(runner, dir, ['symbolic-ref', '-q', 'HEAD']),
        git(runner, dir, ['status', '--porcelain']),
        git(runner, dir, ['remote', 'get-url', 'origin']),
    ]);
    return {
        commit,
        ...(ref !== undefined && ref !== '' && { ref }),
        ...(status !== undefined && { dirty: status !== '' }),
        ...(remoteUrl !== undefined && remoteUrl !== '' && { remoteUrl }),
    };
}

;// CONCATENATED MODULE: ./src/app/provenance.ts
// Collecting a plan's provenance while it is exported: the GitHub Actions run (from the
// environment), the git worktree, and the evaluated flake's lock (see docs/security.md).




/**
 * The provenance of an evaluation: the run's repository, ref, workflow and run URL when in GitHub
 * Actions; the commit of the worktree evaluated (the run's `GITHUB_SHA` when there is no
 * worktree), its branch and whether it had uncommitted changes; the locked flake when flake
 * installables were evaluated. Facts that cannot be had are left out; values that do not fit the
 * manifest are left out with a warning.
 */
async function collectProvenance(request, store, sources, log) {
    const dir = sources.dir ?? worktreeOf(request);
    const installables = request.installables ?? [];
    const [git, flake] = await Promise.all([
        dir === undefined ? Promise.resolve({}) : readGitFacts(store.runner, dir),
        installables.length === 0 ? undefined : readFlakeMetadata(store, installables, request.evalArgs ?? []),
    ]);
    if (flake !== undefined && 'reason' in flake)
        log.warn(`the plan records no flake inputs: ${flake.reason}`);
    const github = sources.env === undefined ? {} : githubProvenance(sources.env);
    // A worktree of another repository than the run's: its own remote, commit and branch apply.
    if (!sameRepository(git.remoteUrl, github.repository)) {
        delete github.repository;
        delete github.commit;
        delete github.ref;
    }
    const { provenance, dropped } = combineProvenance(
    // The worktree's own commit first: it is what was evaluated, even when it is not GITHUB_SHA.
    { commit: git.commit }, github, gitProvenance(git), flake !== undefined && 'flake' in flake ? { flake: flake.flake } : {});
    for (const d of dropped)
        log.warn(`provenance: left out ${d}`);
    return provenance;
}
/**
 * The directory whose git worktree was evaluated: the file's, a local flake's (`.`, `./x`,
 * `/abs`, `path:…`, `git+file://…`), the working directory when only .drv paths were given, or
 * none when a flake elsewhere was evaluated (the working directory's commit would be wrong).
 */
function worktreeOf(request, cwd = (0,external_node_path_namespaceObject.resolve)()) {
    if (request.file !== undefined)
        return (0,external_node_path_namespaceObject.dirname)((0,external_node_path_namespaceObject.resolve)(cwd, request.file));
    const refs = (request.installables ?? []).map(flakeRefOf).filter((r) => r !== undefined);
    if (refs.length === 0)
        return cwd;
    const dirs = refs.map((r) => localFlakeDir(r, cwd));
    return dirs.every((d) => d !== undefined) ? dirs[0] : undefined;
}
/** The directory of a local flake reference, or undefined for a flake elsewhere. */
function localFlakeDir(ref, cwd) {
    const path = ref.replace(/\?.*$/, '');
    for (const prefix of ['path:', 'git+file://'])
        if (path.startsWith(prefix))
            return (0,external_node_path_namespaceObject.resolve)(cwd, path.slice(prefix.length));
    return path.startsWith('.') || path.startsWith('/') ? (0,external_node_path_namespaceObject.resolve)(cwd, path) : undefined;
}
/** Whether a git remote URL is the GitHub repository `owner/name` (either unknown counts as yes). */
function sameRepository(remoteUrl, repository) {
    if (remoteUrl === undefined || typeof repository !== 'string')
        return true;
    const tail = remoteUrl
        .replace(/\/+$/, '')
        .replace(/\.git$/, '')
        .toLowerCase();
    const want = repository.toLowerCase();
    return tail.endsWith(`/${want}`) || tail.endsWith(`:${want}`);
}

;// CONCATENATED MODULE: ./src/app/relocated-export.ts
// The relocated export stream a relocated bundle is written from: in relocation order from the
// NARs kept while verifying, or in the bundle's order by reading the verified copy again when its
// sources were too large to keep.




/**
 * The relocated export in relocation (dependency) order, made while it is written, from the NARs
 * kept in the first pass; `seen` is called with each relocated object first. An entry whose
 * deriver (a .drv of the closure) is not relocated yet waits, with everything after it, until
 * the deriver is, so the order stays a dependency order.
 */
function* keptEntries(steps, relocation, sources, seen) {
    const { pathMap } = relocation;
    const ready = (o) => {
        const d = sources.derivers.get(o.oldPath);
        return d === undefined || pathMap.has(d) || !sources.paths.has(d);
    };
    const entry = (o) => {
        const nar = o.contents !== undefined ? regularFileNar(o.contents) : sources.nars.get(o.oldPath);
        if (nar === undefined)
            throw new errors_NixPlanError('internal', `the NAR of '${o.oldPath}' was not kept`);
        const deriver = sources.derivers.get(o.oldPath);
        return {
            path: o.path,
            references: o.references,
            deriver: deriver === undefined ? '' : (pathMap.get(deriver) ?? ''),
            nar: nar instanceof Uint8Array ? [nar] : nar,
        };
    };
    const waiting = [];
    for (const o of steps) {
        seen(o);
        waiting.push(o);
        while (waiting.length > 0 && ready(waiting[0]))
            yield entry(waiting.shift());
    }
    for (const o of waiting)
        yield entry(o);
}
/**
 * The relocated export in the bundle's order, for sources too large to keep: the verified copy
 * is read again and each source's NAR copied through as it streams by.
 */
async function* rereadEntries(bundle, steps, relocation, seen) {
    const byOld = new Map();
    for (const o of steps) {
        seen(o);
        byOld.set(o.oldPath, o);
    }
    let pending = [];
    const stream = readExport(exportStream(bundle), {}, { onNarBytes: (c) => pending.push(c) });
    for await (const e of stream) {
        const chunks = pending;
        pending = [];
        const moved = byOld.get(e.path);
        if (moved === undefined)
            throw new errors_NixPlanError('internal', `'${e.path}' was not relocated`);
        yield {
            path: moved.path,
            references: moved.references,
            deriver: e.deriver === '' ? '' : (relocation.pathMap.get(e.deriver) ?? ''),
            nar: moved.contents !== undefined ? regularFileNar(moved.contents) : chunks,
        };
    }
}

;// CONCATENATED MODULE: ./src/app/scratch-file.ts
// A scratch file: bytes appended and read back by offset, synchronously (relocation is), so that
// what a large closure needs later is held by the page cache instead of the process.


/** How much of the file one read brings in, for the reads that come next. */
const WINDOW = 1024 * 1024;
/**
 * Bytes appended to a file and read back by offset, synchronously (relocation is): what is
 * appended is gathered in a buffer and written in large pieces. Relocation reads the objects
 * about in the order they were appended (indexing them, then relocating them), so a read that
 * goes on from the last one brings in the next `WINDOW` bytes at once and hands out views of
 * them; a read elsewhere (an object relocated early, for another that mentions it) reads just its
 * bytes.
 */
class ScratchFile {
    fd;
    pending = Buffer.allocUnsafeSlow(1024 * 1024);
    used = 0;
    written = 0;
    /** The bytes last read ahead, from offset `windowAt` (a new buffer each time: views are handed out). */
    window = new Uint8Array(0);
    windowAt = 0;
    /** Where the last read ended: a read from there on is sequential. */
    lastEnd = 0;
    constructor(path) {
        this.fd = (0,external_node_fs_namespaceObject.openSync)(path, 'wx+', 0o600);
    }
    /** Appends `bytes` (copied); returns what reads them back. */
    append(bytes) {
        const length = bytes.length;
        if (this.used + length > this.pending.length)
            this.flush();
        const at = this.written + this.used;
        if (length > this.pending.length)
            this.writeAll(bytes);
        else {
            this.pending.set(bytes, this.used);
            this.used += length;
        }
        return () => this.read(at, length);
    }
    read(at, length) {
        if (at + length > this.written)
            this.flush();
        const sequential = at >= this.lastEnd && at - this.lastEnd < WINDOW;
        this.lastEnd = at + length;
        const from = at - this.windowAt;
        if (from >= 0 && from + length <= this.window.length)
            return this.window.subarray(from, from + length);
        if (!sequential || length > WINDOW)
            return this.readAt(at, length);
        this.window = this.readAt(at, Math.min(WINDOW, this.written - at));
        this.windowAt = at;
        return this.window.subarray(0, length);
    }
    readAt(at, length) {
        const out = new Uint8Array(length);
        let done = 0;
        while (done < length) {
            const n = (0,external_node_fs_namespaceObject.readSync)(this.fd, out, done, length - done, at + done);
            if (n === 0)
                throw new errors_NixPlanError('internal', `the scratch file ended at ${at + done} bytes`);
            done += n;
        }
        return out;
    }
    flush() {
        this.writeAll(this.pending.subarray(0, this.used));
        this.used = 0;
    }
    writeAll(bytes) {
        let done = 0;
        while (done < bytes.length)
            done += (0,external_node_fs_namespaceObject.writeSync)(this.fd, bytes, done, bytes.length - done, this.written + done);
        this.written += bytes.length;
    }
    /** Closes the file (removing it is the caller's). */
    close() {
        (0,external_node_fs_namespaceObject.closeSync)(this.fd);
    }
}

;// CONCATENATED MODULE: ./src/app/relocate.ts
// relocatePlan: bundle for store dir A → bundle for store dir B. One streaming pass over a
// verified private copy collects what relocation needs (drv/text bytes, in a scratch file when
// there are many; source NAR hashes and, when they are small, the sources' NARs); the new bundle
// is written straight from the relocation. Only sources too large to hold need a second pass to
// copy their NARs through.




















/** A recursive source that is one file bigger than this is relocated without holding its bytes. */
const KEEP_SOURCE_FILE_UP_TO = 16 * 1024 * 1024;
/** Source NARs up to this many bytes in total are kept from the verifying pass (no second pass). */
const KEEP_SOURCE_NARS_UP_TO = 64 * 1024 * 1024;
/**
 * .drv and text bytes up to this many (by the manifest) are held in memory until each is
 * relocated; beyond, they are written to a scratch file in the private directory and read back
 * when relocation needs them, a window at a time (the page cache holds them, not the process: at
 * 10,000 drvs they are ~65 MB, at 30,000 ~180 MB).
 */
const KEEP_CONTENTS_UP_TO = 16 * 1024 * 1024;
/**
 * Refuses a build output of the bundle, saying what it is: a fixed output whose hash nix-plan
 * cannot check (blake3, or a directory hashed by git), or an output evaluation read (import from
 * derivation, `builtins.storePath`), which native evaluation in `to` would build again.
 */
function refuseBuildOutput(output, objects, to, names) {
    const drv = objects.find((o) => o.path === output.deriver && o.kind === 'drv');
    const bytes = drv?.contents ?? drv?.readContents?.();
    const declared = bytes === undefined
        ? undefined
        : parseDerivationOutputs(bytes).outputs.find((o) => o.path === output.path);
    if (declared !== undefined && outputKind(declared) === 'fixed')
        throw new errors_NixPlanError('relocate', `cannot relocate ${output.path}: it is the fixed output of ${output.deriver}, hashed as ` +
            `${declared.hashAlgo}, which nix-plan cannot compute from its bytes ` +
            `(${uncheckable(fixedOutputAddress(declared, output.deriver))}), ` +
            `so it cannot prove the output is what the path says; relocate a bundle ${madeWith(names, 'drvs')}, ` +
            'and the output is built where the plan is realised');
    const by = output.deriver === '' ? 'a derivation the bundle does not name' : output.deriver;
    throw new errors_NixPlanError('relocate', `cannot relocate ${output.path}: it is a build output of ${by} that evaluation read (import ` +
        'from derivation, or builtins.storePath), not content-addressed by its bytes: native ' +
        `evaluation in ${to} would build it again, to bytes nix-plan cannot know; evaluate the plan ` +
        `in ${to} instead`);
}
/** How a bundle that carries `include` was made: exported with the flag, or by the plan action's input. */
function madeWith(names, include) {
    if (names?.style !== 'input')
        return `exported with ${optionSet(names, 'include', include)}`;
    return `made with the plan action's ${optionSet(names, 'include', include)}`;
}
/** Why a fixed output's hash cannot be computed by nix-plan from a bundle's copy of it. */
function uncheckable(ca) {
    if (ca.hash.algo === 'blake3')
        return 'blake3 is not among the hashes Node computes';
    if (ca.method === 'git')
        return 'a directory hashed by git, as a git tree';
    return 'a bundle carries the NAR hash of an output in sha256 only';
}
/** Relocates a bundle to store dir `options.to` and writes the result to `options.output`. */
async function relocatePlan(bundlePath, options, deps) {
    assertStoreDir(options.to);
    await assertWritable(options.output);
    const keys = secretKeyTexts(options).map(parseSecretKey);
    const trusted = (options.trustedKeys ?? []).map(parsePublicKey);
    assertSignable(keys.length > 0, trusted.length > 0, options.noCheckSigs === true);
    const keepUpTo = options.keepSourceNarsUpTo ?? KEEP_SOURCE_NARS_UP_TO;
    // Messages name the user's file, not the private copy they are about.
    const copy = await privateBundle(bundlePath, {
        digest: options.digest,
        name: options.name,
        prefix: 'nix-plan-relocate-',
        optionNames: options.optionNames,
    });
    const { dir, source: bundle } = copy;
    try {
        // The promotion records the digest of exactly the bytes verified: the private copy's.
        const inputDigest = options.recordPromotion === false ? undefined : copy.digest;
        let scratch;
        const started = performance.now();
        try {
            // Pass 1: verify everything and keep what relocation reads. The manifest's (not yet
            // verified) source size only decides whether to try keeping source NARs; what is kept is
            // counted, and a bundle whose sources outgrow the cap falls back to a second pass.
            const head = await readBundleHead(bundle);
            let keepSources = head.manifest.narBytes.source <= keepUpTo;
            const { narBytes: declared } = head.manifest;
            if (declared.drv + declared.text > (options.keepContentsUpTo ?? KEEP_CONTENTS_UP_TO))
                scratch = new ScratchFile((0,external_node_path_namespaceObject.join)(dir, 'contents'));
            let keptBytes = 0;
            let narChunks = [];
            const sourceNars = new Map();
            const derivers = new Map();
            const closurePaths = new Set();
            let objects = [];
            const narSizes = new Map();
            const outputs = [];
            const { manifest, derivations, unproven } = await verifyWithProgress(bundle, {
                trustedKeys: trusted,
                noCheckSigs: options.noCheckSigs,
                optionNames: options.optionNames,
                // Relocation parses every .drv whole, and refuses a malformed one, before the new
                // bundle is moved into place: it passes each to the verifier's checks (below), as
                // parsing them here as well would be done twice.
                parseDerivations: false,
                // Kept .drv and text bytes are views of the decompressed stream, not copies. With a
                // scratch file each goes there at once (a copy's shared block would outlive it; 140 MB
                // more at 30,000 drvs); without one, the views hold the stream's chunks (with their NAR
                // framing and sources) until the objects in them are relocated: about 5 MB more than
                // copies at 10,000 drvs, for 30 ms less of the main thread's time.
                keptFiles: 'view',
                ...(keepSources && { onNarBytes: (c) => narChunks.push(c) }),
                onEntry: (e) => {
                    const chunks = narChunks;
                    narChunks = [];
                    if (e.kind === 'output') {
                        // Refused once the bundle is verified, when the derivations can say what it is.
                        outputs.push({ path: e.path, deriver: e.deriver });
                        return;
                    }
                    if (e.kind === 'source') {
                        narSizes.set(e.path, e.nar.narSize);
                        if (keepSources) {
                            keptBytes += e.nar.narSize;
                            if (keptBytes > keepUpTo) {
                                keepSources = false;
                                sourceNars.clear();
                            }
                            else
                                sourceNars.set(e.path, Buffer.concat(chunks)); // a copy: chunks are views
                        }
                    }
                    if (e.deriver !== '')
                        derivers.set(e.path, e.deriver);
                    closurePaths.add(e.path);
                    // A recursive source is relocated by its NAR hash: its bytes are held only when small
                    // (the reader keeps files up to a .drv's limit; a flat source needs its bytes).
                    const file = e.kind === 'source' &&
                        e.ca?.startsWith('fixed:r:') === true &&
                        (e.nar.file?.contents.length ?? 0) > KEEP_SOURCE_FILE_UP_TO
                        ? undefined
                        : e.nar.file?.contents;
                    objects.push({
                        path: e.path,
                        kind: e.kind,
                        references: e.references,
                        ...(file !== undefined &&
                            (scratch === undefined
                                ? { contents: file }
                                : e.kind === 'source'
                                    ? { contents: file.slice() } // a view would pin the chunk it is in
                                    : { readContents: scratch.append(file) })),
                        // A source's new path is made from it; a .drv's or text's NAR is never hashed.
                        ...(e.kind === 'source' && { narHash: e.nar.narHash }),
                        // Whether a source's bytes mention the store dir, when they were kept to look at.
                        ...(e.kind === 'source' &&
                            file === undefined &&
                            sourceNars.has(e.path) && {
                            mentionsStoreDir: Buffer.from(sourceNars.get(e.path)).includes(head.manifest.storeDir),
                        }),
                        ca: e.ca, // verified from the contents just now: relocation checks the path against it
                    });
                },
            }, deps.progress);
            narChunks = [];
            if (outputs[0] !== undefined)
                refuseBuildOutput(outputs[0], objects, options.to, options.optionNames);
            const verified = performance.now();
            const from = manifest.storeDir;
            const promotion = inputDigest === undefined
                ? undefined
                : {
                    digest: inputDigest,
                    storeDir: from,
                    checksum: manifest.checksum,
                    signedBy: manifestSigners(manifest, trusted),
                    // Only an input no key was asked to vouch for is "accepted without proof".
                    ...(options.noCheckSigs === true && trusted.length === 0 && { noCheckSigs: true }),
                    at: rfc3339(options.now?.() ?? new Date()),
                };
            if (from === options.to)
                throw new errors_NixPlanError('realm', `the bundle is already for store dir ${from}; nothing to relocate`);
            deps.log.info(`relocating ${objects.length} paths from ${from} to ${options.to}…`);
            // Relocated objects are written as they are made: zstd compresses on the threadpool
            // meanwhile, and neither the old nor the new bytes of the closure are all held at once.
            if (derivations === undefined)
                throw new errors_NixPlanError('internal', 'the verifier did not hand over the checks of the .drv files');
            const { relocation, steps } = relocateLazily(objects, from, options.to, {
                onDerivation: (o, drv) => derivations.check(o.path, o.references, drv),
                optionNames: options.optionNames,
            });
            objects = [];
            const narBytes = emptyCounts();
            const rootDrvs = new Set(manifest.roots.map((r) => r.drvPath));
            const rootContents = new Map();
            const task = progressOf(deps).start('relocating and writing', manifest.paths);
            const seen = (o) => {
                narBytes[o.kind] +=
                    o.contents !== undefined ? regularFileNarSize(o.contents.length) : (narSizes.get(o.oldPath) ?? 0);
                if (o.contents !== undefined && rootDrvs.has(o.oldPath))
                    rootContents.set(o.oldPath, o.contents);
                task.tick(1);
            };
            // Known only once every object is relocated; the writer asks for it after the data, and
            // moves the new bundle into place only if the input's .drv files passed the last checks.
            const draft = () => {
                derivations.finish();
                const promotions = [...(manifest.promotions ?? []), ...(promotion === undefined ? [] : [promotion])];
                return {
                    tool: TOOL_VERSION,
                    nixVersion: manifest.nixVersion,
                    // Freshness is about the plan's content: relocation keeps when and where it was made.
                    ...(manifest.createdAt !== undefined && { createdAt: manifest.createdAt }),
                    provenance: manifest.provenance ?? {},
                    ...(promotions.length > 0 && { promotions }),
                    storeDir: options.to,
                    systems: manifest.systems,
                    include: manifest.include,
                    roots: manifest.roots.map((r) => {
                        const moved = relocateRoot(r, relocation.pathMap);
                        const drv = rootContents.get(r.drvPath);
                        // Output paths come from the relocated .drv itself, the source of truth Nix will check.
                        return drv === undefined ? moved : { ...moved, outputs: outputsOf(parseDerivation(drv)) };
                    }),
                    counts: manifest.counts,
                    narBytes,
                    paths: manifest.paths,
                    relocatedFrom: { storeDir: from, report: relocation.report },
                };
            };
            try {
                const entries = keepSources
                    ? keptEntries(steps, relocation, { derivers, nars: sourceNars, paths: closurePaths }, seen)
                    : rereadEntries(bundle, steps, relocation, seen);
                const { manifest: written, bundleBytes } = await writeBundle(options.output, draft, writeExport(entries), {
                    level: options.level ?? RELOCATE_LEVEL,
                    longDistanceMatching: options.level !== undefined,
                    ...(options.level === undefined && { windowLog: RELOCATE_WINDOW_LOG }),
                    keys,
                    // Whatever it relocated to, its readers must accept it (a bundle that grew past a limit).
                    check: (m) => checkWritten(m, DEFAULT_READER_LIMITS),
                });
                for (const w of relocation.report.warnings)
                    deps.log.warn(w);
                return {
                    bundlePath: options.output,
                    manifest: written,
                    bundleBytes,
                    report: relocation.report,
                    trust: trustReportOf(manifest, trusted, { noCheckSigs: options.noCheckSigs, unproven }),
                    timings: {
                        verifyMs: Math.round(verified - started),
                        relocateMs: Math.round(performance.now() - verified),
                    },
                };
            }
            finally {
                task.done();
            }
        }
        finally {
            scratch?.close();
        }
    }
    finally {
        await copy.dispose();
    }
}

;// CONCATENATED MODULE: ./src/app/export.ts
// exportPlan: evaluate once, collect the closure from the store, write it as one plan bundle.


















/** Counts and NAR bytes per kind. */
function tally(objects) {
    const counts = emptyCounts();
    const narBytes = emptyCounts();
    for (const o of objects) {
        counts[o.kind]++;
        narBytes[o.kind] += o.narSize;
    }
    return { counts, narBytes };
}
/** Evaluates, collects and writes the bundle. */
async function exportPlan(options, deps) {
    const keyTexts = secretKeyTexts(options);
    const keys = keyTexts.map(parseSecretKey);
    const include = options.include ?? 'drvs';
    const names = options.optionNames;
    await assertWritable(options.output);
    // A request that cannot be evaluated is refused before the evaluation's progress line starts.
    const request = await checkEvaluateRequest(options);
    const store = new NixStore(deps.runner, { store: options.store, realStoreDir: options.realStoreDir });
    const t0 = performance.now();
    const createdAt = rfc3339(options.now?.() ?? new Date());
    const nixVersion = await store.version();
    const evaluating = progressOf(deps).start(`evaluating with Nix ${nixVersion}`);
    const { roots, storeDir } = await evaluate(request, store, deps.nixLog).finally(() => evaluating.done());
    const t1 = performance.now();
    // Provenance (git, the flake's lock) is read while the closure is: neither needs the other.
    const [closure, provenance] = await Promise.all([
        // Returns once the .drv files are read; Nix still describes the paths while writing starts.
        streamClosure(store, storeDir, roots.map((r) => r.drvPath), include, {
            onRealise: (what, n) => deps.log.info(`realising ${n} ${what} for ${optionSet(names, 'include', include)}…`),
        }, 
        // The stream needs no NAR hashes; Nix's database is asked only about the other paths.
        { drvsFromFiles: true }),
        collectProvenance(options, store, options.provenance ?? {}, deps.log),
    ]);
    const t2 = performance.now();
    // A build output evaluation read proves itself to nobody: a `sources` plan carries one signed.
    const unsigned = keys.length === 0 ? closure.builtInputs?.find((b) => b.path === b.output) : undefined;
    if (unsigned !== undefined)
        throw builtInputRefusal(unsigned, "a 'sources' bundle carries a build output only signed, since nothing else proves what it holds: " +
            `${exportWith(names)} ${optionName(names, 'signKey')} (readers then give the public key with ${optionName(names, 'trustedKey')})`);
    const { counts, narBytes } = tally([]);
    let paths = 0;
    // Counts, sizes, systems and the roots' outputs are known once the stream has been written.
    const draft = () => {
        const { rootOutputs, systems } = closure.summary();
        const bundleRoots = roots.map((r) => ({
            ...(r.installable !== undefined && { installable: r.installable }),
            ...(r.attribute !== undefined && { attribute: r.attribute }),
            drvPath: r.drvPath,
            outputs: rootOutputs.get(r.drvPath) ?? {},
        }));
        return {
            tool: TOOL_VERSION,
            nixVersion,
            createdAt,
            provenance,
            storeDir,
            systems,
            include,
            roots: bundleRoots,
            counts,
            narBytes,
            paths,
        };
    };
    const task = progressOf(deps).start('writing bundle', closure.count);
    // What is not a .drv, to find the build outputs evaluation read (import from derivation).
    const members = [];
    const carried = new Set();
    const readerLimits = {
        ...DEFAULT_READER_LIMITS,
        ...options.readerLimits,
        export: { ...DEFAULT_READER_LIMITS.export, ...options.readerLimits?.export },
    };
    // Paths the bundle's readers would refuse, found as they are written.
    const overLimits = [];
    async function* entries() {
        for await (const o of closure.objects) {
            carried.add(o.path);
            if (o.kind !== 'drv')
                members.push({ path: o.path, kind: o.kind, deriver: o.deriver });
            // A 'drvs' bundle carries only what evaluation writes.
            if (o.kind === 'output' && include === 'drvs')
                throw builtInputRefusal({ path: o.path, output: o.path, deriver: o.deriver }, `a 'drvs' bundle carries only what evaluation writes: ${exportWith(names)} ${optionSet(names, 'include', 'sources')} ${names?.style === 'input' ? 'and ' : ''}${optionName(names, 'signKey')} to carry it ` +
                    '(relocating the plan to another store dir is then refused: native evaluation there would build it again)');
            const problem = entryLimitProblem({ ...o, fileSize: o.file?.bytes.length }, readerLimits);
            if (problem !== undefined)
                overLimits.push(problem);
            yield {
                path: o.path,
                references: [...o.references],
                deriver: o.deriver,
                // Read synchronously when its turn comes, once (a .drv was read to stream the closure).
                nar: o.file === undefined
                    ? narOf(store.realPathSync(o.path))
                    : regularFileNar(o.file.bytes, o.file.executable),
            };
            counts[o.kind]++;
            narBytes[o.kind] += o.narSize;
            paths++;
            task.tick(1, o.narSize);
        }
    }
    deps.log.debug(`${closure.count} paths`);
    const target = options.relocateTo === undefined ? options.output : tempPathNear(options.output);
    let written;
    try {
        written = await writeBundle(target, draft, writeExport(entries()), {
            ...(options.level === undefined ? EXPORT_COMPRESSION : { level: options.level }),
            // With --relocate-to the plan is signed twice: here, so relocation can check that what it
            // reads is what was just written, and after relocation.
            keys,
            check: (m) => checkWritten(m, readerLimits, overLimits),
        });
    }
    finally {
        task.done();
    }
    let { manifest, bundleBytes } = written;
    const builtInputs = closure.builtInputs ?? (include === 'drvs' ? await findBuiltInputs(store, storeDir, members) : []);
    for (const b of builtInputs)
        deps.log.warn(explainBuiltInput(b, include, carried.has(b.deriver), names));
    if (options.relocateTo !== undefined) {
        try {
            const relocated = await relocatePlan(target, {
                to: options.relocateTo,
                output: options.output,
                signingKeys: keyTexts,
                trustedKeys: keys.map((k) => formatPublicKey(publicKeyOf(k))),
                // One step from evaluation: relocatedFrom says where it was evaluated; no promotion.
                recordPromotion: false,
                level: options.level,
            }, deps);
            manifest = relocated.manifest;
            bundleBytes = relocated.bundleBytes;
        }
        finally {
            await (0,external_node_fs_promises_namespaceObject.rm)(target, { force: true });
        }
    }
    const t3 = performance.now();
    if (manifest.paths !== closure.count)
        throw new errors_NixPlanError('internal', 'the written bundle does not hold the collected closure');
    return {
        bundlePath: options.output,
        manifest,
        bundleBytes,
        timings: {
            evaluateMs: Math.round(t1 - t0),
            collectMs: Math.round(t2 - t1),
            writeMs: Math.round(t3 - t2),
        },
    };
}
/**
 * The refusal of a build output the plan depends on (evaluation read it: import from derivation, or
 * builtins.storePath), naming it, and `why` the bundle cannot carry it.
 */
function builtInputRefusal(b, why) {
    return new errors_NixPlanError('closure', `${describeBuiltInput(b)}; the plan depends on it, and ${why}`);
}
/** What export tells the user about a build output the plan depends on, and what --include does. */
function explainBuiltInput(b, include, derivationCarried, names) {
    const what = describeBuiltInput(b);
    if (b.path === b.output)
        return `${what}: the bundle carries it (${optionSet(names, 'include', include)}), but relocating the plan to another store dir is refused, as native evaluation there would build it again`;
    return derivationCarried
        ? `${what}: the plan carries that derivation, so relocation can name the copy in another store dir`
        : `${what}: relocating the plan needs that derivation to name the copy in another store dir; ${exportWith(names)} ${optionSet(names, 'include', 'sources')} to carry it`;
}
/** How a message asks for an export option: the command line exports with a flag, an action is given an input. */
function exportWith(names) {
    return names?.style === 'input' ? 'give' : 'export with';
}

;// CONCATENATED MODULE: ./src/app/keygen.ts
// keygen: a signing key pair in the files `nix-store --generate-binary-cache-key NAME SECRET PUBLIC` writes.



/**
 * A fresh ed25519 key pair named `name`, as `NAME:base64` texts Nix reads (in `--key-file`,
 * `secret-key-files`, `trusted-public-keys`). Throws a `usage` error for a name Nix cannot use.
 */
function keygen(name) {
    return generateKeyPair(name);
}
async function writeNew(path, text, mode) {
    try {
        // Created with its final mode (never briefly readable by others) and never over an existing
        // file: overwriting a key would orphan every signature made with it.
        await (0,external_node_fs_promises_namespaceObject.writeFile)(path, text, { mode, flag: 'wx' });
    }
    catch (e) {
        const code = e.code;
        throw new errors_NixPlanError('usage', code === 'EEXIST'
            ? `'${path}' exists; refusing to overwrite a key file`
            : `cannot write '${path}': ${e.message}`);
    }
}
/** Refuses a key file that exists, before anything is written. */
async function assertAbsent(path) {
    try {
        await (0,external_node_fs_promises_namespaceObject.lstat)(path);
    }
    catch (e) {
        if (e.code === 'ENOENT')
            return;
        throw new errors_NixPlanError('usage', `cannot write '${path}': ${e.message}`);
    }
    throw new errors_NixPlanError('usage', `'${path}' exists; refusing to overwrite a key file`);
}
/**
 * Writes a key pair as Nix does: the secret with mode 0600, the public key 0644, no trailing
 * newline (older Nix does not trim key files). Refuses to overwrite either file, and checks both
 * before writing either, so a refusal leaves nothing behind; should the public file still fail
 * (created meanwhile, a full disk), the secret this call just wrote is removed again.
 */
async function writeKeyPair(pair, files) {
    await assertAbsent(files.secretFile);
    await assertAbsent(files.publicFile);
    await writeNew(files.secretFile, pair.secretKey, 0o600);
    try {
        await writeNew(files.publicFile, pair.publicKey, 0o644);
    }
    catch (e) {
        await (0,external_node_fs_promises_namespaceObject.rm)(files.secretFile, { force: true });
        throw e;
    }
}

;// CONCATENATED MODULE: ./src/cli/use-cases.ts
// The use cases the command line calls, as one injectable table (tests replace entries with fakes).















/** The real use cases. */
const defaultUseCases = {
    exportPlan: exportPlan,
    inspectPlan: inspectPlan,
    verifyPlan: verifyPlan,
    importPlan: importPlan,
    realisePlan: realisePlan,
    dryRunRealise: dryRunRealise,
    relocatePlan: relocatePlan,
    applyPlan: applyPlan,
    deployPlan: deployPlan,
    deployRollback: deployRollback,
    keygen: keygen,
    diffPlanSources: diffPlanSources,
    planContents: planContents,
    writeKeyPair: writeKeyPair,
    copyImport: binaryCacheCopyImport,
    withFreshness: withFreshness,
};

;// CONCATENATED MODULE: ./src/cli/verbose-runner.ts
// The command line's view of the Nix commands it runs: `-v` echoes each one (argv, quoted for a
// shell), `-vv` passes verbosity on to Nix and shows its messages, `--log-format` reaches the Nix
// commands whose output is shown (so `nix-plan realise … --log-format internal-json |& nom --json`
// works). A decorator over any CommandRunner, so tests and the real runner see the same.


/** Nix's own tools: these take `-v` and `--log-format`; anything else (an activation script) does not. */
const NIX_TOOLS = new Set([
    'nix',
    'nix-store',
    'nix-instantiate',
    'nix-env',
    'nix-build',
    'nix-shell',
    'nix-copy-closure',
    'nix-collect-garbage',
]);
/** Whether `cmd` is one of Nix's tools. */
function isNixTool(cmd) {
    return NIX_TOOLS.has((0,external_node_path_namespaceObject.basename)(cmd));
}
/** Wraps `inner` so it runs each command as `verbosity` asks. */
class VerboseRunner {
    inner;
    verbosity;
    constructor(inner, verbosity) {
        this.inner = inner;
        this.verbosity = verbosity;
    }
    run(cmd, args, options = {}) {
        const { level, logFormat, shownLog } = this.verbosity;
        const nix = isNixTool(cmd);
        // From -vv the stderr of every Nix command not already passed on is shown as it comes, so
        // its -v has something to say.
        const showAll = nix && level >= 2 && options.onStderr === undefined;
        const shown = showAll || (options.onStderr !== undefined && options.onStderr === shownLog);
        const extra = nix
            ? [
                ...Array.from({ length: Math.max(0, level - 1) }, () => '-v'),
                ...(logFormat !== undefined && shown ? ['--log-format', logFormat] : []),
            ]
            : [];
        const argv = [...extra, ...args];
        if (level >= 1)
            this.verbosity.write(`+ ${formatCommandLine(cmd, argv)}\n`);
        return this.inner.run(cmd, argv, showAll ? { ...options, onStderr: (c) => this.verbosity.write(c) } : options);
    }
}

;// CONCATENATED MODULE: ./src/cli/main.ts
// The `nix-plan` command line: picks the subcommand, runs it, and turns every outcome into output
// and a documented exit code. Everything process-facing is injected, so tests call `main` directly.













/** Top-level help: the commands and where to read more. */
function mainHelp() {
    const width = Math.max(...COMMANDS.map((c) => c.name.length));
    return [
        'Usage: nix-plan COMMAND [OPTIONS]',
        '',
        'Evaluate a Nix configuration once, carry its build plan as one small file (a plan bundle),',
        'and realise or relocate it anywhere without evaluating again.',
        '',
        'Commands:',
        ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
        '',
        "Options for every command: -h/--help, -q/--quiet, -v/--verbose (each Nix command; -vv also Nix's messages),",
        '--json (machine-readable result).',
        "Run 'nix-plan COMMAND --help' for a command's options. Exit codes: see 'nix-plan help exit-codes'.",
        '',
    ].join('\n');
}
/** The exit code table, as `nix-plan help exit-codes` prints it. */
function exitCodesHelp() {
    return ['Exit codes:', ...EXIT_CODE_MEANINGS.map(([c, d]) => `  ${String(c).padStart(3)}  ${d}`), ''].join('\n');
}
const processIo = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: (name) => process.env[name],
};
/** Runs `nix-plan` with `argv` (without node and script) and returns the exit code. */
async function main(argv, options = {}) {
    const io = options.io ?? processIo;
    const [first, ...rest] = argv;
    if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
        if (first === 'help' && rest[0] === 'exit-codes')
            io.stdout.write(exitCodesHelp());
        else if (first === 'help' && rest[0] !== undefined) {
            const cmd = COMMANDS.find((c) => c.name === rest[0]);
            if (cmd === undefined)
                return usage(io, `unknown command '${rest[0]}'`);
            io.stdout.write(commandHelp(cmd));
        }
        else
            io.stdout.write(mainHelp());
        return first === undefined ? ExitCode.usage : ExitCode.ok;
    }
    if (first === '--version' || first === 'version') {
        io.stdout.write(`${TOOL_VERSION}\n`);
        return ExitCode.ok;
    }
    if (typeof external_node_zlib_namespaceObject.createZstdCompress !== 'function') {
        io.stderr.write(`nix-plan: error: this Node.js (${process.version}) has no zstd in node:zlib; nix-plan needs Node.js ${NODE_REQUIRED} or newer\n`);
        return ExitCode.internal;
    }
    const command = COMMANDS.find((c) => c.name === first);
    if (command === undefined)
        return usage(io, `unknown command '${first}'`);
    if (rest.includes('-h') || rest.includes('--help')) {
        const dash = rest.indexOf('--');
        const help = rest.findIndex((a) => a === '-h' || a === '--help');
        if (dash < 0 || help < dash) {
            io.stdout.write(commandHelp(command));
            return ExitCode.ok;
        }
    }
    const verbosity = verbosityOf(rest);
    // An echoed command starts on a clean line, even under a progress bar.
    const write = (text) => io.stderr.write(typeof text === 'string' && io.stderr.isTTY === true ? `\r\x1b[K${text}` : text);
    const controller = new AbortController();
    const log = terminalLogger(io, verbosity);
    const signals = options.signals ?? (options.io === undefined ? process : undefined);
    const stopListening = signals === undefined
        ? () => undefined
        : abortOnStopSignals(controller, signals, (s) => log.warn(`${s}: still cleaning up, please wait`));
    const makeContext = (args) => {
        const base = options.runner ?? new ProcessRunner();
        const logFormat = oneOf(str(args, 'log-format'), 'log-format', LOG_FORMATS);
        const nixLog = verbosity.quiet ? undefined : (chunk) => io.stderr.write(chunk);
        const runner = verbosity.level > 0 || logFormat !== undefined
            ? new VerboseRunner(base, { level: verbosity.level, logFormat, write, shownLog: nixLog })
            : base;
        return {
            io,
            useCases: { ...defaultUseCases, ...options.useCases },
            deps: {
                // Every command stops when a signal comes; what cleans up after it runs on `runner`.
                runner: new AbortableRunner(runner, controller.signal),
                log,
                progress: terminalProgress(io, verbosity),
                nixLog,
                signal: controller.signal,
            },
        };
    };
    try {
        const args = command.parse(rest);
        await command.run(args, makeContext(args));
        return ExitCode.ok;
    }
    catch (error) {
        // Stopped by a signal, whatever error the stopping caused: exit as the signal says.
        const code = exitCodeFor(controller.signal.aborted ? interruption(controller.signal) : error);
        // An error may quote the bundle (a path, a field): its control characters are made visible.
        io.stderr.write(`nix-plan ${command.name}: error: ${escapeTerminal(stringifyError(error), { multiline: true })}\n`);
        // Only after a mistake in the arguments: a refusal of what they ask for is not helped by --help.
        if (error instanceof ArgumentError)
            io.stderr.write(`Try 'nix-plan ${command.name} --help'.\n`);
        if (!(error instanceof errors_NixPlanError) && !controller.signal.aborted) {
            io.stderr.write('This is a bug in nix-plan; please report it with the output of --verbose.\n');
            if (verbosity.verbose && error instanceof Error && error.stack !== undefined)
                io.stderr.write(`${error.stack}\n`);
        }
        return code;
    }
    finally {
        stopListening();
    }
}
/**
 * `-q` and the `-v` count from the options before `--` (`-v -v`, `-vv` and `--verbose` add up;
 * letters grouped with the other flags, `-qv`, count too).
 */
function verbosityOf(argv) {
    const dash = argv.indexOf('--');
    const head = dash < 0 ? argv : argv.slice(0, dash);
    let level = 0;
    let quiet = false;
    for (const a of head) {
        if (a === '--verbose')
            level++;
        else if (a === '--quiet')
            quiet = true;
        else if (/^-[qvh]+$/.test(a)) {
            level += a.split('v').length - 1;
            quiet ||= a.includes('q');
        }
    }
    return { quiet, verbose: level > 0, level };
}
function usage(io, message) {
    io.stderr.write(`nix-plan: error: ${message}\nTry 'nix-plan --help'.\n`);
    return ExitCode.usage;
}


/***/ }),

/***/ 546:
/***/ ((module, __unused_webpack___webpack_exports__, __nccwpck_require__) => {

__nccwpck_require__.a(module, async (__webpack_handle_async_dependencies__, __webpack_async_result__) => { try {
/* harmony import */ var _cli_main_js__WEBPACK_IMPORTED_MODULE_0__ = __nccwpck_require__(540);
// The `nix-plan` command line (bin): run main with the process's arguments, exit with its code.

process.exitCode = await (0,_cli_main_js__WEBPACK_IMPORTED_MODULE_0__/* .main */ .iW)(process.argv.slice(2));

__webpack_async_result__();
} catch(e) { __webpack_async_result__(e); } }, 1);

/***/ })

/******/ });
/************************************************************************/
/******/ // The module cache
/******/ var __webpack_module_cache__ = {};
/******/ 
/******/ // The require function
/******/ function __nccwpck_require__(moduleId) {
/******/ 	// Check if module is in cache
/******/ 	var cachedModule = __webpack_module_cache__[moduleId];
/******/ 	if (cachedModule !== undefined) {
/******/ 		return cachedModule.exports;
/******/ 	}
/******/ 	// Create a new module (and put it into the cache)
/******/ 	var module = __webpack_module_cache__[moduleId] = {
/******/ 		// no module.id needed
/******/ 		// no module.loaded needed
/******/ 		exports: {}
/******/ 	};
/******/ 
/******/ 	// Execute the module function
/******/ 	var threw = true;
/******/ 	try {
/******/ 		__webpack_modules__[moduleId](module, module.exports, __nccwpck_require__);
/******/ 		threw = false;
/******/ 	} finally {
/******/ 		if(threw) delete __webpack_module_cache__[moduleId];
/******/ 	}
/******/ 
/******/ 	// Return the exports of the module
/******/ 	return module.exports;
/******/ }
/******/ 
/************************************************************************/
/******/ /* webpack/runtime/asset-relocator-loader */
/******/ if (typeof __nccwpck_require__ !== 'undefined') __nccwpck_require__.ab = decodeURIComponent(new URL('.', import.meta.url).pathname).slice(import.meta.url.match(/^file:\/\/\/\w:/) ? 1 : 0, -1) + "/";
/******/ 
/******/ /* webpack/runtime/async module */
/******/ (() => {
/******/ 	var webpackQueues = typeof Symbol === "function" ? Symbol("webpack queues") : "__webpack_queues__";
/******/ 	var webpackExports = typeof Symbol === "function" ? Symbol("webpack exports") : "__webpack_exports__";
/******/ 	var webpackError = typeof Symbol === "function" ? Symbol("webpack error") : "__webpack_error__";
/******/ 	var resolveQueue = (queue) => {
/******/ 		if(queue && queue.d < 1) {
/******/ 			queue.d = 1;
/******/ 			queue.forEach((fn) => (fn.r--));
/******/ 			queue.forEach((fn) => (fn.r-- ? fn.r++ : fn()));
/******/ 		}
/******/ 	}
/******/ 	var wrapDeps = (deps) => (deps.map((dep) => {
/******/ 		if(dep !== null && typeof dep === "object") {
/******/ 			if(dep[webpackQueues]) return dep;
/******/ 			if(dep.then) {
/******/ 				var queue = [];
/******/ 				queue.d = 0;
/******/ 				dep.then((r) => {
/******/ 					obj[webpackExports] = r;
/******/ 					resolveQueue(queue);
/******/ 				}, (e) => {
/******/ 					obj[webpackError] = e;
/******/ 					resolveQueue(queue);
/******/ 				});
/******/ 				var obj = {};
/******/ 				obj[webpackQueues] = (fn) => (fn(queue));
/******/ 				return obj;
/******/ 			}
/******/ 		}
/******/ 		var ret = {};
/******/ 		ret[webpackQueues] = x => {};
/******/ 		ret[webpackExports] = dep;
/******/ 		return ret;
/******/ 	}));
/******/ 	__nccwpck_require__.a = (module, body, hasAwait) => {
/******/ 		var queue;
/******/ 		hasAwait && ((queue = []).d = -1);
/******/ 		var depQueues = new Set();
/******/ 		var exports = module.exports;
/******/ 		var currentDeps;
/******/ 		var outerResolve;
/******/ 		var reject;
/******/ 		var promise = new Promise((resolve, rej) => {
/******/ 			reject = rej;
/******/ 			outerResolve = resolve;
/******/ 		});
/******/ 		promise[webpackExports] = exports;
/******/ 		promise[webpackQueues] = (fn) => (queue && fn(queue), depQueues.forEach(fn), promise["catch"](x => {}));
/******/ 		module.exports = promise;
/******/ 		body((deps) => {
/******/ 			currentDeps = wrapDeps(deps);
/******/ 			var fn;
/******/ 			var getResult = () => (currentDeps.map((d) => {
/******/ 				if(d[webpackError]) throw d[webpackError];
/******/ 				return d[webpackExports];
/******/ 			}))
/******/ 			var promise = new Promise((resolve) => {
/******/ 				fn = () => (resolve(getResult));
/******/ 				fn.r = 0;
/******/ 				var fnQueue = (q) => (q !== queue && !depQueues.has(q) && (depQueues.add(q), q && !q.d && (fn.r++, q.push(fn))));
/******/ 				currentDeps.map((dep) => (dep[webpackQueues](fnQueue)));
/******/ 			});
/******/ 			return fn.r ? promise : getResult();
/******/ 		}, (err) => ((err ? reject(promise[webpackError] = err) : outerResolve(exports)), resolveQueue(queue)));
/******/ 		queue && queue.d < 0 && (queue.d = 0);
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/define property getters */
/******/ (() => {
/******/ 	// define getter functions for harmony exports
/******/ 	__nccwpck_require__.d = (exports, definition) => {
/******/ 		for(var key in definition) {
/******/ 			if(__nccwpck_require__.o(definition, key) && !__nccwpck_require__.o(exports, key)) {
/******/ 				Object.defineProperty(exports, key, { enumerable: true, get: definition[key] });
/******/ 			}
/******/ 		}
/******/ 	};
/******/ })();
/******/ 
/******/ /* webpack/runtime/hasOwnProperty shorthand */
/******/ (() => {
/******/ 	__nccwpck_require__.o = (obj, prop) => (Object.prototype.hasOwnProperty.call(obj, prop))
/******/ })();
/******/ 
/************************************************************************/
/******/ 
/******/ // startup
/******/ // Load entry module and return exports
/******/ // This entry module used 'module' so it can't be inlined
/******/ var __webpack_exports__ = __nccwpck_require__(546);
/******/ __webpack_exports__ = await __webpack_exports__;
/******/ 
