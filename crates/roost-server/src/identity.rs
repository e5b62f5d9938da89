//! Identity: the admin user, password checks (argon2id), and tokens.
//!
//! A token is 256 random bits, handed out once; only its SHA-256 is kept,
//! in the store and in an in-memory cache that every request consults.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use roost_store::{Store, StoredToken, StoredUser};
use roost_types::{Clock, Timestamp};
use sha2::{Digest, Sha256};

use crate::datadir::DataDir;

/// Name of the built-in administrator and of its project.
pub const ADMIN: &str = "admin";

/// A valid token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub user_name: String,
    pub project: Option<(String, String)>,
    pub roles: Vec<String>,
    pub methods: Vec<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Why authentication failed. Deliberately vague towards the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("The request you have made requires authentication.")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("identity store unavailable")]
    Store(#[from] roost_store::Error),
    /// Every password thread is busy and the queue is full.
    #[error("too many password checks in progress; retry later")]
    Busy,
    #[error("cannot start the password threads")]
    Threads(#[source] std::io::Error),
}

/// Threads that hash and verify passwords. Each argon2 check needs 19 MiB
/// for a few tens of milliseconds, so they run here, two at a time, instead
/// of on the runtime's blocking threads that the store and the services
/// share: a flood of logins cannot starve other work or grow memory.
pub const PASSWORD_THREADS: usize = 2;
/// Password checks that may wait for a thread; beyond them a check is
/// refused at once ([`AuthError::Busy`], answered 503).
pub const PASSWORD_QUEUE: usize = 32;

type Job = Box<dyn FnOnce() + Send>;

/// A small fixed pool of threads with a bounded queue, for argon2 work.
pub struct PasswordPool {
    tx: std::sync::mpsc::SyncSender<Job>,
}

impl PasswordPool {
    /// Starts `threads` threads that take work from a queue of `queue`.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<PasswordPool> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("roost-password-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is released before the job runs.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(PasswordPool { tx })
    }

    /// Runs `f` on a password thread; [`AuthError::Busy`] at once if the
    /// queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx.try_send(job).map_err(|_| AuthError::Busy)?;
        result.await.map_err(|_| AuthError::Busy)?
    }
}

/// Identity service state.
pub struct Identity {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    ttl_secs: i64,
    tokens: RwLock<HashMap<String, Principal>>,
    passwords: PasswordPool,
    /// Counts committed changes of users and passwords, for subscribers.
    changes: tokio::sync::watch::Sender<u64>,
}

fn hash_token(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random secret of `bytes` bytes, as URL-safe text.
pub fn random_secret(bytes: usize) -> String {
    // No leading-dash risk: a secret is often passed as a command-line argument.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // The OS random source failing is not recoverable; refuse to make a weak secret.
        std::process::abort();
    }
    // 256 is a multiple of 64, so taking 6 bits of each byte is unbiased.
    buf.iter()
        .map(|b| ALPHABET[(b & 63) as usize] as char)
        .collect()
}

/// Hashes a password with argon2id.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

thread_local! {
    /// The argon2 working memory of a password thread, kept between checks:
    /// allocating and freeing 19 MiB per check fragments the allocator's
    /// heap, and the process grows far beyond the checks in progress.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest argon2 memory cost a stored hash may ask for (64 MiB), so that
/// a hash cannot make a password thread allocate without bound.
const MAX_M_COST_KIB: u32 = 64 * 1024;

/// Checks a password against its argon2 hash, reusing this thread's
/// argon2 memory.
fn verify_password_reusing(password: &str, hash: &str) -> bool {
    use argon2::{Algorithm, Params, PasswordHash, Version};
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let computed = ARGON2_MEMORY.with(|mem| {
        let mut mem = mem.borrow_mut();
        if mem.len() < blocks {
            mem.resize(blocks, argon2::Block::default());
        }
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut mem[..blocks])
            .is_ok()
    });
    // Output's equality is constant-time.
    computed && argon2::password_hash::phc::Output::new(&out).is_ok_and(|o| o == *expected)
}

