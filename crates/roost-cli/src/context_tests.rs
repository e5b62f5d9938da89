//! Contexts against the scripted server: which context a verb uses, the
//! import of the old credentials file, renewal of a refused token with the
//! application credential, `roost token`, and the file's modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::context::{CONTEXTS_FILE, Context, Contexts, SavedAppCredential, load, save};
use crate::credentials::{CREDENTIALS_FILE, Credentials, Env, write_credentials};
use crate::testutil::{Canned, FakeServer, run_verb};

fn ctx(name: &str, url: &str, token: &str) -> Context {
    Context {
        name: name.into(),
        url: url.into(),
        ca_file: None,
        username: Some("admin".into()),
        user_id: Some("u1".into()),
        token: Some(token.into()),
        expires_at: Some("2999-01-01T00:00:00.000000Z".into()),
        app_credential: None,
    }
}

fn env_in(dir: &Path) -> Env {
    Env {
        roost_config_dir: Some(dir.into()),
        ..Env::default()
    }
}

fn events() -> Canned {
    Canned::json(200, json!({"event_log": []}))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_current_context_is_used_unless_one_is_named_by_flag_or_environment() {
    let a = FakeServer::start(vec![events()]);
    let b = FakeServer::start(vec![events(), events()]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CONTEXTS_FILE);
    save(
        &path,
        &Contexts {
            current: Some("a".into()),
            contexts: vec![ctx("a", &a.url, "token-a"), ctx("b", &b.url, "token-b")],
        },
    )
    .unwrap();
    let env = env_in(dir.path());
    run_verb(&["event", "list", "--alarms"], &env, "")
        .result
        .unwrap();
    run_verb(&["--context", "b", "event", "list", "--alarms"], &env, "")
        .result
        .unwrap();
    let from_env = Env {
        context: Some("b".into()),
        ..env.clone()
    };
    run_verb(&["event", "list", "--alarms"], &from_env, "")
        .result
        .unwrap();
    let seen_a = a.finish();
    let seen_b = b.finish();
    assert_eq!(seen_a.len(), 1);
    assert_eq!(seen_a[0].header("x-auth-token"), Some("token-a"));
    assert_eq!(seen_b.len(), 2);
    assert!(
        seen_b
            .iter()
            .all(|s| s.header("x-auth-token") == Some("token-b"))
    );

    let err = run_verb(&["--context", "nope", "event", "list"], &env, "")
        .result
        .unwrap_err();
    assert_eq!(err.code(), 2);
    assert!(
        err.message().contains("no context named nope"),
        "{}",
        err.message()
    );
    // The current context did not change.
    assert_eq!(load(&path).unwrap().current.as_deref(), Some("a"));
}

#[test]
fn context_use_rename_and_delete_keep_the_file_private() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cfg");
    let path = config.join(CONTEXTS_FILE);
    save(
        &path,
        &Contexts {
            current: Some("a".into()),
            contexts: vec![ctx("a", "http://a:1", "ta"), ctx("b", "http://b:2", "tb")],
        },
    )
    .unwrap();
    let env = env_in(&config);
    let out = run_verb(&["context", "use", "b"], &env, "");
    out.result.unwrap();
    assert_eq!(load(&path).unwrap().current.as_deref(), Some("b"));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&config), 0o700);

    run_verb(&["context", "rename", "b", "lab"], &env, "")
        .result
        .unwrap();
    let after = load(&path).unwrap();
    assert_eq!(after.current.as_deref(), Some("lab"));
    assert!(after.get("lab").is_some() && after.get("b").is_none());

    let list = run_verb(&["context", "list"], &env, "");
    list.result.unwrap();
    assert!(
        list.out.contains("lab") && list.out.contains("http://a:1"),
        "{}",
        list.out
    );
    assert!(!list.out.contains("ta") || !list.out.contains("tb"));
    let json = run_verb(&["context", "list", "-o", "json"], &env, "");
    let items: serde_json::Value = serde_json::from_str(&json.out).unwrap();
    assert_eq!(items[1]["current"], true);
    assert!(
        !json.out.contains("\"ta\"") && !json.out.contains("\"tb\""),
        "no tokens"
    );

    run_verb(&["context", "delete", "lab"], &env, "")
        .result
        .unwrap();
    let after = load(&path).unwrap();
    assert_eq!(after.current, None);
    assert_eq!(after.contexts.len(), 1);
    assert_eq!(mode(&path), 0o600);
    let err = run_verb(&["context", "use", "lab"], &env, "")
        .result
        .unwrap_err();
    assert_eq!(err.code(), 2);
}

