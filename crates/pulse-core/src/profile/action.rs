//! A profile's user actions (`[actions.NAME]`): render the REST request from its
//! templates, send it, and read the answer as the profile says success, conflict
//! and refusal read.
//!
//! Contract:
//! - only actions the profile declares are sent ([`ProfileDialect::actions`]);
//! - a status in `auth.unauthorized_status` is `RestError::Unauthorized` (the
//!   caller refreshes the token once, then reports it); one in `conflict` is
//!   `RestError::Conflict` with the entity at `current`; 429 is `RateLimited`
//!   (honouring `Retry-After`); 5xx is transient; any other status, or a success
//!   status whose body fails `success_when`, is a refusal with the server's words;
//! - a success answer gives the entity at `entity`, or else the declared
//!   `optimistic` change (`Performed::Patched`);
//! - the token goes only in the `Authorization` header; error texts never carry the
//!   URL ([`without_url`]).

use serde_json::Value;

use super::runner::{claim, ProfileDialect};
use super::schema::{to_json, ActionSpec, VarValue};
use super::template::{render, Escape, Vars};
use crate::actions::{ActionSet, Performed};
use crate::auth::Secret;
use crate::rest::{parse_retry_after, without_url, RestClient, RestError};
use crate::store::Action;
use pulse_protocol::domain::{Entity, Object};

/// Render every string of a TOML value; a string that is exactly one variable the
/// action does not give (`"{reason}"` without a reason) is `null`.
fn render_json(value: &toml::Value, vars: &Vars) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => {
            let whole = s
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .filter(|n| super::names(s) == [*n]);
            match whole {
                Some(n) if !vars.contains_key(n) => Value::Null,
                _ => Value::String(render(s, vars, Escape::Raw)?),
            }
        }
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| render_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => to_json(other),
    })
}

/// The server's explanation in an error answer: at `pointer`, else the first
/// string at the usual places, else the body's start, else the status.
fn explanation(pointer: Option<&str>, body: Option<&Value>, text: &str, status: u16) -> String {
    let at = |p: &str| match body.and_then(|b| b.pointer(p)) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let found = match pointer {
        Some(p) => at(p),
        None => ["/error/message", "/message", "/error", "/detail"]
            .into_iter()
            .find_map(at),
    };
    found.unwrap_or_else(|| {
        let excerpt: String = text.trim().chars().take(200).collect();
        if excerpt.is_empty() {
            format!("HTTP {status}")
        } else {
            excerpt
        }
    })
}

impl ProfileDialect {
    /// The actions the profile declares.
    pub(super) fn declared(&self) -> ActionSet {
        self.profile.actions()
    }

    fn spec_of(&self, action: &Action) -> Option<&ActionSpec> {
        self.profile
            .spec
            .actions
            .get(action.kind().name())
            .map(|s| s.get_ref())
    }

    /// The variables of `action`'s templates: the profile's vars, `{profile}`,
    /// `{tenant}` (vars, else the token's claims) and the action's own.
    fn action_vars(&self, action: &Action, token: Option<&Secret>) -> Vars {
        let spec = &self.profile.spec;
        let mut vars = self.vars.clone();
        vars.insert("profile".into(), VarValue::One(spec.name.clone()));
        if !vars.contains_key("tenant") {
            if let Some(t) = token.and_then(|t| claim(t, &spec.auth.tenant_claims)) {
                vars.insert("tenant".into(), VarValue::One(t));
            }
        }
        for (k, v) in action.variables() {
            vars.insert(k.to_owned(), VarValue::One(v));
        }
        vars
    }

    /// The declared optimistic change of `action` (empty when none is declared).
    pub(super) fn declared_optimistic(&self, action: &Action) -> Object {
        let Some(spec) = self.spec_of(action) else {
            return Object::new();
        };
        let vars = self.action_vars(action, None);
        spec.optimistic
            .iter()
            .filter_map(|(k, v)| render_json(v, &vars).ok().map(|v| (k.clone(), v)))
            .collect()
    }

