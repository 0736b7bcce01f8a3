// What both node.js peers share: where they listen (PORT, HOST or argv), ws://
// or wss:// (TLS_CERT/TLS_KEY), the id rule, and a clean exit on a signal.
// Node built-ins only, so each peer's own package.json stays as it is.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');

const PORT = Number(process.env.PORT || process.argv[2] || 3001);
const HOST = process.env.HOST || '127.0.0.1';
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function createServer() {
  return process.env.TLS_CERT
    ? https.createServer({ cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) })
    : http.createServer();
}

function listen(server, name) {
  server.listen(PORT, HOST, () => {
    console.log(`${name} listening on ${process.env.TLS_CERT ? 'wss' : 'ws'}://${HOST}:${PORT}`);
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

module.exports = { ID_RE, createServer, listen };
