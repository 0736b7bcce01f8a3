// The package entry for Node and bundlers: all three transports.
import { transports } from './core.js';
import { browser } from './transport-browser.js';
import { node } from './transport-node.js';
import { wechat } from './transport-wx.js';

transports.browser = browser;
transports.node = node;
transports.wx = wechat;

export { Switchboard, Room, SwitchboardError } from './core.js';
export type * from './core.js';
