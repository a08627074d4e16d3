//! Authentication primitives shared by the API and the realtime server:
//! roles, argon2id password hashes, JWT access tokens and their revocation
//! list in Redis, and tenant API keys.

use std::{
    fmt,
    sync::{Arc, LazyLock},
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version,
    password_hash::{Output, SaltString, rand_core::OsRng},
};
use chrono::Utc;
use deadpool_redis::redis::AsyncCommands;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use rand::{Rng, distr::Alphanumeric};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Settings, memo::Memo, settings::Argon2Params};

crate::text_enum! {
    /// What a principal may do. Ordered: each role can do what the ones before it can.
    #[derive(PartialOrd, Ord)]
    pub enum Role {
        /// `agent`: the base role.
        Agent = "agent",
        /// `supervisor`: an agent who leads a team; it is allowed what `agent`
        /// is.
        Supervisor = "supervisor",
        /// `admin`: may also manage the tenant (webhook endpoints, scheduling
        /// settings).
        Admin = "admin",
    }
}

// Passwords ---------------------------------------------------------------

fn argon2(params: Argon2Params) -> Argon2<'static> {
    // Parameters were validated when the settings loaded.
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .unwrap_or_else(|_| Params::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC string for `password` with the given cost.
pub fn hash_password(password: &str, params: Argon2Params) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Working memory for argon2 checks (`m_cost` KiB of blocks), kept between
/// checks. Without it every check allocated, zero-filled and freed ~19 MiB;
/// glibc keeps such freed buffers in per-thread arenas, so RSS grew with the
/// number of blocking threads that had ever checked a password. The caller
/// keeps one per concurrent check. What a check leaves in it is overwritten
/// by the next (argon2 fills every block before it reads one).
#[derive(Default)]
pub struct PasswordMemory(Vec<Block>);

impl PasswordMemory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.0.len() < needed {
            self.0.resize(needed, Block::default());
        }
        &mut self.0[..needed]
    }
}

/// Checks `password` against a stored PHC hash (its own embedded parameters
/// apply, so changing the settings does not lock existing agents out),
/// computing in `memory`. CPU-bound: call it from `spawn_blocking`.
pub fn verify_password(password: &str, phc: &str, memory: &mut PasswordMemory) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = [0u8; Output::MAX_LENGTH];
    let computed = &mut computed[..expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, computed, memory.blocks(&params))
        .is_ok()
        // `Output`'s equality is constant-time.
        && Output::new(computed).is_ok_and(|computed| computed == expected)
}

/// Spends the same time as a real verification, for logins naming an unknown
/// email, so response time does not reveal which emails exist.
pub fn verify_password_against_nothing(
    password: &str,
    params: Argon2Params,
    memory: &mut PasswordMemory,
) {
    static DUMMY: LazyLock<std::sync::Mutex<Option<(Argon2Params, String)>>> =
        LazyLock::new(|| std::sync::Mutex::new(None));
    let phc = {
        let mut guard = DUMMY.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some((p, h)) if *p == params => h.clone(),
            _ => {
                let h = hash_password("switchboard-dummy-password", params);
                *guard = Some((params, h.clone()));
                h
            }
        }
    };
    let _ = verify_password(password, &phc, memory);
}

// Access tokens -----------------------------------------------------------

/// The claims in an agent's access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The agent's id.
    pub sub: Uuid,
    /// The agent's tenant.
    pub tid: Uuid,
    /// The agent's role: what the token allows.
    pub role: Role,
    /// Token id: what logout revokes.
    pub jti: Uuid,
    /// Issued at, in Unix seconds.
    pub iat: i64,
    /// Expiry, in Unix seconds: the token is refused after it (with 5 s of
    /// leeway).
    pub exp: i64,
}

/// Why an access token is refused (the API answers each with 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Past its `exp`: the agent must log in again.
    #[error("the token has expired")]
    Expired,
    /// Malformed, missing a required claim, or not signed with this
    /// deployment's `jwt_secret`.
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    /// Logged out: its `jti` is on the revocation list (see [`is_revoked`]).
    #[error("the token has been revoked")]
    Revoked,
}

/// Issues and verifies HS256 access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
    /// Tokens whose signature was verified, with their claims: a token is
    /// presented with every request, and checking the HMAC and decoding the
    /// claims cost a tenth of a cached request's CPU. Keyed by the whole
    /// token, so only the exact bytes that verified ever hit; expiry is
    /// checked again at every use.
    verified: Arc<Memo<String, Claims>>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from the settings' `jwt_secret`, for tokens that live `jwt_ttl`.
    pub fn new(settings: &Settings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs: i64::try_from(settings.jwt_ttl.as_secs()).unwrap_or(3600),
            verified: Arc::new(Memo::new("verified_tokens", 10_000)),
        }
    }

    /// Lifetime of the tokens it issues, in seconds (login's `expires_in`).
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A new signed token for `agent_id` of `tenant_id` with `role`, a fresh
    /// `jti` and an expiry [`TokenKeys::ttl_secs`] from now, with its claims.
    pub fn issue(&self, agent_id: Uuid, tenant_id: Uuid, role: Role) -> (String, Claims) {
        let now = Utc::now().timestamp();
        self.encode(Claims {
            sub: agent_id,
            tid: tenant_id,
            role,
            jti: Uuid::new_v4(),
            iat: now,
            exp: now + self.ttl_secs,
        })
    }

    /// Signs arbitrary claims (tests use it to mint expired tokens).
    pub fn encode(&self, claims: Claims) -> (String, Claims) {
        let token =
            jsonwebtoken::encode(&Header::default(), &claims, &self.encoding).unwrap_or_default();
        (token, claims)
    }

    /// Verifies signature and expiry. Revocation is checked separately
    /// ([`is_revoked`]) because it needs Redis.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            // As jsonwebtoken decides it, with the same leeway.
            let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
            if claims.exp < Utc::now().timestamp() - leeway {
                return Err(TokenError::Expired);
            }
            return Ok(claims);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }
}

