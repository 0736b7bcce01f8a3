import type { CloseInfo, Conn, Transport } from './core.js';

/** WeChat mini-programs: `wx.connectSocket` (a SocketTask), and `wx.request` for the probe. */
export function wxTransport(w: any): Transport {
  return {
    open(url, ev): Conn {
      let done = false;
      const end = (info: CloseInfo) => {
        if (!done) {
          done = true;
          ev.close(info);
        }
      };
      const failed = (e: any) => end({ code: 1006, reason: '', error: new Error((e && e.errMsg) || 'socket error') });
      const task = w.connectSocket({ url, fail: failed });
      task.onOpen(() => ev.open());
      task.onMessage((r: any) => {
        if (r && typeof r.data === 'string') ev.message(r.data);
      });
      task.onError(failed);
      task.onClose((r: any) => end({ code: (r && r.code) || 1006, reason: (r && r.reason) || '' }));
      return {
        send: (t) => task.send({ data: t }),
        close: (code, reason) => {
          done = true;
          task.close({ code, reason });
        },
      };
    },
    probe: (url, ms) =>
      new Promise((resolve) => {
        try {
          w.request({ url, method: 'GET', timeout: ms, success: (r: any) => resolve(r.statusCode), fail: () => resolve(undefined) });
        } catch (e) {
          resolve(undefined);
        }
      }),
  };
}

/** The wx transport: the mini-program's `wx` object. */
export function wechat(): Transport | undefined {
  return typeof wx !== 'undefined' && wx && wx.connectSocket ? wxTransport(wx) : undefined;
}
