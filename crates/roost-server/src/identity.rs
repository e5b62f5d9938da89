//! Identity: the admin user, password checks (argon2id), and tokens.
//!
//! A token is 256 random bits, handed out once; only its SHA-256 is kept,
//! in the store and in an in-memory cache that every request consults.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use roost_store::{Store, StoredAppCredential, StoredToken, StoredUser};
use roost_types::{Clock, Timestamp};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::datadir::DataDir;

/// Why a password check was refused at once.
const BUSY: &str = "too many password checks in progress; retry later";

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
    /// The application credential the token was issued with, if any.
    pub app_cred_id: Option<String>,
}

/// Threads that hash and verify passwords. Each argon2 check needs 19 MiB
/// for a few tens of milliseconds, so they run here, two at a time, instead
/// of on the runtime's blocking threads that the store and the services
/// share: a flood of logins cannot starve other work or grow memory.
pub const PASSWORD_THREADS: usize = 2;
/// Password checks that may wait for a thread; beyond them a check is
/// refused at once ([`Error::Busy`], answered 503).
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

    /// Runs `f` on a password thread; [`Error::Busy`] at once if the
    /// queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx.try_send(job).map_err(|_| Error::Busy(BUSY))?;
        result.await.map_err(|_| Error::Busy(BUSY))?
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
    policy: LoginPolicy,
    /// Growing delays after wrong passwords, per source address and per
    /// user name.
    throttle: std::sync::Mutex<Throttle>,
}

/// How wrong passwords are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Wrong passwords in a row that lock an account (Keystone's
    /// `lockout_failure_attempts`); 0 never locks.
    pub lockout_failure_attempts: u32,
    /// How long a locked account stays locked (Keystone's
    /// `lockout_duration`), seconds.
    pub lockout_duration_secs: u64,
    /// Wrong passwords from one source or for one user name answered at
    /// once; each further one waits twice as long as the last, from
    /// [`THROTTLE_BASE_MS`] up to `max_delay_ms`.
    pub free_failures: u32,
    pub max_delay_ms: u64,
    /// Longest an attempt made during its delay is held before it is
    /// answered (then checked if the delay is over, else answered 429).
    pub max_hold_ms: u64,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            lockout_failure_attempts: 6,
            lockout_duration_secs: 1800,
            free_failures: 3,
            max_delay_ms: 30_000,
            max_hold_ms: 10_000,
        }
    }
}

/// The first delay after the free wrong passwords.
pub const THROTTLE_BASE_MS: u64 = 250;
/// Sources and user names remembered at most; the longest idle go first.
const THROTTLE_KEYS: usize = 16_384;
/// A key idle this long (microseconds) starts again from nothing.
const THROTTLE_FORGET_US: i64 = 15 * 60 * 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    not_before: Timestamp,
    last: Timestamp,
}

/// Growing delays after wrong passwords, per key (a source address or a
/// user name): pure, fed the time. Bounded: at most [`THROTTLE_KEYS`]
/// keys, the longest idle forgotten first.
#[derive(Debug)]
pub struct Throttle {
    keys: HashMap<String, Strikes>,
    free: u32,
    max_delay_ms: u64,
    cap: usize,
}

impl Throttle {
    pub fn new(free: u32, max_delay_ms: u64) -> Throttle {
        Throttle::with_capacity(free, max_delay_ms, THROTTLE_KEYS)
    }

    /// Remembering at most `cap` keys.
    pub fn with_capacity(free: u32, max_delay_ms: u64, cap: usize) -> Throttle {
        Throttle {
            keys: HashMap::new(),
            free,
            max_delay_ms,
            cap: cap.max(1),
        }
    }

    /// Milliseconds before `key` may try again (0: now).
    pub fn wait_ms(&self, key: &str, now: Timestamp) -> u64 {
        match self.keys.get(key) {
            Some(s) if now.micros() - s.last.micros() < THROTTLE_FORGET_US => {
                let left = s.not_before.micros() - now.micros();
                if left > 0 {
                    (left as u64).div_ceil(1000)
                } else {
                    0
                }
            }
            _ => 0,
        }
    }

