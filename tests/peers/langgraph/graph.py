"""Graphs for Pulse's LangGraph tests. None calls a model.

Each graph records what it did in `steps` (so a thread's state and history show
the agent's recent steps) and, once resumed, the resume value it got in `answer`
exactly as LangGraph handed it over: the tests read it back from the thread's
state to see what Pulse sent.

- `approval`: the human-interrupt convention of Agent Inbox
  (`langgraph.prebuilt.interrupt.HumanInterrupt`). With input `shape: "list"`
  (the default, as the convention's own example does) it calls
  `interrupt([request])[0]`; with `shape: "dict"` it calls `interrupt(request)`.
  Input `allow` (an object) overrides the request's `config`.
- `plain`: `interrupt("Deploy build 42 to production?")`, a plain value.
"""

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    shape: str
    allow: dict
    steps: list
    answer: Any
    done: bool


def plan(state: State) -> State:
    return {"steps": (state.get("steps") or []) + ["planned: write the release notes", "drafted: notes.md (3 sections)"]}


def ask(state: State) -> State:
    config = {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True}
    config.update(state.get("allow") or {})
    request = {
        "action_request": {"action": "send_email", "args": {"to": "team@example.com", "subject": "Release notes"}},
        "config": config,
        "description": "Send the release notes to the team?",
    }
    if state.get("shape", "list") == "dict":
        answer = interrupt(request)
    else:
        answer = interrupt([request])[0]
    return {"answer": answer, "steps": state["steps"] + ["asked: send_email"]}


def ask_plain(state: State) -> State:
    answer = interrupt("Deploy build 42 to production?")
    return {"answer": answer, "steps": state["steps"] + ["asked: deploy"]}


def finish(state: State) -> State:
    return {"done": True, "steps": state["steps"] + ["finished"]}


def build(asker):
    g = StateGraph(State)
    g.add_node("plan", plan)
    g.add_node("ask", asker)
    g.add_node("finish", finish)
    g.add_edge(START, "plan")
    g.add_edge("plan", "ask")
    g.add_edge("ask", "finish")
    g.add_edge("finish", END)
    return g.compile()


approval = build(ask)
plain = build(ask_plain)
