// The entry for browsers (and bundlers targeting them): no Node code.
import { transports } from './core.js';
import { browser } from './transport-browser.js';

transports.browser = browser;

export { Switchboard, Room, SwitchboardError } from './core.js';
export type * from './core.js';