    /// A wrong password for `key`.
    pub fn failed(&mut self, key: &str, now: Timestamp) {
        if !self.keys.contains_key(key) && self.keys.len() >= self.cap {
            let idle = self
                .keys
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = idle {
                self.keys.remove(&k);
            }
        }
        let e = self.keys.entry(key.to_string()).or_insert(Strikes {
            failures: 0,
            not_before: now,
            last: now,
        });
        if now.micros() - e.last.micros() >= THROTTLE_FORGET_US {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        let over = e.failures.saturating_sub(self.free);
        let delay_ms = if over == 0 {
            0
        } else {
            THROTTLE_BASE_MS
                .saturating_mul(1u64 << (over - 1).min(20))
                .min(self.max_delay_ms)
        };
        e.not_before = Timestamp(now.micros().saturating_add((delay_ms * 1000) as i64));
    }

    /// A good password for `key`: its delays end.
    pub fn succeeded(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
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
pub fn hash_password(password: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("cannot hash password: {e}")))
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
        policy: LoginPolicy,
    ) -> Result<Identity, Error> {
        let id = Identity {
            policy,
            throttle: std::sync::Mutex::new(Throttle::new(
                policy.free_failures,
                policy.max_delay_ms,
            )),
            store,
            clock,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
            tokens: RwLock::new(HashMap::new()),
            passwords: PasswordPool::new(PASSWORD_THREADS, PASSWORD_QUEUE)
                .map_err(|e| Error::context("cannot start the password threads", e))?,
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

    fn principal_for(&self, t: &StoredToken) -> Result<Option<Principal>, Error> {
        let Some(user) = self.store.user_by_id(&t.user_id)? else {
            return Ok(None);
        };
        let (project, mut roles) = match &t.project_id {
            Some(pid) => match self.store.project(pid)? {
                Some(p) => {
                    let roles = self.store.roles(&user.id, &p.0)?;
                    (Some(p), roles)
                }
                None => return Ok(None),
            },
            None => (None, vec![]),
        };
        if let Some(cred) = &t.app_cred_id {
            let Some(cred) = self.store.app_credential(cred)? else {
                return Ok(None);
            };
            roles.retain(|r| cred.roles.contains(r));
        }
        Ok(Some(Principal {
            user_id: user.id,
            user_name: user.name,
            project,
            roles,
            methods: t.methods.split(',').map(str::to_string).collect(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            app_cred_id: t.app_cred_id.clone(),
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
    ) -> Result<bool, Error> {
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
            password_hash: hash_password(&password)?,
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

    /// Milliseconds before a login from `source` for `user` may be tried
    /// (0: now): both wait out their growing delays.
    pub fn login_wait_ms(&self, source: Option<std::net::IpAddr>, user: &str) -> u64 {
        let now = self.clock.now();
        let t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let by_source = source.map_or(0, |s| t.wait_ms(&format!("ip:{s}"), now));
        by_source.max(t.wait_ms(&format!("user:{user}"), now))
    }

    /// The login policy.
    pub fn policy(&self) -> LoginPolicy {
        self.policy
    }

    /// A login refused without a check (no password thread free): it
    /// counts towards the delays of `source` and the user name.
    pub fn login_refused(&self, source: Option<std::net::IpAddr>, user: &str) {
        let now = self.clock.now();
        let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        t.failed(&format!("user:{user}"), now);
        if let Some(s) = source {
            t.failed(&format!("ip:{s}"), now);
        }
    }

    /// Checks a user's password (blocking: argon2 takes tens of milliseconds;
    /// run it on [`Identity::passwords`]). A disabled or locked account is
    /// refused without a check; a wrong password counts towards the
    /// account's lockout and the delays of `source` and the user name.
    pub fn check_password(
        &self,
        user_id: Option<&str>,
        user_name: Option<&str>,
        password: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<StoredUser, Error> {
        let user = match (user_id, user_name) {
            (Some(id), _) => self.store.user_by_id(id)?,
            (None, Some(name)) => self.store.user_by_name(name)?,
            (None, None) => {
                return Err(Error::Invalid(
                    "the password method needs a user name or id".into(),
                ));
            }
        };
        let key = format!("user:{}", user_id.or(user_name).unwrap_or_default());
        let now = self.clock.now();
        if let Some(u) = &user {
            let account = self.store.account(&u.id)?;
            if let Some(a) = account {
                if !a.enabled {
                    return Err(Error::Unauthorized(format!(
                        "The account is disabled for user: {}.",
                        u.id
                    )));
                }
                if a.locked_until > now {
                    return Err(Error::Unauthorized(format!(
                        "The account is locked for user: {}.",
                        u.id
                    )));
                }
            }
        }
        let good = match &user {
            Some(u) => verify_password_reusing(password, &u.password_hash),
            None => {
                // Spend the same time as a real check so that user names cannot be probed.
                let _ = verify_password_reusing(password, DUMMY_HASH);
                false
            }
        };
        let now = self.clock.now();
        if good {
            let u = user.ok_or_else(Error::unauthenticated)?;
            self.throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .succeeded(&key);
            self.store.record_good_login(&u.id)?;
            return Ok(u);
        }
        {
            let mut t = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
            t.failed(&key, now);
            if let Some(s) = source {
                t.failed(&format!("ip:{s}"), now);
            }
        }
        if let Some(u) = &user {
            let until = self.store.record_failed_login(
                &u.id,
                self.policy.lockout_failure_attempts,
                i64::try_from(self.policy.lockout_duration_secs).unwrap_or(i64::MAX),
                now,
            )?;
            if until.micros() > 0 {
                // Tokens already issued stay valid, as Keystone keeps them:
                // wrong passwords alone cannot log anyone out.
                tracing::warn!(user = %u.name, until = %until, "account locked after repeated wrong passwords");
            }
        }
        Err(Error::unauthenticated())
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
    ) -> Result<(String, Principal), Error> {
        self.issue_with(user, project, methods, expires_at, None)
    }

    /// [`Identity::issue`], the roles bounded by an application
    /// credential's when the token is made with one.
    fn issue_with(
        &self,
        user: &StoredUser,
        project: Option<&str>,
        methods: &[&str],
        expires_at: Option<Timestamp>,
        cred: Option<&StoredAppCredential>,
    ) -> Result<(String, Principal), Error> {
        let now = self.clock.now();
        let (project, roles) = match project {
            None => (None, vec![]),
            Some(p) => {
                let Some(p) = self.store.project(p)? else {
                    return Err(Error::unauthenticated());
                };
                let mut roles = self.store.roles(&user.id, &p.0)?;
                if let Some(c) = cred {
                    roles.retain(|r| c.roles.contains(r));
                }
                if roles.is_empty() {
                    return Err(Error::unauthenticated());
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
            app_cred_id: cred.map(|c| c.id.clone()),
        })?;
        let principal = Principal {
            user_id: user.id.clone(),
            user_name: user.name.clone(),
            project,
            roles,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            issued_at: now,
            expires_at: expiry,
            app_cred_id: cred.map(|c| c.id.clone()),
        };
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash, principal.clone());
        Ok((secret, principal))
    }

    /// Creates an application credential for the holder of `who` (a
    /// project-scoped token): scoped to its project, with `roles` (each
    /// one the token holds; none: all of the token's). `secret` is made
    /// here when not given. Returns the credential and its secret.
    pub fn create_app_credential(
        &self,
        who: &Principal,
        name: &str,
        description: &str,
        expires_at: Option<Timestamp>,
        roles: Option<Vec<String>>,
        secret: Option<String>,
    ) -> Result<(StoredAppCredential, String), Error> {
        let Some((project_id, _)) = &who.project else {
            return Err(Error::Invalid(
                "an application credential needs a project-scoped token".into(),
            ));
        };
        let now = self.clock.now();
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Invalid("expires_at is in the past".into()));
        }
        let roles = match roles {
            None => who.roles.clone(),
            Some(asked) => {
                for r in &asked {
                    if !who.roles.contains(r) {
                        return Err(Error::Invalid(format!(
                            "you do not hold role {r} on this project; a credential can have only roles you hold ({})",
                            who.roles.join(", ")
                        )));
                    }
                }
                let mut asked = asked;
                asked.sort();
                asked.dedup();
                asked
            }
        };
        if roles.is_empty() {
            return Err(Error::Invalid(
                "an application credential needs at least one role".into(),
            ));
        }
        let (secret, secret_hash) = match secret {
            // A secret chosen by the user may be weak: argon2id, as passwords.
            Some(s) => {
                let h = hash_password(&s)?;
                (s, h)
            }
            // 256 random bits need no slow hash, as tokens.
            None => {
                let s = random_secret(43);
                let h = format!("sha256:{}", hash_token(&s));
                (s, h)
            }
        };
        let cred = StoredAppCredential {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: who.user_id.clone(),
            project_id: project_id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            secret_hash,
            roles,
            expires_at,
            created_at: now,
        };
        if !self.store.insert_app_credential(&cred)? {
            return Err(Error::Conflict(format!(
                "an application credential named {name} exists for user {}",
                who.user_name
            )));
        }
        Ok((cred, secret))
    }

    /// Checks an application credential's secret (blocking: a chosen
    /// secret is checked with argon2; run it on [`Identity::passwords`]).
    /// The credential is found by `id`, or by `name` and its owner (`user`
    /// id or name). An unknown, expired or wrong one, or one whose user is
    /// disabled or locked, is refused alike.
    pub fn check_app_credential(
        &self,
        id: Option<&str>,
        name: Option<&str>,
        user: Option<&str>,
        secret: &str,
    ) -> Result<(StoredUser, StoredAppCredential), Error> {
        let cred = match (id, name, user) {
            (Some(id), _, _) => self.store.app_credential(id)?,
            (None, Some(name), Some(user)) => match self.store.account(user)? {
                Some(a) => self.store.app_credential_by_name(&a.id, name)?,
                None => None,
            },
            _ => {
                return Err(Error::Invalid(
                    "the application_credential method needs an id, or a name and a user".into(),
                ));
            }
        };
        let Some(cred) = cred else {
            let _ = verify_password_reusing(secret, DUMMY_HASH);
            return Err(Error::unauthenticated());
        };
        let good = match cred.secret_hash.strip_prefix("sha256:") {
            Some(hex) => {
                let computed = hash_token(secret);
                constant_time_eq(computed.as_bytes(), hex.as_bytes())
            }
            None => verify_password_reusing(secret, &cred.secret_hash),
        };
        if !good {
            return Err(Error::unauthenticated());
        }
        let now = self.clock.now();
        if cred.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::Unauthorized(format!(
                "The application credential {} has expired.",
                cred.id
            )));
        }
        let Some(account) = self.store.account(&cred.user_id)? else {
            return Err(Error::unauthenticated());
        };
        if !account.enabled {
            return Err(Error::Unauthorized(format!(
                "The account is disabled for user: {}.",
                account.id
            )));
        }
        if account.locked_until > now {
            return Err(Error::Unauthorized(format!(
                "The account is locked for user: {}.",
                account.id
            )));
        }
        let user = self
            .store
            .user_by_id(&cred.user_id)?
            .ok_or_else(Error::unauthenticated)?;
        Ok((user, cred))
    }

    /// Issues a token with a checked application credential: scoped to
    /// its project, with its roles that the user still holds, expiring no
    /// later than it does.
    pub fn issue_for_app_credential(
        &self,
        user: &StoredUser,
        cred: &StoredAppCredential,
    ) -> Result<(String, Principal), Error> {
        self.issue_with(
            user,
            Some(&cred.project_id),
            &["application_credential"],
            cred.expires_at,
            Some(cred),
        )
    }

    /// Deletes an application credential of a user and revokes the tokens
    /// it issued.
    pub fn delete_app_credential(&self, user_id: &str, id: &str) -> Result<(), Error> {
        if self.store.delete_app_credential(user_id, id)?.is_none() {
            return Err(Error::NotFound(format!(
                "Could not find application credential: {id}."
            )));
        }
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.app_cred_id.as_deref() != Some(id));
        Ok(())
    }

    /// The holder of a token, if it is valid now.
    pub fn validate(&self, token: &str) -> Option<Principal> {
        let now = self.clock.now();
        let hash = hash_token(token);
        let cache = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        cache.get(&hash).filter(|p| p.expires_at > now).cloned()
    }

    /// The user behind a valid token.
    pub fn user_of(&self, p: &Principal) -> Result<StoredUser, Error> {
        self.store
            .user_by_id(&p.user_id)?
            .ok_or_else(Error::unauthenticated)
    }

    /// Revokes a token; false if it was not valid.
    pub fn revoke(&self, token: &str) -> Result<bool, Error> {
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
    pub fn change_password(&self, user_id: &str, original: &str, new: &str) -> Result<(), Error> {
        let user = self.check_password(Some(user_id), None, original, None)?;
        self.set_password(&user.id, new)
    }

    /// Sets a user's password (an admin's reset, or after the check of the
    /// current one): every token of the user is revoked, as Keystone does.
    pub fn set_password(&self, user_id: &str, new: &str) -> Result<(), Error> {
        let hash = hash_password(new)?;
        if !self.store.set_password_hash(user_id, &hash)? {
            return Err(Error::unauthenticated());
        }
        self.revoke_user_tokens(user_id)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Revokes every token of a user, in the store and in memory.
    pub fn revoke_user_tokens(&self, user_id: &str) -> Result<usize, Error> {
        let hashes = self.store.delete_user_tokens(user_id)?;
        let mut cache = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, p| p.user_id != user_id);
        Ok(hashes.len())
    }

    /// Forgets cached principals of a user whose roles changed: its
    /// tokens are revoked (Keystone revokes on a role removal too).
    pub fn roles_changed(&self, user_id: &str) -> Result<(), Error> {
        self.revoke_user_tokens(user_id)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Creates a user with `roles` on the `admin` project.
    pub fn create_user(
        &self,
        name: &str,
        password: &str,
        enabled: bool,
        roles: &[String],
    ) -> Result<roost_store::UserAccount, Error> {
        let user = StoredUser {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name: name.to_string(),
            password_hash: hash_password(password)?,
        };
        if !self
            .store
            .create_user(&user, enabled, roles, self.clock.now())?
        {
            return Err(Error::Conflict(format!("a user named {name} exists")));
        }
        self.changes.send_modify(|n| *n += 1);
        self.store
            .account(&user.id)?
            .ok_or_else(|| Error::Internal("a created user is missing".into()))
    }

    /// Deletes a user: its tokens and role assignments go with it.
    pub fn delete_user(&self, user_id: &str) -> Result<(), Error> {
        let name = self
            .store
            .account(user_id)?
            .map(|a| a.name)
            .ok_or_else(|| Error::NotFound(format!("Could not find user: {user_id}.")))?;
        if name == ADMIN {
            return Err(Error::Invalid(
                "the built-in admin user cannot be deleted".into(),
            ));
        }
        self.revoke_user_tokens(user_id)?;
        self.store.delete_user(user_id)?;
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Renames, enables (clearing a lockout) or disables a user; disabling
    /// revokes its tokens.
    pub fn update_user(
        &self,
        user_id: &str,
        name: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<(), Error> {
        if !self.store.update_user(user_id, name, enabled)? {
            return Err(Error::NotFound(format!("Could not find user: {user_id}.")));
        }
        if enabled == Some(false) {
            self.revoke_user_tokens(user_id)?;
        }
        if enabled == Some(true)
            && let Some(a) = self.store.account(user_id)?
        {
            self.throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .succeeded(&format!("user:{}", a.name));
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// The store, for reads of users and roles.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The identity service's time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Told after every committed change of users or passwords.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Forgets expired tokens, in memory and in the store.
    pub fn purge_expired(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, p| p.expires_at > now);
        Ok(self.store.purge_expired_tokens(now)?)
    }
}

/// Whether two byte strings are equal, in time that depends only on their
/// lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    fn wrong_passwords_wait_longer_and_longer_after_the_free_ones() {
        let mut t = Throttle::new(3, 2_000);
        let at = |ms: i64| Timestamp(1_000_000_000 + ms * 1000);
        for i in 0..3 {
            assert_eq!(t.wait_ms("ip:a", at(i)), 0);
            t.failed("ip:a", at(i));
        }
        assert_eq!(t.wait_ms("ip:a", at(3)), 0, "three are free");
        t.failed("ip:a", at(3));
        assert_eq!(t.wait_ms("ip:a", at(3)), THROTTLE_BASE_MS);
        t.failed("ip:a", at(3));
        assert_eq!(t.wait_ms("ip:a", at(3)), 2 * THROTTLE_BASE_MS);
        for _ in 0..10 {
            t.failed("ip:a", at(3));
        }
        assert_eq!(t.wait_ms("ip:a", at(3)), 2_000, "capped");
        assert_eq!(t.wait_ms("ip:a", at(2_003)), 0, "waited out");
        assert_eq!(t.wait_ms("ip:b", at(3)), 0, "another key is free");
        t.succeeded("ip:a");
        assert_eq!(t.wait_ms("ip:a", at(4)), 0);
        // Long idle: forgotten.
        t.failed("user:x", at(0));
        for _ in 0..5 {
            t.failed("user:x", at(0));
        }
        assert!(t.wait_ms("user:x", at(1)) > 0);
        assert_eq!(t.wait_ms("user:x", at(16 * 60 * 1000)), 0);
    }

    #[test]
    fn the_throttle_remembers_a_bounded_number_of_keys() {
        let mut t = Throttle::with_capacity(0, 1_000, 64);
        for i in 0..164 {
            t.failed(&format!("ip:{i}"), Timestamp(i));
        }
        assert_eq!(t.len(), 64);
        // The newest are kept, the oldest forgotten.
        assert!(t.wait_ms("ip:163", Timestamp(163)) > 0);
        assert_eq!(t.wait_ms("ip:0", Timestamp(163)), 0);
    }

    #[test]
    fn token_hashes_are_stable_hex() {
        assert_eq!(hash_token("x").len(), 64);
        assert_eq!(hash_token("x"), hash_token("x"));
    }
}
