/** A request the client must change: answered with its status (4xx) and this message, as JSON or as a page. */
export class RequestError extends Error {
  constructor(
    readonly statusCode: 400 | 404 | 415,
    message: string,
    /** The field at fault, by the API's name. */
    readonly field: string | null = null,
  ) {
    super(message);
    this.name = "RequestError";
  }
}
