import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('synth-model')
    .description('write a synthetic checkpoint in the Hub layout (not implemented yet: the native engine issue, #4)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('synth-model', 'the native engine issue, #4');
    });
}
