/**
 * Non-finite logits (NaN/Inf from broken weights or a broken config): the native engine stops the step
 * (native/src/model/engine.cpp, message prefix NON_FINITE_PREFIX); this names the first place the numbers
 * went wrong, by re-running the sequence once with the per-tensor debug hook and looking for the first
 * captured intermediate, in forward order, that holds a NaN or an infinity.
 */
import type { ModelConfig } from '../model/config.js';
import type { NativeCapture, NativeEngineHandle } from './native-binding.js';

export const NON_FINITE_PREFIX = 'non-finite logits';

/** Hidden-width intermediates in the order a layer computes them (the CPU and CUDA backends both dump these). */
const CAPTURED = ['embed', 'attn_norm', 'attn_proj', 'h_attn', 'ffn_norm', 'ffn_out', 'h', 'final_norm'] as const;

/** The diagnosis re-runs at most this many tokens (the capture holds 8 hidden-wide rows per layer per token). */
const MAX_DIAGNOSIS_TOKENS = 4096;

export function isNonFiniteError(message: string): boolean {
  return message.includes(NON_FINITE_PREFIX);
}

/** Where the first non-finite value appeared, in words naming the checkpoint's tensors. */
export function describeCapture(name: string, layer: number, config: ModelConfig): string {
  const L = `model.layers.${layer}`;
  switch (name) {
    case 'embed':
      return 'the token embedding (model.embed_tokens.weight)';
    case 'attn_norm':
      return `layer ${layer}'s input norm (${L}.input_layernorm.weight)`;
    case 'attn_proj':
      return `layer ${layer}'s attention (${L}.self_attn.*)`;
    case 'h_attn':
      return `layer ${layer}'s residual stream after attention (overflow of ${L}.self_attn.* outputs)`;
    case 'ffn_norm':
      return `layer ${layer}'s post-attention norm (${L}.post_attention_layernorm.weight)`;
    case 'ffn_out':
      return layer < config.firstKDenseReplace
        ? `layer ${layer}'s dense MLP (${L}.mlp.*)`
        : `layer ${layer}'s MoE block (${L}.mlp.gate, ${L}.mlp.experts.*, ${L}.mlp.shared_experts.*)`;
    case 'h':
      return `layer ${layer}'s output (residual stream overflow)`;
    case 'final_norm':
      return 'the final norm (model.norm.weight)';
    default:
      return name;
  }
}

function firstNonFinite(caps: NativeCapture[]): NativeCapture | null {
  for (const c of caps) {
    for (let i = 0; i < c.data.length; i++) if (!Number.isFinite(c.data[i])) return c;
  }
  return null;
}

/**
 * Re-runs `tokens` (one sequence, from position 0) with the debug hook and returns where its numbers first
 * stop being finite; null when nothing could be captured. Leaves the capture off (restore it after).
 */
export async function locateNonFinite(handle: NativeEngineHandle, config: ModelConfig, tokens: number[]): Promise<string | null> {
  const ids = Int32Array.from(tokens.slice(0, MAX_DIAGNOSIS_TOKENS));
  handle.setDebugCapture([...CAPTURED]);
  let caps: NativeCapture[];
  try {
    await handle.score({ prompts: [ids], maxNewTokens: 1, greedy: true, temperature: 1, topP: 1, seed: 0, stopOnEos: false, prefillTokens: 0 });
    caps = handle.takeDebugCapture();
  } finally {
    handle.setDebugCapture(null);
  }
  if (caps.length === 0) return null;
  const bad = firstNonFinite(caps);
  if (bad) return describeCapture(bad.name, bad.layer, config);
  if (tokens.length > MAX_DIAGNOSIS_TOKENS) return null;
  return 'the output head (lm_head.weight): every layer\'s output was finite on the re-run';
}
