/**
 * Generated text with OpenAI `stop` strings: text is released as soon as it cannot be the start of a
 * stop string any more, and ends right before the first stop string (which is not included).
 */
export class StopText {
  private text = '';
  private sent = 0;
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Adds decoded text; returns what may be sent now, and whether a stop string was reached. */
  push(delta: string): { text: string; stopped: boolean } {
    if (this.stopped) return { text: '', stopped: true };
    this.text += delta;
    const longest = Math.max(0, ...this.stops.map((s) => s.length));
    const from = Math.max(0, this.sent - longest + 1);
    let cut = -1;
    for (const s of this.stops) {
      const i = this.text.indexOf(s, from);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.text.slice(this.sent, Math.max(cut, this.sent));
      this.sent = Math.max(cut, this.sent);
      this.text = this.text.slice(0, this.sent);
      return { text: out, stopped: true };
    }
    const safe = this.text.length - this.heldBack();
    const out = this.text.slice(this.sent, Math.max(safe, this.sent));
    this.sent = Math.max(safe, this.sent);
    return { text: out, stopped: false };
  }

  /** The rest, when generation ended without a stop string. */
  flush(): string {
    const out = this.text.slice(this.sent);
    this.sent = this.text.length;
    return out;
  }

  /** Everything released so far plus the rest (the non-streamed answer). */
  get all(): string {
    return this.text;
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.text.length); n > hold; n--) {
        if (this.text.endsWith(s.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }
}