    /// Send `action` once as its `[actions.NAME]` says.
    pub(super) async fn perform_action(
        &self,
        rest: &RestClient,
        token: Secret,
        action: &Action,
    ) -> Result<Performed, RestError> {
        let Some(spec) = self.spec_of(action) else {
            return Err(RestError::Http {
                status: 0,
                message: crate::actions::unsupported(action),
            });
        };
        let bad = |e: String| RestError::Decode(format!("[actions.{}]: {e}", action.kind()));
        let vars = self.action_vars(action, Some(&token));
        let encoded: Vars = vars
            .iter()
            .map(|(k, v)| match v {
                VarValue::One(s) => Ok((k.clone(), VarValue::One(crate::rest::path_segment(s)?))),
                many => Ok((k.clone(), many.clone())),
            })
            .collect::<Result<_, RestError>>()?;
        let path = render(&spec.path, &encoded, Escape::Raw).map_err(bad)?;
        let url = crate::rest::same_host_url(rest.base(), &path)?;
        let method = reqwest::Method::from_bytes(spec.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        let mut req = self.http.request(method, url);
        if !token.expose().is_empty() {
            req = req.bearer_auth(token.expose());
        }
        if let Some(b) = &spec.body {
            req = req.json(&render_json(b, &vars).map_err(bad)?);
        }
        // A user's action is never held back by the budget, but it counts against
        // the server's limit (seed 000 limits every /api request), so the REST
        // rounds that follow leave room for it.
        self.budget
            .lock()
            .expect("budget lock")
            .sent(tokio::time::Instant::now());
        let resp = req
            .send()
            .await
            .map_err(|e| RestError::Unreachable(without_url(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = crate::rest::read_limited(resp, crate::rest::MAX_BODY)
            .await
            .map_err(RestError::Unreachable)?;
        // Redacted first: the excerpt an error shows is cut from this.
        let text = crate::transport::jsonws::redact(&String::from_utf8_lossy(&bytes), Some(&token));
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let message = || {
            let m = explanation(spec.message.as_deref(), body.as_ref(), &text, status);
            crate::transport::jsonws::redact(&m, Some(&token))
        };
        let success = if spec.success.is_empty() {
            (200..300).contains(&status)
        } else {
            spec.success.contains(&status)
        };
        if success {
            let confirmed = spec
                .success_when
                .iter()
                .all(|(p, want)| body.as_ref().and_then(|b| b.pointer(p)) == Some(&to_json(want)));
            if !confirmed {
                return Err(RestError::Http {
                    status,
                    message: format!("the server did not confirm it: {}", message()),
                });
            }
            let entity = spec
                .entity
                .as_deref()
                .and_then(|p| body.as_ref().and_then(|b| b.pointer(p)))
                .and_then(Value::as_object);
            return Ok(match entity {
                Some(data) => Performed::Entity(Entity {
                    kind: action.kind().target(),
                    id: action.id().to_owned(),
                    data: data.clone(),
                }),
                None => Performed::Patched(self.declared_optimistic(action)),
            });
        }
        if self.profile.spec.auth.unauthorized_status.contains(&status) {
            return Err(RestError::Unauthorized {
                code: "unauthorized".into(),
                message: message(),
            });
        }
        if spec.conflict.contains(&status) {
            let current = spec
                .current
                .as_deref()
                .and_then(|p| body.as_ref().and_then(|b| b.pointer(p)))
                .filter(|v| v.is_object())
                .cloned();
            return Err(RestError::Conflict {
                message: message(),
                current,
            });
        }
        Err(match status {
            429 => RestError::RateLimited {
                retry_after: parse_retry_after(
                    retry_after.as_deref(),
                    std::time::SystemTime::now(),
                ),
            },
            403 => RestError::Forbidden(message()),
            404 => RestError::NotFound(message()),
            _ => RestError::Http {
                status,
                message: message(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_whole_variable_is_null_and_others_render() {
        let vars = Vars::from([("id".to_owned(), VarValue::One("7".into()))]);
        let v: toml::Value =
            toml::from_str("b = { reason = \"{reason}\", id = \"{id}\", n = 2 }").unwrap();
        let j = render_json(&v["b"], &vars).unwrap();
        assert_eq!(j, serde_json::json!({"reason": null, "id": "7", "n": 2}));
        let v: toml::Value = toml::from_str("b = \"why: {reason}\"").unwrap();
        assert!(render_json(&v["b"], &vars).is_err());
    }

    #[test]
    fn explanations_come_from_the_pointer_the_usual_places_or_the_body() {
        let b = serde_json::json!({"error": {"message": "taken"}, "message": "m"});
        assert_eq!(explanation(None, Some(&b), "", 409), "taken");
        assert_eq!(explanation(Some("/message"), Some(&b), "", 409), "m");
        let b = serde_json::json!({"error": "Ticket not found"});
        assert_eq!(explanation(None, Some(&b), "", 404), "Ticket not found");
        assert_eq!(
            explanation(None, None, " <h1>bad</h1> ", 502),
            "<h1>bad</h1>"
        );
        assert_eq!(explanation(None, None, "", 500), "HTTP 500");
    }
}
