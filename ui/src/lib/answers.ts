// Answers to an approval beyond approve / reject: which ones it allows, and the
// edited arguments checked before anything is sent.
//
// Rules:
// - an approval with an `allowed` list (a LangGraph interrupt) allows exactly the
//   names in it; one without allows approve and reject, as every approval does;
// - edited arguments are a JSON object: anything else (not JSON, an array, a
//   string, null) is an error naming what is wrong, and nothing is sent.
//
// The gateway checks the same again (`langgraph::resume_value`): a refusal there is
// a conflict the UI reports, never a silent drop.

export type Answer = "approve" | "reject" | "edit" | "respond";

/** Whether an approval with these fields takes `answer`. */
export function allows(data: Record<string, unknown>, answer: Answer): boolean {
  const list = data.allowed;
  if (Array.isArray(list)) return list.includes(answer);
  return answer === "approve" || answer === "reject";
}

/** The edited arguments in `text`, or why they cannot be sent. */
export function parseEditedArgs(text: string): { args: Record<string, unknown> } | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Not JSON: ${(e as Error).message}` };
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    return { error: "The arguments must be a JSON object ({ … })" };
  }
  return { args: v as Record<string, unknown> };
}
