//! The reference gateway in a test: its config (127.0.0.1:0, memory store, the
//! test secret) and access tokens signed with that secret.
//!
//! [`SECRET`] is the only secret a test gateway started from [`config`] knows,
//! so a token from [`token`] is valid for it and for no other gateway.

use std::time::Duration;

use pulse_gateway::auth::{self, Role, TokenUse};
use pulse_gateway::Config;

/// The JWT secret of every test gateway (loopback only, throwaway).
pub const SECRET: &str = "test-secret-0123456789-0123456789abcdef";

/// How long a token from [`token`] is valid: longer than any test.
pub const TOKEN_TTL: Duration = Duration::from_secs(600);

/// The default gateway config with [`SECRET`]: binds 127.0.0.1:0, memory store,
/// and no connection cap or request rate limit (tests open many streams and send
/// many requests with one token; the limits' own tests set them explicitly).
pub fn config() -> Config {
    Config {
        jwt_secret: Some(SECRET.into()),
        limits: pulse_gateway::limits::Limits::unlimited_traffic(),
        ..Config::default()
    }
}

/// A token of `sub` in `tenant` with `role`, signed with [`SECRET`], valid for
/// [`TOKEN_TTL`].
pub fn token(tenant: &str, sub: &str, role: Role, token_use: TokenUse) -> String {
    let claims = auth::claims(sub, tenant, role, token_use, TOKEN_TTL);
    auth::mint(SECRET, &claims).expect("mint")
}
