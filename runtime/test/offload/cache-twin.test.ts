/**
 * Same names, same semantics: the C++ expert cache (native/src/offload/layer_cache.cpp) and the
 * simulator's LayerCache (sim/src/cache/) are fed identical request sequences and must agree on the
 * outcome and the victim of every request, for every policy, at several capacities. Request sets are
 * built with the simulator's own code (hand-made lists, random ones, and ESFT routing replayed in lanes).
 * The C++ side runs through native/build/moe_cache_replay, which also computes belady's next uses itself.
 * The slots the C++ cache returns are checked for consistency as well (inserts fill 0, 1, 2, ...; an
 * eviction reuses the victim's slot; a hit returns the expert's slot).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replayLayers } from '../../../sim/src/cache/replay.js';
import { OUTCOME_BYPASS, OUTCOME_EVICT, OUTCOME_HIT, OUTCOME_INSERT, POLICY_NAMES, type PolicyName } from '../../../sim/src/cache/types.js';
import { prepareReplay } from '../../../sim/src/replay/replay-corpus.js';
import { requestSetsFromLists, type RequestSets } from '../../../sim/src/replay/requests.js';
import { firstHalf, pinnedForCorpus } from '../../../sim/src/replay/warmup.js';
import { importEsft } from '../../../traces/src/import-esft.js';
import { readTrace } from '../../../traces/src/reader.js';
import { toSequences, type RoutingCorpus } from '../../../traces/src/sequences.js';
import { esftRoot, hasEsft, repoRoot, tempDir, warnIfNoEsft } from '../../../core/test/helpers.js';

const exe = join(repoRoot, 'native', 'build', 'moe_cache_replay');
const built = existsSync(exe);
if (!built) {
  const msg = `cache twin test: ${exe} is not built; run \`npm run build:native\``;
  if (process.env.CI === 'true') throw new Error(msg);
  console.warn(`[skip] ${msg}`);
}

interface Config {
  policy: PolicyName;
  capacity: number;
  decay: number;
  pinned?: number[][];
}

interface NativeRun {
  hits: number;
  requests: number;
  /** outcome, victim, slot per request */
  triples: Int32Array;
}

