// Part of `npm test`: the committed copies are exactly what `npm run build`
// made, and the browser bundle is within its size budget.
//  - the copies on disk must equal dist/ (run `npm run build` first);
//  - where git tracks a copy, its committed version (HEAD) must equal the
//    fresh build too: a failure under CI=true, a warning otherwise (you are
//    mid-change and will commit the regenerated copy with the source).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COPIES, SIZE_LIMIT, gzipSize, rel, repoRoot, root } from './common.mjs';

let bad = 0;
const fail = (m) => {
  console.error('check: ' + m);
  bad++;
};

for (const [from, to] of COPIES) {
  const built = join(root, from);
  if (!existsSync(built)) {
    fail(`${from} is missing: run npm run build`);
    continue;
  }
  const fresh = readFileSync(built);
  if (!existsSync(to) || !readFileSync(to).equals(fresh)) fail(`${rel(to)} differs from ${from}: run npm run build`);
  let committed;
  try {
    committed = execFileSync('git', ['show', `HEAD:${rel(to)}`], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 });
  } catch {
    committed = undefined; // not in git (yet), or no git here
  }
  if (committed && !committed.equals(fresh)) {
    const m = `the committed ${rel(to)} is not the fresh build: commit the file npm run build wrote`;
    if (process.env.CI) fail(m);
    else console.warn('check: warning: ' + m);
  } else if (!committed) console.warn(`check: note: ${rel(to)} is not committed yet`);
}

const size = gzipSize(readFileSync(join(root, 'dist/switchboard.browser.js')));
if (size > SIZE_LIMIT) fail(`dist/switchboard.browser.js is ${size} bytes min+gzip, over ${SIZE_LIMIT}`);
else console.log(`check: browser bundle ${size} bytes min+gzip (limit ${SIZE_LIMIT}); copies up to date`);
process.exit(bad ? 1 : 0);
