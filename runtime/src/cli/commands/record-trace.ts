import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('record-trace')
    .description('run real inference and record routing to a trace (not implemented yet: the offloading runtime issue, #6)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('record-trace', 'the offloading runtime issue, #6');
    });
}
