import { G, SwitchboardError, type Conn, type Transport } from './core.js';
import { browserTransport } from './transport-browser.js';

// Loaded on first use only, so nothing pulls `ws` in where it is not needed
// (the specifier is a variable: bundlers leave it alone).
const WS_PACKAGE = 'ws';
let load: Promise<any> | undefined;
function loadWs(): Promise<any> {
  return (load ||= import(/* webpackIgnore: true */ /* @vite-ignore */ WS_PACKAGE).then((m: any) => m.WebSocket || m.default));
}

/** Node's `ws` package: sees the HTTP status (and reason) of a refused handshake. */
export const wsTransport: Transport = {
  knowsStatus: true,
  open(url, ev): Conn {
    let ws: any;
    let given = false;
    loadWs().then(
      (WS) => {
        if (given) return;
        let status: number | undefined;
        let body = '';
        let err: unknown;
        ws = new WS(url);
        ws.on('open', () => ev.open());
        ws.on('message', (d: any, binary: boolean) => {
          if (!binary) ev.message(String(d));
        });
        ws.on('unexpected-response', (_req: any, res: any) => {
          status = res.statusCode;
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            if (body.length < 1000) body += c;
          });
          const stop = () => ws.terminate();
          res.on('end', stop);
          res.on('error', stop);
        });
        ws.on('error', (e: unknown) => {
          err = e;
        });
        ws.on('close', (code: number, reason: any) => ev.close({ code, reason: String(reason || ''), status, body: body.trim(), error: err }));
      },
      (e) =>
        ev.close({
          code: 1006,
          reason: '',
          fatal: new SwitchboardError('no-transport', 'this Node has no global WebSocket: install the `ws` package (npm install ws)', { cause: e }),
        }),
    );
    return {
      send: (t) => ws && ws.send(t),
      close: (code, reason) => {
        given = true;
        if (!ws) return;
        try {
          ws.close(code, reason);
        } catch (e) {
          /* not open */
        }
        // A dead peer never answers the close: let the socket go soon.
        const t = setTimeout(() => ws.terminate(), 1000);
        if (t && t.unref) t.unref();
      },
    };
  },
};

/** The node transport: the global WebSocket where there is one (Node 22+), else `ws`. */
export function node(): Transport | undefined {
  return G.WebSocket ? browserTransport(G.WebSocket) : wsTransport;
}
