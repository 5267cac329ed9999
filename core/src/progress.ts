import cliProgress from 'cli-progress';

/** Progress of a long task, on stderr so that stdout stays clean for tables and JSON. */
export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export interface ProgressOptions {
  /** Suppress all output (tests, `--json` consumers that want silence). */
  quiet?: boolean;
  /** what is counted ('tokens', 'MiB', 'layers'): printed after the count, so `0/400 tokens` says what 400 is */
  unit?: string;
  /** non-TTY: the longest silence in milliseconds before a line says the task is still running (default heartbeatMs()) */
  heartbeatMs?: number;
}

/**
 * The longest silence on stderr during long work, in ms: 5 s, or $MOE_HEARTBEAT_MS (tests shorten it to see
 * the heartbeat of a run that takes less than 5 s).
 */
export function heartbeatMs(): number {
  const v = Number(process.env.MOE_HEARTBEAT_MS);
  return Number.isFinite(v) && v >= 50 ? v : 5000;
}

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1e3).toFixed(0)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1e3)} s`;
}

/**
 * A bar on a terminal; elsewhere (CI logs, pipes) a line at every 10%, and a line whenever nothing was
 * printed for a few seconds (a slow first step, a long prefill), so long work always shows it is alive.
 */
export function startProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet || total <= 0) return { tick() {}, done() {} };
  const unit = opts.unit ? ` ${opts.unit}` : '';
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {value}/{total}${unit} eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { tick: (n = 1) => bar.increment(n), done: () => bar.stop() };
  }
  const start = Date.now();
  let value = 0;
  let nextReport = 0;
  let lastLine = start;
  const line = () => {
    const pct = Math.floor((100 * value) / total);
    const elapsed = Date.now() - start;
    process.stderr.write(`${label}: ${value}/${total}${unit} (${pct}%)${elapsed >= 1000 ? `, ${seconds(elapsed)}` : ''}\n`);
    lastLine = Date.now();
  };
  const report = () => {
    const pct = Math.floor((100 * value) / total);
    if (pct >= nextReport) {
      line();
      nextReport = Math.min(100, pct - (pct % 10) + 10);
    }
  };
  // unref: a forgotten done() never keeps the process alive.
  const silence = opts.heartbeatMs ?? heartbeatMs();
  const timer = setInterval(() => {
    if (Date.now() - lastLine >= silence) line();
  }, Math.max(25, Math.min(1000, silence / 2)));
  timer.unref();
  report();
  return {
    tick(n = 1) {
      value = Math.min(total, value + n);
      if (value < total) report();
    },
    done() {
      clearInterval(timer);
      process.stderr.write(`${label}: done (${value}/${total}${unit}${Date.now() - start >= 1000 ? `, ${seconds(Date.now() - start)}` : ''})\n`);
    },
  };
}
