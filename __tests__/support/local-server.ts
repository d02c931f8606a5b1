import type { Server } from 'node:http';

/** Something that listens like an Express app or a node:http server. */
interface Listenable {
  listen(port: number, host: string, callback: () => void): Server;
}

/** Starts `app` on a free local port: its base URL, and a close() that waits for it. */
export async function listenLocally(app: Listenable): Promise<{ server: Server; base: string; close(): Promise<void> }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    server,
    base: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
