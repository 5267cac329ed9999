/** Problems that did not stop a command (a checkpoint's unexpected extra tensors): said once, on stderr, before the output. */
export function printWarnings(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`moe-offload: warning: ${w}\n`);
}
