#!/usr/bin/env node
/*
 * Builds labextension/prebuilt with @jupyterlab/builder against the core package.json of
 * the JupyterLab that is installed in the Python environment (jupyterlab/staging).
 *
 * Why not `jupyter labextension build`: since JupyterLab 4.6 it hands over to
 * jupyter-builder, which downloads the core metadata from the npm registry or GitHub at
 * build time; the installed JupyterLab already carries it, offline and of the exact
 * version the extension will run in.
 *
 * Usage: node build-labextension.js [--development] ; PYTHON picks the interpreter
 * (default: `python` on PATH, then ../.venv/bin/python).
 */
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const FIND_STAGING =
  'import os, jupyterlab; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))';

function stagingDir() {
  const candidates = [
    process.env.PYTHON,
    'python',
    path.join(__dirname, '..', '.venv', 'bin', 'python')
  ].filter(Boolean);
  for (const python of candidates) {
    try {
      const dir = execFileSync(python, ['-c', FIND_STAGING], {
        stdio: ['ignore', 'pipe', 'ignore']
      })
        .toString()
        .trim();
      if (fs.existsSync(path.join(dir, 'package.json'))) {
        return dir;
      }
    } catch {
      // not this interpreter; try the next one
    }
  }
  console.error(
    'build-labextension: no Python with jupyterlab found (tried ' +
      candidates.join(', ') +
      '); run scripts/setup.sh, or set PYTHON to the virtualenv\'s python'
  );
  process.exit(1);
}

const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js');
const args = [builder, '--core-path', stagingDir()];
if (process.argv.includes('--development')) {
  args.push('--development');
}
args.push(__dirname);
execFileSync(process.execPath, args, { stdio: 'inherit' });

// install.json tells `jupyter labextension list` which Python package ships this.
const outDir = path.join(__dirname, require('./package.json').jupyterlab.outputDir);
fs.copyFileSync(path.join(__dirname, 'install.json'), path.join(outDir, 'install.json'));
