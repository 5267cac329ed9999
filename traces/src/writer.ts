/**
 * Appends rows to a trace v1 file while a run goes on. Rows go to a hidden partial file beside the target;
 * `close()` writes the Arrow footer and renames it into place, `abort()` deletes it. So a killed writer leaves
 * the target absent (or as it was), never a corrupt file; an interrupted recorder closes to keep what it has.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import {
  AsyncByteQueue,
  Data,
  FixedSizeList,
  Float32,
  Int32,
  List,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  Uint16,
  Uint8,
  makeData,
  type DataType,
} from 'apache-arrow';
import { discard, partialPathFor, publish } from '../../core/src/atomic-file.js';
import { buildSchema, runMetaProblems, type OptionalColumns, type RunMeta } from './schema.js';

/** Columnar rows to append: every per-row array has one entry per row; k-wide ones have k per row. */
export interface TraceRows {
  step: ArrayLike<number>;
  phase: ArrayLike<number>;
  layer: ArrayLike<number>;
  seq: ArrayLike<number>;
  pos: ArrayLike<number>;
  /** n*k expert ids, each row's top-k in router order. */
  experts: ArrayLike<number>;
  /** n*k routing weights. */
  weights: ArrayLike<number>;
  token?: ArrayLike<number>;
  /** n*numExperts. */
  scores?: ArrayLike<number>;
  /** n*k; rows whose gateNextValid is 0 are written as null (last MoE layer). */
  gateNext?: ArrayLike<number>;
  gateNextValid?: ArrayLike<number>;
  predicted?: ReadonlyArray<ArrayLike<number>>;
  layerUs?: ArrayLike<number>;
  transferWaitUs?: ArrayLike<number>;
  hits?: ArrayLike<number>;
  misses?: ArrayLike<number>;
  cpuExperts?: ArrayLike<number>;
}

const ROWS_PER_BATCH = 65536;

/**
 * Arrow's writer only accepts its own queue type as a sink it writes to synchronously; this one passes each
 * chunk straight to the file, so a flushed batch is on disk when flush() returns.
 */
class FileSink extends AsyncByteQueue {
  constructor(private readonly fd: number) {
    super();
  }
  override write(value: Uint8Array | ArrayBufferView): void {
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (bytes.byteLength > 0) writeSync(this.fd, bytes);
  }
}

export class TraceWriter {
  private readonly schema: Schema;
  private readonly tmp: string;
  private fd: number | null;
  private readonly writer: RecordBatchFileWriter;
  private pending: TraceRows[] = [];
  private pendingRows = 0;
  private rowsWritten = 0;

  private constructor(readonly path: string, readonly meta: RunMeta, readonly optional: OptionalColumns) {
    const problems = runMetaProblems(meta);
    if (problems.length > 0) throw new Error(`invalid trace metadata: ${problems.join('; ')}`);
    this.schema = buildSchema(meta, optional);
    this.tmp = partialPathFor(path);
    this.fd = openSync(this.tmp, 'w');
    this.writer = new RecordBatchFileWriter();
    this.writer.reset(new FileSink(this.fd), this.schema);
  }

  static create(path: string, meta: RunMeta, optional: OptionalColumns = {}): TraceWriter {
    return new TraceWriter(path, meta, optional);
  }

  get rows(): number {
    return this.rowsWritten + this.pendingRows;
  }

  append(rows: TraceRows): void {
    if (this.fd === null) throw new Error('trace writer is closed');
    const n = rows.step.length;
    checkLengths(rows, n, this.meta, this.optional);
    this.pending.push(rows);
    this.pendingRows += n;
    if (this.pendingRows >= ROWS_PER_BATCH) this.flush();
  }

  /** Writes buffered rows as one record batch (a recorder may call it at each step). */
  flush(): void {
    if (this.pendingRows === 0 || this.fd === null) return;
    const batch = toRecordBatch(this.schema, this.pending, this.pendingRows, this.meta, this.optional);
    this.writer.write(batch);
    this.rowsWritten += this.pendingRows;
    this.pending = [];
    this.pendingRows = 0;
  }

  /** Finishes the file and publishes it at `path`. */
  close(): void {
    if (this.fd === null) return;
    try {
      this.flush();
      this.writer.finish();
      closeSync(this.fd);
      this.fd = null;
      publish(this.tmp, this.path);
    } catch (err) {
      this.abort();
      throw err;
    }
  }

  /** Drops everything written: the target is left untouched. */
  abort(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    discard(this.tmp);
  }
}

