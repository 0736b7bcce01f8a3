/** A minimal typed event emitter (no dependency on Node's `events`). */
export class Emitter<E> {
  private _l: { [K in keyof E]?: Array<(e: E[K]) => void> } = {};

  /** Calls `fn` for every `event` from now on. */
  on<K extends keyof E>(event: K, fn: (e: E[K]) => void): this {
    (this._l[event] || (this._l[event] = [])).push(fn);
    return this;
  }

  /** Removes `fn` (added with `on`) from `event`. */
  off<K extends keyof E>(event: K, fn: (e: E[K]) => void): this {
    const a = this._l[event];
    const i = a ? a.indexOf(fn) : -1;
    if (i >= 0) a!.splice(i, 1);
    return this;
  }

  /** @internal */
  emit<K extends keyof E>(event: K, e: E[K]): void {
    const a = this._l[event];
    if (!a) return;
    for (const fn of a.slice()) {
      try {
        fn.call(this, e);
      } catch (err) {
        // A throwing listener must not break the protocol handling: report it
        // the way an uncaught exception would be, outside our call stack.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }
}
