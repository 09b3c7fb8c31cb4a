// Small formatting helpers.

/** HH:MM in local time. */
export function clock(ms: number): string {
  // No time known (a server that sends none): say nothing rather than "00:00".
  if (!ms) return "";
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

/** "just now", "12 s ago", "4 min ago", "3 h ago", "2 d ago". */
export function ago(ms: number, now: number = Date.now()): string {
  if (!ms) return "never";
  const s = Math.round((now - ms) / 1000);
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "in_progress" → "In progress". */
export function human(s: string): string {
  const t = s.replace(/[_-]+/g, " ").trim();
  return t.charAt(0).toUpperCase() + t.slice(1);
}

/** A timestamp field (ms number, seconds number or ISO string) as ms. */
export function toMs(v: unknown): number {
  if (typeof v === "number") return v < 1e12 ? v * 1000 : v;
  if (typeof v === "string") {
    const n = Number(v);
    if (!Number.isNaN(n)) return n < 1e12 ? n * 1000 : n;
    const d = Date.parse(v);
    return Number.isNaN(d) ? 0 : d;
  }
  return 0;
}

/** Whether `hay` (any fields) contains the search text. */
export function matches(data: Record<string, unknown>, q: string): boolean {
  if (!q) return true;
  const needle = q.toLowerCase();
  for (const v of Object.values(data)) {
    if ((typeof v === "string" || typeof v === "number") && String(v).toLowerCase().includes(needle)) return true;
  }
  return false;
}

/** A ticking clock for "ago" labels: a Svelte-readable value updated every second. */
export class Ticker {
  now = $state(Date.now());
  private id: ReturnType<typeof setInterval> | null = null;
  start(): void {
    if (!this.id) this.id = setInterval(() => (this.now = Date.now()), 1000);
  }
  stop(): void {
    if (this.id) clearInterval(this.id);
    this.id = null;
  }
}
