/**
 * Errors a user can act on. The CLI prints `moe-offload: <message>` for these and exits non-zero,
 * without a stack trace; anything else is a bug and is printed with its stack.
 */
export class UserError extends Error {
  override readonly name: string = 'UserError';
  constructor(message: string, readonly exitCode = 2) {
    super(message);
  }
}

/** A command or option that a later issue implements: says so plainly and fails; it never pretends. */
export class NotImplementedError extends UserError {
  override readonly name = 'NotImplementedError';
  constructor(what: string, where: string) {
    super(`${what} is not implemented yet (${where})`, 3);
  }
}

/** An input file that is missing, truncated or malformed: the message names the file and the problem. */
export class BadInputError extends UserError {
  override readonly name = 'BadInputError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}
