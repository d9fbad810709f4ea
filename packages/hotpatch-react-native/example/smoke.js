#!/usr/bin/env node
/**
 * Bundle index.js with Metro (real react-native 0.82.1 JavaScript and the
 * SDK's TypeScript sources), then run the bundle in the Hermes VM of
 * hermes-engine-cli behind platform.js (React Native's native side) and
 * smoke-native.js (a scripted HotPatch module).
 * Prints the VM's output; exits non-zero if Metro or Hermes fails.
 *
 *   node smoke.js [work-dir]
 */
'use strict';
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const here = __dirname;
const work = process.argv[2] || fs.mkdtempSync(path.join(os.tmpdir(), 'hotpatch-smoke-'));
fs.mkdirSync(work, { recursive: true });
const bundle = path.join(work, 'index.android.bundle');
const cli = path.join(here, 'node_modules', '@react-native-community', 'cli', 'build', 'bin.js');
execFileSync(
  process.execPath,
  [cli, 'bundle', '--platform', 'android', '--dev', 'false', '--minify', 'false',
   '--entry-file', 'index.js', '--bundle-output', bundle, '--assets-dest', work,
   '--reset-cache'],
  { cwd: here, stdio: ['ignore', 'ignore', 'inherit'] },
);
const program = path.join(work, 'smoke.js');
fs.writeFileSync(
  program,
  Buffer.concat([
    ...['platform.js', 'smoke-native.js'].map((name) => fs.readFileSync(path.join(here, name))),
    fs.readFileSync(bundle),
  ]),
);
const hermes = path.join(here, 'node_modules', 'hermes-engine-cli', `${process.platform === 'darwin' ? 'osx' : 'linux64'}-bin`, 'hermes');
const output = execFileSync(hermes, ['-w', '-Xes6-promise', '-Xes6-proxy', '-Xmicrotask-queue', program], {
  encoding: 'utf8',
});
process.stdout.write(output);
