import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('chat')
    .description('chat with a checkpoint (not implemented yet: the native engine issue, #4)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('chat', 'the native engine issue, #4');
    });
}