#[test]
fn the_old_credentials_file_is_imported_as_the_current_context() {
    let server = FakeServer::start(vec![events()]);
    let dir = tempfile::tempdir().unwrap();
    write_credentials(
        &dir.path().join(CREDENTIALS_FILE),
        &Credentials {
            url: server.url.clone(),
            token: "old-token".into(),
            expires_at: None,
        },
    )
    .unwrap();
    let env = env_in(dir.path());
    run_verb(&["event", "list", "--alarms"], &env, "")
        .result
        .unwrap();
    let seen = server.finish();
    assert_eq!(seen[0].header("x-auth-token"), Some("old-token"));
    let path = dir.path().join(CONTEXTS_FILE);
    let contexts = load(&path).unwrap();
    let name = crate::context::default_name(&seen_url(&env));
    assert_eq!(contexts.current.as_deref(), Some(name.as_str()));
    assert_eq!(contexts.contexts[0].token.as_deref(), Some("old-token"));
    assert_eq!(mode(&path), 0o600);
    assert!(
        !dir.path().join(CREDENTIALS_FILE).exists(),
        "the old file is removed once imported"
    );
}

fn seen_url(env: &Env) -> String {
    let contexts = load(&env.contexts_path().unwrap()).unwrap();
    contexts.contexts[0].url.clone()
}

fn renewable(name: &str, url: &str, token: &str) -> Context {
    Context {
        app_credential: Some(SavedAppCredential {
            id: "ac1".into(),
            name: "roost-cli".into(),
            secret: "app-secret-xyz".into(),
        }),
        ..ctx(name, url, token)
    }
}

fn new_token(token: &str) -> Canned {
    Canned::json(
        201,
        json!({"token": {"expires_at": "2999-06-01T00:00:00.000000Z", "methods": ["application_credential"]}}),
    )
    .with_header("X-Subject-Token", token)
}

fn unauthorized() -> Canned {
    Canned::json(
        401,
        json!({"error": {"message": "The request you have made requires authentication.", "code": 401}}),
    )
}

#[test]
fn a_refused_token_is_renewed_with_the_application_credential_and_the_request_sent_again() {
    let server = FakeServer::start(vec![unauthorized(), new_token("fresh"), events()]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CONTEXTS_FILE);
    save(
        &path,
        &Contexts {
            current: Some("lab".into()),
            contexts: vec![renewable("lab", &server.url, "stale")],
        },
    )
    .unwrap();
    let out = run_verb(&["event", "list", "--alarms"], &env_in(dir.path()), "");
    let seen = server.finish();
    out.result.unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].header("x-auth-token"), Some("stale"));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("POST", "/v3/auth/tokens")
    );
    assert_eq!(seen[1].header("x-auth-token"), None);
    let identity = &seen[1].json()["auth"]["identity"];
    assert_eq!(identity["methods"], json!(["application_credential"]));
    assert_eq!(
        identity["application_credential"],
        json!({"id": "ac1", "secret": "app-secret-xyz"})
    );
    assert_eq!(seen[2].header("x-auth-token"), Some("fresh"));
    assert_eq!(seen[2].target, seen[0].target);
    let saved = load(&path).unwrap();
    let lab = saved.get("lab").unwrap();
    assert_eq!(lab.token.as_deref(), Some("fresh"));
    assert_eq!(
        lab.expires_at.as_deref(),
        Some("2999-06-01T00:00:00.000000Z")
    );
    assert_eq!(mode(&path), 0o600);
    for stream in [&out.out, &out.err] {
        assert!(!stream.contains("app-secret-xyz") && !stream.contains("fresh"));
    }
}

#[test]
fn a_refused_token_without_a_credential_names_the_context_and_how_to_log_in() {
    let server = FakeServer::start(vec![unauthorized()]);
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join(CONTEXTS_FILE),
        &Contexts {
            current: Some("edge-7".into()),
            contexts: vec![ctx("edge-7", &server.url, "stale")],
        },
    )
    .unwrap();
    let err = run_verb(&["event", "list", "--alarms"], &env_in(dir.path()), "")
        .result
        .unwrap_err();
    server.finish();
    assert_eq!(err.http_status(), Some(401));
    let url = seen_url(&env_in(dir.path()));
    assert_eq!(
        err.message(),
        format!(
            "the server {url} refused the token of context edge-7 (expired or revoked); run `roost login --context edge-7` to log in again"
        )
    );
}

