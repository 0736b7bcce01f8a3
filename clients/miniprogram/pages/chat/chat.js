// One room's page. It opens no socket: it renders what App keeps and calls
// App to act. Several of these pages may be open at once (wx.navigateTo
// with ?room=…); they all share App's connection.
const config = require('../../config.js');

const STATES = {
  connecting: 'Connecting…',
  open: 'Connected',
  resuming: 'Reconnecting…',
  closed: 'Offline',
};
const CLOSED = {
  replaced: 'Signed in somewhere else (4001)',
  unauthorized: 'Login refused (401)',
  refused: 'Refused by the server',
  token: 'Login failed',
};

Page({
  data: {
    room: '',
    me: '',
    state: 'closed',
    stateText: '',
    canReconnect: false,
    joined: false,
    messages: [],
    lastKey: '',
    members: [],
    memberCount: 0,
    notices: [],
    noticesDropped: 0,
    status: '', // the outcome of the last action on this page
    roomStatus: '', // e.g. the room was reloaded from its history
    draft: '',
    noticeTo: '',
    noticeText: '',
    otherRoom: '',
  },

  onLoad(query) {
    this.app = getApp();
    const room = (query && query.room && decodeURIComponent(query.room)) || config.DEFAULT_ROOM;
    this.roomName = room;
    this.unsubscribe = this.app.subscribe((topic, name) => {
      if (topic !== 'room' || name === room) this.render();
    });
    this.setData({ room });
    this.render();
    // Joining now is safe even while connecting: the client queues it and
    // sends it right after the welcome, never before the socket is open.
    return this.onJoin();
  },

  onUnload() {
    if (this.unsubscribe) this.unsubscribe();
  },

  render() {
    const g = this.app.globalData;
    const r = this.app.room(this.roomName);
    const last = r.messages[r.messages.length - 1];
    let stateText = STATES[g.state] || g.state;
    if (g.state === 'closed' && CLOSED[g.closedFor]) stateText = CLOSED[g.closedFor];
    this.setData({
      me: g.id,
      state: g.state,
      stateText,
      canReconnect: g.state === 'closed',
      joined: r.handle.joined,
      messages: r.messages,
      lastKey: last ? last.key : '',
      members: r.members,
      memberCount: r.memberCount,
      notices: g.notices,
      noticesDropped: g.noticesDropped,
      roomStatus: r.status,
    });
  },

  show(p, done) {
    return p.then(
      (v) => {
        if (done) this.setData({ status: done });
        return v;
      },
      (e) => {
        this.setData({ status: (e && (e.message || e.code)) || 'failed' });
        if (typeof wx.showToast === 'function') wx.showToast({ title: (e && e.code) || 'failed', icon: 'none' });
      },
    );
  },

  onJoin() {
    return this.show(this.app.join(this.roomName));
  },

  onLeave() {
    return this.show(this.app.leave(this.roomName), 'left ' + this.roomName);
  },

  onMembers() {
    return this.show(this.app.members(this.roomName));
  },

  onDraft(e) {
    this.setData({ draft: e.detail.value });
  },

  onSend() {
    const text = this.data.draft.trim();
    if (!text) return Promise.resolve();
    this.setData({ draft: '' });
    return this.show(this.app.say(this.roomName, { text }));
  },

  onNoticeTo(e) {
    this.setData({ noticeTo: e.detail.value });
  },

  onNoticeText(e) {
    this.setData({ noticeText: e.detail.value });
  },

  // With store: an offline target gets it at its next connection.
  onSendNotice() {
    const to = this.data.noticeTo.trim();
    const text = this.data.noticeText.trim();
    if (!to || !text) return Promise.resolve();
    return this.show(
      this.app.notice(to, { text }, true).then((ack) => {
        this.setData({ noticeText: '', status: ack.stored ? 'stored for ' + to : ack.held ? 'held for ' + to : 'delivered to ' + to });
        return ack;
      }),
    );
  },

  onOtherRoom(e) {
    this.setData({ otherRoom: e.detail.value });
  },

  // A second page, same connection.
  onOpenRoom() {
    const room = this.data.otherRoom.trim();
    if (room) wx.navigateTo({ url: '/pages/chat/chat?room=' + encodeURIComponent(room) });
  },

  onReconnect() {
    this.app.reconnect();
  },
});
