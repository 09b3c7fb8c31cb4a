// When is the user away? For presence (an `online` user is said `away` while idle).
//
// Idle means nobody touched the desktop for `idleMs`. Input to this window always
// counts (`active()`). Where the shell can tell the desktop's own idle time, input to
// other applications counts too: before declaring idle, and then every `pollMs`
// while idle, the desktop is asked, and recent input anywhere ends (or defers) idle.
// Where it cannot tell (`null`), only this window's input counts.

/** What the watcher drives (AppState's `setIdle`). */
export interface IdleSink {
  setIdle(idle: boolean): void;
}

/** The idle watcher; `stop()` clears its timers. */
export class IdleWatch {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private poll: ReturnType<typeof setInterval> | undefined;
  private stopped = false;

  constructor(
    private sink: IdleSink,
    private systemIdleMs: () => Promise<number | null>,
    private idleMs: number,
    private pollMs = 15_000,
  ) {}

  /** Input to this window: not idle, and the countdown starts again. */
  active(): void {
    if (this.stopped) return;
    this.sink.setIdle(false);
    this.clear();
    this.timer = setTimeout(() => void this.quiet(), this.idleMs);
  }

  /** No input to this window for `idleMs`: idle, unless the desktop saw some. */
  private async quiet(): Promise<void> {
    const sys = await this.ask();
    if (this.stopped) return;
    if (sys !== null && sys < this.idleMs) {
      this.timer = setTimeout(() => void this.quiet(), this.idleMs - sys);
      return;
    }
    this.sink.setIdle(true);
    if (sys === null) return;
    this.poll = setInterval(async () => {
      const s = await this.ask();
      if (s !== null && s < this.idleMs) this.active();
    }, this.pollMs);
  }

  private async ask(): Promise<number | null> {
    try {
      return await this.systemIdleMs();
    } catch {
      return null;
    }
  }

  private clear(): void {
    clearTimeout(this.timer);
    clearInterval(this.poll);
    this.timer = undefined;
    this.poll = undefined;
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }
}