#[test]
fn a_refused_credential_says_to_log_in_again() {
    let server = FakeServer::start(vec![unauthorized(), unauthorized()]);
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join(CONTEXTS_FILE),
        &Contexts {
            current: Some("lab".into()),
            contexts: vec![renewable("lab", &server.url, "stale")],
        },
    )
    .unwrap();
    let err = run_verb(&["event", "list", "--alarms"], &env_in(dir.path()), "")
        .result
        .unwrap_err();
    server.finish();
    assert_eq!(err.http_status(), Some(401));
    assert!(
        err.message().contains("context lab")
            && err.message().contains("application credential ac1")
            && err.message().contains("roost login --context lab"),
        "{}",
        err.message()
    );
}

#[test]
fn roost_token_prints_the_token_alone_and_renews_an_expired_one_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CONTEXTS_FILE);
    let env = env_in(dir.path());
    save(
        &path,
        &Contexts {
            current: Some("a".into()),
            contexts: vec![ctx("a", "http://127.0.0.1:9", "tok-a")],
        },
    )
    .unwrap();
    let out = run_verb(&["token"], &env, "");
    out.result.unwrap();
    assert_eq!(out.out, "tok-a\n");
    let out = run_verb(&["token", "--expires"], &env, "");
    assert_eq!(out.out, "tok-a\n2999-01-01T00:00:00.000000Z\n");

    let server = FakeServer::start(vec![new_token("renewed")]);
    let mut expired = renewable("b", &server.url, "old");
    expired.expires_at = Some("2001-01-01T00:00:00Z".into());
    let mut contexts = load(&path).unwrap();
    contexts.upsert(expired);
    save(&path, &contexts).unwrap();
    let out = run_verb(&["--context", "b", "token", "-o", "json"], &env, "");
    server.finish();
    out.result.unwrap();
    let doc: serde_json::Value = serde_json::from_str(&out.out).unwrap();
    assert_eq!(doc["token"], "renewed");
    assert_eq!(doc["context"], "b");
    assert_eq!(doc["expires_at"], "2999-06-01T00:00:00.000000Z");
    assert_eq!(
        load(&path).unwrap().get("b").unwrap().token.as_deref(),
        Some("renewed")
    );

    // Expired without a credential: how to log in again.
    let mut stale = ctx("c", "http://127.0.0.1:9", "old");
    stale.expires_at = Some("2001-01-01T00:00:00Z".into());
    let mut contexts = load(&path).unwrap();
    contexts.upsert(stale);
    save(&path, &contexts).unwrap();
    let err = run_verb(&["--context", "c", "token"], &env, "")
        .result
        .unwrap_err();
    assert!(
        err.message().contains("roost login --context c"),
        "{}",
        err.message()
    );
}

#[test]
fn login_remembers_an_application_credential_in_a_new_context() {
    let server = FakeServer::start(vec![
        Canned::json(
            201,
            json!({"token": {"expires_at": "2999-01-01T00:00:00.000000Z", "user": {"id": "uid-1", "name": "admin"}}}),
        )
        .with_header("X-Subject-Token", "tok-1"),
        Canned::json(
            201,
            json!({"application_credential": {"id": "ac-9", "name": "x", "secret": "very-secret-value", "roles": []}}),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let env = env_in(dir.path());
    let out = run_verb(
        &[
            "--context",
            "lab",
            "login",
            "--url",
            &server.url,
            "--password-stdin",
        ],
        &env,
        "pw\n",
    );
    let seen = server.finish();
    out.result.unwrap();
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].target, "/v3/users/uid-1/application_credentials");
    assert_eq!(seen[1].header("x-auth-token"), Some("tok-1"));
    let name = seen[1].json()["application_credential"]["name"].clone();
    assert!(
        name.as_str().unwrap().starts_with("roost-cli-lab-"),
        "{name}"
    );
    let contexts = load(&dir.path().join(CONTEXTS_FILE)).unwrap();
    assert_eq!(contexts.current.as_deref(), Some("lab"));
    let lab = contexts.get("lab").unwrap();
    assert_eq!(lab.user_id.as_deref(), Some("uid-1"));
    let cred = lab.app_credential.as_ref().unwrap();
    assert_eq!(
        (cred.id.as_str(), cred.secret.as_str()),
        ("ac-9", "very-secret-value")
    );
    for stream in [&out.out, &out.err] {
        assert!(!stream.contains("very-secret-value"));
    }
    assert!(out.out.contains("context lab"), "{}", out.out);
}
