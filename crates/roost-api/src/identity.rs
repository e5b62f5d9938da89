//! The Keystone v3 subset: token requests and responses, version document.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `POST /v3/auth/tokens` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    pub auth: Auth,
}

impl AuthRequest {
    /// The password method for `username` in domain Default, scoped to
    /// project `admin`, as StarlingX's clients and `roost login` send it.
    pub fn password_scoped(username: &str, password: &str) -> AuthRequest {
        let default_domain = || NamedRef {
            id: None,
            name: Some("Default".into()),
        };
        AuthRequest {
            auth: Auth {
                identity: Identity {
                    methods: vec!["password".into()],
                    password: Some(PasswordMethod {
                        user: UserRef {
                            id: None,
                            name: Some(username.into()),
                            password: password.into(),
                            domain: Some(default_domain()),
                        },
                    }),
                    token: None,
                    application_credential: None,
                },
                scope: Some(Scope {
                    project: Some(ProjectRef {
                        id: None,
                        name: Some("admin".into()),
                        domain: Some(default_domain()),
                    }),
                }),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    pub identity: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential: Option<AppCredentialMethod>,
}

/// Keystone's `application_credential` method: the credential by `id`, or
/// by `name` with its `user` (by id, or by name in a domain), and its
/// secret. No `Debug`: it holds a secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialMethod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<AppCredentialUser>,
    pub secret: String,
}

impl std::fmt::Debug for AppCredentialMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentialMethod")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The owner of an application credential named in a token request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
}

impl AuthRequest {
    /// The application-credential method with the credential's `id` and
    /// `secret` (Keystone scopes the token to the credential's project).
    pub fn app_credential(id: &str, secret: &str) -> AuthRequest {
        AuthRequest {
            auth: Auth {
                identity: Identity {
                    methods: vec!["application_credential".into()],
                    password: None,
                    token: None,
                    application_credential: Some(AppCredentialMethod {
                        id: Some(id.into()),
                        name: None,
                        user: None,
                        secret: secret.into(),
                    }),
                },
                scope: None,
            },
        }
    }
}

/// `POST /v3/users/{user_id}/application_credentials` body.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialCreateRequest {
    pub application_credential: AppCredentialCreate,
}

/// A new application credential: `secret` is made by the server when not
/// given; `roles` default to every role of the creating token;
/// `expires_at` (ISO 8601) `None` for never. No `Debug`: it may hold a
/// secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<NamedRef>>,
    /// Keystone's flag to let the credential make more credentials;
    /// Roost accepts only `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unrestricted: Option<bool>,
}

/// A role as an application credential lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialRole {
    pub id: String,
    pub name: String,
    pub domain_id: Option<String>,
}

/// An application credential as Keystone shows it; `secret` only in the
/// answer to its creation.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredential {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub user_id: String,
    pub project_id: String,
    pub expires_at: Option<String>,
    pub roles: Vec<AppCredentialRole>,
    pub unrestricted: bool,
    #[serde(default)]
    pub access_rules: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub links: Value,
}

impl std::fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredential")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl AppCredential {
    /// A credential at `base` (`secret`: only when just created).
    #[allow(clippy::too_many_arguments)]
    pub fn view(
        base: &str,
        id: String,
        name: String,
        description: String,
        user_id: String,
        project_id: String,
        expires_at: Option<String>,
        roles: &[String],
        secret: Option<String>,
    ) -> AppCredential {
        AppCredential {
            links: json!({"self": format!("{base}/v3/users/{user_id}/application_credentials/{id}")}),
            id,
            name,
            description: Some(description),
            user_id,
            project_id,
            expires_at,
            roles: roles
                .iter()
                .map(|r| AppCredentialRole {
                    id: r.clone(),
                    name: r.clone(),
                    domain_id: None,
                })
                .collect(),
            unrestricted: false,
            access_rules: Vec::new(),
            secret,
        }
    }
}

/// `POST` and `GET /v3/users/{user_id}/application_credentials/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialEnvelope {
    pub application_credential: AppCredential,
}

/// `GET /v3/users/{user_id}/application_credentials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppCredentialList {
    pub application_credentials: Vec<AppCredential>,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordMethod {
    pub user: UserRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenMethod {
    pub id: String,
}

/// `POST /v3/users/{user_id}/password` body: Keystone's self-service
/// password change. No `Debug`: it holds two passwords.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordChange {
    pub user: PasswordChangeUser,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordChangeUser {
    pub password: String,
    pub original_password: String,
}

/// A reference by id or name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<NamedRef>,
}

