// npm run build: ESM + CommonJS + declarations (tsc), the minified browser
// bundle and the mini-program file (esbuild), the size check, and the two
// committed copies the rest of the repo uses.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as esbuild from 'esbuild';
import { COPIES, SIZE_LIMIT, gzipSize, root } from './common.mjs';

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

rmSync(join(root, 'dist'), { recursive: true, force: true });

execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.cjs.json'], { cwd: root, stdio: 'inherit' });
writeFileSync(join(root, 'dist/cjs/package.json'), '{"type":"commonjs"}\n');

const banner = (what) =>
  `/*! switchboard-client ${pkg.version} (${what}) | generated from clients/js by \`npm run build\`: do not edit */`;

await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/bundle-browser.ts'],
  outfile: 'dist/switchboard.browser.js',
  bundle: true,
  format: 'iife',
  minify: true,
  target: 'es2018',
  legalComments: 'inline',
  banner: { js: banner('browser: sets the global Switchboard') },
  logLevel: 'warning',
});

await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/wx.ts'],
  outfile: 'dist/wx/switchboard.js',
  bundle: true,
  format: 'cjs',
  platform: 'neutral',
  target: 'es2017',
  minify: false,
  legalComments: 'inline',
  banner: { js: banner('WeChat mini-program: module.exports = { Switchboard, SwitchboardError, Room }') },
  logLevel: 'warning',
});

writeFileSync(join(root, 'dist/wx/package.json'), '{"type":"commonjs"}\n');

const size = gzipSize(readFileSync(join(root, 'dist/switchboard.browser.js')));
writeFileSync(join(root, 'dist/size.json'), JSON.stringify({ 'switchboard.browser.js': { minGzipBytes: size, limit: SIZE_LIMIT } }) + '\n');
console.log(`dist/switchboard.browser.js: ${size} bytes min+gzip (limit ${SIZE_LIMIT})`);
if (size > SIZE_LIMIT) {
  console.error(`the browser bundle is ${size} bytes min+gzip, over the ${SIZE_LIMIT}-byte budget`);
  process.exit(1);
}

for (const [from, to] of COPIES) {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(join(root, from), to);
  console.log(`copied ${from} -> ${to}`);
}

