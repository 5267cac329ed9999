import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { rawPathFor, runCalibrate, type CalibrateOptions } from '../../runtime/src/calibrate/run.js';
import { UserError } from '../../core/src/errors.js';
import { checkOutputFile } from '../../core/src/output-path.js';
import { defaultDevice } from '../../runtime/src/engine/devices.js';
import { CPU_ROUNDINGS } from '../../runtime/src/offload/miss-options.js';
import { parseChoiceOption, parseIntListOption } from '../../core/src/options.js';
import { expertDtypeListFromCli } from '../../runtime/src/engine/cli-options.js';

interface CalibrateCliOptions {
  out?: string;
  force?: boolean;
  device?: string;
  threads?: string;
  quick?: boolean;
  model?: string;
  geometry?: string;
  cpuOnly?: boolean;
  base?: string;
  name?: string;
  quiet?: boolean;
  expertDtype?: string;
  expertGroup?: string;
  cpuRounding?: string;
}

/** Checks the options before anything is measured; every refusal names the option. */
export function parseCalibrateOptions(o: CalibrateCliOptions, command: string): CalibrateOptions {
  if (!o.out) throw new UserError('option --out: required (the calibration profile to write, e.g. sim/calibration/<name>.json)');
  if (!o.out.toLowerCase().endsWith('.json')) throw new UserError(`option --out: '${o.out}' must end in .json`);
  // The profile and its raw samples beside it: both checked before anything is measured.
  const out = checkOutputFile(o.out, { option: '--out', force: o.force, inputs: o.base ? [o.base] : [] });
  checkOutputFile(rawPathFor(out), { option: '--out', force: o.force, inputs: o.base ? [o.base] : [] });
  const device = o.device === undefined ? defaultDevice() : parseChoiceOption('--device', o.device, ['cuda', 'cpu'] as const);
  if (o.model !== undefined && o.geometry !== undefined) throw new UserError('options --model and --geometry: give one of them, not both');
  if (o.model !== undefined && !(existsSync(o.model) && statSync(o.model).isDirectory())) {
    throw new UserError(`option --model: '${o.model}' is not a directory (a checkpoint directory with config.json)`);
  }
  if (o.cpuOnly && device !== 'cpu') throw new UserError('option --cpu-only: goes with --device cpu (device cuda measures everything)');
  if (device === 'cpu' && !o.cpuOnly) {
    throw new UserError(
      `${o.device === undefined ? 'this build has no CUDA backend, so calibrate measures on the CPU (--device cpu), which' : 'option --device cpu:'} measures the CPU figures only; ` +
        'add --cpu-only --base <profile> (e.g. --base sim/calibration/h200-measured.json) to write a profile whose GPU figures come from <profile>',
    );
  }
  if (o.cpuOnly && !o.base) throw new UserError('option --cpu-only: needs --base <profile>, the calibration profile to take the GPU figures from');
  if (o.base !== undefined && !o.cpuOnly) throw new UserError('option --base: only used with --cpu-only');
  if (o.base !== undefined && resolve(o.base) === out) throw new UserError('option --base: must not be the --out file');
  const threads = o.threads !== undefined ? [...new Set(parseIntListOption('--threads', o.threads, 1, 4096))].sort((a, b) => a - b) : undefined;
  const expertFormats = expertDtypeListFromCli(o);
  if (o.expertGroup !== undefined && !expertFormats.some((f) => f.dtype === 'int4')) throw new UserError('option --expert-group: only with --expert-dtype holding int4');
  if (o.name !== undefined && !/^[\w.-]+$/.test(o.name)) throw new UserError(`option --name: '${o.name}' may hold only letters, digits, '.', '_' and '-'`);
  return {
    out,
    device,
    threads,
    quick: !!o.quick,
    model: o.model,
    geometry: o.geometry ?? 'lite',
    cpuOnly: !!o.cpuOnly,
    base: o.base,
    name: o.name,
    quiet: !!o.quiet,
    command,
    expertFormats,
    cpuRounding: o.cpuRounding === undefined ? undefined : parseChoiceOption('--cpu-rounding', o.cpuRounding, CPU_ROUNDINGS),
  };
}

export function register(program: Command): void {
  program
    .command('calibrate')
    .description("measure the simulator's cost model on this machine (copies, GPU and CPU experts, non-expert layer parts) and write a calibration profile for `simulate --calibration`")
    .option('--out <file>', 'calibration profile to write (JSON); the raw measurements go to <file without .json>.raw.json')
    .option('--force', 'replace --out (and its .raw.json) if they exist')
    .option('--device <d>', 'cuda (everything; needs a build with the CUDA backend) or cpu (CPU figures only: needs --cpu-only --base <profile>); default: cuda when this build has the CUDA backend, else cpu')
    .option('--threads <list>', 'CPU thread counts to time the CPU expert with (default: 1,4,8,16 up to the hardware threads)')
    .option('--quick', 'few points and repeats (tests, a first look)')
    .option('--model <dir>', 'checkpoint directory whose config.json gives the shapes (default: DeepSeek-V2-Lite)')
    .option('--geometry <name>', 'built-in shapes instead of --model: lite (default), tiny-a..tiny-d')
    .option('--cpu-only', 'with --device cpu: write a profile with measured CPU figures and the GPU figures of --base')
    .option('--base <profile>', 'with --cpu-only: the calibration profile to take the GPU figures from')
    .option('--name <name>', "the profile's name (default: the --out file name)")
    .option('--expert-dtype <list>', 'expert formats to measure (comma-separated: bf16, int8, int4); bf16 is always measured (the top-level figures), each other gets a byExpertDtype entry (GPU and CPU expert times of the quantized kernels)', 'bf16')
    .option('--expert-group <n>', 'with int4: inputs per group (default 64)')
    .option('--cpu-rounding <how>', 'the bf16 CPU expert kernel the CPU curves are measured with, as the runtime\'s --cpu-rounding: fast (default) or gpu-order')
    .option('--quiet', 'no progress and no table')
    .action((opts: CalibrateCliOptions) => {
      const o = parseCalibrateOptions(opts, ['moe-offload', ...process.argv.slice(2)].join(' '));
      const r = runCalibrate(o);
      if (!o.quiet) {
        process.stdout.write(`${r.table}\n\n`);
        process.stdout.write(`wrote ${o.out} (${r.profile.label})\nraw measurements: ${r.rawPath}\n`);
      }
    });
}
