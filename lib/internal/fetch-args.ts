/**
 * A fetch call's arguments as the pipeline reads them: a URL string and a RequestInit whose body
 * is a string (the adapters parse JSON text). Clients pass (url, init) with a string body; a
 * Request object or a binary body (other fetch-based clients) is read into one first.
 */
export function fetchArgs(input: string | URL | Request, init: RequestInit | undefined): FetchArgs | Promise<FetchArgs> {
  if (typeof input === 'string' && (init === undefined || init.body === undefined || init.body === null || typeof init.body === 'string')) return { url: input, init: init ?? {} };
  return readArgs(input, init);
}

type FetchArgs = { url: string; init: RequestInit };

async function readArgs(input: string | URL | Request, init: RequestInit | undefined): Promise<FetchArgs> {
  let url: string;
  let merged: RequestInit;
  if (input instanceof Request) {
    url = input.url;
    const method = init?.method ?? input.method;
    const body = init?.body !== undefined ? init.body : method === 'GET' || method === 'HEAD' ? undefined : await input.text();
    merged = { method, headers: init?.headers ?? input.headers, signal: init?.signal ?? input.signal, ...(body !== undefined ? { body } : {}) };
  } else {
    url = input instanceof URL ? input.href : String(input);
    merged = { ...init };
  }
  const body = merged.body;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    merged.body = new TextDecoder().decode(body instanceof ArrayBuffer ? new Uint8Array(body) : new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  }
  return { url, init: merged };
}
