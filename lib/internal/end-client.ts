import type { Redis } from 'ioredis';

type Connector = { connector?: { stream?: { destroy(): void; destroyed?: boolean } } };

/**
 * Ends ioredis connections and waits until they are closed. ioredis' `disconnect()` half-closes
 * the socket and arms a 2 s timer until it closes — which never happens for a socket already
 * lost (Redis went away), so that timer would keep the process (and jest) alive. Such a stale
 * socket is forgotten first; a live one the server never answers is destroyed after `graceMs`.
 * `disconnect` is how to end them (by default each client's own; Bottleneck's for its pair).
 */
export async function endClients(
  clients: Array<Redis | undefined>,
  options: { quit?: boolean; graceMs?: number; disconnect?: () => unknown } = {},
): Promise<void> {
  const live = clients.filter((c): c is Redis => c !== undefined && c.status !== 'end');
  if (!live.length) return;
  for (const client of live) {
    const connector = (client as unknown as Connector).connector;
    if (connector?.stream?.destroyed) connector.stream = undefined;
  }
  const ended = Promise.all(live.map((client) => new Promise<void>((resolve) => client.once('end', () => resolve()))));
  if (options.disconnect) await Promise.resolve(options.disconnect()).catch(() => {});
  else {
    await Promise.all(
      live.map((client) => (options.quit && client.status === 'ready' ? client.quit().then(() => undefined, () => client.disconnect()) : client.disconnect())),
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), options.graceMs ?? 250);
    timer.unref();
  });
  const outcome = await Promise.race([ended, late]);
  clearTimeout(timer);
  if (outcome === 'late') for (const client of live) destroySockets(client);
}

/** A Redis client's socket, or every node's of a Cluster client. */
function destroySockets(client: Redis): void {
  const cluster = client as unknown as { isCluster?: boolean; nodes?: () => Redis[] };
  const each = cluster.isCluster && cluster.nodes ? cluster.nodes() : [client];
  for (const one of each) (one as unknown as Connector).connector?.stream?.destroy();
}
