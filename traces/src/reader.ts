/**
 * Reads a trace v1 file into flat typed arrays and checks it against the schema, so that every consumer
 * (simulator, predictor, info) can trust what it gets. A truncated or foreign file is a BadInputError
 * naming the file, never a crash or a silently short trace.
 */
import { readFileSync, statSync } from 'node:fs';
import { RecordBatchFileReader, type Data, type Table, tableFromIPC } from 'apache-arrow';
import { BadInputError } from '../../core/src/errors.js';
import { checkArrowFraming } from './arrow-framing.js';
import { checkRoutingValues } from './check-values.js';
import { checkColumnTypes } from './check-types.js';
import { META_RUN_KEY, META_VERSION_KEY, TRACE_SCHEMA_VERSION, runMetaProblems, type RunMeta } from './schema.js';

export interface TraceTable {
  path: string;
  meta: RunMeta;
  rows: number;
  /** Per row. */
  step: Int32Array;
  phase: Uint8Array;
  layer: Uint16Array;
  seq: Int32Array;
  pos: Int32Array;
  /** rows * topK. */
  experts: Uint16Array;
  weights: Float32Array;
  token?: Int32Array;
  /** rows * numExperts. */
  scores?: Float32Array;
  /** rows * topK, with gateNextValid[row] = 0 where null. */
  gateNext?: Uint16Array;
  gateNextValid?: Uint8Array;
  predicted?: Uint16Array[];
  layerUs?: Float32Array;
  transferWaitUs?: Float32Array;
  hits?: Uint16Array;
  misses?: Uint16Array;
  cpuExperts?: Uint16Array;
}

const ARROW_MAGIC = Buffer.from('ARROW1');

