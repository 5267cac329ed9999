/**
 * Checks the framing of an Arrow IPC file before apache-arrow parses it. The library trusts every length
 * and offset it reads (a single flipped byte of a small trace made `tableFromIPC` loop forever), so this
 * walks the file the way the format spec lays it out and refuses anything that points outside its own
 * bounds: the magic and footer, every message (continuation marker, metadata length, flatbuffer,
 * body length), the flatbuffer tables it will read (Footer, Message, Schema, Field, RecordBatch), and the
 * footer's block index, which must name exactly the record batches found in the stream.
 *
 * Layout (https://arrow.apache.org/docs/format/Columnar.html#ipc-file-format):
 *   "ARROW1" 2 pad | messages: 0xFFFFFFFF, int32 n, n bytes flatbuffer Message, body | 0xFFFFFFFF 0 |
 *   Footer flatbuffer | int32 footer length | "ARROW1"
 */
import { BadInputError } from '../../core/src/errors.js';

const MAGIC = 'ARROW1';
const CONTINUATION = 0xffffffff;
/** Message header types (Message.fbs MessageHeader union). */
const HEADER_SCHEMA = 1;
const HEADER_RECORD_BATCH = 3;
/** Bounds that no trace comes near; they keep a corrupt count from driving a long loop. */
const MAX_FIELDS = 4096;
const MAX_FIELD_DEPTH = 8;
const MAX_VECTOR = 1 << 20;

export interface ArrowFraming {
  /** Byte offsets of the record batch messages, in stream order. */
  batches: number[];
  /** Rows declared by all record batches. */
  rows: number;
}

class Corrupt extends Error {}

/** A bounds-checked view of one flatbuffer (a slice of the file). */
class Flatbuffer {
  constructor(
    private readonly view: DataView,
    private readonly start: number,
    private readonly end: number,
    private readonly what: string,
  ) {}

  private need(pos: number, size: number, why: string): void {
    if (!(pos >= this.start && pos + size <= this.end)) throw new Corrupt(`${this.what}: ${why} at byte ${pos} lies outside its ${this.end - this.start}-byte flatbuffer`);
  }

  u32(pos: number, why: string): number {
    this.need(pos, 4, why);
    return this.view.getUint32(pos, true);
  }

  root(): Table {
    return this.table(this.start + this.u32(this.start, 'root offset'), 'root table');
  }

  table(pos: number, why: string): Table {
    this.need(pos, 4, why);
    const vt = pos - this.view.getInt32(pos, true);
    this.need(vt, 4, `${why} vtable`);
    const vtSize = this.view.getUint16(vt, true);
    const tableSize = this.view.getUint16(vt + 2, true);
    if (vtSize < 4 || vtSize % 2 !== 0) throw new Corrupt(`${this.what}: ${why} has a vtable of ${vtSize} bytes`);
    this.need(vt, vtSize, `${why} vtable`);
    if (tableSize < 4) throw new Corrupt(`${this.what}: ${why} is ${tableSize} bytes long`);
    this.need(pos, tableSize, why);
    return new Table(this, this.view, pos, vt, vtSize, tableSize, why);
  }

  /** A vector of `elem`-byte items at the reference stored at `at`: returns the first item's position and the count. */
  vectorAt(at: number, elem: number, why: string): { first: number; n: number } {
    const pos = at + this.u32(at, why);
    const n = this.u32(pos, `${why} length`);
    if (n > MAX_VECTOR) throw new Corrupt(`${this.what}: ${why} claims ${n} items`);
    this.need(pos + 4, n * elem, `${why} (${n} items)`);
    return { first: pos + 4, n };
  }

  refAt(at: number, why: string): number {
    const pos = at + this.u32(at, why);
    this.need(pos, 4, why);
    return pos;
  }
}

class Table {
  constructor(
    readonly fb: Flatbuffer,
    private readonly view: DataView,
    readonly pos: number,
    private readonly vt: number,
    private readonly vtSize: number,
    private readonly size: number,
    private readonly what: string,
  ) {}

  /** Absolute position of field `i` (size `bytes`), or -1 when the field is absent. */
  field(i: number, bytes: number): number {
    const slot = 4 + 2 * i;
    if (slot + 2 > this.vtSize) return -1;
    const off = this.view.getUint16(this.vt + slot, true);
    if (off === 0) return -1;
    if (off + bytes > this.size) throw new Corrupt(`${this.what}: field ${i} runs past the end of its table`);
    return this.pos + off;
  }

