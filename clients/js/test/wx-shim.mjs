// The WeChat runtime does not run here: this shim implements the documented
// mini-program API the wx transport uses — wx.connectSocket returning a
// SocketTask (onOpen, onMessage, onClose, onError, send({data}), close({code,
// reason})) and wx.request — over Node's `ws` and `http`, so the wx build runs
// against the real server. Like WeChat it says nothing about why a handshake
// was refused: onError gets an errMsg only.
import http from 'node:http';
import { WebSocket } from 'ws';

export function createWx() {
  const stats = { sockets: 0, requests: 0, tasks: [] };
  const call = (cb, res) => {
    if (typeof cb === 'function') cb(res);
  };
  const wx = {
    connectSocket({ url, header, protocols, success, fail, complete } = {}) {
      stats.sockets++;
      const on = { open: [], message: [], close: [], error: [] };
      const fire = (k, res) => on[k].slice().forEach((f) => f(res));
      let ws;
      try {
        ws = new WebSocket(url, protocols, { headers: header });
      } catch (e) {
        call(fail, { errMsg: 'connectSocket:fail ' + e.message });
        call(complete, {});
        setTimeout(() => fire('error', { errMsg: 'connectSocket:fail ' + e.message }), 0);
      }
      if (ws) {
        call(success, { errMsg: 'connectSocket:ok' });
        call(complete, {});
        ws.on('open', () => fire('open', { header: {}, profile: {} }));
        ws.on('message', (d, binary) => fire('message', { data: binary ? new Uint8Array(d).buffer : d.toString() }));
        ws.on('error', (e) => fire('error', { errMsg: 'WebSocket error: ' + e.message }));
        ws.on('close', (code, reason) => fire('close', { code, reason: reason.toString() }));
      }
      const task = {
        onOpen: (f) => on.open.push(f),
        onMessage: (f) => on.message.push(f),
        onClose: (f) => on.close.push(f),
        onError: (f) => on.error.push(f),
        send({ data, success, fail, complete } = {}) {
          if (!ws || ws.readyState !== WebSocket.OPEN) {
            call(fail, { errMsg: 'sendSocketMessage:fail WebSocket is not connected' });
            call(complete, {});
            return;
          }
          ws.send(data, (err) => {
            call(err ? fail : success, { errMsg: err ? 'sendSocketMessage:fail ' + err.message : 'sendSocketMessage:ok' });
            call(complete, {});
          });
        },
        close({ code = 1000, reason = '', success, fail, complete } = {}) {
          try {
            if (ws) ws.close(code, reason);
            call(success, { errMsg: 'closeSocket:ok' });
          } catch (e) {
            call(fail, { errMsg: 'closeSocket:fail ' + e.message });
          }
          call(complete, {});
        },
        /** Test hook: the underlying `ws` socket. */
        get _ws() {
          return ws;
        },
      };
      stats.tasks.push(task);
      return task;
    },

    request({ url, method = 'GET', header, timeout = 60000, success, fail, complete } = {}) {
      stats.requests++;
      const req = http.request(url, { method, headers: header, timeout }, (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => {
          call(success, { statusCode: res.statusCode, data, header: res.headers, errMsg: 'request:ok' });
          call(complete, {});
        });
      });
      const failed = (e) => {
        call(fail, { errMsg: 'request:fail ' + e.message });
        call(complete, {});
      };
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', failed);
      req.end();
      return { abort: () => req.destroy() };
    },
  };
  return { wx, stats };
}