export function readTrace(path: string): TraceTable {
  let bytes: Buffer;
  try {
    // stat before open: a FIFO or device would block the read (or never end).
    if (!statSync(path).isFile()) throw new BadInputError(path, 'not a regular file');
    bytes = readFileSync(path);
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    throw new BadInputError(path, `cannot read trace (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseTraceBytes(path, bytes);
}

/** The checks and the parse of readTrace on bytes already in memory (`path` names them in errors). */
export function parseTraceBytes(path: string, bytes: Uint8Array): TraceTable {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 12 || !b.subarray(0, 6).equals(ARROW_MAGIC)) {
    throw new BadInputError(path, 'not an Arrow IPC file (trace v1 files start with ARROW1)');
  }
  if (!b.subarray(b.length - 6).equals(ARROW_MAGIC)) {
    throw new BadInputError(path, 'truncated Arrow IPC file (the footer is missing)');
  }
  // apache-arrow trusts every length it reads; the framing is checked first so that it never loops on a corrupt one.
  checkArrowFraming(path, bytes);
  let table: Table;
  try {
    // Read through the file reader first: it walks the footer's block index, which catches lying offsets.
    const reader = RecordBatchFileReader.from(bytes);
    reader.open();
    table = tableFromIPC(bytes);
  } catch (err) {
    throw new BadInputError(path, `corrupt Arrow IPC file (${(err as Error).message})`);
  }
  return tableToTrace(path, table);
}

function parseMeta(path: string, table: Table): RunMeta {
  const md = table.schema.metadata;
  const version = md.get(META_VERSION_KEY);
  if (version === undefined) throw new BadInputError(path, `not a moe-offload trace (no ${META_VERSION_KEY} in the schema metadata)`);
  if (version !== TRACE_SCHEMA_VERSION) throw new BadInputError(path, `trace schema version ${version} is not supported (this build reads ${TRACE_SCHEMA_VERSION})`);
  let meta: RunMeta;
  try {
    meta = JSON.parse(md.get(META_RUN_KEY) ?? '');
  } catch {
    throw new BadInputError(path, `${META_RUN_KEY} metadata is not valid JSON`);
  }
  const problems = runMetaProblems(meta);
  if (problems.length > 0) throw new BadInputError(path, `bad run metadata: ${problems.join('; ')}`);
  return meta;
}

function tableToTrace(path: string, table: Table): TraceTable {
  const meta = parseMeta(path, table);
  checkColumnTypes(path, table.schema, meta);
  const n = table.numRows;
  const k = meta.topK;
  const col = (name: string, required: boolean) => {
    const v = table.getChild(name);
    if (!v && required) throw new BadInputError(path, `missing required column '${name}'`);
    return v;
  };
  const scalar = <T extends Int32Array | Uint16Array | Uint8Array | Float32Array>(
    name: string,
    ctor: { new (n: number): T; name: string },
    required = true,
  ): T | undefined => {
    const v = col(name, required);
    if (!v) return undefined;
    const out = new ctor(n);
    let o = 0;
    for (const d of v.data as Data[]) {
      if (!(d.values instanceof ctor)) throw new BadInputError(path, `column '${name}' has type ${String(d.type)}, expected ${ctor.name.replace('Array', '')}`);
      if (d.nullCount > 0) throw new BadInputError(path, `column '${name}' has nulls`);
      out.set(d.values.subarray(d.offset, d.offset + d.length) as never, o);
      o += d.length;
    }
    return out;
  };
  const fixed = <T extends Uint16Array | Float32Array>(
    name: string,
    ctor: { new (n: number): T; name: string },
    width: number,
    required = true,
    allowNulls = false,
  ): { values: T; valid: Uint8Array } | undefined => {
    const v = col(name, required);
    if (!v) return undefined;
    const out = new ctor(n * width);
    const valid = new Uint8Array(n).fill(1);
    let row = 0;
    for (const d of v.data as Data[]) {
      const w = (d.type as { listSize?: number }).listSize;
      if (w !== width) throw new BadInputError(path, `column '${name}' has lists of ${w ?? '?'} values, expected ${width}`);
      const child = d.children[0];
      if (!child || !(child.values instanceof ctor)) throw new BadInputError(path, `column '${name}' has items of the wrong type, expected ${ctor.name.replace('Array', '')}`);
      if (d.nullCount > 0) {
        if (!allowNulls) throw new BadInputError(path, `column '${name}' has nulls`);
        for (let i = 0; i < d.length; i++) if (!d.getValid(i)) valid[row + i] = 0;
      }
      const start = (child.offset + d.offset * width);
      out.set(child.values.subarray(start, start + d.length * width) as never, row * width);
      row += d.length;
    }
    return { values: out, valid };
  };

  const experts = fixed('experts', Uint16Array, k)!.values;
  const trace: TraceTable = {
    path,
    meta,
    rows: n,
    step: scalar('step', Int32Array)!,
    phase: scalar('phase', Uint8Array)!,
    layer: scalar('layer', Uint16Array)!,
    seq: scalar('seq', Int32Array)!,
    pos: scalar('pos', Int32Array)!,
    experts,
    weights: fixed('weights', Float32Array, k)!.values,
    token: scalar('token', Int32Array, false),
    scores: fixed('scores', Float32Array, meta.numExperts, false)?.values,
  };
  const gate = fixed('gate_next', Uint16Array, k, false, true);
  if (gate) {
    trace.gateNext = gate.values;
    trace.gateNextValid = gate.valid;
  }
  const predicted = table.getChild('predicted');
  if (predicted) {
    if (predicted.nullCount > 0) throw new BadInputError(path, `column 'predicted' has nulls`);
    trace.predicted = [];
    for (let i = 0; i < n; i++) trace.predicted.push(Uint16Array.from(predicted.get(i) ?? []));
  }
  if (table.getChild('layer_us')) {
    trace.layerUs = scalar('layer_us', Float32Array);
    trace.transferWaitUs = scalar('transfer_wait_us', Float32Array);
    trace.hits = scalar('hits', Uint16Array);
    trace.misses = scalar('misses', Uint16Array);
    trace.cpuExperts = scalar('cpu_experts', Uint16Array);
  }
  validateValues(trace);
  checkRoutingValues(trace);
  return trace;
}

function validateValues(t: TraceTable): void {
  const { meta } = t;
  const moe = new Set(meta.moeLayers);
  for (let i = 0; i < t.experts.length; i++) {
    if (t.experts[i] >= meta.numExperts) throw new BadInputError(t.path, `row ${Math.floor(i / meta.topK)}: expert id ${t.experts[i]} >= numExperts ${meta.numExperts}`);
  }
  if (t.gateNext) {
    for (let i = 0; i < t.gateNext.length; i++) {
      if (t.gateNext[i] >= meta.numExperts) throw new BadInputError(t.path, `row ${Math.floor(i / meta.topK)}: gate_next id ${t.gateNext[i]} >= numExperts ${meta.numExperts}`);
    }
  }
  for (let r = 0; r < t.rows; r++) {
    if (!moe.has(t.layer[r])) throw new BadInputError(t.path, `row ${r}: layer ${t.layer[r]} is not one of the MoE layers in the metadata`);
    if (t.pos[r] < 0 || t.seq[r] < 0 || t.step[r] < 0) throw new BadInputError(t.path, `row ${r}: negative step, seq or pos`);
    if (r > 0 && (t.step[r] < t.step[r - 1] || (t.step[r] === t.step[r - 1] && t.layer[r] < t.layer[r - 1]))) {
      throw new BadInputError(t.path, `row ${r}: rows are not ordered by step, then layer`);
    }
  }
}