  int64(i: number, name: string): number {
    const at = this.field(i, 8);
    if (at < 0) return 0;
    const v = this.view.getBigInt64(at, true);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Corrupt(`${this.what}: ${name} is ${v}`);
    return Number(v);
  }

  uint8(i: number): number {
    const at = this.field(i, 1);
    return at < 0 ? 0 : this.view.getUint8(at);
  }

  table(i: number, name: string): Table | null {
    const at = this.field(i, 4);
    return at < 0 ? null : this.fb.table(this.fb.refAt(at, name), name);
  }

  vector(i: number, elem: number, name: string): { first: number; n: number } | null {
    const at = this.field(i, 4);
    return at < 0 ? null : this.fb.vectorAt(at, elem, name);
  }

  /** A vector of tables. */
  tables(i: number, name: string): Table[] {
    const v = this.vector(i, 4, name);
    if (!v) return [];
    const out: Table[] = [];
    for (let j = 0; j < v.n; j++) out.push(this.fb.table(this.fb.refAt(v.first + 4 * j, `${name}[${j}]`), `${name}[${j}]`));
    return out;
  }
}

/** Schema.fbs: Schema {endianness, fields: [Field], custom_metadata: [KeyValue]}; Field {name, nullable, type_type, type, dictionary, children, custom_metadata}. */
function checkSchema(schema: Table): void {
  let count = 0;
  const checkKeyValues = (t: Table, i: number, name: string) => {
    for (const kv of t.tables(i, name)) {
      kv.vector(0, 1, `${name} key`);
      kv.vector(1, 1, `${name} value`);
    }
  };
  const checkField = (f: Table, depth: number) => {
    if (++count > MAX_FIELDS) throw new Corrupt(`schema: more than ${MAX_FIELDS} fields`);
    if (depth > MAX_FIELD_DEPTH) throw new Corrupt(`schema: fields nested deeper than ${MAX_FIELD_DEPTH}`);
    f.vector(0, 1, 'field name');
    f.table(3, 'field type');
    if (f.table(4, 'field dictionary')) throw new Corrupt('schema: dictionary-encoded field (trace v1 has none)');
    for (const c of f.tables(5, 'field children')) checkField(c, depth + 1);
    checkKeyValues(f, 6, 'field metadata');
  };
  for (const f of schema.tables(1, 'schema fields')) checkField(f, 0);
  checkKeyValues(schema, 2, 'schema metadata');
}

/** Message.fbs: RecordBatch {length, nodes: [FieldNode{length, null_count}], buffers: [Buffer{offset, length}], compression}. */
function checkRecordBatch(rb: Table, view: DataView, bodyLength: number): number {
  const length = rb.int64(0, 'record batch length');
  const bits = 8 * bodyLength + 64;
  // Every column of a trace needs at least a bit per row, so no honest batch declares more rows than that.
  if (length > bits) throw new Corrupt(`record batch declares ${length} rows in a ${bodyLength}-byte body`);
  const nodes = rb.vector(1, 16, 'record batch nodes');
  for (let j = 0; nodes && j < nodes.n; j++) {
    const n = view.getBigInt64(nodes.first + 16 * j, true);
    const nulls = view.getBigInt64(nodes.first + 16 * j + 8, true);
    if (n < 0n || n > BigInt(bits) || nulls < 0n || nulls > n) throw new Corrupt(`record batch node ${j}: length ${n}, null count ${nulls}`);
  }
  const buffers = rb.vector(2, 16, 'record batch buffers');
  for (let j = 0; buffers && j < buffers.n; j++) {
    const off = view.getBigInt64(buffers.first + 16 * j, true);
    const len = view.getBigInt64(buffers.first + 16 * j + 8, true);
    if (off < 0n || len < 0n || off + len > BigInt(bodyLength)) throw new Corrupt(`record batch buffer ${j} [${off}, +${len}] lies outside the ${bodyLength}-byte body`);
  }
  if (rb.table(3, 'record batch compression')) throw new Corrupt('compressed record batch (trace v1 files are not compressed)');
  return length;
}

