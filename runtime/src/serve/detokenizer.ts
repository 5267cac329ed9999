/**
 * Incremental detokenization for long streams: each token's text is found by decoding a short
 * window (the tokens since the last emitted boundary), not the whole sequence, so a 4k-token answer
 * costs O(n) decoding instead of O(n^2) on the JS thread that also drives the engine. Text is released
 * once it no longer ends in an incomplete UTF-8 sequence (U+FFFD). The same scheme as vLLM's and
 * Hugging Face's TextStreamer (prefix / read offsets).
 */
export class Detokenizer {
  private ids: number[] = [];
  /** first token of the window decoded for context */
  private prefix = 0;
  /** tokens before this one are already emitted */
  private read = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    return this.advance(false);
  }

  /** Whatever is left at the end (a trailing incomplete character included). */
  flush(): string {
    return this.advance(true);
  }

  private advance(final: boolean): string {
    const before = this.decode(this.ids.slice(this.prefix, this.read));
    const now = this.decode(this.ids.slice(this.prefix));
    if (now.length <= before.length || !now.startsWith(before)) {
      if (!final) return '';
    }
    if (!final && now.endsWith('\uFFFD')) return '';
    // Decoding is prefix-stable for byte-level BPE; should it not be at the very end, the text already
    // sent cannot be taken back: send what follows the common part.
    let common = 0;
    while (common < before.length && common < now.length && before[common] === now[common]) common++;
    const delta = now.slice(common);
    this.prefix = this.read;
    this.read = this.ids.length;
    return delta;
  }
}
