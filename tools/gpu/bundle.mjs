#!/usr/bin/env node
// Assembles what a GPU-machine run needs into .gpu/ (ignored by git, carried with `carry: [".gpu"]`):
// the Node binary (xz), the CLI bundled into one ESM file, the Node-API headers for the addon build, and
// the ESFT routing traces (xz-compressed trace v1, bundle-traces.mjs). Needs `npm run build` for the import.
// The GPU machine has no Node.js, no npm and no network (../shared/docs/gpu-workflow.md).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { bundleTraces } from './bundle-traces.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** ShareGPT prompts carried to the device (issue 14's GPU-recorded ShareGPT trace). */
const SHAREGPT_HEAD = 256;
const out = join(root, '.gpu');
mkdirSync(out, { recursive: true });

const nodeXz = join(out, 'node.xz');
if (!existsSync(nodeXz)) {
  process.stderr.write('bundle: compressing the Node binary (about a minute)\n');
  // Symbols stripped (where `strip` exists) and xz -9e: 2 MB less of the 64 MiB a device call carries.
  execFileSync(
    'bash',
    ['-c', `cp "$(command -v node)" "${nodeXz}.bin" && { strip "${nodeXz}.bin" 2>/dev/null || true; } && xz -T2 -9e -c "${nodeXz}.bin" > "${nodeXz}.tmp" && rm "${nodeXz}.bin" && mv "${nodeXz}.tmp" "${nodeXz}"`],
    { stdio: 'inherit' },
  );
}

// Native npm packages cannot travel (platform binaries, tens of MB). Each is replaced by a stub module
// exporting the same names, each of which throws when used, so the bundle starts and only the commands
// that really need such a package (traces info, sweeps, charts) fail there, with a message saying why.
const stubbed = ['@duckdb/node-api', '@resvg/resvg-js'];
const optional = ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];
const stubPlugin = {
  name: 'stub-native-packages',
  setup(build) {
    const filter = new RegExp(`^(${stubbed.map((n) => n.replace(/[/.]/g, '\\$&')).join('|')})$`);
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'native-stub' }));
    build.onLoad({ filter: /.*/, namespace: 'native-stub' }, async (args) => {
      const names = Object.keys(await import(args.path)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
      const body = [
        `const fail = (what) => { throw new Error(what + ': ' + ${JSON.stringify(`${args.path} is a native package that the GPU bundle does not carry`)}); };`,
        `const stub = (name) => new Proxy(function () {}, { apply: () => fail(name), construct: () => fail(name), get: (_t, p) => (p === 'prototype' ? {} : stub(name + '.' + String(p))) });`,
        ...names.map((n) => `export const ${n} = stub(${JSON.stringify(n)});`),
        'export default stub("default");',
      ];
      return { contents: body.join('\n'), loader: 'js' };
    });
  },
};
await esbuild.build({
  plugins: [stubPlugin],
  stdin: {
    contents: "import { run } from './cli/main.ts';\nprocess.exitCode = await run(process.argv);\n",
    resolveDir: root,
    sourcefile: 'gpu-entry.ts',
    loader: 'ts',
  },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: join(out, 'moe-offload.mjs'),
  external: optional,
  // Bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
  // A device call carries at most 64 MiB with the tracked tree: whitespace and syntax minified (about half
  // the size); identifiers are kept, so stack traces still name the functions.
  minifyWhitespace: true,
  minifySyntax: true,
});

const include = join(out, 'include');
rmSync(include, { recursive: true, force: true });
cpSync(join(root, 'node_modules', 'node-api-headers', 'include'), join(include, 'node-api-headers'), { recursive: true });
const addonApi = join(root, 'node_modules', 'node-addon-api');
mkdirSync(join(include, 'node-addon-api'), { recursive: true });
for (const f of ['napi.h', 'napi-inl.h', 'napi-inl.deprecated.h']) {
  if (existsSync(join(addonApi, f))) cpSync(join(addonApi, f), join(include, 'node-addon-api', f));
}
// ESFT routing traces (issue 6 replays them on the device): .gpu/traces/<task>.arrow.xz.
const esft = join(root, '..', 'shared', 'traces', 'esft');
const cli = (args) => execFileSync(process.execPath, [join(root, 'bin', 'moe-offload.js'), ...args], { stdio: 'inherit' });
const traces = bundleTraces(esft, join(out, 'traces'), cli, (line) => process.stderr.write(line + '\n'));
if (traces.missing.length) process.stderr.write(`bundle: no ESFT traces for ${traces.missing.join(', ')} (${esft} missing): device runs cannot replay them\n`);

// ShareGPT (issue 14): the packaged copy is 600+ MB, past the 64 MiB carry limit, so the device gets the
// first prompts of it as a small ShareGPT-format file (.gpu/sharegpt-head.json), read here by the same
// streaming reader record-trace uses; `record-trace --dataset .gpu/sharegpt-head.json` records from it.
const sharegptHead = join(out, 'sharegpt-head.json');
try {
  const { loadPromptTexts } = await import(join(root, 'dist', 'runtime', 'src', 'record', 'dataset.js'));
  const { writeFileAtomic } = await import(join(root, 'dist', 'core', 'src', 'atomic-file.js'));
  const texts = loadPromptTexts('sharegpt', { quiet: true });
  const head = texts.texts.slice(0, SHAREGPT_HEAD);
  const doc = head.map((value, i) => ({ id: `sharegpt-head-${i}`, conversations: [{ from: 'human', value }] }));
  writeFileAtomic(sharegptHead, JSON.stringify(doc));
  process.stderr.write(`bundle: ${sharegptHead}: the first ${head.length} prompts of ${texts.summary}\n`);
} catch (e) {
  process.stderr.write(`bundle: no ShareGPT head (${e.message}): device runs cannot record a ShareGPT trace\n`);
}

// The CLI bundle travels xz-compressed too (5.6 MB -> under 1 MB: the tracked tree has grown towards the
// 64 MiB a call carries); tools/gpu/on-device.sh unpacks it on the device. Written as .tmp, then renamed.
const mjs = join(out, 'moe-offload.mjs');
execFileSync('sh', ['-c', `xz -T2 -9 -c "${mjs}" > "${mjs}.xz.tmp" && mv "${mjs}.xz.tmp" "${mjs}.xz" && rm "${mjs}"`]);
const mb = (p) => (statSync(p).size / 1e6).toFixed(1) + ' MB';
process.stdout.write(`bundle: ${mjs}.xz (${mb(mjs + '.xz')}), node.xz (${mb(nodeXz)}), headers in .gpu/include\n`);