function checkLengths(r: TraceRows, n: number, meta: RunMeta, opt: OptionalColumns): void {
  const k = meta.topK;
  const want: Array<[string, ArrayLike<unknown> | undefined, number, boolean]> = [
    ['phase', r.phase, n, true],
    ['layer', r.layer, n, true],
    ['seq', r.seq, n, true],
    ['pos', r.pos, n, true],
    ['experts', r.experts, n * k, true],
    ['weights', r.weights, n * k, true],
    ['token', r.token, n, !!opt.tokens],
    ['scores', r.scores, n * meta.numExperts, !!opt.scores],
    ['gateNext', r.gateNext, n * k, !!opt.gateNext],
    ['gateNextValid', r.gateNextValid, n, !!opt.gateNext],
    ['predicted', r.predicted, n, !!opt.predicted],
    ['layerUs', r.layerUs, n, !!opt.timings],
    ['transferWaitUs', r.transferWaitUs, n, !!opt.timings],
    ['hits', r.hits, n, !!opt.timings],
    ['misses', r.misses, n, !!opt.timings],
    ['cpuExperts', r.cpuExperts, n, !!opt.timings],
  ];
  for (const [name, arr, len, required] of want) {
    if (!required) continue;
    if (!arr) throw new Error(`trace rows lack column ${name}, which this file declares`);
    if (arr.length !== len) throw new Error(`trace rows: column ${name} has ${arr.length} values, expected ${len}`);
  }
  for (let i = 0; i < r.experts.length; i++) {
    const e = r.experts[i];
    if (!(e >= 0 && e < meta.numExperts) || !Number.isInteger(e)) throw new Error(`trace rows: expert id ${e} is not in [0, ${meta.numExperts})`);
  }
}

function concat<T extends Int32Array | Uint16Array | Uint8Array | Float32Array>(
  ctor: { new (n: number): T },
  parts: TraceRows[],
  pick: (r: TraceRows) => ArrayLike<number> | undefined,
  total: number,
): T {
  const out = new ctor(total);
  let o = 0;
  for (const p of parts) {
    const a = pick(p)!;
    for (let i = 0; i < a.length; i++) out[o++] = a[i];
  }
  return out;
}

function flat<T extends DataType>(type: T, values: ArrayLike<number>, n: number): Data<T> {
  return makeData({ type, length: n, nullCount: 0, data: values } as never) as Data<T>;
}

function toRecordBatch(schema: Schema, parts: TraceRows[], n: number, meta: RunMeta, opt: OptionalColumns): RecordBatch {
  const k = meta.topK;
  const children: Data[] = [
    flat(new Int32(), concat(Int32Array, parts, (r) => r.step, n), n),
    flat(new Uint8(), concat(Uint8Array, parts, (r) => r.phase, n), n),
    flat(new Uint16(), concat(Uint16Array, parts, (r) => r.layer, n), n),
    flat(new Int32(), concat(Int32Array, parts, (r) => r.seq, n), n),
    flat(new Int32(), concat(Int32Array, parts, (r) => r.pos, n), n),
    fixedListOf(schema, 'experts', concat(Uint16Array, parts, (r) => r.experts, n * k), n),
    fixedListOf(schema, 'weights', concat(Float32Array, parts, (r) => r.weights, n * k), n),
  ];
  if (opt.tokens) children.push(flat(new Int32(), concat(Int32Array, parts, (r) => r.token, n), n));
  if (opt.scores) children.push(fixedListOf(schema, 'scores', concat(Float32Array, parts, (r) => r.scores, n * meta.numExperts), n));
  if (opt.gateNext) {
    const valid = concat(Uint8Array, parts, (r) => r.gateNextValid, n);
    children.push(fixedListOf(schema, 'gate_next', concat(Uint16Array, parts, (r) => r.gateNext, n * k), n, valid));
  }
  if (opt.predicted) children.push(listOfIds(schema, parts, n));
  if (opt.timings) {
    children.push(flat(new Float32(), concat(Float32Array, parts, (r) => r.layerUs, n), n));
    children.push(flat(new Float32(), concat(Float32Array, parts, (r) => r.transferWaitUs, n), n));
    children.push(flat(new Uint16(), concat(Uint16Array, parts, (r) => r.hits, n), n));
    children.push(flat(new Uint16(), concat(Uint16Array, parts, (r) => r.misses, n), n));
    children.push(flat(new Uint16(), concat(Uint16Array, parts, (r) => r.cpuExperts, n), n));
  }
  const struct = makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children });
  return new RecordBatch(schema, struct);
}

function fixedListOf(schema: Schema, name: string, values: Uint16Array | Float32Array, n: number, valid?: Uint8Array): Data {
  const field = schema.fields.find((f) => f.name === name)!;
  const type = field.type as FixedSizeList;
  const child = makeData({ type: type.children[0].type, length: values.length, nullCount: 0, data: values } as never);
  let nullCount = 0;
  let nullBitmap: Uint8Array | undefined;
  if (valid) {
    nullBitmap = new Uint8Array(Math.ceil(n / 8));
    for (let i = 0; i < n; i++) {
      if (valid[i]) nullBitmap[i >> 3] |= 1 << (i & 7);
      else nullCount++;
    }
  }
  return makeData({ type, length: n, nullCount, nullBitmap, child } as never);
}

function listOfIds(schema: Schema, parts: TraceRows[], n: number): Data {
  const type = schema.fields.find((f) => f.name === 'predicted')!.type as List;
  const offsets = new Int32Array(n + 1);
  const values: number[] = [];
  let row = 0;
  for (const p of parts) {
    for (const ids of p.predicted!) {
      for (let i = 0; i < ids.length; i++) values.push(ids[i]);
      offsets[++row] = values.length;
    }
  }
  const child = makeData({ type: type.children[0].type, length: values.length, nullCount: 0, data: Uint16Array.from(values) } as never);
  return makeData({ type, length: n, nullCount: 0, valueOffsets: offsets, child } as never);
}
