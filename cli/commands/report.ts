/** `report`: regenerates reports/REPORT.md and its charts from the committed result files (runtime/src/report/). */
import type { Command } from 'commander';
import { UserError } from '../../core/src/errors.js';
import { findRepoRoot } from '../../runtime/src/engine/native-binding.js';
import { REPORT_FILE, staleReportFiles, writeReport } from '../../runtime/src/report/write-report.js';

export function register(program: Command): void {
  program
    .command('report')
    .description(`regenerate ${REPORT_FILE} and reports/figures/ from the committed results (reports/bench, reports/sim, reports/predictor, reports/validate, sim/calibration)`)
    .option('--check', 'write nothing: fail if the committed report differs from what the results give')
    .action(async (o: { check?: boolean }) => {
      const root = findRepoRoot();
      if (o.check) {
        const stale = staleReportFiles(root);
        if (stale.length) throw new UserError(`report --check: out of date: ${stale.join(', ')} (run moe-offload report)`);
        process.stdout.write(`${REPORT_FILE} is up to date\n`);
        return;
      }
      const files = await writeReport(root);
      process.stdout.write(`wrote ${files.length} files (${REPORT_FILE}, reports/figures/)\n`);
    });
}