function nativeReplay(sets: RequestSets, configs: Config[]): NativeRun[] {
  const parts: string[] = [`experts ${sets.numExperts} layers ${sets.layers} steps ${sets.steps}`];
  for (let i = 0; i < sets.steps * sets.layers; i++) {
    const a = sets.offsets[i];
    const b = sets.offsets[i + 1];
    parts.push(`${b - a} ${Array.from(sets.experts.subarray(a, b)).join(' ')}`);
  }
  parts.push(`configs ${configs.length}`);
  for (const c of configs) {
    parts.push(`${c.policy} ${c.capacity} ${c.decay} ${c.pinned ? 1 : 0}`);
    for (const p of c.pinned ?? []) parts.push(`${p.length} ${p.join(' ')}`);
  }
  const r = spawnSync(exe, ['--check'], { input: parts.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`moe_cache_replay failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.split('\n');
  return configs.map((_, i) => {
    const head = /^config (\d+) hits (\d+) requests (\d+)$/.exec(lines[2 * i]);
    if (!head || Number(head[1]) !== i) throw new Error(`unexpected output line: ${lines[2 * i]}`);
    return { hits: Number(head[2]), requests: Number(head[3]), triples: Int32Array.from(lines[2 * i + 1].trim().split(' '), Number) };
  });
}

/** Compares every request; returns the first disagreement as text, or null. Also checks slot consistency. */
function compare(sets: RequestSets, c: Config, ours: NativeRun): string | null {
  const sim = replayLayers(sets, c.policy, c.capacity, { log: true, pinned: c.pinned, lfruDecay: c.decay });
  const log = sim.log!;
  if (ours.requests !== sim.requests) return `requests: C++ ${ours.requests}, sim ${sim.requests}`;
  if (ours.hits !== sim.hits) return `hits: C++ ${ours.hits}, sim ${sim.hits}`;
  const slotOf = Array.from({ length: sets.layers }, () => new Int32Array(sets.numExperts).fill(-1));
  const used = new Int32Array(sets.layers);
  c.pinned?.forEach((p, l) => p.forEach((e) => (slotOf[l][e] = used[l]++)));
  for (let i = 0; i < sim.requests; i++) {
    const [outcome, victim, slot] = [ours.triples[3 * i], ours.triples[3 * i + 1], ours.triples[3 * i + 2]];
    const l = log.layer[i];
    const e = log.expert[i];
    if (outcome !== log.outcome[i] || victim !== log.victim[i]) {
      return `request ${i} (step ${log.step[i]}, layer ${l}, expert ${e}): C++ outcome ${outcome} victim ${victim}, sim outcome ${log.outcome[i]} victim ${log.victim[i]}`;
    }
    const map = slotOf[l];
    const bad = (why: string) => `request ${i} (step ${log.step[i]}, layer ${l}, expert ${e}): slot ${slot} ${why}`;
    if (outcome === OUTCOME_HIT && slot !== map[e]) return bad(`but the expert is in slot ${map[e]}`);
    if (outcome === OUTCOME_INSERT) {
      if (slot !== used[l]) return bad(`but the next free slot is ${used[l]}`);
      used[l]++;
      map[e] = slot;
    }
    if (outcome === OUTCOME_EVICT) {
      if (slot !== map[victim]) return bad(`but the victim ${victim} was in slot ${map[victim]}`);
      map[victim] = -1;
      map[e] = slot;
    }
    if (outcome === OUTCOME_BYPASS && slot !== -1) return bad('on a bypass');
  }
  return null;
}

function configsFor(capacities: number[], pinnedFor: (c: number) => number[][]): Config[] {
  const out: Config[] = [];
  for (const capacity of capacities) {
    for (const policy of POLICY_NAMES) {
      if (policy === 'lfru') {
        for (const decay of [0.9375, 0.5, 1]) out.push({ policy, capacity, decay });
      } else {
        out.push({ policy, capacity, decay: 0.9375, pinned: policy === 'static' ? pinnedFor(capacity) : undefined });
      }
    }
  }
  return out;
}

function expectAgreement(label: string, sets: RequestSets, configs: Config[]): void {
  const runs = nativeReplay(sets, configs);
  const failures: string[] = [];
  configs.forEach((c, i) => {
    const why = compare(sets, c, runs[i]);
    if (why) failures.push(`${label} ${c.policy} C=${c.capacity} d=${c.decay}: ${why}`);
  });
  expect(failures, failures.join('\n')).toEqual([]);
}

/** Deterministic pseudo-random request sets over few experts: many ties, evictions and bypasses. */
function randomSets(seed: number, steps: number, layers: number, numExperts: number, maxPerStep: number): RequestSets {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const perLayer: number[][][] = Array.from({ length: layers }, () => []);
  for (let t = 0; t < steps; t++) {
    for (let l = 0; l < layers; l++) {
      const n = 1 + Math.floor(rand() * maxPerStep);
      // skewed popularity, so that frequency matters
      perLayer[l].push(Array.from({ length: n }, () => Math.floor(numExperts * rand() * rand())));
    }
  }
  // requestSetsFromLists makes one layer; interleave layers step-major as the replay expects.
  const single = perLayer.map((lists) => requestSetsFromLists(lists, numExperts));
  const offsets = new Int32Array(steps * layers + 1);
  const experts: number[] = [];
  for (let t = 0; t < steps; t++) {
    for (let l = 0; l < layers; l++) {
      const o = single[l].offsets;
      experts.push(...single[l].experts.subarray(o[t], o[t + 1]));
      offsets[t * layers + l + 1] = experts.length;
    }
  }
  return { steps, layers, numExperts, offsets, experts: Uint16Array.from(experts), tokens: new Uint16Array(experts.length).fill(1) };
}

describe.skipIf(!built)('C++ expert cache = simulator LayerCache, request by request', () => {
  it('hand-made sequences (every policy, capacities 0..4; 0: every request bypasses)', () => {
    const lists = [[1, 2], [3], [1], [2, 3], [4, 1], [0, 2, 4], [1], [3, 4], [0], [2], [1, 3], [4]];
    const sets = requestSetsFromLists(lists, 5);
    expectAgreement('hand-made', sets, configsFor([0, 1, 2, 3, 4], (c) => [[0, 1, 2, 3].slice(0, c)]));
  });

  it('random skewed sequences (3 layers, 12 experts, 400 steps, capacities 0, 1, 3, 6, 11)', () => {
    for (const seed of [1, 2, 3]) {
      const sets = randomSets(seed, 400, 3, 12, 5);
      const pinned = (c: number) => Array.from({ length: 3 }, (_, l) => Array.from({ length: c }, (_, i) => (i * 5 + l) % 12).sort((a, b) => a - b)).map((p) => [...new Set(p)]);
      expectAgreement(`random seed ${seed}`, sets, configsFor([0, 1, 3, 6, 11], pinned));
    }
  });

  describe.skipIf(!hasEsft)('ESFT routing (intent, first 48 sequences) in lanes', () => {
    warnIfNoEsft('cache twin test on ESFT');
    const tmp = tempDir('cache-twin-');
    afterAll(() => tmp.cleanup());
    let corpus: RoutingCorpus | undefined;
    const load = (): RoutingCorpus => {
      if (!corpus) {
        const file = join(tmp.path, 'intent.arrow');
        importEsft(join(esftRoot, 'intent'), file, { quiet: true });
        const full = toSequences(readTrace(file));
        corpus = { ...full, sequences: full.sequences.slice(0, 48) };
      }
      return corpus;
    };
    for (const batch of [1, 8]) {
      it(`batch ${batch}, capacities 4, 16, 48`, () => {
        const c = load();
        const { sets } = prepareReplay(c, batch);
        expectAgreement(`esft intent B=${batch}`, sets, configsFor([4, 16, 48], (cap) => pinnedForCorpus(firstHalf(c), cap)));
      });
    }
  });
});
