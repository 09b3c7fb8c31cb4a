//! JWT claims carried by Pulse access and refresh tokens.
//!
//! Tokens travel only in the `Authorization: Bearer …` header (or a login/refresh
//! body), never in a URL.

use serde::{Deserialize, Serialize};

/// What a token's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A person using a dashboard: reads its tenant and acts on it (approve, reject,
    /// move a ticket, terminate an agent). Cannot ingest.
    #[default]
    Viewer,
    /// A platform service that publishes events with `POST /v1/ingest`.
    Publisher,
}

/// Whether a token is for API access or only for getting a new access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// Accepted by every endpoint that needs auth.
    #[default]
    Access,
    /// Accepted only by `POST /v1/auth/refresh`.
    Refresh,
}

/// Claims of a Pulse JWT (HS256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user or service name.
    pub sub: String,
    /// The tenant whose data the holder may see. A token never grants another tenant.
    pub tenant: String,
    /// What the holder may do.
    #[serde(default)]
    pub role: Role,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// Access or refresh.
    #[serde(default, rename = "use")]
    pub token_use: TokenUse,
    /// Token id: set on refresh tokens the gateway issues (the one of its family
    /// that may be used next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Refresh-token family: every refresh token of one login shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}
