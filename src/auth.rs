//! Bearer authentication for the APIs: the configured `admin_token` (every scope) or a stored
//! API key with scopes. Keys look like `hgk_<id>_<secret>`; only their SHA-256 is stored, the
//! `<id>` part finds the row, and the hash is compared in constant time.

use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;
use rand::Rng as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::AppState;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// List and stream events, read the trigger catalog.
    Read,
    /// Create test events.
    Write,
    /// Everything, including `/admin`.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "webhooks:read",
            Scope::Write => "webhooks:write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?} (expected webhooks:read, webhooks:write or admin)")
            })
    }
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `admin_token` or the key's id.
    pub name: String,
    scopes: Vec<Scope>,
    /// The stored key's id (`None` for the admin token).
    key_id: Option<String>,
    /// The one workspace a key is limited to; `None` for every workspace.
    pub workspace: Option<String>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// The workspace a request may use: a key limited to a workspace gets it when none is
    /// asked for, and 403 for any other; an unlimited key gets what it asks for.
    ///
    /// # Errors
    /// 403 when the key is limited to another workspace.
    pub fn workspace_for(&self, requested: Option<String>) -> Result<Option<String>, AppError> {
        match (&self.workspace, requested) {
            (None, requested) => Ok(requested),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(own), Some(asked)) if *own == asked => Ok(Some(asked)),
            (Some(_), Some(_)) => Err(AppError::Forbidden),
        }
    }

    /// Whether the credential is still good: the admin token always is, a key while it is
    /// neither revoked nor expired (open event streams ask this at every heartbeat).
    pub async fn still_valid(&self, state: &AppState) -> bool {
        let Some(id) = &self.key_id else { return true };
        match state.db.get_api_key(id).await {
            Ok(Some(row)) => row.revoked_at.is_none() && !expired(row.expires_at),
            Ok(None) => false,
            // A store that cannot answer is not a revocation; the next check will tell.
            Err(_) => true,
        }
    }
}

fn expired(expires_at: Option<i64>) -> bool {
    expires_at.is_some_and(|at| at <= crate::now_ms())
}

fn hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// A new key: (id, the full key to show once, its hash to store).
pub fn mint() -> (String, String, String) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    };
    let id = pick(12);
    let key = format!("hgk_{id}_{}", pick(40));
    let digest = hash(&key);
    (id, key, digest)
}

/// Authenticates the bearer token and checks it has `scope`.
///
/// # Errors
/// 401 without a valid token, 403 when the token lacks the scope.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Principal, AppError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(AppError::MissingToken)?;
    let principal = if let Some(admin) = &state.config.admin_token {
        if bool::from(token.as_bytes().ct_eq(admin.expose().as_bytes())) {
            Some(Principal {
                name: "admin_token".into(),
                scopes: vec![Scope::Admin],
                key_id: None,
                workspace: None,
            })
        } else {
            None
        }
    } else {
        None
    };
    let principal = match principal {
        Some(p) => p,
        None => {
            let id = token
                .strip_prefix("hgk_")
                .and_then(|rest| rest.split_once('_'))
                .map(|(id, _)| id)
                .ok_or(AppError::MissingToken)?;
            let row = state
                .db
                .get_api_key(id)
                .await?
                .ok_or(AppError::MissingToken)?;
            let matches = bool::from(hash(token).as_bytes().ct_eq(row.key_hash.as_bytes()));
            if !matches || row.revoked_at.is_some() || expired(row.expires_at) {
                return Err(AppError::MissingToken);
            }
            Principal {
                key_id: Some(row.id.clone()),
                workspace: row.workspace,
                name: row.id,
                scopes: row
                    .scopes
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            }
        }
    };
    if principal.has(scope) {
        Ok(principal)
    } else {
        Err(AppError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_hash_and_parse() {
        let (id, key, digest) = mint();
        assert_eq!(id.len(), 12);
        assert!(key.starts_with(&format!("hgk_{id}_")));
        assert_eq!(hash(&key), digest);
        assert_ne!(mint().1, key);
        assert_eq!("webhooks:read".parse::<Scope>(), Ok(Scope::Read));
        assert!("read".parse::<Scope>().is_err());
        let p = Principal {
            name: "k".into(),
            scopes: vec![Scope::Read],
            key_id: Some("k".into()),
            workspace: Some("acme".into()),
        };
        assert_eq!(p.workspace_for(None).ok(), Some(Some("acme".into())));
        assert_eq!(
            p.workspace_for(Some("acme".into())).ok(),
            Some(Some("acme".into()))
        );
        assert!(p.workspace_for(Some("other".into())).is_err());
        assert!(p.has(Scope::Read) && !p.has(Scope::Write) && !p.has(Scope::Admin));
        let admin = Principal {
            name: "a".into(),
            scopes: vec![Scope::Admin],
            key_id: None,
            workspace: None,
        };
        assert_eq!(
            admin.workspace_for(Some("x".into())).ok(),
            Some(Some("x".into()))
        );
        assert!(admin.has(Scope::Write));
    }
}