/// The service types the catalog lists, with the path each client expects
/// at the end of its endpoint URL.
pub const CATALOG_SERVICES: &[(&str, &str, &str)] = &[
    ("identity", "keystone", "/v3"),
    ("platform", "sysinv", "/v1"),
    ("faultmanagement", "fm", ""),
    ("dcmanager", "dcmanager", "/v1.0"),
    ("usm", "usm", ""),
];

/// The region every endpoint is in.
pub const REGION: &str = "RegionOne";

/// The service catalog pointing every service at `base`.
pub fn catalog(base: &str) -> Value {
    let services: Vec<Value> = CATALOG_SERVICES
        .iter()
        .map(|(ty, name, path)| {
            let endpoints: Vec<Value> = ["public", "internal", "admin"]
                .iter()
                .map(|iface| {
                    json!({
                        "id": format!("{name}-{iface}"),
                        "interface": iface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": format!("{base}{path}"),
                    })
                })
                .collect();
            json!({"id": name, "type": ty, "name": name, "endpoints": endpoints})
        })
        .collect();
    Value::Array(services)
}

/// What a token says about its holder.
#[derive(Debug, Clone)]
pub struct TokenInfo<'a> {
    pub methods: Vec<&'a str>,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub project: Option<(&'a str, &'a str)>,
    pub roles: &'a [String],
    pub issued_at: String,
    pub expires_at: String,
}

/// The body of a token response or validation.
pub fn token_body(t: &TokenInfo<'_>, base: &str, with_catalog: bool) -> Value {
    let domain = json!({"id": "default", "name": "Default"});
    let mut token = json!({
        "methods": t.methods,
        "user": {"id": t.user_id, "name": t.user_name, "domain": domain, "password_expires_at": null},
        "expires_at": t.expires_at,
        "issued_at": t.issued_at,
        "audit_ids": [],
    });
    if let Some((id, name)) = t.project {
        token["project"] = json!({"id": id, "name": name, "domain": domain});
        token["roles"] = Value::Array(
            t.roles
                .iter()
                .map(|r| json!({"id": r, "name": r}))
                .collect(),
        );
        if with_catalog {
            token["catalog"] = catalog(base);
        }
    } else if with_catalog {
        // Unscoped tokens carry the catalog too, so clients that skip
        // scoping (dcmanager with a bare token) still find their endpoints.
        token["catalog"] = catalog(base);
    }
    json!({ "token": token })
}

