import { G, type Conn, type Transport } from './core.js';

/** Any WHATWG WebSocket constructor: the browser's, Node 22's global, or `ws` in its browser-compatible mode. */
export function browserTransport(WS: any): Transport {
  return {
    open(url, ev): Conn {
      let err: unknown;
      const ws = new WS(url);
      ws.onopen = () => ev.open();
      ws.onmessage = (e: any) => {
        if (typeof e.data === 'string') ev.message(e.data);
      };
      // Browsers say nothing about why (a refused handshake looks like any
      // network failure); the close event that follows carries 1006.
      ws.onerror = (e: any) => {
        err = (e && e.error) || new Error((e && e.message) || 'WebSocket error');
      };
      ws.onclose = (e: any) => ev.close({ code: e.code, reason: e.reason || '', error: err });
      return {
        send: (t) => ws.send(t),
        close: (code, reason) => {
          ws.onopen = ws.onmessage = ws.onclose = null;
          ws.onerror = () => {}; // some implementations throw an error nobody listens to
          ws.close(code, reason);
        },
      };
    },
    probe: fetchProbe,
  };
}

/** A plain GET of the socket URL (http[s]): the status the upgrade would get. Needs `fetch`; otherwise unknown. */
export function fetchProbe(url: string, ms: number): Promise<number | undefined> {
  const f = G.fetch;
  if (typeof f !== 'function') return Promise.resolve(undefined);
  const ac = G.AbortController ? new G.AbortController() : undefined;
  const t = setTimeout(() => ac && ac.abort(), ms);
  return f(url, ac ? { signal: ac.signal } : {}).then(
    (r: any) => {
      clearTimeout(t);
      try {
        if (r.body && r.body.cancel) r.body.cancel().catch(() => {});
      } catch (e) {
        /* nothing to release */
      }
      return r.status as number;
    },
    () => {
      clearTimeout(t);
      return undefined;
    },
  );
}

/** The browser transport: the global WebSocket. */
export function browser(): Transport | undefined {
  return G.WebSocket ? browserTransport(G.WebSocket) : undefined;
}
