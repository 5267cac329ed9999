/**
 * Options that would do nothing in the run the user asked for are refused, naming the option and what it
 * goes with: an option silently ignored reads as an option obeyed. Only options typed on the command line
 * count (a default never triggers a refusal).
 */
import type { Command } from 'commander';
import { UserError } from '../core/src/errors.js';

export interface UnusedRule {
  /** the flag as typed, e.g. '--policy' */
  option: string;
  /** whether the option has an effect in this run */
  applies: boolean;
  /** what it goes with, e.g. 'with --cache' */
  needs: string;
}

function key(flag: string): string {
  return flag.replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Whether the user gave `flag` (not a default). */
export function given(cmd: Command, flag: string): boolean {
  const source = cmd.getOptionValueSource(key(flag));
  return source === 'cli' || source === 'env';
}

export function refuseUnused(cmd: Command, rules: readonly UnusedRule[]): void {
  for (const r of rules) {
    if (!r.applies && given(cmd, r.option)) throw new UserError(`option ${r.option}: has no effect here (it is used ${r.needs}); remove it`);
  }
}

/** --expert-group has an effect only with --expert-dtype int4 (a list counts when it holds int4). */
export function expertGroupRule(expertDtype: string | undefined): UnusedRule {
  const int4 = (expertDtype ?? 'bf16').split(',').some((d) => d.trim() === 'int4');
  return { option: '--expert-group', applies: int4, needs: 'with --expert-dtype int4 (int8 has one scale per output channel, bf16 none)' };
}
