//! Tokens: minting and verifying Pulse JWTs (HS256, [`Claims`]).
//!
//! Invariants:
//! - only HS256 is accepted; the signature is checked before any claim, so a forged
//!   token is `Invalid` even when it also claims to be expired;
//! - `exp` is checked with no leeway: a token is expired from its `exp` second on;
//! - a refresh token is never accepted where an access token is required and vice
//!   versa ([`AuthError::WrongUse`]);
//! - nothing here logs or formats a token or a secret.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use pulse_protocol::auth::{Claims, Role, TokenUse};

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing `Authorization: Bearer <token>` header")]
    Missing,
    /// Bad shape, bad signature, wrong algorithm or bad claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token's `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// A refresh token where an access token is needed, or the reverse.
    #[error("a {0:?} token cannot be used here")]
    WrongUse(TokenUse),
}

/// Could not sign a token.
#[derive(Debug, thiserror::Error)]
#[error("could not sign token: {0}")]
pub struct MintError(#[source] jsonwebtoken::errors::Error);

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims for `sub` of `tenant`, issued now and valid for `ttl`.
pub fn claims(sub: &str, tenant: &str, role: Role, token_use: TokenUse, ttl: Duration) -> Claims {
    let iat = now_secs();
    Claims {
        sub: sub.to_owned(),
        tenant: tenant.to_owned(),
        role,
        exp: iat.saturating_add(ttl.as_secs()),
        iat,
        token_use,
        jti: None,
        fam: None,
    }
}

/// Sign `claims` with `secret` (HS256).
pub fn mint(secret: &str, claims: &Claims) -> Result<String, MintError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(MintError)
}

/// Verify `token` against `secret` and return its claims (any `use`).
pub fn verify(secret: &str, token: &str) -> Result<Claims, AuthError> {
    Keys::new(secret).verify(token)
}

/// Fewest bytes a JWT secret may have: HS256's key should be at least as long as its
/// 256-bit output (RFC 7518 §3.2), so a short or guessable secret is refused.
pub const MIN_SECRET_BYTES: usize = 32;

/// Refuse a secret shorter than [`MIN_SECRET_BYTES`]; `origin` names where it came
/// from (`--jwt-secret or PULSE_JWT_SECRET`, a file) for the message. The secret
/// itself is never part of the message.
pub fn check_secret(secret: &str, origin: &str) -> Result<(), String> {
    let n = secret.len();
    if n < MIN_SECRET_BYTES {
        return Err(format!(
            "the JWT secret from {origin} is {n} bytes; it must be at least \
             {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(())
}

/// A random secret for `--demo` without `--jwt-secret` (256 bits, hex).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Prepared keys for one secret; cheap to share.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Keys for `secret`.
    pub fn new(secret: &str) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Keys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Sign `claims`.
    pub fn mint(&self, claims: &Claims) -> Result<String, MintError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(MintError)
    }

    /// Verify `token` and return its claims (any `use`).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => {
                if data.claims.tenant.is_empty() {
                    return Err(AuthError::Invalid("empty `tenant` claim".into()));
                }
                Ok(data.claims)
            }
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm must be HS256".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("missing `{c}` claim"))
                }
                ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
                    AuthError::Invalid("claims are not Pulse claims".into())
                }
                _ => AuthError::Invalid("not a JWT".into()),
            }),
        }
    }

    /// Verify an access token.
    pub fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        let c = self.verify(token)?;
        match c.token_use {
            TokenUse::Access => Ok(c),
            other => Err(AuthError::WrongUse(other)),
        }
    }

    /// Verify a refresh token.
    pub fn verify_refresh(&self, token: &str) -> Result<Claims, AuthError> {
        let c = self.verify(token)?;
        match c.token_use {
            TokenUse::Refresh => Ok(c),
            other => Err(AuthError::WrongUse(other)),
        }
    }
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0xff);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_and_verify() {
        let c = claims(
            "ann",
            "acme",
            Role::Publisher,
            TokenUse::Access,
            Duration::from_secs(60),
        );
        let t = mint("s3cret", &c).unwrap();
        assert_eq!(verify("s3cret", &t).unwrap(), c);
        assert!(matches!(verify("other", &t), Err(AuthError::Invalid(_))));
        assert!(matches!(
            verify("s3cret", "garbage"),
            Err(AuthError::Invalid(_))
        ));
        let keys = Keys::new("s3cret");
        assert_eq!(keys.verify_access(&t).unwrap(), c);
        assert_eq!(
            keys.verify_refresh(&t),
            Err(AuthError::WrongUse(TokenUse::Access))
        );
    }

    #[test]
    fn expired_is_distinct() {
        let mut c = claims(
            "ann",
            "acme",
            Role::Viewer,
            TokenUse::Access,
            Duration::ZERO,
        );
        c.exp = now_secs() - 5;
        let t = mint("k", &c).unwrap();
        assert_eq!(verify("k", &t), Err(AuthError::Expired));
        assert!(
            matches!(verify("x", &t), Err(AuthError::Invalid(_))),
            "signature first"
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = check_secret("s3cret", "--jwt-secret").unwrap_err();
        assert!(
            err.contains("6 bytes") && err.contains("at least 32"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "the secret is not in the message");
        assert!(check_secret(&"x".repeat(31), "f").is_err());
        assert!(check_secret(&"x".repeat(32), "f").is_ok());
        assert!(check_secret(&random_secret(), "f").is_ok());
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"demo", b"demo"));
        assert!(!constant_time_eq(b"demo", b"demx"));
        assert!(!constant_time_eq(b"demo", b"demo1"));
        assert!(!constant_time_eq(b"", b"\xff"));
        assert!(constant_time_eq(b"", b""));
    }
}
