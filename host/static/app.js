// Switchboard web chat: plain JavaScript on the client library
// (/switchboard.js, the global `Switchboard`). No framework, no build step.
// Everything a user or the server wrote is put in the page as text
// (textContent), never as HTML.
//
// Query parameters (for tests and slow networks): ?ping=<ms>&pong=<ms> set
// the client's heartbeat (pingIntervalMs, pongTimeoutMs), ?backoff=<ms> the
// longest wait between reconnect attempts.
//
// The server limits how often a connection may ask `members`, `online` and
// `history` (default 5 a second, bursts of 20). The page asks them for the
// room shown only: a room's member list and its earlier messages are asked
// when it is first shown (and its members again after a reconnect), so a tab
// in 30 rooms does not ask 60 questions at once. The client library paces
// what it sends under the limits and retries a refused request after the
// server's `retry_after_ms`.
(function () {
  'use strict';

  var ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
  var KEY = { id: 'switchboard.id', rooms: 'switchboard.rooms', active: 'switchboard.active', live: 'switchboard.live', notices: 'switchboard.notices' };

  // ---------------------------------------------------------------- helpers

  function $(id) {
    return document.getElementById(id);
  }

  /** An element with attributes and children (strings become text nodes). */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs)
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = v;
        else if (k.slice(0, 5) === 'data-' || k.slice(0, 5) === 'aria-' || k === 'role' || k === 'title' || k === 'type') el.setAttribute(k, v === true ? '' : String(v));
        else el[k] = v;
      });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === undefined || c === null || c === false) continue;
      el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }

  var store = {
    get: function (k) {
      try {
        return sessionStorage.getItem(k);
      } catch (e) {
        return null;
      }
    },
    set: function (k, v) {
      try {
        if (v === null || v === undefined) sessionStorage.removeItem(k);
        else sessionStorage.setItem(k, v);
      } catch (e) {
        /* storage off: the page still works, a reload just forgets */
      }
    },
  };

  function clock(d) {
    var p = function (n) {
      return (n < 10 ? '0' : '') + n;
    };
    return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  /** What to show for a message's `data`: its text, a string, or the JSON. */
  function show(data) {
    if (data && typeof data === 'object' && typeof data.text === 'string') return data.text;
    if (typeof data === 'string') return data;
    try {
      return JSON.stringify(data);
    } catch (e) {
      return String(data);
    }
  }

  function roomNameProblem(name) {
    if (!name) return 'Type a room name.';
    if (Array.from(name).length > 64) return 'A room name has at most 64 characters.';
    if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'A room name cannot contain control characters.';
    return '';
  }

  var CLOSE = {
    1000: 'closed normally',
    1001: 'the server went away',
    1006: 'the network dropped',
    1008: 'closed by the chat rules',
    1009: 'a message was too big',
    4000: 'no answer from the server',
    4001: 'replaced by a newer connection',
    4008: 'too slow: the server could not send fast enough',
  };
  function describeClose(code, reason) {
    var what = CLOSE[code] || 'connection ended';
    if (reason && reason !== 'no pong' && reason.indexOf('replaced') < 0) what += ' — ' + reason;
    return what + (code ? ' (' + code + ')' : '');
  }

  /** A readable sentence for a SwitchboardError (or anything thrown). */
  function describeError(err) {
    if (!err) return 'unknown error';
    var code = err.code;
    var msg = err.message || String(err);
    switch (code) {
      case 'target-closed':
        return msg + '. Tick “store if offline” to keep it for them.';
      case 'rate-limited':
        return 'Slow down: the server is rate-limiting you' + (err.retryAfterMs ? ' (try again in ' + err.retryAfterMs + ' ms)' : '') + '.';
      case 'not-in-room':
        return 'You are not in that room (' + msg + ').';
      case 'too-many-rooms':
        return msg + '.';
      case 'connection-lost':
        return 'The connection dropped before the server answered: it may or may not have gone through.';
      case 'timeout':
        return 'The server did not answer in time.';
      case 'closed':
        return 'Not connected.';
      case 'queue-full':
        return 'Too many requests are waiting for the connection; wait for it to come back.';
      case 'transport':
        return 'could not reach the server';
      case 'replaced':
        return 'Another tab or device connected with this id, so this one stopped.';
      case 'unauthorized':
        return 'the server refused the token (' + (err.status || 401) + '): check it, or get a fresh one';
      case 'refused':
        return 'the server refused the connection (' + (err.status || 400) + '): check the id';
      case 'bad-request':
      case 'unknown-type':
      case 'policy-failed':
        return 'The server refused it: ' + msg + ' (' + code + ').';
      default:
        return code ? msg + ' (' + code + ')' : msg;
    }
  }

  // ------------------------------------------------------------------ state

  var params = new URLSearchParams(location.search);
  function numParam(k) {
    var v = Number(params.get(k));
    return isFinite(v) && v > 0 ? v : undefined;
  }
  var tuning = {};
  if (numParam('ping')) tuning.pingIntervalMs = numParam('ping');
  if (numParam('pong')) tuning.pongTimeoutMs = numParam('pong');
  if (numParam('backoff')) tuning.backoff = { initialMs: Math.min(1000, numParam('backoff')), maxMs: numParam('backoff') };

  var sb = null; // the client
  var me = ''; // our id (from the welcome)
  var welcomed = false; // this client has had a welcome (later ones are reconnects)
  var attempts = 0; // failed connection attempts since the last welcome
  var recovering = null; // after a fresh (not resumed) reconnect: {left, failed}
  var rooms = new Map(); // name -> view
  var active = null; // the room shown

  // ------------------------------------------------------------- connection

  function setConn(state, label, detail) {
    var el = $('conn');
    el.dataset.state = state;
    $('conn-label').textContent = label;
    $('conn-detail').textContent = detail || '';
    var live = state !== 'idle' && state !== 'closed';
    $('disconnect').hidden = !live;
    $('reconnect').hidden = state !== 'closed' || !sb;
    $('change-id').hidden = state !== 'closed';
  }

  function log(kind, text) {
    var list = $('log');
    list.insertBefore(h('li', { class: 'log-' + kind, 'data-testid': 'log-entry', 'data-kind': kind }, h('time', { text: clock(new Date()) }), ' ', text), list.firstChild);
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function connect(id, token) {
    if (sb) drop();
    var opts = {};
    Object.keys(tuning).forEach(function (k) {
      opts[k] = tuning[k];
    });
    if (id) opts.id = id;
    if (token) opts.token = token;
    var client = new Switchboard(opts);
    sb = client;
    me = id || '';
    welcomed = false;
    attempts = 0;
    recovering = null;
    var mine = function (fn) {
      return function (ev) {
        if (client === sb) fn(ev);
      };
    };
    client.on('state', mine(onState));
    client.on('welcome', mine(onWelcome));
    client.on('frame', mine(onFrame));
    client.on('notice', mine(onNotice));
    client.on('notices-dropped', mine(function (e) {
      addNotice({ kind: 'dropped', count: e.count });
    }));
    client.on('broadcast', mine(function (e) {
      addNotice({ kind: 'broadcast', from: e.from, text: show(e.data) });
    }));
    client.on('error', mine(function (err) {
      // A failed connection attempt is shown by the status (and retried);
      // the error that closed the client, by the closed state.
      if (client.state === 'closed' || err.code === 'transport') return;
      // A re-join still refused after the client's retries: its room is done.
      if (recovering && err.code === 'rate-limited' && err.frame && err.frame.ref !== undefined) recovered(true);
      log('error', describeError(err));
    }));
    $('whoami').textContent = id ? id : '';
    showChat(true);
    setConn('connecting', 'connecting…');
    store.set(KEY.live, '1');
    client.connect().catch(function () {
      /* the state event says why */
    });
    // Rooms of this tab (a reload keeps them): joined once connected.
    var saved = [];
    try {
      saved = JSON.parse(store.get(KEY.rooms) || '[]');
    } catch (e) {
      saved = [];
    }
    var want = store.get(KEY.active);
    saved.forEach(function (name) {
      if (typeof name === 'string' && !roomNameProblem(name)) joinRoom(name, name === want || !want);
    });
  }

  /** Forgets the client and every room view. */
  function drop() {
    var old = sb;
    sb = null;
    if (old) old.close();
    rooms.forEach(function (v) {
      v.item.remove();
      v.list.remove();
    });
    rooms.clear();
    active = null;
    renderActive();
  }

  function onState(e) {
    if (e.state === 'connecting' || e.state === 'resuming') {
      var why = e.error ? describeError(e.error) : e.code ? describeClose(e.code, e.reason) : '';
      if (e.code || e.error) attempts++;
      var tries = attempts > 1 ? ' · attempt ' + attempts : '';
      if (welcomed) {
        // Logged once per loss; each failed attempt only updates the status.
        if ($('conn').dataset.state !== 'reconnecting') log('warn', 'Connection lost: ' + (why || 'closed') + '. Reconnecting…');
        setConn('reconnecting', 'reconnecting…', why ? why + tries : '');
      } else setConn('connecting', 'connecting…', why ? 'retrying: ' + why + tries : '');
      recovering = null;
    } else if (e.state === 'closed') {
      var reason = e.error ? describeError(e.error) : describeClose(e.code, e.reason);
      if (e.error && e.error.code === 'closed') reason = 'you disconnected';
      setConn('closed', 'closed', reason);
      log(e.error && e.error.code !== 'closed' ? 'error' : 'info', 'Closed: ' + reason);
      if (!welcomed && e.error && (e.error.code === 'unauthorized' || e.error.code === 'refused')) {
        // Refused before it ever connected: back to the form, which says why.
        showChat(false);
        $('reconnect').hidden = $('change-id').hidden = true;
        $('login-error').textContent = 'Could not connect: ' + reason + '.';
        $(e.error.code === 'unauthorized' ? 'token-input' : 'id-input').focus();
      }
      store.set(KEY.live, null); // final: a reload does not connect again by itself
    }
    // 'open' is shown by the welcome, which says whether it resumed.
  }

  function onWelcome(w) {
    attempts = 0;
    me = w.id;
    $('whoami').textContent = w.id;
    store.set(KEY.id, w.id);
    if (!welcomed) {
      welcomed = true;
      setConn('open', 'connected', 'as ' + w.id);
      log('info', 'Connected as ' + w.id + '.');
    } else if (w.resumed) {
      setConn('resumed', 'resumed', 'session resumed: nothing missed');
      log('info', 'Reconnected and resumed the session: nothing was missed.');
    } else {
      // A fresh session: the client re-joins every room with `since` right
      // after the welcome, before anything else, and the answers come in
      // that order. Their acks say whether each room got back what it missed.
      var n = 0;
      rooms.forEach(function (v) {
        if (v.room.joined) n++;
      });
      if (n === 0) {
        setConn('open', 'reconnected', 'new session');
        log('info', 'Reconnected with a new session.');
      } else {
        recovering = { left: n, failed: 0 };
        setConn('recovering', 'recovering…', 're-joining ' + n + (n === 1 ? ' room' : ' rooms'));
      }
    }
    // Who joined or left while the connection was down is not replayed:
    // every member list is asked again, each when its room is shown.
    rooms.forEach(function (v) {
      v.stale = true;
    });
    var view = active ? rooms.get(active) : null;
    if (view && view.joined) loadMembers(view);
  }

  function onFrame(f) {
    // A `rate-limited` refusal is retried by the client: not an answer yet.
    if (!recovering || f.ref === undefined || (f.type !== 'ack' && f.type !== 'error') || f.code === 'rate-limited') return;
    recovered(f.type === 'error' || f.recovered === false);
  }

  /** One re-join answered after a fresh reconnect (`lost`: it did not get back everything). */
  function recovered(lost) {
    if (lost) recovering.failed++;
    if (--recovering.left > 0) return;
    var failed = recovering.failed;
    recovering = null;
    if (failed) {
      setConn('reloaded', 'reconnected', 'history reloaded: some messages could not be recovered');
      log('warn', 'Reconnected, but ' + failed + (failed === 1 ? ' room' : ' rooms') + ' could not recover what was missed: history reloaded.');
    } else {
      setConn('recovered', 'recovered', 'reconnected: every missed message recovered');
      log('info', 'Reconnected with a new session and recovered every missed message.');
    }
  }

  // ------------------------------------------------------------------ rooms

  function persistRooms() {
    var names = [];
    rooms.forEach(function (v, name) {
      names.push(name);
    });
    store.set(KEY.rooms, JSON.stringify(names));
    store.set(KEY.active, active);
  }

  function joinRoom(name, select) {
    if (rooms.has(name)) {
      if (select) selectRoom(name);
      return;
    }
    var room = sb.room(name);
    var view = {
      name: name,
      room: room,
      joined: false,
      members: new Set(),
      stale: true, // the member list is to be asked (when the room is shown)
      earlier: 0, // the join ack's offset: messages up to it are to be shown (when the room is shown)
      unread: 0,
      reloading: false,
      buffer: [],
      list: h('ol', { class: 'timeline', 'data-testid': 'messages', 'data-room': name, role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages in ' + name, hidden: true }),
      badge: h('span', { class: 'badge', 'data-testid': 'unread', hidden: true }),
    };
    var pick = h('button', { type: 'button', class: 'room-pick', 'data-testid': 'room-select', onclick: function () {
      selectRoom(name);
    } }, h('span', { class: 'hash', 'aria-hidden': 'true', text: '#' }), h('span', { class: 'room-name', text: name }), view.badge);
    view.item = h('li', { class: 'room-item pending', 'data-testid': 'room-item', 'data-room': name }, pick);
    rooms.set(name, view);
    $('room-list').appendChild(view.item);
    $('timelines').appendChild(view.list);
    var client = sb;
    var live = function (fn) {
      return function (e) {
        if (client === sb && rooms.get(name) === view) fn(e);
      };
    };
    room.on('message', live(function (m) {
      if (view.reloading) view.buffer.push(m);
      else addMessage(view, m);
    }));
    room.on('joined', live(function (e) {
      // `count` says how many there are beyond the 1,000 ids `members` lists.
      if (view.count && !view.members.has(e.id)) view.count++;
      view.members.add(e.id);
      if (active === name) renderMembers();
      system(view, e.id === me ? 'You joined #' + name : e.id + ' joined', 'joined');
    }));
    room.on('left', live(function (e) {
      if (view.count) view.count--;
      view.members.delete(e.id);
      if (active === name) renderMembers();
      if (e.id !== me) system(view, e.id + ' left', 'left');
    }));
    room.on('recovery-failed', live(function () {
      reloadHistory(view);
    }));
    if (select || !active) selectRoom(name);
    persistRooms();
    room.join().then(
      live(function (ack) {
        var first = !view.joined;
        view.joined = true;
        view.item.classList.remove('pending');
        if (first) {
          view.earlier = ack.offset;
          if (active === name) catchUp(view);
        }
      }),
      live(function (err) {
        $('join-error').textContent = 'Could not join #' + name + ': ' + describeError(err);
        log('error', 'Join #' + name + ': ' + describeError(err));
        forgetRoom(view);
      }),
    );
  }

  function forgetRoom(view) {
    view.item.remove();
    view.list.remove();
    rooms.delete(view.name);
    if (active === view.name) {
      active = null;
      var next = rooms.keys().next();
      if (!next.done) return selectRoom(next.value);
      renderActive();
    }
    persistRooms();
  }

  function leaveRoom(name) {
    var view = rooms.get(name);
    if (!view) return;
    $('leave').disabled = true;
    view.room.leave().then(
      function () {
        $('leave').disabled = false;
        log('info', 'Left #' + name + '.');
        forgetRoom(view);
      },
      function (err) {
        $('leave').disabled = false;
        if (err.code === 'not-in-room') forgetRoom(view);
        else $('send-error').textContent = 'Could not leave #' + name + ': ' + describeError(err);
      },
    );
  }

  function selectRoom(name) {
    active = name;
    var view = rooms.get(name);
    if (view) {
      view.unread = 0;
      view.badge.hidden = true;
    }
    store.set(KEY.active, name);
    renderActive();
    if (view && view.joined) catchUp(view);
  }

  /** A joined room is shown: ask what it still lacks (its members, its earlier messages). */
  function catchUp(view) {
    if (view.stale) loadMembers(view);
    if (view.earlier > 0) loadEarlier(view, view.earlier);
    view.earlier = 0;
  }

  function renderActive() {
    var view = active ? rooms.get(active) : null;
    rooms.forEach(function (v, n) {
      var on = n === active;
      v.list.hidden = !on;
      v.item.classList.toggle('active', on);
      v.item.querySelector('.room-pick').setAttribute('aria-current', on ? 'true' : 'false');
    });
    $('room-title').textContent = view ? '#' + view.name : 'No room selected';
    $('leave').hidden = !view;
    $('message-input').disabled = !view;
    $('send').disabled = !view;
    $('message-input').placeholder = view ? 'Message #' + view.name : 'Join a room to chat';
    $('no-rooms').hidden = rooms.size > 0;
    renderMembers();
    if (view) scrollDown(view, true);
  }

  function renderMembers() {
    var list = $('member-list');
    list.textContent = '';
    var view = active ? rooms.get(active) : null;
    if (!view) {
      $('member-count').textContent = '';
      return;
    }
    var ids = Array.from(view.members).sort();
    $('member-count').textContent = String(view.count && view.count > ids.length ? view.count : ids.length);
    ids.forEach(function (id) {
      list.appendChild(h('li', { class: 'member' + (id === me ? ' me' : ''), 'data-testid': 'member', 'data-id': id }, h('span', { class: 'avatar', 'aria-hidden': 'true', text: id.charAt(0).toUpperCase() }), h('span', { text: id }), id === me ? h('span', { class: 'you', text: ' (you)' }) : null));
    });
  }

  function loadMembers(view) {
    view.stale = false;
    view.room.members().then(
      function (r) {
        if (rooms.get(view.name) !== view) return;
        view.members = new Set(r.ids);
        view.count = r.count;
        if (active === view.name) renderMembers();
      },
      function (err) {
        view.stale = true; // asked again when the room is shown next (a reconnect asks anyway)
        if (err.code !== 'connection-lost') log('error', 'Members of #' + view.name + ': ' + describeError(err));
      },
    );
  }

  // --------------------------------------------------------------- messages

  function scrollDown(view, force) {
    var box = $('timelines');
    if (force || box.scrollHeight - box.scrollTop - box.clientHeight < 120) box.scrollTop = box.scrollHeight;
  }

  function messageItem(m, own) {
    var li = h('li', { class: 'msg' + (own ? ' own' : ''), 'data-testid': 'message', 'data-from': m.from }, h('span', { class: 'from', text: own ? m.from + ' (you)' : m.from }), h('span', { class: 'text', 'data-testid': 'message-text', text: show(m.data) }));
    if (typeof m.offset === 'number') li.dataset.offset = String(m.offset);
    return li;
  }

  /** Appends a message item; one right after another of the same sender drops the name. */
  function append(view, li) {
    var last = view.list.lastElementChild;
    if (last && last.dataset.testid === 'message' && last.dataset.from === li.dataset.from) li.classList.add('cont');
    view.list.appendChild(li);
  }

  function addMessage(view, m) {
    append(view, messageItem(m, m.from === me));
    if (active === view.name) scrollDown(view);
    else {
      view.unread++;
      view.badge.textContent = String(view.unread);
      view.badge.hidden = false;
    }
  }

  function system(view, text, kind) {
    view.list.appendChild(h('li', { class: 'sys sys-' + (kind || 'info'), 'data-testid': 'system', 'data-kind': kind || 'info', text: text }));
    if (active === view.name) scrollDown(view);
  }

  /** After a first join: the messages the room kept from before, above the live ones. */
  function loadEarlier(view, upto) {
    view.room.history({ limit: 50, before: upto + 1 }).then(
      function (r) {
        if (rooms.get(view.name) !== view || !r.messages.length) return;
        var frag = document.createDocumentFragment();
        frag.appendChild(h('li', { class: 'sys sys-history', 'data-testid': 'system', 'data-kind': 'history', text: 'Earlier messages' }));
        var prev = null;
        r.messages.forEach(function (m) {
          var li = messageItem(m, m.from === me);
          if (prev === m.from) li.classList.add('cont');
          prev = m.from;
          frag.appendChild(li);
        });
        frag.appendChild(h('li', { class: 'sys sys-history', 'data-kind': 'history-end', text: 'New since you joined' }));
        view.list.insertBefore(frag, view.list.firstChild);
        if (active === view.name) scrollDown(view, true);
      },
      function () {
        /* no earlier messages then */
      },
    );
  }

  /** The server could not give back everything missed: show what it keeps. */
  function reloadHistory(view) {
    if (view.reloading) return;
    view.reloading = true;
    view.buffer = [];
    log('warn', '#' + view.name + ': some messages could not be recovered; reloading its history.');
    var done = function (msgs, note) {
      if (rooms.get(view.name) !== view) return;
      view.reloading = false;
      var keep = Array.prototype.filter.call(view.list.children, function (li) {
        return li.classList.contains('pending');
      });
      view.list.textContent = '';
      system(view, note, 'reloaded');
      var top = -1;
      msgs.forEach(function (m) {
        top = Math.max(top, m.offset);
        append(view, messageItem(m, m.from === me));
      });
      view.buffer.forEach(function (m) {
        if (typeof m.offset !== 'number' || m.offset > top) append(view, messageItem(m, m.from === me));
      });
      view.buffer = [];
      keep.forEach(function (li) {
        li.classList.remove('cont');
        append(view, li);
      });
      scrollDown(view, true);
    };
    view.room.history({ limit: 100 }).then(
      function (r) {
        done(r.messages, 'History reloaded: some messages could not be recovered after the reconnect. Showing the ' + r.messages.length + ' the server keeps.');
      },
      function (err) {
        done([], 'Some messages could not be recovered, and the history could not be read (' + describeError(err) + ').');
      },
    );
  }

  function sendMessage(text) {
    var view = active ? rooms.get(active) : null;
    if (!view || !sb) return;
    var li = messageItem({ from: me || sb.id || '', data: { text: text } }, true);
    li.classList.add('pending');
    var meta = h('span', { class: 'meta', 'data-testid': 'message-status', text: 'sending…' });
    li.appendChild(meta);
    li.dataset.status = 'sending';
    append(view, li);
    scrollDown(view, true);
    view.room.send({ text: text }).then(
      function () {
        li.classList.remove('pending');
        li.dataset.status = 'sent';
        meta.remove();
      },
      function (err) {
        li.classList.remove('pending');
        li.classList.add('failed');
        li.dataset.status = 'failed';
        meta.textContent = err.code === 'connection-lost' ? 'maybe not sent' : 'not sent';
        meta.title = describeError(err);
        $('send-error').textContent = describeError(err);
      },
    );
  }

  // ---------------------------------------------------------------- notices

  // Notices are not in any history (a stored one is handed over once), so
  // the tab keeps the last ones it showed: a reload shows them again.
  var noticeLog = [];
  try {
    noticeLog = JSON.parse(store.get(KEY.notices) || '[]');
    if (!Array.isArray(noticeLog)) noticeLog = [];
  } catch (e) {
    noticeLog = [];
  }

  function renderNotice(r) {
    var head = function (dir, who, tag) {
      return h('div', { class: 'notice-head' }, h('span', { class: 'dir', text: dir }), h('span', { class: 'from', text: who }), tag ? h('span', { class: 'tag', text: tag }) : null);
    };
    if (r.kind === 'in') {
      var when = new Date(r.stored_at || r.at);
      var meta = r.stored_at ? 'stored ' + (isNaN(when.getTime()) ? r.stored_at : when.toLocaleString()) + ' while you were offline' : 'received ' + clock(when);
      return h('li', { class: 'notice in' + (r.stored_at ? ' stored' : ''), 'data-testid': 'notice', 'data-from': r.from, 'data-stored-at': r.stored_at || null },
        head('from ', r.from, r.stored_at ? 'stored' : ''),
        h('div', { class: 'text', 'data-testid': 'notice-body', text: r.text }),
        h('time', { class: 'meta', 'data-testid': 'notice-time', dateTime: r.stored_at || r.at, text: meta }));
    }
    if (r.kind === 'out')
      return h('li', { class: 'notice out result-' + r.result, 'data-testid': 'notice-sent', 'data-to': r.to, 'data-result': r.result },
        head('to ', r.to, r.result),
        h('div', { class: 'text', text: r.text }),
        h('span', { class: 'meta', text: r.sentence }));
    if (r.kind === 'broadcast')
      return h('li', { class: 'notice broadcast', 'data-testid': 'broadcast', 'data-from': r.from }, head('broadcast from ', r.from), h('div', { class: 'text', text: r.text }));
    return h('li', { class: 'notice system', 'data-testid': 'notices-dropped', text: r.count + ' older stored notices were dropped (too many waited for you).' });
  }

  function showNotice(li) {
    var list = $('notice-list');
    list.insertBefore(li, list.firstChild);
    $('no-notices').hidden = true;
    while (list.children.length > 50) list.removeChild(list.lastChild);
  }

  function addNotice(r) {
    noticeLog.push(r);
    if (noticeLog.length > 50) noticeLog.splice(0, noticeLog.length - 50);
    store.set(KEY.notices, JSON.stringify(noticeLog));
    showNotice(renderNotice(r));
  }

  function onNotice(n) {
    addNotice({ kind: 'in', from: n.from, text: show(n.data), stored_at: n.stored_at, at: new Date().toISOString() });
  }

  var RESULT = {
    delivered: function (to) {
      return 'Delivered to ' + to + '.';
    },
    held: function (to) {
      return 'Held: ' + to + ' is reconnecting and gets it on return.';
    },
    stored: function (to) {
      return 'Stored: ' + to + ' is offline and gets it on their next connection.';
    },
    'target-closed': function (to) {
      return 'Not delivered: ' + to + ' is not online (tick “store if offline” to keep it for them).';
    },
  };

  function sendNotice(to, text, keep) {
    var out = $('notice-result');
    out.dataset.result = 'sending';
    out.className = 'notice-result';
    out.textContent = 'Sending to ' + to + '…';
    var entry = function (result, sentence) {
      addNotice({ kind: 'out', to: to, text: text, result: result, sentence: sentence });
    };
    sb.notice(to, { text: text }, { store: keep }).then(
      function (ack) {
        var result = ack.stored ? 'stored' : ack.held ? 'held' : 'delivered';
        var s = RESULT[result](to);
        out.dataset.result = result;
        out.className = 'notice-result ok';
        out.textContent = s;
        entry(result, s);
      },
      function (err) {
        var result = err.code === 'target-closed' ? 'target-closed' : 'error';
        var s = result === 'target-closed' ? RESULT[result](to) : 'Not sent: ' + describeError(err);
        out.dataset.result = result;
        out.className = 'notice-result bad';
        out.textContent = s;
        entry(result, s);
      },
    );
  }

  // ------------------------------------------------------------------- view

  function showChat(on) {
    $('chat').hidden = !on;
    $('login').hidden = on;
  }

  $('login-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var id = $('id-input').value.trim();
    var token = $('token-input').value.trim();
    var err = $('login-error');
    err.textContent = '';
    if (!id && !token) {
      err.textContent = 'Type an id (or paste a token).';
      return $('id-input').focus();
    }
    if (id && !ID_RE.test(id)) {
      err.textContent = 'An id is 1–64 characters of A–Z, a–z, 0–9, _ . or -.';
      return $('id-input').focus();
    }
    if (id) store.set(KEY.id, id);
    connect(id, token);
    $('room-input').focus();
  });

  $('join-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var name = $('room-input').value.trim();
    var problem = roomNameProblem(name);
    $('join-error').textContent = problem;
    if (problem || !sb) return;
    $('room-input').value = '';
    joinRoom(name, true);
    $('message-input').focus();
  });

  $('send-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var input = $('message-input');
    var text = input.value;
    $('send-error').textContent = '';
    if (!text.trim()) return;
    input.value = '';
    sendMessage(text);
    input.focus();
  });

  $('notice-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var to = $('notice-to').value.trim();
    var text = $('notice-text').value;
    var out = $('notice-result');
    if (!to || !text.trim() || !sb) {
      out.className = 'notice-result bad';
      out.dataset.result = 'invalid';
      out.textContent = !to ? 'Type the id to send to.' : 'Type a text to send.';
      return;
    }
    $('notice-text').value = '';
    sendNotice(to, text, $('notice-store').checked);
    $('notice-text').focus();
  });

  $('leave').addEventListener('click', function () {
    if (active) leaveRoom(active);
  });

  $('disconnect').addEventListener('click', function () {
    if (sb) sb.close();
    store.set(KEY.live, null);
  });

  $('reconnect').addEventListener('click', function () {
    if (!sb) return;
    store.set(KEY.live, '1');
    sb.connect().catch(function () {});
  });

  $('change-id').addEventListener('click', function () {
    drop();
    store.set(KEY.id, null);
    store.set(KEY.rooms, null);
    store.set(KEY.active, null);
    store.set(KEY.live, null);
    store.set(KEY.notices, null);
    noticeLog = [];
    $('notice-list').textContent = '';
    $('no-notices').hidden = false;
    $('whoami').textContent = '';
    setConn('idle', 'not connected');
    showChat(false);
    $('id-input').focus();
  });

  // Back online: try at once instead of waiting out the backoff.
  window.addEventListener('online', function () {
    if (sb && sb.state !== 'closed' && sb.state !== 'open') sb.connect().catch(function () {});
  });

  // A reload keeps this tab's id, its rooms and its notices, and connects again.
  noticeLog.forEach(function (r) {
    if (r && typeof r === 'object') showNotice(renderNotice(r));
  });
  var saved = store.get(KEY.id);
  if (saved) $('id-input').value = saved;
  if (saved && store.get(KEY.live) === '1' && ID_RE.test(saved)) connect(saved);
  else $('id-input').focus();
})();
