//! Roles, users and logins through the real binary: every route of the
//! route table called under every role and with every kind of bad token;
//! token revocation on password changes, role changes and deletion;
//! account lockout and growing delays; Prometheus's bearer token; and the
//! stock `openstack user|role` commands.

use std::path::Path;
use std::time::{Duration, Instant};

use roost_api::openapi::{Access, ROUTES};
use roost_test_support::{PASSWORD, Server, ServerOptions, http, require_or_skip, wait_for};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// A server with `config` as its configuration file.
fn server_with(config: &str) -> (Server, tempfile::TempDir) {
    let cfg = tempfile::tempdir().unwrap();
    let p = cfg.path().join("roost.toml");
    std::fs::write(&p, config).unwrap();
    let s = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--config".into(), p.display().to_string()],
            ..Default::default()
        },
    );
    (s, cfg)
}

fn login_body(user: &str, password: &str) -> Value {
    serde_json::to_value(roost_api::identity::AuthRequest::password_scoped(
        user, password,
    ))
    .unwrap()
}

/// `(status, token, body)` of a login.
fn login(s: &Server, user: &str, password: &str) -> (u16, Option<String>, Value) {
    let (status, headers, body) = s.login(login_body(user, password));
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, token, body)
}

fn token(s: &Server, user: &str, password: &str) -> String {
    let (status, t, body) = login(s, user, password);
    assert_eq!(status, 201, "{user}: {body}");
    t.unwrap()
}

fn create_user(s: &Server, name: &str, password: &str, roles: &[&str]) -> String {
    let r = s.api().post(
        "/v3/users",
        &json!({"user": {"name": name, "password": password, "roles": roles}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["user"]["id"].as_str().unwrap().to_string()
}

/// `method path` with `token` (none: no header): the status.
fn call(s: &Server, method: &str, path: &str, token: Option<&str>) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rb = client.request(method.parse().unwrap(), format!("{}{path}", s.url));
    if let Some(t) = token {
        rb = rb.header("X-Auth-Token", t);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        rb = rb.header("Content-Type", "application/json").body("{}");
    }
    rb.send()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
        .status()
        .as_u16()
}

/// A route's path with every parameter filled with a name nothing has.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("no-such-thing");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// Fresh tokens of one user, taken again before they expire.
struct Holder<'a> {
    server: &'a Server,
    user: &'static str,
    password: &'static str,
    token: String,
    at: Instant,
}

impl Holder<'_> {
    fn token(&mut self) -> &str {
        // Tokens live 5 s: taken again after 1 s, so that one call, however
        // slow on a loaded machine, has 4 s before its token expires.
        if self.at.elapsed() > Duration::from_secs(1) {
            self.token = token(self.server, self.user, self.password);
            self.at = Instant::now();
        }
        &self.token
    }
}

