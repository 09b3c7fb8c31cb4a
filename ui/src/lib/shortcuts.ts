// Every keyboard shortcut, in one place: App.svelte and the pages act on these keys and
// the help overlay (`?`) lists them. A shortcut never fires while typing in a field.
import { PAGES } from "./state/app.svelte";

export interface Shortcut {
  /** The keys, as shown (`j / ↓`). */
  keys: string[];
  /** What it does. */
  does: string;
  /** Where it works (`everywhere` or a page). */
  where: string;
}

export const HELP_KEY = "?";

export const SHORTCUTS: Shortcut[] = [
  ...PAGES.map((p) => ({ keys: [p.key], does: `Go to ${p.label}`, where: "everywhere" })),
  { keys: ["/"], does: "Search the list", where: "list pages" },
  { keys: ["Esc"], does: "Leave the field, clear the search, close a dialog", where: "everywhere" },
  { keys: [HELP_KEY], does: "Show or hide these shortcuts", where: "everywhere" },
  { keys: ["Tab", "Shift+Tab"], does: "Move between controls", where: "everywhere" },
  { keys: ["Enter"], does: "Open the focused item", where: "lists" },
  { keys: ["j", "↓"], does: "Next approval", where: "Approvals" },
  { keys: ["k", "↑"], does: "Previous approval", where: "Approvals" },
  { keys: ["a"], does: "Approve the selected approval", where: "Approvals" },
  { keys: ["r"], does: "Reject the selected approval (asks for a reason)", where: "Approvals" },
];
