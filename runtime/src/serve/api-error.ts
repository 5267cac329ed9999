/**
 * Errors the server answers with, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`
 * (what the official clients parse into APIError). Every 4xx names what is wrong.
 */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** extra response headers (Retry-After on 429) */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 for a field: the message starts with the field's name. */
export function badField(param: string, problem: string, code: string | null = null): ApiError {
  return new ApiError(400, `${param}: ${problem}`, 'invalid_request_error', param, code);
}