#[test]
fn every_route_refuses_callers_the_route_table_does_not_allow() {
    // Tokens live 5 s here, so that one can be seen to expire.
    let (s, _cfg) = server_with("token_ttl_secs = 5\n");
    let (other, _cfg2) = server_with("");
    let expiring = s.token();
    create_user(&s, "rita", "reader-password", &["reader"]);
    create_user(&s, "mo", "member-password", &["member"]);
    let revoked = s.token();
    let r = http()
        .delete(format!("{}/v3/auth/tokens", s.url))
        .header("X-Auth-Token", s.token())
        .header("X-Subject-Token", &revoked)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // Valid on another Roost, unknown here.
    let foreign = other.token();
    // The expiring token is refused once its 5 s are over.
    wait_for(30, || {
        let r = http()
            .get(format!("{}/v1/alarms", s.url))
            .header("X-Auth-Token", &expiring)
            .send()
            .unwrap();
        (r.status().as_u16() == 401).then_some(())
    })
    .expect("the token expires");

    let now = Instant::now();
    let mut holders = [
        (
            "reader",
            Access::Reader,
            Holder {
                server: &s,
                user: "rita",
                password: "reader-password",
                token: String::new(),
                at: now - Duration::from_secs(60),
            },
        ),
        (
            "member",
            Access::Member,
            Holder {
                server: &s,
                user: "mo",
                password: "member-password",
                token: String::new(),
                at: now - Duration::from_secs(60),
            },
        ),
        (
            "admin",
            Access::Admin,
            Holder {
                server: &s,
                user: "admin",
                password: PASSWORD,
                token: String::new(),
                at: now - Duration::from_secs(60),
            },
        ),
    ];
    let mut checked = 0;
    for route in ROUTES {
        let method = route.method.to_uppercase();
        let path = concrete(route.path);
        let what = format!("{method} {} ({:?})", route.path, route.access);
        match route.access {
            Access::Public => continue,
            Access::Agent => {
                // Agents prove themselves with their own credential: no
                // header, and a user's token, are both refused.
                let status = call(&s, &method, &path, None);
                // Enrollment's credential is the join token in its body.
                let refused = status == 401 || (route.path == "/v1/agent/enroll" && status == 400);
                assert!(refused, "{what}: no credential, got {status}");
                continue;
            }
            _ => {}
        }
        for (bad, t) in [
            ("no token", None),
            ("an expired token", Some(expiring.as_str())),
            ("a revoked token", Some(revoked.as_str())),
            ("a foreign token", Some(foreign.as_str())),
        ] {
            assert_eq!(call(&s, &method, &path, t), 401, "{what} with {bad}");
        }
        for (role, level, holder) in holders.iter_mut() {
            let status = call(&s, &method, &path, Some(holder.token()));
            let allowed = route.access.allows(&[role.to_string()]);
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{what}: a {role} is allowed, got {status}"
                );
            } else {
                assert_eq!(status, 403, "{what}: a {role} is refused");
                assert!(*level < route.access, "{what}");
            }
        }
        checked += 1;
    }
    let with_token = ROUTES.iter().filter(|r| r.access.needs_token()).count();
    assert_eq!(checked, with_token);
    assert!(checked >= 80, "{checked} routes checked");
}

