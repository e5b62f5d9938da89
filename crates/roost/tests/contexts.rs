//! Contexts and application credentials against real servers: two clouds
//! logged in to at once, `--context` per command, `roost token` for
//! scripts, tokens renewed without the password, and Keystone's
//! application-credential API.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use roost_test_support::{Cli, PASSWORD, Server, http, require_or_skip};
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn login(cli: &Cli, context: &str, url: &str) -> Output {
    Cli::run_with_input(
        cli.cmd(&[
            "login",
            "--context",
            context,
            "--url",
            url,
            "--password-stdin",
        ]),
        &format!("{PASSWORD}\n"),
    )
}

fn contexts(cli: &Cli) -> Value {
    let path = cli.config_dir().join("contexts.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The id of the user a token is of, and its roles.
fn whoami(url: &str, token: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{url}/v3/auth/tokens?nocatalog"))
        .header("X-Auth-Token", token)
        .header("X-Subject-Token", token)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn two_clouds_as_two_contexts_with_tokens_for_scripts() {
    let east = Server::start(bin());
    let west = Server::start(bin());
    let cli = Cli::new(bin());
    for (name, s) in [("east", &east), ("west", &west)] {
        let out = login(&cli, name, &s.url);
        assert!(out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains(PASSWORD));
    }
    let path = cli.config_dir().join("contexts.json");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let file = contexts(&cli);
    assert_eq!(file["current"], "west", "the last login is current");
    assert_eq!(file["contexts"].as_array().unwrap().len(), 2);

    // Each cloud has its own alarms: the context decides which one answers.
    east.api()
        .set_alarm("100.101", "host=controller-0", "critical");
    let on = |args: &[&str]| -> usize {
        let out = cli.ok(args);
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(on(&["alarm", "list", "-o", "json"]), 0, "west is current");
    assert_eq!(on(&["--context", "east", "alarm", "list", "-o", "json"]), 1);
    assert_eq!(
        on(&["alarm", "list", "--context", "east", "-o", "json"]),
        1,
        "the flag is global"
    );
    let out = cli
        .cmd(&["alarm", "list", "-o", "json"])
        .env("ROOST_CONTEXT", "east")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("100.101"));
    cli.ok(&["context", "use", "east"]);
    assert_eq!(on(&["alarm", "list", "-o", "json"]), 1);

    let list = cli.ok(&["context", "list"]);
    assert!(
        list.contains("east") && list.contains("west") && list.contains(&east.url),
        "{list}"
    );
    let file = contexts(&cli);
    for c in file["contexts"].as_array().unwrap() {
        let token = c["token"].as_str().unwrap();
        let secret = c["app_credential"]["secret"].as_str().unwrap();
        assert!(!list.contains(token) && !list.contains(secret));
    }

    // `roost token`: the token alone, usable as is.
    let token = cli.ok(&["token"]);
    assert!(token.ends_with('\n') && token.lines().count() == 1);
    let token = token.trim();
    let r = http()
        .get(format!("{}/v1/alarms", east.url))
        .header("X-Auth-Token", token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let west_token = cli.ok(&["--context", "west", "token"]);
    assert_ne!(west_token.trim(), token);
    let (status, _) = whoami(&east.url, west_token.trim());
    assert_eq!(status, 401, "a token of one cloud is nothing to the other");
    let doc: Value = serde_json::from_str(&cli.ok(&["token", "-o", "json"])).unwrap();
    assert_eq!(doc["context"], "east");
    assert!(doc["expires_at"].as_str().is_some());
    let with_expiry = cli.ok(&["token", "--expires"]);
    assert_eq!(with_expiry.lines().count(), 2);

    // A context's token revoked on the server: renewed with the login's
    // application credential, without a password, and the command works.
    let revoke = http()
        .delete(format!("{}/v3/auth/tokens", east.url))
        .header("X-Auth-Token", token)
        .header("X-Subject-Token", token)
        .send()
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 204);
    assert_eq!(on(&["alarm", "list", "-o", "json"]), 1);
    let renewed = contexts(&cli)["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "east")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(renewed, token);
    let (status, who) = whoami(&east.url, &renewed);
    assert_eq!(status, 200);
    assert_eq!(who["token"]["methods"], json!(["application_credential"]));

    // Logout deletes the credential on the server: the next command says
    // how to log in again, naming the context.
    cli.ok(&["logout"]);
    let out = cli.run(&["alarm", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("context east") && err.contains("roost login --context east"),
        "{err}"
    );
    let admin = east.api();
    let me = whoami(&east.url, &admin.token).1["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = admin.get(&format!("/v3/users/{me}/application_credentials"));
    let names: Vec<&str> = listed.body["application_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("roost-cli-east-")),
        "{names:?}"
    );
    // The other context is untouched; a new login brings east back.
    assert_eq!(on(&["--context", "west", "alarm", "list", "-o", "json"]), 0);
    let out = login(&cli, "east", &east.url);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(on(&["alarm", "list", "-o", "json"]), 1);

    cli.ok(&["context", "rename", "west", "lab"]);
    cli.ok(&["context", "delete", "lab"]);
    assert_eq!(contexts(&cli)["contexts"].as_array().unwrap().len(), 1);
}

#[test]
fn an_expired_token_is_renewed_without_the_password() {
    let (s, _cfg) = Server::start_with_config(bin(), "token_ttl_secs = 5\n");
    let cli = Cli::new(bin());
    let out = login(&cli, "short", &s.url);
    assert!(out.status.success(), "{}", text(&out));
    let first = cli.ok(&["token"]).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(5500));
    // No password on standard input: the credential renews the token.
    let out = cli.run(&["alarm", "list", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = cli.ok(&["token"]).trim().to_string();
    assert_ne!(first, second);
    assert_eq!(whoami(&s.url, &second).0, 200);
}

#[test]
fn application_credentials_through_keystones_api() {
    let s = Server::start(bin());
    let admin = s.api();
    let me = whoami(&s.url, &admin.token).1["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("/v3/users/{me}/application_credentials");
    let made = admin.post(
        &base,
        &json!({"application_credential": {"name": "prometheus", "description": "scrapes", "roles": [{"name": "reader"}]}}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let cred = &made.body["application_credential"];
    let id = cred["id"].as_str().unwrap().to_string();
    let secret = cred["secret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32);
    assert_eq!(
        cred["roles"],
        json!([{"id": "reader", "name": "reader", "domain_id": null}])
    );
    assert_eq!(cred["expires_at"], Value::Null);

    // Listed and shown without the secret.
    let listed = admin.get(&base);
    assert_eq!(listed.status, 200);
    assert!(!listed.body.to_string().contains(&secret));
    let shown = admin.get(&format!("{base}/{id}"));
    assert_eq!(shown.body["application_credential"]["name"], "prometheus");
    assert!(shown.body["application_credential"].get("secret").is_none());
    // The same name again: a conflict.
    let again = admin.post(
        &base,
        &json!({"application_credential": {"name": "prometheus"}}),
    );
    assert_eq!(again.status, 409);
    // A role the token does not hold, a bad time: 400 with a message.
    let bad = admin.post(
        &base,
        &json!({"application_credential": {"name": "x", "expires_at": "tomorrow"}}),
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expires_at")
    );

    // Log in with it: scoped to project admin with role reader only.
    let by_id = |secret: &str| {
        s.login(
            json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": id, "secret": secret}}}}),
        )
    };
    let (status, headers, body) = by_id(&secret);
    assert_eq!(status, 201, "{body}");
    assert!(headers.get("x-subject-token").is_some());
    assert_eq!(body["token"]["project"]["name"], "admin");
    assert_eq!(
        body["token"]["roles"],
        json!([{"id": "reader", "name": "reader"}])
    );
    assert_eq!(body["token"]["methods"], json!(["application_credential"]));
    let token = headers["x-subject-token"].to_str().unwrap().to_string();
    // A reader reads, and may not write.
    let r = http()
        .get(format!("{}/v1/alarms", s.url))
        .header("X-Auth-Token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http()
        .post(format!("{}/v3/users", s.url))
        .header("X-Auth-Token", &token)
        .json(&json!({"user": {"name": "eve", "password": "long-enough-1"}}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // By name and user name.
    let (status, _, _) = s.login(json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"name": "prometheus", "user": {"name": "admin", "domain": {"id": "default"}}, "secret": secret}}}}));
    assert_eq!(status, 201);
    // A wrong secret: 401.
    assert_eq!(by_id("not-the-secret").0, 401);
    // Neither id nor name: 400.
    let (status, _, body) = s.login(
        json!({"auth": {"identity": {"methods": ["application_credential"],
        "application_credential": {"secret": secret}}}}),
    );
    assert_eq!(status, 400, "{body}");

    // The CLI lists and deletes them.
    let cli = Cli::new(bin());
    let out = login(&cli, "here", &s.url);
    assert!(out.status.success(), "{}", text(&out));
    let list = cli.ok(&["app-credential", "list"]);
    assert!(
        list.contains("prometheus") && !list.contains(&secret),
        "{list}"
    );
    let made = cli.ok(&["app-credential", "create", "script", "--role", "member"]);
    assert!(made.contains("secret:"), "{made}");

    // Deleted: its tokens and the secret stop working.
    let gone = admin.delete(&format!("{base}/{id}"));
    assert_eq!(gone.status, 204);
    assert_eq!(by_id(&secret).0, 401);
    assert_eq!(whoami(&s.url, &token).0, 401, "its tokens are revoked");
    assert_eq!(admin.get(&format!("{base}/{id}")).status, 404);
    cli.ok(&["app-credential", "delete", "script"]);
    let out = cli.run(&["app-credential", "delete", "script"]);
    assert!(!out.status.success());
}

#[test]
fn application_credentials_expire_and_stop_with_their_user() {
    let s = Server::start(bin());
    let admin = s.api();
    let made = admin.post(
        "/v3/users",
        &json!({"user": {"name": "carol", "password": "carol-password-1", "roles": ["member"]}}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let carol = made.body["user"]["id"].as_str().unwrap().to_string();
    let (_, headers, _) = s.login(json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": "carol", "domain": {"name": "Default"}, "password": "carol-password-1"}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}));
    let carol_token = headers["x-subject-token"].to_str().unwrap().to_string();
    let post = |token: &str, user: &str, body: Value| {
        let r = http()
            .post(format!("{}/v3/users/{user}/application_credentials", s.url))
            .header("X-Auth-Token", token)
            .json(&body)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    // Only for oneself; only roles one holds.
    assert_eq!(
        post(
            &admin.token,
            &carol,
            json!({"application_credential": {"name": "a"}})
        )
        .0,
        403
    );
    assert_eq!(
        post(
            &carol_token,
            &carol,
            json!({"application_credential": {"name": "a", "roles": [{"name": "admin"}]}})
        )
        .0,
        400
    );
    let soon = roost_types::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64,
    )
    .plus_secs(2)
    .to_rfc3339();
    let (status, short) = post(
        &carol_token,
        &carol,
        json!({"application_credential": {"name": "short", "expires_at": soon}}),
    );
    assert_eq!(status, 201, "{short}");
    let (status, long) = post(
        &carol_token,
        &carol,
        json!({"application_credential": {"name": "long", "secret": "chosen-secret-of-carol"}}),
    );
    assert_eq!(status, 201, "{long}");
    let use_it = |cred: &Value, secret: &str| {
        s.login(json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": cred["application_credential"]["id"], "secret": secret}}}}))
            .0
    };
    let short_secret = short["application_credential"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(use_it(&short, &short_secret), 201);
    assert_eq!(use_it(&long, "chosen-secret-of-carol"), 201);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(use_it(&short, &short_secret), 401, "expired");
    // Another user's credentials: hidden from carol, visible to an admin.
    let r = http()
        .get(format!(
            "{}/v3/users/{carol}/application_credentials",
            s.url
        ))
        .header("X-Auth-Token", &admin.token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let admin_id = whoami(&s.url, &admin.token).1["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http()
        .get(format!(
            "{}/v3/users/{admin_id}/application_credentials",
            s.url
        ))
        .header("X-Auth-Token", &carol_token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "another user's are not shown");
    // Disabled: refused; deleted: gone.
    let off = admin.patch(
        &format!("/v3/users/{carol}"),
        &json!({"user": {"enabled": false}}),
    );
    assert!(off.status < 300, "{}", off.body);
    assert_eq!(use_it(&long, "chosen-secret-of-carol"), 401);
    let on = admin.patch(
        &format!("/v3/users/{carol}"),
        &json!({"user": {"enabled": true}}),
    );
    assert!(on.status < 300);
    assert_eq!(use_it(&long, "chosen-secret-of-carol"), 201);
    assert_eq!(admin.delete(&format!("/v3/users/{carol}")).status, 204);
    assert_eq!(use_it(&long, "chosen-secret-of-carol"), 401);
}

/// keystoneauth1's `v3.ApplicationCredential`, as OpenStack clients use it.
#[test]
fn keystoneauth1_logs_in_with_an_application_credential() {
    let python = std::env::var("ROOST_TEST_PYTHON").ok();
    if !require_or_skip(
        python.is_some(),
        "ROOST_TEST_PYTHON (a Python with keystoneauth1; ./scripts/test sets it)",
    ) {
        return;
    }
    let s = Server::start(bin());
    let admin = s.api();
    let me = whoami(&s.url, &admin.token).1["token"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made = admin.post(
        &format!("/v3/users/{me}/application_credentials"),
        &json!({"application_credential": {"name": "ksa"}}),
    );
    let cred = &made.body["application_credential"];
    let script = r#"
import sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
auth = v3.ApplicationCredential(auth_url=sys.argv[1] + "/v3",
    application_credential_id=sys.argv[2], application_credential_secret=sys.argv[3])
sess = session.Session(auth=auth)
assert sess.get_token()
assert sess.get_endpoint(service_type="platform", interface="public")
print(sess.get_project_id())
"#;
    let out = std::process::Command::new(python.unwrap())
        .arg("-c")
        .arg(script)
        .arg(&s.url)
        .arg(cred["id"].as_str().unwrap())
        .arg(cred["secret"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
