// The one place to configure the sample.
module.exports = {
  // The chat server: wss://, the ICP-filed domain listed under the console's
  // socket合法域名, no port (443). No path: the client adds /ws and ?token=.
  SERVER_URL: 'wss://chat.example.com',

  // Your login backend (listed under request合法域名): POST {"code": <wx.login
  // code>} answers {"token": <HS256 JWT>} (README.md, "The login backend").
  // The secret that signs tokens lives there, never in the mini-program.
  LOGIN_URL: 'https://api.example.com/switchboard/token',

  // The room the first page opens.
  DEFAULT_ROOM: 'lobby',

  // Extra options for the client (requestTimeoutMs, backoff, …); the
  // library's defaults suit a phone. If the server runs with other rate
  // limits than its defaults, say so here so the client paces itself under
  // them: limits: { messagesPerSec, messagesBurst, queriesPerSec, queriesBurst }.
  client: {},
};
