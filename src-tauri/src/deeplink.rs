//! `pulse://` links: `pulse://approvals/ID`, `pulse://tickets/ID`,
//! `pulse://agents/ID`, `pulse://conversations/ID`, `pulse://notifications`,
//! `pulse://settings`, `pulse://board`, `pulse://overview`.

use pulse_protocol::domain::EntityKind;

use crate::dto::Target;
use pulse_protocol::domain::{page_of, Page};

/// What a `pulse://` link opens, or `None` when it is not one Pulse knows.
pub fn parse(link: &str) -> Option<Target> {
    let rest = link.trim().strip_prefix("pulse://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let mut parts = rest.split('/').filter(|p| !p.is_empty());
    let head = parts.next()?.to_ascii_lowercase();
    let id = parts.next().map(decode);
    let kind = match head.as_str() {
        "approvals" | "approval" => Some(EntityKind::Approval),
        "tickets" | "ticket" | "tasks" | "task" => Some(EntityKind::Ticket),
        "agents" | "agent" => Some(EntityKind::Agent),
        "conversations" | "conversation" | "escalations" => Some(EntityKind::Conversation),
        "notifications" | "notification" => Some(EntityKind::Notification),
        _ => None,
    };
    let page = match (kind, head.as_str()) {
        (Some(k), _) => page_of(k),
        (None, "overview" | "home" | "") => Page::Overview,
        (None, "board" | "kanban") => Page::Board,
        (None, "settings") => Page::Settings,
        _ => return None,
    };
    Some(Target {
        kind: if id.is_some() { kind } else { None },
        id,
        page,
    })
}

/// Percent-decoding of an id segment (`%2F` → `/`); invalid escapes are kept.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first `pulse://` link among command-line arguments.
pub fn from_args<I: IntoIterator<Item = S>, S: AsRef<str>>(args: I) -> Option<Target> {
    args.into_iter().find_map(|a| parse(a.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_open_items_and_pages() {
        let t = parse("pulse://approvals/ap-17").unwrap();
        assert_eq!(
            (t.page, t.kind, t.id.as_deref()),
            (Page::Approvals, Some(EntityKind::Approval), Some("ap-17"))
        );
        let t = parse("pulse://tickets/42/").unwrap();
        assert_eq!((t.page, t.id.as_deref()), (Page::Board, Some("42")));
        let t = parse("pulse://conversations/c%2F1?x=1").unwrap();
        assert_eq!(
            (t.page, t.id.as_deref()),
            (Page::Conversations, Some("c/1"))
        );
        let t = parse("pulse://agents/a1").unwrap();
        assert_eq!(t.page, Page::Agents);
        let t = parse("pulse://notifications").unwrap();
        assert_eq!((t.page, t.kind, t.id), (Page::Notifications, None, None));
        assert_eq!(parse("pulse://settings").unwrap().page, Page::Settings);
        assert_eq!(parse("pulse://board").unwrap().page, Page::Board);
        assert!(parse("pulse://nope/1").is_none());
        assert!(parse("https://approvals/1").is_none());
        assert!(parse("pulse://approvals/%zz").unwrap().id.as_deref() == Some("%zz"));
    }

    #[test]
    fn finds_the_link_among_arguments() {
        let t = from_args(["pulse", "--hidden", "pulse://approvals/9"]).unwrap();
        assert_eq!(t.id.as_deref(), Some("9"));
        assert!(from_args(["pulse"]).is_none());
    }
}
