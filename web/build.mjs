// build.mjs OUTDIR: bundles the chat page for embedding in the binary.
// Writes OUTDIR/index.html, app.js, app.css (bundled and minified: only
// here, the sources in src/ stay readable) and favicon.svg. The CMake build
// runs it and turns OUTDIR into C arrays (cmake/web_embed.cmake).
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node web/build.mjs OUTDIR');
  process.exit(2);
}
await mkdir(out, { recursive: true });

await build({
  entryPoints: { app: path.join(here, 'src/app.js') },
  outdir: out,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  legalComments: 'eof',   // the bundled libraries' licence notices stay in app.js
  charset: 'utf8',
  logLevel: 'warning',
});

// index.html: only the indentation goes; the markup is small and stays as written.
const html = await readFile(path.join(here, 'src/index.html'), 'utf8');
await writeFile(path.join(out, 'index.html'), html.replace(/^\s+/gm, '').replace(/<!--[\s\S]*?-->\n?/g, ''));
await copyFile(path.join(here, 'src/favicon.svg'), path.join(out, 'favicon.svg'));