/// `GET /v3`.
pub fn v3_document(base: &str) -> Value {
    json!({
        "version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2026-01-01T00:00:00Z",
            "links": [{"rel": "self", "href": format!("{base}/v3/")}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_gives_each_client_the_path_it_needs() {
        let c = catalog("http://h:1");
        let url = |ty: &str| {
            c.as_array()
                .unwrap()
                .iter()
                .find(|s| s["type"] == ty)
                .unwrap()["endpoints"][0]["url"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(url("faultmanagement"), "http://h:1");
        assert_eq!(url("platform"), "http://h:1/v1");
        assert_eq!(url("dcmanager"), "http://h:1/v1.0");
        assert_eq!(url("identity"), "http://h:1/v3");
        for s in c.as_array().unwrap() {
            let ifaces: Vec<&str> = s["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["interface"].as_str().unwrap())
                .collect();
            assert_eq!(ifaces, ["public", "internal", "admin"]);
        }
    }

    #[test]
    fn starlingx_password_bodies_parse() {
        let b = r#"{"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": "pw", "name": "admin", "domain": {"name": "Default"}}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}"#;
        let r: AuthRequest = serde_json::from_str(b).unwrap();
        assert_eq!(r.auth.identity.methods, ["password"]);
        assert_eq!(
            r.auth.scope.unwrap().project.unwrap().name.as_deref(),
            Some("admin")
        );
    }

    #[test]
    fn password_changes_keep_keystones_json_form() {
        let text = r#"{"user":{"password":"new-pass-1","original_password":"old-pass-1"}}"#;
        let c: PasswordChange = serde_json::from_str(text).unwrap();
        assert_eq!(c.user.password, "new-pass-1");
        assert_eq!(c.user.original_password, "old-pass-1");
        assert_eq!(serde_json::to_string(&c).unwrap(), text);
        assert!(serde_json::from_str::<PasswordChange>(r#"{"user":{"password":"x"}}"#).is_err());
    }
}

/// A user as Keystone v3 shows it (`/v3/users`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    /// Roost's own: wrong passwords in a row, and until when the account is
    /// locked (ISO 8601), if it is.
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// Roost's own: the user's roles on project `admin`.
    #[serde(default)]
    pub roles: Vec<String>,
    pub password_expires_at: Option<String>,
    pub options: Value,
    pub links: Value,
}

/// `GET /v3/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<User>,
    pub links: Value,
}

/// `GET|POST|PATCH /v3/users/{id}` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEnvelope {
    pub user: User,
}

/// `POST /v3/users` body (python-openstackclient's `user create`). No
/// `Debug`: it holds a password. Keystone's other attributes
/// (`description`, `email`, `options`, ...) are accepted and not kept.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreateRequest {
    pub user: UserCreate,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreate {
    pub name: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub default_project_id: Option<String>,
    /// Roost's own: roles on project `admin` given at once.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `PATCH /v3/users/{id}` body (`openstack user set`): a new name, a new
/// password (set by an admin, revoking the user's tokens), enabled or
/// disabled (enabling clears a lockout).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct UserUpdateRequest {
    pub user: UserUpdate,
}

#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UserUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A role (`/v3/roles`); its id is its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub domain_id: Option<String>,
    pub description: String,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleList {
    pub roles: Vec<Role>,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleEnvelope {
    pub role: Role,
}

/// A project (`/v3/projects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    pub is_domain: bool,
    pub parent_id: String,
    pub description: String,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectList {
    pub projects: Vec<Project>,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectEnvelope {
    pub project: Project,
}

/// One role assignment (`/v3/role_assignments`), names included when
/// asked (`include_names`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub role: Value,
    pub user: Value,
    pub scope: Value,
    pub links: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleAssignmentList {
    pub role_assignments: Vec<RoleAssignment>,
    pub links: Value,
}

/// `links` of a Keystone list (`/v3/{what}`), one page.
pub fn list_links(base: &str, what: &str) -> Value {
    json!({"self": format!("{base}/v3/{what}"), "previous": null, "next": null})
}

impl User {
    /// A user as listed at `base`; `locked_until` (ISO 8601) when locked.
    #[allow(clippy::too_many_arguments)]
    pub fn view(
        base: &str,
        id: String,
        name: String,
        enabled: bool,
        failed_logins: u32,
        locked_until: Option<String>,
        roles: Vec<String>,
    ) -> User {
        User {
            links: json!({"self": format!("{base}/v3/users/{id}")}),
            id,
            name,
            domain_id: "default".into(),
            enabled,
            failed_logins,
            locked_until,
            roles,
            password_expires_at: None,
            options: json!({}),
        }
    }
}

impl Role {
    /// A role at `base`: its id is its name.
    pub fn view(base: &str, name: &str, description: &str) -> Role {
        Role {
            id: name.to_string(),
            name: name.to_string(),
            domain_id: None,
            description: description.into(),
            links: json!({"self": format!("{base}/v3/roles/{name}")}),
        }
    }
}

impl Project {
    /// A project of domain `default` at `base`.
    pub fn view(base: &str, id: String, name: String) -> Project {
        Project {
            links: json!({"self": format!("{base}/v3/projects/{id}")}),
            id,
            name,
            domain_id: "default".into(),
            enabled: true,
            is_domain: false,
            parent_id: "default".into(),
            description: String::new(),
        }
    }
}

/// One side of an assignment: `{"id"}`, with `name` and domain `Default`
/// when names are asked for.
fn named(id: &str, name: &str, names: bool, domain: bool) -> Value {
    match (names, domain) {
        (false, _) => json!({"id": id}),
        (true, false) => json!({"id": id, "name": name}),
        (true, true) => {
            json!({"id": id, "name": name, "domain": {"id": "default", "name": "Default"}})
        }
    }
}

impl RoleAssignment {
    /// `role` held by a user on a project, at `base`; names beside ids
    /// when `names` (`include_names`).
    pub fn view(
        base: &str,
        (user_id, user_name): (&str, &str),
        (project_id, project_name): (&str, &str),
        role: &str,
        names: bool,
    ) -> RoleAssignment {
        RoleAssignment {
            links: json!({"assignment": format!("{base}/v3/projects/{project_id}/users/{user_id}/roles/{role}")}),
            role: named(role, role, names, false),
            user: named(user_id, user_name, names, true),
            scope: json!({"project": named(project_id, project_name, names, true)}),
        }
    }
}
