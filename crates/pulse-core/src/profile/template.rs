//! Templates: `{name}` is replaced by the variable `name` (letters, digits, `_`,
//! and `.` after the first letter: `{claims.sub}`); any other brace (JSON's
//! `{"type": …}`) is left alone. Pure.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::{to_json, VarValue};

/// Variables a template may use.
pub type Vars = BTreeMap<String, VarValue>;

/// How a substituted value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As is.
    Raw,
    /// Escaped for the inside of a JSON string (templates of JSON messages).
    JsonString,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// The variable names `template` uses, in order.
pub fn names(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if name.starts_with(is_ident_start) && name.chars().all(is_ident) {
                out.push(name.to_owned());
                rest = &after[end + 1..];
                continue;
            }
        }
        rest = after;
    }
    out
}

/// The first variable the `templates` use that `vars` does not have.
pub fn first_missing<'a>(
    templates: impl IntoIterator<Item = &'a str>,
    vars: &Vars,
) -> Option<String> {
    templates
        .into_iter()
        .flat_map(names)
        .find(|n| !vars.contains_key(n))
}

/// Every string inside a TOML value (the templates of a `data` table).
pub fn strings(value: &toml::Value) -> Vec<&str> {
    match value {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(a) => a.iter().flat_map(strings).collect(),
        toml::Value::Table(t) => t.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Render `template`. A missing variable, or a list where one value is needed, is
/// an error naming it.
pub fn render(template: &str, vars: &Vars, escape: Escape) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(end) = after.find('}') {
            let name = &after[..end];
            if name.starts_with(is_ident_start) && name.chars().all(is_ident) {
                let value = match vars.get(name) {
                    Some(VarValue::One(v)) => v,
                    Some(VarValue::Many(_)) => {
                        return Err(format!(
                            "variable `{name}` is a list; use it with `for_each` and `{{item}}`"
                        ))
                    }
                    None => return Err(format!("no value for `{{{name}}}`")),
                };
                match escape {
                    Escape::Raw => out.push_str(value),
                    Escape::JsonString => {
                        let q = Value::String(value.clone()).to_string();
                        out.push_str(&q[1..q.len() - 1]);
                    }
                }
                rest = &after[end + 1..];
                continue;
            }
        }
        out.push('{');
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Render every string inside a TOML value, giving JSON.
pub fn render_value(value: &toml::Value, vars: &Vars) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(render(s, vars, Escape::Raw)?),
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| render_value(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => to_json(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::from([
            ("tenant".to_owned(), VarValue::One("acme \"co\"".into())),
            ("tasks".to_owned(), VarValue::Many(vec!["t1".into()])),
        ])
    }

    #[test]
    fn json_braces_stay_and_names_are_replaced() {
        let t = r#"{"type":"subscribe","room":"tenant:{tenant}"}"#;
        assert_eq!(names(t), vec!["tenant"]);
        let s = render(t, &vars(), Escape::JsonString).unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["room"], "tenant:acme \"co\"");
        assert_eq!(
            render("{}{ x }{", &vars(), Escape::Raw).unwrap(),
            "{}{ x }{"
        );
    }

    #[test]
    fn missing_and_list_variables_are_errors() {
        assert!(render("{nope}", &vars(), Escape::Raw)
            .unwrap_err()
            .contains("{nope}"));
        assert!(render("{tasks}", &vars(), Escape::Raw)
            .unwrap_err()
            .contains("for_each"));
    }

    #[test]
    fn dotted_names_are_variables() {
        let mut v = vars();
        v.insert("claims.sub".into(), VarValue::One("ann".into()));
        assert_eq!(names("user:{claims.sub}"), vec!["claims.sub"]);
        assert_eq!(
            render("user:{claims.sub}", &v, Escape::Raw).unwrap(),
            "user:ann"
        );
        assert!(render("{claims.sid}", &v, Escape::Raw)
            .unwrap_err()
            .contains("{claims.sid}"));
    }

    #[test]
    fn missing_variables_are_found_in_strings_and_tables() {
        let v = vars();
        assert_eq!(first_missing(["a {tenant}", "{tenant}"], &v), None);
        assert_eq!(
            first_missing(["{tenant}", "x {claims.sid} {project}"], &v),
            Some("claims.sid".into())
        );
        let data: toml::Value =
            toml::from_str("room = \"p:{project}\"\nn = [\"{tenant}\"]").unwrap();
        assert_eq!(strings(&data).len(), 2);
        assert_eq!(first_missing(strings(&data), &v), Some("project".into()));
    }

    #[test]
    fn values_render_recursively() {
        let v: toml::Value = toml::from_str("a = { room = \"tenant:{tenant}\", n = 1 }").unwrap();
        let j = render_value(&v, &vars()).unwrap();
        assert_eq!(j["a"]["room"], "tenant:acme \"co\"");
        assert_eq!(j["a"]["n"], 1);
    }
}
