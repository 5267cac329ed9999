/**
 * Cleanup on Ctrl-C or SIGTERM for work that leaves a partial output behind. The handler removes the
 * partial output and then re-raises the signal with the default action, so the process ends as an
 * interrupted one (exit 130 / 143 seen by the shell) and nothing half-written remains. The work must
 * yield to the event loop now and then (an await), or the handler never gets to run.
 */
export async function withInterruptCleanup<T>(cleanup: () => void, work: () => Promise<T>): Promise<T> {
  const onSignal = (sig: NodeJS.Signals) => {
    try {
      cleanup();
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      process.kill(process.pid, sig);
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await work();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** Lets pending signals (and progress output) through during long synchronous stretches. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
