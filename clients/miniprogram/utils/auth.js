// Login: wx.login gives a one-time code; the backend turns it into a signed
// token for the chat server. Called by the client before every (re)connect,
// so every connection gets a fresh token (and a fresh code: a code is
// single-use).
const config = require('../config.js');

function login() {
  return new Promise((resolve, reject) => {
    wx.login({
      success: (res) => (res && res.code ? resolve(res.code) : reject(new Error('wx.login gave no code'))),
      fail: (e) => reject(new Error((e && e.errMsg) || 'wx.login failed')),
    });
  });
}

function post(url, data) {
  return new Promise((resolve, reject) => {
    wx.request({
      url,
      method: 'POST',
      data,
      header: { 'content-type': 'application/json' },
      timeout: 10000,
      success: resolve,
      fail: (e) => reject(new Error((e && e.errMsg) || 'request failed')),
    });
  });
}

/** Resolves with a token for the chat server; rejects if there is none (the client then backs off and tries again). */
function fetchToken() {
  return login()
    .then((code) => post(config.LOGIN_URL, { code }))
    .then((res) => {
      let body = res.data;
      if (typeof body === 'string') {
        try {
          body = JSON.parse(body);
        } catch (e) {
          body = null;
        }
      }
      if (res.statusCode !== 200 || !body || typeof body.token !== 'string') {
        throw new Error('the login backend answered ' + res.statusCode);
      }
      return body.token;
    });
}

module.exports = { fetchToken };
