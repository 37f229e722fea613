//! Password authentication for the adapters: argon2 verification of the
//! configured identities, behind a cache of recent successes so that a
//! client sending Basic credentials on every request does not pay a full
//! argon2 verification each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::core::Identity;

/// Most successes remembered at once.
pub const CACHE_ENTRIES: usize = 1024;
/// How long a remembered success spares a verification.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// Why credentials were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// An unknown user or a wrong password: not told apart, so that
    /// accounts cannot be enumerated.
    BadCredentials,
}

/// Put on each request of a TLS connection by the gateway: its absence means
/// plain HTTP.
#[derive(Clone, Debug, Default)]
pub struct TlsPeer {
    /// The subject CN of the client certificate, verified in the handshake.
    pub certificate_subject: Option<String>,
}

pub struct Authenticator {
    /// Account name to its PHC string.
    hashes: HashMap<String, String>,
    /// Client certificate subject CN to account name.
    subjects: HashMap<String, String>,
    /// Server-random secret the cache keys are derived with.
    key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    verifications: AtomicU64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("accounts", &self.hashes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &Config) -> Authenticator {
        let mut key = [0; 32];
        key[..16].copy_from_slice(&argon2::password_hash::generate_salt());
        key[16..].copy_from_slice(&argon2::password_hash::generate_salt());
        Authenticator {
            hashes: config
                .identities
                .iter()
                .map(|identity| (identity.name.clone(), identity.password_hash.clone()))
                .collect(),
            subjects: config
                .identities
                .iter()
                .filter_map(|identity| {
                    let subject = identity.certificate_subject.clone()?;
                    Some((subject, identity.name.clone()))
                })
                .collect(),
            key,
            cache: Mutex::new(HashMap::new()),
            verifications: AtomicU64::new(0),
        }
    }

    /// How many full argon2 verifications have run (cache misses).
    pub fn full_verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The identity `user` proves with `password`. The argon2 work runs on
    /// the blocking pool, off the async workers.
    pub async fn verify(
        self: &Arc<Self>,
        user: &str,
        password: &str,
    ) -> Result<Identity, AuthError> {
        let Some(hash) = self.hashes.get(user) else {
            // Spend what a known user costs, so timing does not tell
            // which accounts exist.
            if let Some(any) = self.hashes.values().next().cloned() {
                let this = self.clone();
                let password = password.to_owned();
                let _ =
                    tokio::task::spawn_blocking(move || this.full_verify(&any, &password)).await;
            }
            return Err(AuthError::BadCredentials);
        };
        // Keyed by the hash too: a changed hash orphans the old entries.
        let entry = self.cache_key(user, hash, password);
        if self.remembered(&entry) {
            return Ok(Identity::Named(user.to_owned()));
        }
        let this = self.clone();
        let (hash, password) = (hash.clone(), password.to_owned());
        let verified = tokio::task::spawn_blocking(move || this.full_verify(&hash, &password))
            .await
            .unwrap_or(false);
        if !verified {
            return Err(AuthError::BadCredentials);
        }
        self.remember(entry);
        Ok(Identity::Named(user.to_owned()))
    }

    /// The identity a verified client certificate with this subject CN
    /// proves: an account that names it, otherwise anonymous.
    /// The identity a request's credentials prove: anonymous without any,
    /// an account with a verified HTTP Basic password (`authorization`, the
    /// header's value) or client certificate (`certificate`, its subject's
    /// common name); both must then name the same one. Otherwise the reason
    /// for refusing it.
    pub async fn identify(
        self: &Arc<Self>,
        authorization: Option<&str>,
        certificate: Option<&str>,
    ) -> Result<Identity, String> {
        let by_certificate = certificate.map(|subject| self.certificate_identity(subject));
        let by_password = match authorization {
            Some(value) => Some(self.basic_identity(value).await?),
            None => None,
        };
        match (by_certificate, by_password) {
            (Some(certified), Some(password)) if certified != password => {
                tracing::info!(?certified, ?password, "certificate and password disagree");
                Err(
                    "the client certificate and the HTTP Basic credentials name different identities"
                        .into(),
                )
            }
            (_, Some(identity)) | (Some(identity), None) => Ok(identity),
            (None, None) => Ok(Identity::Anonymous),
        }
    }

