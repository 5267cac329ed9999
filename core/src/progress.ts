import cliProgress from 'cli-progress';

/** Progress of a long task, on stderr so that stdout stays clean for tables and JSON. */
export interface Progress {
  tick(n?: number): void;
  done(): void;
}

export interface ProgressOptions {
  /** Suppress all output (tests, `--json` consumers that want silence). */
  quiet?: boolean;
  /** What is counted, plural (`configurations`, `sequences`, `MiB`): a bare `0/29958` says nothing. */
  unit?: string;
}

/**
 * A bar on a terminal; elsewhere (CI logs, pipes) a line at every 10% so long work still shows it is alive.
 */
export function startProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet || total <= 0) return { tick() {}, done() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {value}/{total}${opts.unit ? ` ${opts.unit}` : ''} eta {eta_formatted}`, stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { tick: (n = 1) => bar.increment(n), done: () => bar.stop() };
  }
  let value = 0;
  let nextReport = 0;
  const report = () => {
    const pct = Math.floor((100 * value) / total);
    if (pct >= nextReport) {
      process.stderr.write(`${label}: ${value}/${total}${opts.unit ? ` ${opts.unit}` : ''} (${pct}%)\n`);
      nextReport = Math.min(100, pct - (pct % 10) + 10);
    }
  };
  report();
  return {
    tick(n = 1) {
      value = Math.min(total, value + n);
      if (value < total) report();
    },
    done() {
      if (nextReport <= 100 && value < total) value = total;
      process.stderr.write(`${label}: done\n`);
    },
  };
}
