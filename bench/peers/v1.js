// What the protocol v1 peers share (docs/PROTOCOL.md): reading a request's
// envelope, the room-name rule, and the `error` and `ack` replies. Plain
// JavaScript, for node.js and Bun.
'use strict';

// A text frame as a request: `{ msg, ref }`, or `{ refused: [ref, code,
// message] }` (the arguments of `error` after the socket).
function request(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return { refused: [undefined, 'bad-json', `invalid JSON: ${e.message}`] };
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    const what = Array.isArray(msg) ? 'an array' : msg === null ? 'null' : `a ${typeof msg}`;
    return { refused: [undefined, 'bad-json', `expected a JSON object, got ${what}`] };
  }
  const ref = msg.ref;
  if (ref !== undefined && typeof ref !== 'string' && typeof ref !== 'number') {
    return { refused: [undefined, 'bad-request', 'field `ref` must be a string or a number'] };
  }
  if (!('type' in msg)) return { refused: [ref, 'bad-request', 'missing field `type`'] };
  if (typeof msg.type !== 'string') return { refused: [ref, 'bad-request', 'field `type` must be a string'] };
  return { msg, ref };
}

// Why `msg.room` is not a valid room name, or null if it is.
function checkRoom(msg) {
  if (!('room' in msg)) return 'missing field `room`';
  if (typeof msg.room !== 'string' || msg.room.length < 1 || [...msg.room].length > 64)
    return 'field `room` must be a string of 1-64 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(msg.room)) return 'field `room` must not contain control characters';
  return null;
}

// `error` and `ack` frames, sent with the peer's own `send(ws, msg)`.
function replies(send) {
  return {
    error(ws, ref, code, message) {
      const msg = { type: 'error' };
      if (ref !== undefined) msg.ref = ref;
      msg.code = code;
      msg.message = message;
      send(ws, msg);
    },
    ack(ws, ref) {
      if (ref !== undefined) send(ws, { type: 'ack', ref });
    },
  };
}

module.exports = { request, checkRoom, replies };