    /// The identity an `Authorization` header's HTTP Basic credentials prove.
    async fn basic_identity(self: &Arc<Self>, authorization: &str) -> Result<Identity, String> {
        use base64::Engine;
        let credentials = authorization
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok());
        let Some(credentials) = credentials else {
            return Err("the Authorization header is not HTTP Basic credentials".into());
        };
        let Some((user, password)) = credentials.split_once(':') else {
            return Err("HTTP Basic credentials need a user and a password".into());
        };
        self.verify(user, password).await.map_err(|_| {
            tracing::info!(user, "HTTP Basic credentials refused");
            "the user name or password is wrong".to_owned()
        })
    }

    pub fn certificate_identity(&self, common_name: &str) -> Identity {
        match self.subjects.get(common_name) {
            Some(name) => Identity::Named(name.clone()),
            None => Identity::Anonymous,
        }
    }

    fn full_verify(&self, hash: &str, password: &str) -> bool {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    }

    /// A keyed one-way digest of the credentials (HMAC-SHA-256 under a key
    /// drawn at start-up), so that the cache holds nothing a password can be
    /// recovered or guessed offline from, at a cost of about a microsecond.
    fn cache_key(&self, user: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        for part in [user, hash, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, entry: &[u8; 32]) -> bool {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get(entry)
            .is_some_and(|since| since.elapsed() < CACHE_TTL)
    }

    fn remember(&self, entry: [u8; 32]) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, since| since.elapsed() < CACHE_TTL);
        }
        if cache.len() >= CACHE_ENTRIES {
            let oldest = cache
                .iter()
                .min_by_key(|(_, since)| **since)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(entry, Instant::now());
    }
}

/// An argon2id PHC string for `password`, with default parameters and a
/// random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

/// The subject common name of a DER X.509 certificate (rustls has already
/// verified it); the last one when the subject has several.
pub fn certificate_common_name(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = certificate.subject().iter_common_name().last()?;
    name.as_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(hash: &str) -> Arc<Authenticator> {
        let config = Config::from_toml(&format!(
            "[[identities]]\nname = \"ann\"\npassword_hash = \"{hash}\"\n"
        ))
        .unwrap();
        Arc::new(Authenticator::new(&config))
    }

    #[tokio::test]
    async fn credentials_are_read_from_the_authorization_header() {
        let auth = authenticator(&hash_password("right").unwrap());
        let ann = Ok(Identity::Named("ann".into()));
        // "ann:right" in base64, in any case of the scheme.
        assert_eq!(auth.identify(Some("Basic YW5uOnJpZ2h0"), None).await, ann);
        assert_eq!(auth.identify(Some("basic  YW5uOnJpZ2h0 "), None).await, ann);
        assert_eq!(auth.identify(None, None).await, Ok(Identity::Anonymous));
        assert_eq!(
            auth.identify(None, Some("nobody")).await,
            Ok(Identity::Anonymous)
        );
        for refused in [
            "Bearer YW5uOnJpZ2h0",
            "Basic YW5uOnJpZ2h0=",
            "Basic !!!",
            "Basic YW5u",
            "Basic YW5uOndyb25n",
            "Basic",
        ] {
            assert!(
                auth.identify(Some(refused), None).await.is_err(),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn a_success_is_remembered_and_a_failure_is_not() {
        let auth = authenticator(&hash_password("right").unwrap());
        assert_eq!(
            auth.verify("ann", "right").await,
            Ok(Identity::Named("ann".into()))
        );
        assert_eq!(
            auth.verify("ann", "right").await,
            Ok(Identity::Named("ann".into()))
        );
        assert_eq!(auth.full_verifications(), 1);
        for _ in 0..2 {
            assert_eq!(
                auth.verify("ann", "wrong").await,
                Err(AuthError::BadCredentials)
            );
        }
        assert_eq!(auth.full_verifications(), 3);
        assert_eq!(
            auth.verify("bob", "right").await,
            Err(AuthError::BadCredentials)
        );
    }

    #[test]
    fn cache_keys_depend_on_user_hash_password_and_server_key() {
        let auth = authenticator(&hash_password("right").unwrap());
        let base = auth.cache_key("ann", "h1", "pw");
        assert_eq!(base, auth.cache_key("ann", "h1", "pw"));
        assert_ne!(base, auth.cache_key("ann", "h2", "pw"));
        assert_ne!(base, auth.cache_key("ann", "h1", "pw2"));
        assert_ne!(base, auth.cache_key("an", "nh1", "pw"));
        let other = authenticator(&hash_password("right").unwrap());
        assert_ne!(base, other.cache_key("ann", "h1", "pw"));
    }

    #[test]
    fn a_malformed_certificate_has_no_common_name() {
        for der in [
            &[][..],
            &[0x30],
            &[0x30, 0x82, 0xff],
            &[0x30, 0x03, 0x30, 0x01, 0x02],
        ] {
            assert_eq!(certificate_common_name(der), None, "{der:?}");
        }
    }

    #[test]
    fn the_cache_stays_bounded() {
        let auth = authenticator(&hash_password("right").unwrap());
        for n in 0..CACHE_ENTRIES + 10 {
            auth.remember(auth.cache_key("ann", "h", &n.to_string()));
        }
        assert_eq!(auth.cache.lock().unwrap().len(), CACHE_ENTRIES);
    }
}
