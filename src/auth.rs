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
use tokio::sync::{OnceCell, Semaphore};

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
    /// Account name to its PHC string and its cache key's keyed prefix.
    accounts: HashMap<String, Account>,
    /// Client certificate subject CN to account name.
    subjects: HashMap<String, String>,
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    /// Verifications running, by cache key: the same credentials arriving
    /// on many connections at once wait for one verification.
    pending: Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    /// Bounds the argon2 verifications running at once (each holds its
    /// memory cost, 19 MiB by default): a flood of wrong passwords queues
    /// instead of taking the machine's memory.
    verifiers: Semaphore,
    verifications: AtomicU64,
}

struct Account {
    phc: String,
    /// HMAC-SHA-256 under the server key, the user and the hash already
    /// absorbed: a request's cache key then costs the password's block and
    /// the finalisation only.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("accounts", &self.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(config: &Config) -> Authenticator {
        // Server-random: the cache keys are derived with it.
        let mut key = [0; 32];
        key[..16].copy_from_slice(&argon2::password_hash::generate_salt());
        key[16..].copy_from_slice(&argon2::password_hash::generate_salt());
        let accounts = config
            .identities
            .iter()
            .map(|identity| {
                let account = Account {
                    phc: identity.password_hash.clone(),
                    keyed: keyed_prefix(&key, &identity.name, &identity.password_hash),
                };
                (identity.name.clone(), account)
            })
            .collect();
        let parallel = std::thread::available_parallelism().map_or(1, usize::from);
        Authenticator {
            accounts,
            subjects: config
                .identities
                .iter()
                .filter_map(|identity| {
                    let subject = identity.certificate_subject.clone()?;
                    Some((subject, identity.name.clone()))
                })
                .collect(),
            cache: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            verifiers: Semaphore::new(parallel),
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
        let Some(account) = self.accounts.get(user) else {
            // Spend what a known user costs, so timing does not tell
            // which accounts exist.
            if let Some(any) = self.accounts.values().next() {
                self.full_verify(any.phc.clone(), password.to_owned()).await;
            }
            return Err(AuthError::BadCredentials);
        };
        // Keyed by the hash too: a changed hash orphans the old entries.
        let entry = cache_key(&account.keyed, password);
        if self.remembered(&entry) {
            return Ok(Identity::Named(user.to_owned()));
        }
        let verification = Arc::clone(
            lock(&self.pending)
                .entry(entry)
                .or_insert_with(|| Arc::new(OnceCell::new())),
        );
        // Left when this request ends, answered or dropped midway (a client
        // gone), so that abandoned verifications do not pile up.
        let _leaving = Leaving {
            pending: &self.pending,
            entry,
            verification: &verification,
        };
        let verified = *verification
            .get_or_init(|| async {
                let verified = self
                    .full_verify(account.phc.clone(), password.to_owned())
                    .await;
                if verified {
                    self.remember(entry);
                }
                verified
            })
            .await;
        if verified {
            Ok(Identity::Named(user.to_owned()))
        } else {
            Err(AuthError::BadCredentials)
        }
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

    /// An argon2 verification on the blocking pool, off the async workers,
    /// once one of the few verifier places is free.
    async fn full_verify(self: &Arc<Self>, phc: String, password: String) -> bool {
        let Ok(_place) = self.verifiers.acquire().await else {
            return false;
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), phc.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    fn remembered(&self, entry: &[u8; 32]) -> bool {
        lock(&self.cache)
            .get(entry)
            .is_some_and(|since| since.elapsed() < CACHE_TTL)
    }

    fn remember(&self, entry: [u8; 32]) {
        let mut cache = lock(&self.cache);
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

/// Takes a finished or abandoned verification out of `pending`, unless
/// another has taken its place since.
struct Leaving<'a> {
    pending: &'a Mutex<HashMap<[u8; 32], Arc<OnceCell<bool>>>>,
    entry: [u8; 32],
    verification: &'a Arc<OnceCell<bool>>,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut pending = lock(self.pending);
        if pending
            .get(&self.entry)
            .is_some_and(|running| Arc::ptr_eq(running, self.verification))
        {
            pending.remove(&self.entry);
        }
    }
}

/// The cache key of `user`'s credentials: a keyed one-way digest
/// (HMAC-SHA-256 under a key drawn at start-up) of the user, the hash and
/// the password, so that the cache holds nothing a password can be
/// recovered or guessed offline from.
fn keyed_prefix(key: &[u8; 32], user: &str, hash: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in [user, hash] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

fn cache_key(prefix: &Hmac<Sha256>, password: &str) -> [u8; 32] {
    let mut mac = prefix.clone();
    mac.update(&(password.len() as u64).to_be_bytes());
    mac.update(password.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Each change leaves the maps whole: keep using them after a panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn key_of(key: u8, user: &str, hash: &str, password: &str) -> [u8; 32] {
        cache_key(&keyed_prefix(&[key; 32], user, hash), password)
    }

    #[test]
    fn cache_keys_depend_on_user_hash_password_and_server_key() {
        let base = key_of(1, "ann", "h1", "pw");
        assert_eq!(base, key_of(1, "ann", "h1", "pw"));
        assert_ne!(base, key_of(1, "ann", "h2", "pw"));
        assert_ne!(base, key_of(1, "ann", "h1", "pw2"));
        assert_ne!(base, key_of(1, "an", "nh1", "pw"));
        assert_ne!(base, key_of(1, "ann", "h1p", "w"));
        assert_ne!(base, key_of(2, "ann", "h1", "pw"));
    }

    /// `count` verifications of ann's `password`, all started at once.
    async fn at_once(
        auth: &Arc<Authenticator>,
        password: &'static str,
        count: usize,
    ) -> Vec<Result<Identity, AuthError>> {
        let arriving: Vec<_> = (0..count)
            .map(|_| {
                let auth = Arc::clone(auth);
                tokio::spawn(async move { auth.verify("ann", password).await })
            })
            .collect();
        futures_util::future::join_all(arriving)
            .await
            .into_iter()
            .map(|joined| joined.expect("a verification task"))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_verification_abandoned_midway_leaves_nothing_pending() {
        let auth = authenticator(&hash_password("right").unwrap());
        let abandoned = {
            let auth = Arc::clone(&auth);
            tokio::spawn(async move { auth.verify("ann", "wrong").await })
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            while lock(&auth.pending).is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the verification is pending");
        abandoned.abort();
        assert!(
            abandoned.await.is_err_and(|e| e.is_cancelled()),
            "dropped midway"
        );
        assert!(lock(&auth.pending).is_empty(), "nothing left pending");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_credentials_arriving_at_once_are_verified_once() {
        let auth = authenticator(&hash_password("right").unwrap());
        for verified in at_once(&auth, "right", 8).await {
            assert_eq!(verified, Ok(Identity::Named("ann".into())));
        }
        assert_eq!(auth.full_verifications(), 1);
        assert!(lock(&auth.pending).is_empty(), "nothing left pending");
        for verified in at_once(&auth, "wrong", 4).await {
            assert_eq!(verified, Err(AuthError::BadCredentials));
        }
        let after_concurrent = auth.full_verifications();
        assert!((2..=5).contains(&after_concurrent), "{after_concurrent}");
        assert_eq!(
            auth.verify("ann", "wrong").await,
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            auth.full_verifications(),
            after_concurrent + 1,
            "a wrong password is not remembered"
        );
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
            auth.remember(key_of(1, "ann", "h", &n.to_string()));
        }
        assert_eq!(auth.cache.lock().unwrap().len(), CACHE_ENTRIES);
    }
}
