import type { Server } from 'node:net';

/**
 * Listens on 127.0.0.1:`port` (0: any free port). For a stand-in that comes back after an
 * outage on the port it had: a port given back a moment ago may be taken for a moment (a
 * connection of another process got it as its local port), so EADDRINUSE is tried again for up
 * to 5 s.
 */
export async function listenOn(server: Server, port: number): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolveListen, reject) => {
        const onError = (error: Error) => reject(error);
        server.once('error', onError);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', onError);
          resolveListen();
        });
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0 || attempt >= 50) throw error;
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }
}
