import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('validate')
    .description('re-run the best simulated configurations on the GPU and compare (not implemented yet: after the offloading runtime, #6)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('validate', 'after the offloading runtime, #6');
    });
}
