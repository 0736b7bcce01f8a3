import { gzipSync, constants } from 'node:zlib';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(root, '..', '..');

/** The browser bundle's budget, min+gzip. */
export const SIZE_LIMIT = 8 * 1024;

/** Built file -> committed copy elsewhere in the repo (the Rust binary embeds the first; the mini-program sample uses the second). */
export const COPIES = [
  ['dist/switchboard.browser.js', join(repo, 'host', 'static', 'switchboard.js')],
  ['dist/wx/switchboard.js', join(repo, 'clients', 'miniprogram', 'lib', 'switchboard.js')],
];

export const repoRoot = repo;
export const rel = (p) => relative(repo, p);

export function gzipSize(buf) {
  return gzipSync(buf, { level: constants.Z_BEST_COMPRESSION }).length;
}
