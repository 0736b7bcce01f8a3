// The entry for WeChat mini-programs: the wx transport only.
import { transports } from './core.js';
import { wechat } from './transport-wx.js';

transports.wx = wechat;

export { Switchboard, Room, SwitchboardError } from './core.js';
export type * from './core.js';