#[test]
fn password_changes_role_changes_and_deletion_revoke_a_users_tokens() {
    let s = Server::start(bin());
    let api = s.api();
    let bob = create_user(&s, "bob", "bob-password-1", &["member"]);
    let alarms = |t: &str| call(&s, "GET", "/v1/alarms", Some(t));

    // An admin sets a new password: bob's tokens are revoked.
    let t1 = token(&s, "bob", "bob-password-1");
    assert_eq!(alarms(&t1), 200);
    let r = api.patch(
        &format!("/v3/users/{bob}"),
        &json!({"user": {"password": "bob-password-2"}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(alarms(&t1), 401, "revoked by the admin's reset");
    assert_eq!(login(&s, "bob", "bob-password-1").0, 401);

    // Bob changes his own: his tokens are revoked.
    let t2 = token(&s, "bob", "bob-password-2");
    let t2b = token(&s, "bob", "bob-password-2");
    let r = http()
        .post(format!("{}/v3/users/{bob}/password", s.url))
        .header("X-Auth-Token", &t2)
        .json(
            &json!({"user": {"password": "bob-password-3", "original_password": "bob-password-2"}}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(alarms(&t2), 401);
    assert_eq!(alarms(&t2b), 401, "every token, not only the one used");

    // A role taken away: the tokens that carried it are revoked.
    let t3 = token(&s, "bob", "bob-password-3");
    let admin_project = api.get("/v3/projects?name=admin").body["projects"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api.delete(&format!(
        "/v3/projects/{admin_project}/users/{bob}/roles/member"
    ));
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(alarms(&t3), 401);
    // With no role left, bob cannot get a scoped token.
    assert_eq!(login(&s, "bob", "bob-password-3").0, 401);
    let r = api.put(
        &format!("/v3/projects/{admin_project}/users/{bob}/roles/reader"),
        &json!({}),
    );
    assert_eq!(r.status, 204, "{:?}", r.body);
    let t4 = token(&s, "bob", "bob-password-3");
    assert_eq!(alarms(&t4), 200, "a reader reads");
    assert_eq!(
        call(&s, "POST", "/v1/alarms", Some(&t4)),
        403,
        "and changes nothing"
    );

    // Deleted: refused at once, and gone from the list.
    let r = api.delete(&format!("/v3/users/{bob}"));
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(alarms(&t4), 401);
    assert_eq!(login(&s, "bob", "bob-password-3").0, 401);
    let names: Vec<String> = api.get("/v3/users").body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["admin"]);

    // The built-in admin stays.
    let admin_id = api.get("/v3/users/admin").body["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api.delete(&format!("/v3/users/{admin_id}")).status, 400);
    let r = api.patch(
        &format!("/v3/users/{admin_id}"),
        &json!({"user": {"enabled": false}}),
    );
    assert_eq!(r.status, 400);
    // Bad input: clear refusals, nothing stored.
    for body in [
        json!({"user": {"name": "carol", "password": "short"}}),
        json!({"user": {"name": "", "password": "long-enough-1"}}),
        json!({"user": {"name": "carol"}}),
        json!({"user": {"name": "carol", "password": "long-enough-1", "roles": ["root"]}}),
    ] {
        let r = api.post("/v3/users", &body);
        assert_eq!(r.status, 400, "{body}: {:?}", r.body);
        assert!(r.body["error"]["message"].is_string());
    }
    create_user(&s, "carol", "long-enough-1", &["reader"]);
    let r = api.post(
        "/v3/users",
        &json!({"user": {"name": "carol", "password": "long-enough-2"}}),
    );
    assert_eq!(r.status, 400, "a second carol: {:?}", r.body);
}

#[test]
fn an_account_locks_after_wrong_passwords_until_an_admin_clears_it_or_the_time_passes() {
    let (s, _cfg) = server_with(
        "[identity]\nlockout_failure_attempts = 3\nlockout_duration_secs = 3\nlogin_free_failures = 100\n",
    );
    let api = s.api();
    let dora = create_user(&s, "dora", "dora-password", &["reader"]);
    let held = token(&s, "dora", "dora-password");
    for _ in 0..3 {
        assert_eq!(login(&s, "dora", "wrong-password").0, 401);
    }
    // Locked: even the right password is refused, and says why.
    let (status, _, body) = login(&s, "dora", "dora-password");
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked"),
        "{body}"
    );
    let shown = api.get(&format!("/v3/users/{dora}")).body;
    assert!(shown["user"]["locked_until"].is_string(), "{shown}");
    // A token issued before stays valid: wrong passwords log nobody out.
    assert_eq!(call(&s, "GET", "/v1/alarms", Some(&held)), 200);

    // An admin clears it.
    let r = api.patch(
        &format!("/v3/users/{dora}"),
        &json!({"user": {"enabled": true}}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["user"]["locked_until"].is_null(), "{:?}", r.body);
    assert_eq!(login(&s, "dora", "dora-password").0, 201);

    // Locked again, it opens by itself once the duration is over.
    for _ in 0..3 {
        assert_eq!(login(&s, "dora", "wrong-password").0, 401);
    }
    assert_eq!(login(&s, "dora", "dora-password").0, 401);
    wait_for(30, || {
        (login(&s, "dora", "dora-password").0 == 201).then_some(())
    })
    .expect("the lock ends after lockout_duration_secs");

    // The count starts again after a good password.
    for _ in 0..2 {
        assert_eq!(login(&s, "dora", "wrong-password").0, 401);
    }
    assert_eq!(login(&s, "dora", "dora-password").0, 201);
    for _ in 0..2 {
        assert_eq!(login(&s, "dora", "wrong-password").0, 401);
    }
    assert_eq!(login(&s, "dora", "dora-password").0, 201, "not locked");
}

#[test]
fn wrong_passwords_wait_longer_and_longer_per_source_and_per_user() {
    // Held 0 ms: an attempt during its delay is answered 429 at once.
    let (s, _cfg) = server_with(
        "[identity]\nlockout_failure_attempts = 0\nlogin_free_failures = 2\nlogin_max_delay_ms = 1000\nlogin_max_hold_ms = 0\n",
    );
    create_user(&s, "erin", "erin-password", &["reader"]);
    // Two free, then a delay before the next try is even checked.
    for _ in 0..3 {
        assert_eq!(login(&s, "admin", "wrong-password").0, 401);
    }
    let r = http()
        .post(format!("{}/v3/auth/tokens", s.url))
        .json(&login_body("admin", "wrong-password"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=1).contains(&retry), "{retry}");
    let b: Value = r.json().unwrap();
    assert!(b["error"]["message"].is_string(), "{b}");
    // From this source, another user's login waits too.
    assert_eq!(login(&s, "erin", "erin-password").0, 429);
    // Once waited out, the right password works and clears the user's delays.
    let t = wait_for(30, || {
        let (status, t, _) = login(&s, "admin", PASSWORD);
        (status == 201).then_some(t)
    })
    .expect("the delay ends");
    assert!(t.is_some());
}

#[test]
fn an_attempt_made_during_its_delay_is_held_until_the_delay_is_over() {
    // The default hold: the answer waits, so a closed-loop flood sends one
    // attempt per delay.
    let (s, _cfg) = server_with(
        "[identity]\nlockout_failure_attempts = 0\nlogin_free_failures = 1\nlogin_max_delay_ms = 2000\n",
    );
    assert_eq!(login(&s, "admin", "wrong-password").0, 401);
    // The second wrong one sets a 250 ms delay, the third 500 ms. Each
    // delay starts after its request was sent, so timing from before that
    // request gives a lower bound a loaded machine cannot break.
    let second = Instant::now();
    assert_eq!(login(&s, "admin", "wrong-password").0, 401);
    let third = Instant::now();
    assert_eq!(
        login(&s, "admin", "wrong-password").0,
        401,
        "held, then checked"
    );
    assert!(
        second.elapsed() >= Duration::from_millis(250),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(login(&s, "admin", PASSWORD).0, 201, "held, then let in");
    assert!(
        third.elapsed() >= Duration::from_millis(500),
        "{:?}",
        third.elapsed()
    );
}

#[test]
fn prometheus_scrapes_metrics_with_a_readers_bearer_token() {
    let s = Server::start(bin());
    create_user(&s, "prometheus", "scrape-password", &["reader"]);
    let t = token(&s, "prometheus", "scrape-password");
    let r = http()
        .get(format!("{}/metrics", s.url))
        .header("Authorization", format!("Bearer {t}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().unwrap().contains("roost_"));
    for auth in [
        None,
        Some("Bearer not-a-token".to_string()),
        Some(format!("Basic {t}")),
    ] {
        let mut rb = http().get(format!("{}/metrics", s.url));
        if let Some(a) = auth.as_deref() {
            rb = rb.header("Authorization", a);
        }
        assert_eq!(rb.send().unwrap().status().as_u16(), 401, "{auth:?}");
    }
    // A reader's bearer token changes nothing.
    let r = http()
        .post(format!("{}/v1/alarms", s.url))
        .header("Authorization", format!("Bearer {t}"))
        .json(&json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

/// The `openstack` command beside the test Python.
fn openstack() -> Option<std::path::PathBuf> {
    let python = std::env::var("ROOST_TEST_PYTHON").ok()?;
    let o = Path::new(&python).parent()?.join("openstack");
    o.exists().then_some(o)
}

fn os(s: &Server, o: &Path, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(o)
        .args(args)
        .env("OS_AUTH_URL", format!("{}/v3", s.url))
        .env("OS_USERNAME", user)
        .env("OS_PASSWORD", password)
        .env("OS_PROJECT_NAME", "admin")
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .env("OS_IDENTITY_API_VERSION", "3")
        .output()
        .expect("openstack runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_stock_openstack_client_manages_users_and_roles() {
    let o = openstack();
    if !require_or_skip(
        o.is_some(),
        "python-openstackclient beside ROOST_TEST_PYTHON (./scripts/test installs it)",
    ) {
        return;
    }
    let o = o.unwrap();
    let s = Server::start(bin());
    let admin = |args: &[&str]| {
        let (ok, out) = os(&s, &o, "admin", PASSWORD, args);
        assert!(ok, "openstack {args:?}: {out}");
        out
    };
    admin(&["user", "create", "--password", "frank-password-1", "frank"]);
    let list: Value = serde_json::from_str(&admin(&["user", "list", "-f", "json"])).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"frank") && names.contains(&"admin"),
        "{list}"
    );
    admin(&[
        "role",
        "add",
        "--project",
        "admin",
        "--user",
        "frank",
        "member",
    ]);
    let a: Value = serde_json::from_str(&admin(&[
        "role",
        "assignment",
        "list",
        "--user",
        "frank",
        "--names",
        "-f",
        "json",
    ]))
    .unwrap();
    assert_eq!(a[0]["Role"], "member", "{a}");
    assert_eq!(a[0]["Project"], "admin@Default", "{a}");
    // Frank works as a member with the stock client too.
    let (ok, out) = os(
        &s,
        &o,
        "frank",
        "frank-password-1",
        &["token", "issue", "-f", "json"],
    );
    assert!(ok, "{out}");
    admin(&["user", "set", "--password", "frank-password-2", "frank"]);
    let (ok, _) = os(&s, &o, "frank", "frank-password-1", &["token", "issue"]);
    assert!(!ok, "the old password is refused");
    let (ok, out) = os(&s, &o, "frank", "frank-password-2", &["token", "issue"]);
    assert!(ok, "{out}");
    // A member cannot manage users.
    let (ok, out) = os(&s, &o, "frank", "frank-password-2", &["user", "list"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("403") || out.to_lowercase().contains("forbidden"),
        "{out}"
    );
    admin(&[
        "role",
        "remove",
        "--project",
        "admin",
        "--user",
        "frank",
        "member",
    ]);
    let a = admin(&[
        "role",
        "assignment",
        "list",
        "--user",
        "frank",
        "-f",
        "json",
    ]);
    assert_eq!(serde_json::from_str::<Value>(&a).unwrap(), json!([]));
    admin(&["user", "delete", "frank"]);
    let list = admin(&["user", "list", "-f", "value", "-c", "Name"]);
    assert_eq!(list.trim(), "admin");
}

/// `roost ARGS` against `s` as the holder of `token`, `stdin` fed in.
fn roost(s: &Server, token: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let cli = roost_test_support::Cli::new(bin());
    let mut cmd = cli.cmd(args);
    cmd.env("ROOST_URL", &s.url).env("ROOST_TOKEN", token);
    let out = roost_test_support::Cli::run_with_input(cmd, stdin);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_roost_cli_manages_users_and_roles() {
    let s = Server::start(bin());
    let admin = s.token();
    let ok = |args: &[&str], stdin: &str| {
        let (code, out, err) = roost(&s, &admin, args, stdin);
        assert_eq!(code, 0, "roost {args:?}: {err}");
        out
    };
    ok(
        &[
            "user",
            "create",
            "gina",
            "--role",
            "reader",
            "--password-stdin",
        ],
        "gina-password-1\n",
    );
    let list: Value = serde_json::from_str(&ok(&["user", "list", "-o", "json"], "")).unwrap();
    let gina = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "gina")
        .cloned()
        .unwrap();
    assert_eq!(gina["roles"], json!(["reader"]));
    let t = token(&s, "gina", "gina-password-1");
    // A reader cannot manage users: a clear message and a non-zero exit.
    let (code, _, err) = roost(&s, &t, &["user", "list"], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("admin"), "{err}");

    ok(&["user", "role", "add", "gina", "member"], "");
    ok(&["user", "role", "remove", "gina", "reader"], "");
    let shown: Value =
        serde_json::from_str(&ok(&["user", "show", "gina", "-o", "json"], "")).unwrap();
    assert_eq!(shown["user"]["roles"], json!(["member"]));
    assert_eq!(
        call(&s, "GET", "/v1/alarms", Some(&t)),
        401,
        "role change revoked"
    );

    ok(
        &["user", "passwd", "gina", "--password-stdin"],
        "gina-password-2\n",
    );
    assert_eq!(login(&s, "gina", "gina-password-1").0, 401);
    assert_eq!(login(&s, "gina", "gina-password-2").0, 201);
    ok(&["user", "disable", "gina"], "");
    assert_eq!(login(&s, "gina", "gina-password-2").0, 401);
    ok(&["user", "unlock", "gina"], "");
    assert_eq!(login(&s, "gina", "gina-password-2").0, 201);

    // Bad input: one line, non-zero, nothing changed.
    let (code, _, err) = roost(
        &s,
        &admin,
        &[
            "user",
            "create",
            "hal",
            "--role",
            "root",
            "--password-stdin",
        ],
        "hal-password-1\n",
    );
    assert_eq!(code, 1);
    assert!(err.contains("root"), "{err}");
    let (code, _, err) = roost(&s, &admin, &["user", "role", "add", "nobody", "reader"], "");
    assert_eq!(code, 1);
    assert!(err.contains("nobody"), "{err}");

    ok(&["user", "delete", "gina"], "");
    let (code, _, _) = roost(&s, &admin, &["user", "show", "gina"], "");
    assert_eq!(code, 1);
}
