// The <script> bundle: sets the global `Switchboard` (the class), with
// `Switchboard.SwitchboardError` and `Switchboard.Room` on it.
import { G } from './core.js';
import { Switchboard, SwitchboardError, Room } from './browser.js';

G.Switchboard = Object.assign(Switchboard, { Switchboard, SwitchboardError, Room });