/// The Redis key whose presence marks the token `jti` as revoked.
pub fn revocation_key(settings: &Settings, jti: Uuid) -> String {
    settings.redis_key(&format!("revoked:{jti}"))
}

/// The Pub/Sub channel a revoked token's `jti` is published on, so realtime
/// instances disconnect its sockets at once.
pub fn revocations_channel(settings: &Settings) -> String {
    settings.redis_key("revocations")
}

/// Revokes a token until it would have expired anyway.
pub async fn revoke(
    redis: &crate::redis::Pool,
    settings: &Settings,
    claims: &Claims,
) -> anyhow::Result<()> {
    let remaining = (claims.exp - Utc::now().timestamp()).max(1) + 10;
    let mut conn = redis.get().await?;
    let _: () = conn
        .set_ex(
            revocation_key(settings, claims.jti),
            1u8,
            u64::try_from(remaining).unwrap_or(1),
        )
        .await?;
    // After the list holds it: a subscriber that misses this message finds
    // the token on the list at its next sweep.
    let _: i64 = conn
        .publish(revocations_channel(settings), claims.jti.to_string())
        .await?;
    Ok(())
}

/// Whether the token `jti` has been revoked (asks Redis).
pub async fn is_revoked(
    redis: &crate::redis::Pool,
    settings: &Settings,
    jti: Uuid,
) -> anyhow::Result<bool> {
    let mut conn = redis.get().await?;
    Ok(conn.exists(revocation_key(settings, jti)).await?)
}

// API keys ------------------------------------------------------------------

/// The marker every Switchboard API key starts with, so a bearer credential
/// can be told apart from a JWT without trying both.
pub const API_KEY_PREFIX: &str = "sbk_";

/// A new random API key: `sbk_` + 40 alphanumerics (~238 bits).
pub fn generate_api_key() -> String {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("{API_KEY_PREFIX}{body}")
}

/// What is stored for a key: its SHA-256.
pub fn hash_api_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The part of a key safe to show in listings.
pub fn api_key_display_prefix(key: &str) -> String {
    key.chars().take(API_KEY_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Params {
        Argon2Params {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse", cheap());
        assert!(hash.starts_with("$argon2id$"));
        let memory = &mut PasswordMemory::default();
        assert!(verify_password("correct horse", &hash, memory));
        assert!(!verify_password("wrong horse", &hash, memory));
        assert!(!verify_password(
            "correct horse",
            "not-a-phc-string",
            memory
        ));
        assert!(!verify_password(
            "correct horse",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            memory
        ));
    }

    #[test]
    fn reused_memory_gives_the_same_answers_across_costs() {
        // One buffer serves hashes of different costs, in any order, and a
        // check's leftovers never change the next one's answer.
        let bigger = Argon2Params {
            m_cost: 4096,
            t_cost: 2,
            p_cost: 1,
        };
        let small = hash_password("one", cheap());
        let large = hash_password("two", bigger);
        let memory = &mut PasswordMemory::default();
        for _ in 0..2 {
            assert!(verify_password("two", &large, memory));
            assert!(!verify_password("one", &large, memory));
            assert!(verify_password("one", &small, memory));
            assert!(!verify_password("two", &small, memory));
        }
        assert_eq!(memory.0.len(), 4096, "grown to the largest cost, once");
        // The hashes the standard verifier accepts are the ones this accepts.
        use argon2::PasswordVerifier;
        let parsed = PasswordHash::new(&large).unwrap();
        assert!(Argon2::default().verify_password(b"two", &parsed).is_ok());
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering_and_expiry() {
        let keys = TokenKeys::new(&Settings::default());
        let (agent, tenant) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, claims) = keys.issue(agent, tenant, Role::Supervisor);
        assert_eq!(keys.verify(&token), Ok(claims.clone()));

        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(keys.verify(&tampered), Err(TokenError::Invalid));
        assert_eq!(keys.verify("garbage"), Err(TokenError::Invalid));

        let other = TokenKeys::new(&Settings {
            jwt_secret: "another-secret-entirely".to_string().into(),
            ..Settings::default()
        });
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));

        let (expired, _) = keys.encode(Claims {
            iat: claims.iat - 7200,
            exp: claims.iat - 3600,
            ..claims
        });
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
    }

    #[test]
    fn api_keys_are_prefixed_random_and_hash_stably() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() == 44);
        assert_ne!(a, b);
        assert_eq!(hash_api_key(&a), hash_api_key(&a));
        assert_ne!(hash_api_key(&a), hash_api_key(&b));
    }

    #[test]
    fn roles_are_ordered_by_privilege() {
        assert!(Role::Agent < Role::Supervisor && Role::Supervisor < Role::Admin);
    }
}
