// The app owns the one connection (a client of clients/js, wx build) and
// what it brings: per-room message lists, members, notices, the connection
// state. Pages only subscribe and render. Two clients with one id would
// knock each other off with 4001, so no page ever opens a socket of its own:
// wx.navigateTo to a second page shares this one.
const { Switchboard } = require('./lib/switchboard.js');
const config = require('./config.js');
const { fetchToken } = require('./utils/auth.js');

const MAX_SHOWN = 200; // messages kept per room for display
const MAX_NOTICES = 50;

function text(data) {
  if (data && typeof data.text === 'string') return data.text;
  return typeof data === 'string' ? data : JSON.stringify(data);
}

App({
  globalData: {
    state: 'closed', // the client's: connecting, open, resuming, closed
    closedFor: '', // when closed: replaced, unauthorized, closed, …
    lastCode: 0, // close code of the last connection that ended
    id: '', // from the welcome (the token's sub)
    notices: [], // received notices, newest last
    noticesDropped: 0,
  },

  onLaunch() {
    this.topics = [];
    this.rooms = {};
    // The token function runs before every connect and reconnect.
    const token = () => {
      this.fetching = true;
      const done = () => {
        this.fetching = false;
      };
      const p = fetchToken();
      p.then(done, done);
      return p;
    };
    const sb = new Switchboard(Object.assign({}, config.client, { url: config.SERVER_URL, token }));
    this.sb = sb;
    const g = this.globalData;
    sb.on('state', (s) => {
      g.state = s.state;
      if (s.code) g.lastCode = s.code;
      g.closedFor = s.state === 'closed' && s.error ? s.error.code : '';
      this.publish('state');
    });
    sb.on('welcome', (w) => {
      g.id = w.id;
      this.publish('state');
    });
    // Stored notices arrive right after the welcome, maybe before any page
    // listens: the app keeps them.
    sb.on('notice', (n) => {
      g.notices = g.notices.concat([{ key: 'n' + Date.now() + '-' + g.notices.length, from: n.from, text: text(n.data), stored: !!n.stored_at, at: n.stored_at || '' }]).slice(-MAX_NOTICES);
      this.publish('notices');
    });
    sb.on('notices-dropped', (d) => {
      g.noticesDropped += d.count;
      this.publish('notices');
    });
    sb.on('error', (e) => console.warn('switchboard:', e.code, e.message));
    // No connect here: WeChat calls onShow right after onLaunch.
  },

  // At launch, and back from the background: if the client is waiting to
  // reconnect, it tries now. Not after a 4001 (another device has this id
  // now: reconnecting would knock it off in turn); the page offers a button.
  onShow() {
    this.connect();
  },

  connect() {
    if (!this.sb || this.globalData.closedFor === 'replaced') return;
    // An attempt is fetching its token: let it finish (connect() would
    // start the attempt again, with another wx.login).
    if (this.fetching) return;
    this.sb.connect().catch(() => {}); // the state event says why
  },

  /** The user asked for it (after 4001, or a refused token). */
  reconnect() {
    this.globalData.closedFor = '';
    this.connect();
  },

  /** Pages subscribe: fn(topic, room?) on every change; returns the unsubscribe. */
  subscribe(fn) {
    this.topics.push(fn);
    return () => {
      this.topics = this.topics.filter((f) => f !== fn);
    };
  },

  publish(topic, room) {
    this.topics.slice().forEach((fn) => fn(topic, room));
  },

  /** A room's record (created once): its handle, messages, members. */
  room(name) {
    let r = this.rooms[name];
    if (r) return r;
    const handle = this.sb.room(name);
    r = this.rooms[name] = { name, handle, messages: [], members: [], memberCount: 0, status: '' };
    const changed = () => this.publish('room', name);
    handle.on('message', (m) => {
      // The client delivers each room message once, in offset order, across drops.
      this.push(r, { key: 'm' + m.offset, from: m.from, text: text(m.data), offset: m.offset, mine: false });
      changed();
    });
    handle.on('joined', (e) => {
      if (r.members.indexOf(e.id) < 0) {
        r.members = r.members.concat([e.id]).sort();
        r.memberCount = Math.max(r.memberCount + 1, r.members.length);
      }
      changed();
    });
    handle.on('left', (e) => {
      if (e.id === this.globalData.id) {
        r.members = [];
        r.memberCount = 0;
      } else if (r.members.indexOf(e.id) >= 0) {
        r.members = r.members.filter((x) => x !== e.id);
        r.memberCount = Math.max(0, r.memberCount - 1);
      }
      changed();
    });
    // After a drop the server could not give back everything missed: show
    // the room from its history instead.
    handle.on('recovery-failed', () => {
      r.status = 'some messages were missed: reloaded';
      this.reload(name).catch(() => {});
    });
    return r;
  },

  push(r, msg) {
    r.messages = r.messages.concat([msg]).slice(-MAX_SHOWN);
  },

  join(name) {
    const r = this.room(name);
    return r.handle.join().then((ack) => {
      this.publish('room', name);
      return this.members(name).then(() => ack);
    });
  },

  leave(name) {
    const r = this.room(name);
    return r.handle.leave().then(() => {
      r.members = [];
      r.memberCount = 0;
      this.publish('room', name);
    });
  },

  /** Sends to the room; shown as yours once the server acked it (it never comes back to you). */
  say(name, data) {
    const r = this.room(name);
    return r.handle.send(data).then(() => {
      this.push(r, { key: 'own' + Date.now() + '-' + r.messages.length, from: this.globalData.id, text: text(data), offset: 0, mine: true });
      this.publish('room', name);
    });
  },

  members(name) {
    const r = this.room(name);
    return r.handle.members().then((m) => {
      r.members = m.ids.slice().sort();
      r.memberCount = m.count;
      this.publish('room', name);
      return m;
    });
  },

  /** The room as the server keeps it (the last 50), then what came live after. */
  reload(name) {
    const r = this.room(name);
    return r.handle.history({ limit: 50 }).then((h) => {
      const kept = h.messages.map((m) => ({ key: 'm' + m.offset, from: m.from, text: text(m.data), offset: m.offset, mine: m.from === this.globalData.id }));
      const top = kept.length ? kept[kept.length - 1].offset : 0;
      r.messages = kept.concat(r.messages.filter((m) => m.offset > top)).slice(-MAX_SHOWN);
      this.publish('room', name);
    });
  },

  /** A private message; with store, kept for an offline target. Resolves with the ack ({}, {held}, {stored}). */
  notice(to, data, store) {
    return this.sb.notice(to, data, { store: !!store });
  },
});
