// An "uppercase echo" chat policy for Switchboard, written in JavaScript.
//
// It implements the `switchboard:policy/handler` export of the `policy` world
// in wit/policy.wit. componentize-js maps the WIT types to JS like this:
//   variant (frame, action)  -> { tag: 'kebab-case-name', val: payload }
//   record (connect-info ...) -> plain object, fields in camelCase
//   option<T>                -> the value, or undefined
//   list<u8>                 -> Uint8Array
//   enum (level)             -> its case name as a string, e.g. 'info'
//   result<T, E> (returned)  -> return T for ok; `throw E` for err
// Imports are ES modules named after the WIT interface.

import { onlineCount } from 'switchboard:policy/registry@0.2.0';
import { log } from 'switchboard:policy/log@0.2.0';

const text = (s) => ({ tag: 'text', val: s });
const reply = (frame) => ({ tag: 'reply', val: frame });

export const handler = {
  // result<list<action>, reject>
  onConnect(info) {
    if (info.id.startsWith('banned')) {
      log('info', `js policy: refusing ${info.id} from ${info.remoteAddr}`);
      // `throw` lowers to the result's err case: a `reject` record.
      throw { status: 403, reason: 'banned' };
    }
    // The new connection is registered after this call's actions run, so
    // this counts the connections online before it. World 0.2.0 says
    // whether the connection `resumed` a held session; the host adds the
    // `session` itself (a client resumes with `?resume=<session>` after a
    // drop; a policy never sees it).
    const welcome = {
      type: 'welcome',
      id: info.id,
      resumed: info.resumed,
      lang: 'js',
      online: onlineCount(),
    };
    return [reply(text(JSON.stringify(welcome)))];
  },

  // list<action>
  onMessage(sender, frame) {
    if (frame.tag === 'text') {
      return [reply(text(frame.val.toUpperCase()))];
    }
    // Binary frames (a Uint8Array) come back unchanged.
    return [reply(frame)];
  },

  // list<action>
  onDisconnect(id) {
    log('debug', `js policy: ${id} left`);
    return [];
  },
};
