import type { Command } from 'commander';
import { NotImplementedError } from '../../core/src/errors.js';

export function register(program: Command): void {
  program
    .command('validate')
    .description('re-run the best simulated configurations on the GPU and compare (not implemented yet: the runtime and the simulator exist, the comparison loop does not)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('validate', 'the offloading runtime and the simulator exist; the loop that re-runs the best simulated configurations on the GPU does not yet');
    });
}
