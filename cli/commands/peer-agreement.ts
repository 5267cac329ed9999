import type { Command } from 'commander';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../../runtime/src/engine/index.js';
import { loadModelConfig } from '../../runtime/src/model/config.js';
import {
  PEER_MARGIN_MIN,
  PEER_TOLERANCE,
  peerAgreement,
  readIdsFile,
  renderPeerAgreementMd,
  type PeerAgreementDoc,
} from '../../runtime/src/bench/peer-agreement.js';
import { writeFileAtomic } from '../../core/src/atomic-file.js';
import { UserError } from '../../core/src/errors.js';
import { parseChoiceOption, parseIntOption } from '../../core/src/options.js';

export function register(program: Command): void {
  program
    .command('peer-agreement')
    .description("the second oracle (issue 17): the engine's logits on given token ids against llama.cpp's (tools/peers/dump_logits.cpp) on the same ids")
    .requiredOption('--model <dir>', 'checkpoint directory (the one the GGUF was written from)')
    .requiredOption('--ids <file>', 'token ids, one sequence per line (the file peers_dump_logits read)')
    .requiredOption('--reference <file>', "llama.cpp's prefill logits (raw fp32, one row per position)")
    .option('--reference-decode <file>', "llama.cpp's decode-path logits (peers_dump_logits --prefill K)")
    .option('--prefill <k>', 'with --reference-decode: positions before k were prefilled, the rest decoded one step each')
    .option('--label <text>', 'what the reference is (for the report)', 'llama.cpp')
    .option('--device <d>', 'cpu or cuda', 'cpu')
    .option('--threads <n>', 'CPU threads (device cpu; 0: all cores)')
    .option('--out <dir>', 'write peer-agreement.json and .md here (created; same-named files are replaced)')
    .action(async (o) => {
      const device = parseChoiceOption('--device', o.device, ['cpu', 'cuda'] as const);
      const threads = o.threads === undefined ? undefined : parseIntOption('--threads', o.threads, 0, 1024);
      if ((o.referenceDecode === undefined) !== (o.prefill === undefined)) throw new UserError('options --reference-decode and --prefill go together');
      const config = loadModelConfig(o.model);
      const sequences = readIdsFile(o.ids, config.vocabSize);
      const length = Math.max(...sequences.map((s) => s.length));
      const prefill = o.prefill === undefined ? 0 : parseIntOption('--prefill', o.prefill, 1, length - 1);
      const engine = await Engine.load(o.model, { device, ...(threads !== undefined ? { threads } : {}) });
      try {
        const paths = await peerAgreement(engine, sequences, o.reference, o.referenceDecode ? { path: o.referenceDecode, prefillTokens: prefill } : null);
        const doc: PeerAgreementDoc = {
          kind: 'peer-agreement',
          reference: o.label,
          engineDevice: device,
          model: o.model,
          sequences: sequences.length,
          length,
          prefillTokens: prefill,
          vocab: config.vocabSize,
          tolerance: { ...PEER_TOLERANCE, marginMin: PEER_MARGIN_MIN },
          paths,
          pass: paths.every((p) => p.pass),
        };
        const md = renderPeerAgreementMd(doc);
        if (o.out) {
          if (!existsSync(o.out)) mkdirSync(o.out, { recursive: true });
          writeFileAtomic(join(o.out, 'peer-agreement.json'), JSON.stringify(doc, null, 2) + '\n');
          writeFileAtomic(join(o.out, 'peer-agreement.md'), md);
        }
        process.stdout.write(md);
        if (!doc.pass) throw new UserError(`peer-agreement: the engine and ${o.label} disagree beyond the tolerance (figures above${o.out ? ` and in ${join(o.out, 'peer-agreement.md')}` : ''})`, 1);
      } finally {
        engine.close();
      }
    });
}
