//! The domain rules against the shared table of cases (`domain_cases.json`), which
//! the UI's `ui/src/tests/domain.test.ts` runs against its own module too.

use pulse_protocol::domain::{
    count_from_stats, is_active_ticket, is_escalated, is_failed_agent, is_pending_approval,
    is_unread, page_of_kind_name, pr_link, stats_figures, Object,
};
use serde_json::Value;

fn table() -> Value {
    serde_json::from_str(include_str!("domain_cases.json")).expect("domain_cases.json")
}

fn cases<'a>(t: &'a Value, rule: &str) -> &'a [Value] {
    let list = t[rule]
        .as_array()
        .unwrap_or_else(|| panic!("no `{rule}` cases"));
    assert!(!list.is_empty(), "`{rule}` has no cases");
    list
}

fn check(rule: &str, pred: fn(&Object) -> bool) {
    let t = table();
    for case in cases(&t, rule) {
        let data = case["data"].as_object().expect("`data` is an object");
        let want = case["expect"].as_bool().expect("`expect` is a boolean");
        assert_eq!(pred(data), want, "{rule}: {case}");
    }
}

#[test]
fn pending_approval() {
    check("pending_approval", is_pending_approval);
}

#[test]
fn escalated() {
    check("escalated", is_escalated);
}

#[test]
fn failed_agent() {
    check("failed_agent", is_failed_agent);
}

#[test]
fn active_ticket() {
    check("active_ticket", is_active_ticket);
}

#[test]
fn unread() {
    check("unread", is_unread);
}

#[test]
fn page_of_kind() {
    let t = table();
    for case in cases(&t, "page_of_kind") {
        let kind = case["kind"].as_str().expect("`kind` is a string");
        let want = case["page"].as_str();
        assert_eq!(
            page_of_kind_name(kind).map(|p| p.as_str()),
            want,
            "page_of_kind: {case}"
        );
    }
}

/// `expect` lists `[label path, number]` sorted by label: the order of figures is not
/// part of the rule.
#[test]
fn stats_figures_are_labelled_numbers() {
    let t = table();
    for case in cases(&t, "stats_figures") {
        let data = case["data"].as_object().expect("`data` is an object");
        let mut got = stats_figures(data);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let got: Vec<Value> = got
            .into_iter()
            .map(|(label, n)| serde_json::json!([label, n]))
            .collect();
        let want: Vec<Value> = case["expect"]
            .as_array()
            .expect("`expect` is a list")
            .iter()
            .map(|e| serde_json::json!([e[0], e[1].as_f64().expect("a number")]))
            .collect();
        assert_eq!(got, want, "stats_figures: {case}");
    }
}

#[test]
fn pr_link_is_https_only() {
    let t = table();
    for case in cases(&t, "pr_link") {
        let data = case["data"].as_object().expect("`data` is an object");
        assert_eq!(pr_link(data), case["expect"].as_str(), "pr_link: {case}");
    }
}

#[test]
fn counts_from_stats_blocks() {
    let t = table();
    for case in cases(&t, "count_from_stats") {
        let count = case["count"].as_str().expect("`count` is a string");
        let blocks = case["blocks"].as_object().expect("`blocks` is an object");
        let got = count_from_stats(count, |id| blocks.get(id).and_then(Value::as_object));
        assert_eq!(got, case["expect"].as_u64(), "count_from_stats: {case}");
    }
}

#[test]
fn approval_waiting_since() {
    let t = table();
    for case in cases(&t, "approval_waiting_since") {
        let data = case["data"].as_object().expect("`data` is an object");
        let want = case["expect"].as_i64();
        assert!(
            want.is_some() || case["expect"].is_null(),
            "`expect` is ms or null: {case}"
        );
        assert_eq!(
            pulse_protocol::domain::approval_waiting_since(data),
            want,
            "{case}"
        );
    }
}