impl Identity {
    /// Loads live tokens from the store.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        ttl_secs: u64,
    ) -> Result<Identity, AuthError> {
        let id = Identity {
            store,
            clock,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
            tokens: RwLock::new(HashMap::new()),
            passwords: PasswordPool::new(PASSWORD_THREADS, PASSWORD_QUEUE)
                .map_err(AuthError::Threads)?,
            changes: tokio::sync::watch::channel(0).0,
        };
        let now = id.clock.now();
        id.store.purge_expired_tokens(now)?;
        let mut cache = HashMap::new();
        for t in id.store.live_tokens(now)? {
            if let Some(p) = id.principal_for(&t)? {
                cache.insert(t.hash.clone(), p);
            }
        }
        *id.tokens.write().unwrap_or_else(|e| e.into_inner()) = cache;
        Ok(id)
    }

    fn principal_for(&self, t: &StoredToken) -> Result<Option<Principal>, AuthError> {
        let Some(user) = self.store.user_by_id(&t.user_id)? else {
            return Ok(None);
        };
        let (project, roles) = match &t.project_id {
            Some(pid) => match self.store.project(pid)? {
                Some(p) => {
                    let roles = self.store.roles(&user.id, &p.0)?;
                    (Some(p), roles)
                }
                None => return Ok(None),
            },
            None => (None, vec![]),
        };
        Ok(Some(Principal {
            user_id: user.id,
            user_name: user.name,
            project,
            roles,
            methods: t.methods.split(',').map(str::to_string).collect(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
        }))
    }

    /// Creates the `admin` user on first start. Its password is
    /// `env_password` if given, else random and written to the data
    /// directory's `admin-credentials` (mode 0600). Returns whether the user
    /// was created.
    pub fn ensure_admin(
        &self,
        data: &DataDir,
        env_password: Option<String>,
    ) -> Result<bool, anyhow::Error> {
        if self.store.user_by_name(ADMIN)?.is_some() {
            return Ok(false);
        }
        let (password, generated) = match env_password.filter(|p| !p.is_empty()) {
            Some(p) => (p, false),
            None => (random_secret(24), true),
        };
        let user = StoredUser {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: ADMIN.into(),
            password_hash: hash_password(&password).map_err(anyhow::Error::msg)?,
        };
        let project_id = uuid::Uuid::new_v4().simple().to_string();
        if generated {
            data.write_secret(
                &data.admin_credentials(),
                &format!("username={ADMIN}\npassword={password}\n"),
            )?;
        }
        self.store.ensure_user(
            &user,
            (&project_id, ADMIN),
            &["admin", "member", "reader"],
            self.clock.now(),
        )?;
        Ok(true)
    }

    /// The threads password checks and hashes run on.
    pub fn passwords(&self) -> &PasswordPool {
        &self.passwords
    }

    /// Checks a user's password (blocking: argon2 takes tens of milliseconds;
    /// run it on [`Identity::passwords`]).
    pub fn check_password(
        &self,
        user_id: Option<&str>,
        user_name: Option<&str>,
        password: &str,
    ) -> Result<StoredUser, AuthError> {
        let user = match (user_id, user_name) {
            (Some(id), _) => self.store.user_by_id(id)?,
            (None, Some(name)) => self.store.user_by_name(name)?,
            (None, None) => {
                return Err(AuthError::BadRequest(
                    "the password method needs a user name or id".into(),
                ));
            }
        };
        match user {
            Some(u) if verify_password_reusing(password, &u.password_hash) => Ok(u),
            Some(_) => Err(AuthError::Unauthorized),
            None => {
                // Spend the same time as a real check so that user names cannot be probed.
                let _ = verify_password_reusing(password, DUMMY_HASH);
                Err(AuthError::Unauthorized)
            }
        }
    }

    /// Issues a token for `user`, scoped to `project` (name or id) when given.
    /// `expires_at` caps the lifetime (a token made from a token never
    /// outlives it). Returns the secret and its principal.
    pub fn issue(
        &self,
        user: &StoredUser,
        project: Option<&str>,
        methods: &[&str],
        expires_at: Option<Timestamp>,
    ) -> Result<(String, Principal), AuthError> {
        let now = self.clock.now();
        let (project, roles) = match project {
            None => (None, vec![]),
            Some(p) => {
                let Some(p) = self.store.project(p)? else {
                    return Err(AuthError::Unauthorized);
                };
                let roles = self.store.roles(&user.id, &p.0)?;
                if roles.is_empty() {
                    return Err(AuthError::Unauthorized);
                }
                (Some(p), roles)
            }
        };
        let mut expiry = now.plus_secs(self.ttl_secs);
        if let Some(cap) = expires_at {
            expiry = expiry.min(cap);
        }
        let secret = random_secret(32);
        let hash = hash_token(&secret);
        self.store.insert_token(&StoredToken {
            hash: hash.clone(),
            user_id: user.id.clone(),
            project_id: project.as_ref().map(|p| p.0.clone()),
            methods: methods.join(","),
            issued_at: now,
            expires_at: expiry,
        })?;
        let principal = Principal {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            project,
            roles,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            issued_at: now,
            expires_at: expiry,
        };
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, principal.clone());
        Ok((secret, principal))
    }

    /// The holder of a token, if it is valid now.
    pub fn validate(&self, token: &str) -> Option<Principal> {
        let now = self.clock.now();
        let hash = hash_token(token);
        let cache = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        cache.get(&hash).filter(|p| p.expires_at > now).cloned()
    }

    /// The user behind a valid token.
    pub fn user_of(&self, p: &Principal) -> Result<StoredUser, AuthError> {
        self.store
            .user_by_id(&p.user_id)?
            .ok_or(AuthError::Unauthorized)
    }

    /// Revokes a token; false if it was not valid.
    pub fn revoke(&self, token: &str) -> Result<bool, AuthError> {
        let hash = hash_token(token);
        let known = self
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hash)
            .is_some();
        let stored = self.store.delete_token(&hash)?;
        Ok(known || stored)
    }

    /// Changes a user's password after checking the current one.
    pub fn change_password(
        &self,
        user_id: &str,
        original: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let user = self.check_password(Some(user_id), None, original)?;
        let hash = hash_password(new).map_err(AuthError::BadRequest)?;
        if !self.store.set_password_hash(&user.id, &hash)? {
            return Err(AuthError::Unauthorized);
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Told after every committed change of users or passwords.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Forgets expired tokens, in memory and in the store.
    pub fn purge_expired(&self) -> Result<usize, AuthError> {
        let now = self.clock.now();
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.expires_at > now);
        Ok(self.store.purge_expired_tokens(now)?)
    }
}

/// An argon2id hash of a random password, used to spend the time of a
/// password check when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$cm9vc3RkdW1teXNhbHQ$2NwUK1QhsqJ1VY8F6DgqzDIv3uxrD5qYKsAe0DfCnv4";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        for _ in 0..2 {
            assert!(verify_password_reusing("s3cret", &h));
            assert!(!verify_password_reusing("other", &h));
        }
        assert!(!verify_password_reusing("s3cret", "$argon2id$nonsense"));
        assert!(verify_password_reusing("x", &hash_password("x").unwrap()));
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let a = random_secret(32);
        let b = random_secret(32);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn token_hashes_are_stable_hex() {
        assert_eq!(hash_token("x").len(), 64);
        assert_eq!(hash_token("x"), hash_token("x"));
    }
}
