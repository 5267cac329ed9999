import type { Command } from 'commander';
import { NotImplementedError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('train-predictor')
    .description('train the MLP that predicts the experts of layer i+k (not implemented yet: the predictor issue, #7)')
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotImplementedError('train-predictor', 'the predictor issue, #7');
    });
}
