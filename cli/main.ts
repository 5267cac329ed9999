import { Command, CommanderError } from 'commander';
import { UserError } from '../core/src/errors.js';
import { registerAll } from './commands/index.js';

export function buildProgram(): Command {
  const program = new Command('moe-offload')
    .description('Run Mixture-of-Experts models on one GPU too small for them, and study how.')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  registerAll(program);
  for (const cmd of program.commands) applyCommonBehaviour(cmd);
  return program;
}

function applyCommonBehaviour(cmd: Command): void {
  cmd.exitOverride().showHelpAfterError('(add --help for usage)');
  for (const sub of cmd.commands) applyCommonBehaviour(sub);
}

/**
 * Runs the CLI and returns the exit code. Only this entry point decides exit codes: commands throw,
 * UserErrors become one line on stderr, anything else is a bug and keeps its stack.
 */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help asked for (--help, `help`) is a successful exit. A missing command (`moe-offload`, `moe-offload
      // traces`) shows the help as an error (commander exits 1 there): a usage error, like a parse error, which
      // commander has already printed.
      if (err.exitCode === 0) return 0;
      if (err.code === 'commander.help') process.stderr.write('moe-offload: give a command (see the list above)\n');
      return 2;
    }
    if (err instanceof UserError) {
      process.stderr.write(`moe-offload: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`moe-offload: internal error: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    return 1;
  }
}
