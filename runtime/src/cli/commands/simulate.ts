import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('simulate')
    .description('replay a routing trace through the offloading simulator (not implemented yet: the simulator issue, #3)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('simulate', 'the simulator issue, #3');
    });
}