function walk(bytes: Uint8Array): ArrowFraming {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = bytes.length;
  const text = (from: number, n: number) => String.fromCharCode(...bytes.subarray(from, from + n));
  if (size < 8 + 10 || text(0, 6) !== MAGIC) throw new Corrupt('not an Arrow IPC file (trace v1 files start with ARROW1)');
  if (text(size - 6, 6) !== MAGIC) throw new Corrupt('truncated Arrow IPC file (the footer is missing)');
  const footerLength = view.getInt32(size - 10, true);
  const footerStart = size - 10 - footerLength;
  if (footerLength <= 0 || footerStart < 8) throw new Corrupt(`footer length ${footerLength} does not fit in a ${size}-byte file`);

  // The stream: an optional schema (apache-arrow's file writer leaves it to the footer), then record
  // batches, then the end-of-stream marker.
  const streamBatches = new Map<number, { meta: number; body: number }>();
  let rows = 0;
  let pos = 8;
  let sawSchema = false;
  let sawBatch = false;
  for (;;) {
    if (pos + 8 > footerStart) throw new Corrupt(`message at byte ${pos}: the stream runs into the footer without an end-of-stream marker`);
    if (view.getUint32(pos, true) !== CONTINUATION) throw new Corrupt(`message at byte ${pos}: no continuation marker`);
    const metaLength = view.getInt32(pos + 4, true);
    if (metaLength === 0) break;
    const metaStart = pos + 8;
    if (metaLength < 0 || metaStart + metaLength > footerStart) throw new Corrupt(`message at byte ${pos}: metadata length ${metaLength} runs past the data`);
    const msg = new Flatbuffer(view, metaStart, metaStart + metaLength, `message at byte ${pos}`).root();
    const headerType = msg.uint8(1);
    const bodyLength = msg.int64(3, 'body length');
    const bodyEnd = metaStart + metaLength + bodyLength;
    if (bodyEnd > footerStart) throw new Corrupt(`message at byte ${pos}: body of ${bodyLength} bytes runs past the data`);
    const header = msg.table(2, 'message header');
    if (!header) throw new Corrupt(`message at byte ${pos}: no header`);
    if (headerType === HEADER_SCHEMA) {
      if (sawSchema || sawBatch) throw new Corrupt(`message at byte ${pos}: a schema after the first message`);
      checkSchema(header);
      sawSchema = true;
    } else if (headerType === HEADER_RECORD_BATCH) {
      sawBatch = true;
      rows += checkRecordBatch(header, view, bodyLength);
      streamBatches.set(pos, { meta: 8 + metaLength, body: bodyLength });
    } else {
      throw new Corrupt(`message at byte ${pos}: header type ${headerType} (trace v1 holds only a schema and record batches)`);
    }
    pos = bodyEnd;
  }

  // The footer: its own copy of the schema and the block index the file reader seeks with.
  const footer = new Flatbuffer(view, footerStart, footerStart + footerLength, 'footer').root();
  const schema = footer.table(1, 'footer schema');
  if (!schema) throw new Corrupt('footer: no schema');
  checkSchema(schema);
  const dictionaries = footer.vector(2, 24, 'footer dictionaries');
  if (dictionaries && dictionaries.n > 0) throw new Corrupt('footer: dictionary batches (trace v1 has none)');
  const blocks = footer.vector(3, 24, 'footer record batches');
  const batches: number[] = [];
  for (let j = 0; blocks && j < blocks.n; j++) {
    const at = blocks.first + 24 * j;
    const offset = Number(view.getBigInt64(at, true));
    const metaLength = view.getInt32(at + 8, true);
    const bodyLength = Number(view.getBigInt64(at + 16, true));
    const seen = streamBatches.get(offset);
    if (!seen || seen.meta !== metaLength || seen.body !== bodyLength) {
      throw new Corrupt(`footer: block ${j} (offset ${offset}, metadata ${metaLength}, body ${bodyLength}) is not a record batch of the stream`);
    }
    batches.push(offset);
  }
  if (batches.length !== streamBatches.size) throw new Corrupt(`footer lists ${batches.length} record batches, the stream holds ${streamBatches.size}`);
  return { batches, rows };
}

/** Validates the IPC framing of `bytes` (read from `file`, which only names it in errors). */
export function checkArrowFraming(file: string, bytes: Uint8Array): ArrowFraming {
  try {
    return walk(bytes);
  } catch (err) {
    if (err instanceof Corrupt) throw new BadInputError(file, `corrupt Arrow IPC file (${err.message})`);
    if (err instanceof RangeError) throw new BadInputError(file, `corrupt Arrow IPC file (${err.message})`);
    throw err;
  }
}
