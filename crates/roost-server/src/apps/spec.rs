//! Between the wire and the domain: a package's manifest objects become a
//! `roost_apps::AppSpec` (what the scheduler needs), and a host's domain
//! plan becomes the agent protocol's `HostPlan` with everything resolved.
//!
//! Both directions are pure: no I/O, no clock. [`app_spec`] resolves
//! everything [`render`] will need (images, environment, volumes, probe
//! ports), so a package it accepts always renders; [`render`] only leaves
//! out replicas whose application or workload is gone meanwhile.
//!
//! Kubernetes semantics where the manifest says nothing: restart policy
//! `Always`; probe timings from the manifest's defaults; environment in the
//! order written, `$(VAR)` in values, command and args expanded from the
//! variables defined before (`$$` is a literal `$`, an unknown name is kept
//! as written); a missing optional ConfigMap or Secret key leaves the
//! variable unset; ConfigMap and Secret volumes are read-only, with file
//! mode 0644 unless `defaultMode` says otherwise.
//!
//! Roost's confinement where it differs: a container's
//! `allowPrivilegeEscalation` is `false` unless the manifest says `true`;
//! `privileged: true` is refused unless the cloud allows privileged
//! applications ([`Policy`]), and an unprivileged container may add only
//! the capabilities `roost_runtime::confine::ADDABLE` lists.

use std::collections::BTreeMap;

use roost_api::apps::agent as wire;
use roost_api::apps::base64;
use roost_api::apps::manifest::{self, ConfigMap, Object, PodSpec, PortRef, Secret};
use roost_apps::{
    AppSpec, HostPlan, PlannedReplica, PodTemplate, Probe, ProbeAction, Resources, RestartPolicy,
    Workload, WorkloadKind,
};

use crate::error::Error;

/// The file mode of ConfigMap and Secret files when `defaultMode` is not
/// given (Kubernetes' default).
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// What the server keeps of an uploaded package to build plans: its objects,
/// and for each image reference the containers use, the image's digest and
/// archive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackageSpec {
    pub objects: Vec<Object>,
    /// Keyed by the reference as containers name it
    /// (`registry.local/web:1.0`).
    pub images: BTreeMap<String, wire::ImageRef>,
}

impl PackageSpec {
    /// A package's objects with its images, keyed by their references.
    pub fn new(
        objects: impl IntoIterator<Item = Object>,
        images: impl IntoIterator<Item = wire::ImageRef>,
    ) -> PackageSpec {
        PackageSpec {
            objects: objects.into_iter().collect(),
            images: images.into_iter().map(|i| (i.name.clone(), i)).collect(),
        }
    }

    /// The image a container names: the same reference, or one that means
    /// the same image once both are written in full (`busybox` is
    /// `docker.io/library/busybox:latest`).
    pub fn image(&self, reference: &str) -> Option<&wire::ImageRef> {
        self.images.get(reference).or_else(|| {
            let full = normalize_image(reference);
            self.images
                .iter()
                .find(|(k, _)| normalize_image(k) == full)
                .map(|(_, v)| v)
        })
    }

    /// The Deployment, DaemonSet or Pod named `name`.
    pub fn workload(&self, name: &str) -> Option<&Object> {
        self.objects
            .iter()
            .find(|o| o.pod_spec().is_some() && o.name() == name)
    }

    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.objects.iter().find_map(|o| match o {
            Object::ConfigMap(c) if c.metadata.name == name => Some(c),
            _ => None,
        })
    }

    fn secret(&self, name: &str) -> Option<&Secret> {
        self.objects.iter().find_map(|o| match o {
            Object::Secret(s) if s.metadata.name == name => Some(s),
            _ => None,
        })
    }
}

/// An image reference written in full, as containerd and Docker read it:
/// the registry `docker.io` when the first component is not a host name,
/// `library/` for a one-component name on it, and the tag `latest` when
/// neither a tag nor a digest is given.
pub fn normalize_image(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let (first, rest) = name.split_once('/').unwrap_or(("", name));
    let has_host = first.contains('.') || first.contains(':') || first == "localhost";
    let mut full = if has_host {
        name.to_string()
    } else if first.is_empty() {
        format!("docker.io/library/{rest}")
    } else {
        format!("docker.io/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    }
    full
}

/// What this cloud lets an application's containers do (the server's
/// `[apps]` configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Containers may ask for `securityContext.privileged: true`.
    pub allow_privileged: bool,
}

/// The domain's view of an application's workloads, checked as far as the
/// package can be: every image a container names is in the package, every
/// environment variable and volume resolves, every probe port is a number
/// or a container port's name, every `securityContext` is one `policy`
/// allows, and the domain's own rules ([`AppSpec::validate`]) hold. Errors
/// are [`Error::Invalid`] naming the object, the container and the field.
pub fn app_spec(app: &str, pkg: &PackageSpec, policy: Policy) -> Result<AppSpec, Error> {
    let mut workloads = Vec::new();
    for object in &pkg.objects {
        let (kind, spec) = match object {
            Object::Deployment(d) => (
                WorkloadKind::Deployment {
                    replicas: d.spec.replicas,
                },
                &d.spec.template.spec,
            ),
            Object::DaemonSet(d) => (WorkloadKind::DaemonSet, &d.spec.template.spec),
            Object::Pod(p) => (WorkloadKind::Pod, &p.spec),
            Object::ConfigMap(_) | Object::Secret(_) => continue,
        };
        let at = format!("application {app}: {}", object.describe());
        let mut containers = Vec::new();
        for c in &spec.containers {
            let at = format!("{at}: container {}", c.name);
            // Everything the agent will be given is resolved now, so a
            // package that is accepted renders.
            let wire = container_spec(pkg, spec, c, &at)?;
            allowed(&wire.security, policy, &at)?;
            containers.push(roost_apps::Container {
                name: c.name.clone(),
                image: c.image.clone(),
                resources: resources(&c.resources),
                liveness: wire.liveness.as_ref().map(domain_probe),
                readiness: wire.readiness.as_ref().map(domain_probe),
            });
        }
        workloads.push(Workload {
            name: object.name().to_string(),
            kind,
            template: PodTemplate {
                containers,
                node_selector: spec.node_selector.clone(),
                restart_policy: restart_policy(spec.restart_policy),
                host_network: spec.host_network,
            },
        });
    }
    let spec = AppSpec { workloads };
    spec.validate(app)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(spec)
}

/// A host's domain plan in the agent protocol: each planned replica joined
/// with its workload's pod spec from its application's package, everything
/// resolved, with the CPUs the scheduler gave each container. A replica
/// whose application or workload is unknown (removed meanwhile) cannot be
/// rendered: it is left out of the plan, and its id is in the second value
/// for the caller to count and log.
pub fn render<'p>(
    plan: &HostPlan,
    packages: impl Fn(&str) -> Option<&'p PackageSpec>,
) -> (wire::HostPlan, Vec<String>) {
    let mut replicas = Vec::with_capacity(plan.replicas.len());
    let mut left_out = Vec::new();
    for r in &plan.replicas {
        match packages(&r.app).and_then(|pkg| replica_spec(r, pkg)) {
            Some(spec) => replicas.push(spec),
            None => left_out.push(r.id.clone()),
        }
    }
    let plan = wire::HostPlan {
        host: plan.host.clone(),
        generation: plan.generation,
        replicas,
    };
    (plan, left_out)
}

/// One replica in the agent protocol, or `None` when its package no longer
/// holds what the plan names.
fn replica_spec(r: &PlannedReplica, pkg: &PackageSpec) -> Option<wire::ReplicaSpec> {
    let object = pkg.workload(&r.workload)?;
    let (_, spec) = object.pod_spec()?;
    let at = format!("application {}: {}", r.app, object.describe());
    let mut containers = Vec::with_capacity(r.containers.len());
    let mut images: Vec<wire::ImageRef> = Vec::new();
    for planned in &r.containers {
        let c = spec
            .containers
            .iter()
            .find(|c| c.name == planned.container.name)?;
        let mut out = container_spec(pkg, spec, c, &format!("{at}: container {}", c.name)).ok()?;
        let res = &planned.container.resources;
        out.host_network = r.host_network;
        out.cpuset = planned.cpuset.clone();
        out.exclusive = planned.exclusive;
        out.cpu_millis_request = res.cpu_request_millis;
        out.cpu_millis_limit = res.cpu_limit_millis;
        out.memory_request_bytes = res.memory_request_bytes;
        out.memory_limit_bytes = res.memory_limit_bytes;
        let image = pkg.image(&c.image)?;
        if !images.contains(image) {
            images.push(image.clone());
        }
        containers.push(out);
    }
    Some(wire::ReplicaSpec {
        id: r.id.clone(),
        app: r.app.clone(),
        generation: r.generation,
        containers,
        restart_policy: r.restart_policy.as_str().to_string(),
        images,
    })
}

fn invalid(at: &str, field: &str, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{at}: {field}: {message}"))
}

/// A container of `spec` in the agent protocol, without CPU pinning (that
/// comes from the scheduler). `at` names the application, object and
/// container in errors.
fn container_spec(
    pkg: &PackageSpec,
    spec: &PodSpec,
    c: &manifest::Container,
    at: &str,
) -> Result<wire::ContainerSpec, Error> {
    let image = pkg.image(&c.image).ok_or_else(|| {
        Error::Invalid(format!(
            "{at}: image {:?} is not in the package (no archive under images/ provides it)",
            c.image
        ))
    })?;
    let env = environment(pkg, c, at)?;
    let expand_all = |items: &[String]| -> Vec<String> {
        items
            .iter()
            .map(|s| expand(s, |name| lookup(&env, name)))
            .collect()
    };
    let command = expand_all(&c.command);
    let args = expand_all(&c.args);
    let mut mounts = Vec::with_capacity(c.volume_mounts.len());
    for (j, m) in c.volume_mounts.iter().enumerate() {
        let field = format!("volumeMounts[{j}]");
        let volume = spec
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| invalid(at, &field, format!("no volume named {:?}", m.name)))?;
        let (source, always_read_only) = mount_source(pkg, volume, at)?;
        mounts.push(wire::MountSpec {
            target: m.mount_path.clone(),
            read_only: m.read_only || always_read_only,
            source,
        });
    }
    let ports = c
        .ports
        .iter()
        .map(|p| wire::PortSpec {
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: protocol(p.protocol).to_string(),
        })
        .collect();
    let liveness = c
        .liveness_probe
        .as_ref()
        .map(|p| probe_spec(c, p, at, "livenessProbe"))
        .transpose()?;
    let readiness = c
        .readiness_probe
        .as_ref()
        .map(|p| probe_spec(c, p, at, "readinessProbe"))
        .transpose()?;
    let r = resources(&c.resources);
    let security = security(c.security_context.as_ref(), at)?;
    Ok(wire::ContainerSpec {
        name: c.name.clone(),
        // The reference the image is imported under, which may be written
        // in full where the manifest has a short name.
        image: image.name.clone(),
        image_digest: image.digest.clone(),
        command,
        args,
        env,
        host_network: spec.host_network,
        cpuset: None,
        exclusive: false,
        ports,
        cpu_millis_request: r.cpu_request_millis,
        cpu_millis_limit: r.cpu_limit_millis,
        memory_request_bytes: r.memory_request_bytes,
        memory_limit_bytes: r.memory_limit_bytes,
        mounts,
        liveness,
        readiness,
        security,
    })
}

/// A container's `securityContext` in the agent protocol, capability names
/// in their canonical form (`CAP_NET_ADMIN`). Whether the cloud allows it
/// is [`allowed`]'s question.
fn security(sc: Option<&manifest::SecurityContext>, at: &str) -> Result<wire::SecuritySpec, Error> {
    let Some(sc) = sc else {
        return Ok(wire::SecuritySpec::default());
    };
    let caps = sc.capabilities.clone().unwrap_or_default();
    let names = |list: &[String], what: &str| -> Result<Vec<String>, Error> {
        list.iter()
            .enumerate()
            .map(|(j, name)| {
                roost_runtime::confine::capability(name)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        invalid(
                            at,
                            &format!("securityContext.capabilities.{what}[{j}]"),
                            format!("{name:?} is not a Linux capability"),
                        )
                    })
            })
            .collect()
    };
    let privileged = sc.privileged.unwrap_or(false);
    if privileged && sc.allow_privilege_escalation == Some(false) {
        return Err(invalid(
            at,
            "securityContext.allowPrivilegeEscalation",
            "cannot be false for a privileged container",
        ));
    }
    Ok(wire::SecuritySpec {
        privileged,
        add_capabilities: names(&caps.add, "add")?,
        drop_capabilities: names(&caps.drop, "drop")?,
        read_only_root_filesystem: sc.read_only_root_filesystem.unwrap_or(false),
        allow_privilege_escalation: sc.allow_privilege_escalation.unwrap_or(false),
        run_as_user: sc.run_as_user,
        run_as_group: sc.run_as_group,
    })
}

/// Refuses what `policy` does not allow: a privileged container unless the
/// cloud allows them, and capabilities an unprivileged container may not
/// add.
fn allowed(s: &wire::SecuritySpec, policy: Policy, at: &str) -> Result<(), Error> {
    if s.privileged {
        if !policy.allow_privileged {
            return Err(invalid(
                at,
                "securityContext.privileged",
                "privileged containers are not allowed in this cloud (an administrator may allow them with allow_privileged = true under [apps] in the server's configuration)",
            ));
        }
        return Ok(());
    }
    let addable = roost_runtime::confine::ADDABLE;
    for (j, cap) in s.add_capabilities.iter().enumerate() {
        if !addable.contains(&cap.as_str()) {
            return Err(invalid(
                at,
                &format!("securityContext.capabilities.add[{j}]"),
                format!(
                    "{cap} may not be added to an unprivileged container (those it may add: {})",
                    addable.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The last definition of `name` in `env`.
fn lookup<'e>(env: &'e [(String, String)], name: &str) -> Option<&'e str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A container's environment, in manifest order, with ConfigMap and Secret
/// references resolved and `$(VAR)` references to earlier variables
/// expanded.
fn environment(
    pkg: &PackageSpec,
    c: &manifest::Container,
    at: &str,
) -> Result<Vec<(String, String)>, Error> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(c.env.len());
    for (j, e) in c.env.iter().enumerate() {
        let value = match &e.value_from {
            None => Some(expand(e.value.as_deref().unwrap_or(""), |name| {
                lookup(&env, name)
            })),
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    let field = format!("env[{j}].valueFrom.configMapKeyRef");
                    match pkg.config_map(&r.name).map(|m| m.data.get(&r.key)) {
                        Some(Some(v)) => Some(v.clone()),
                        _ if r.optional => None,
                        None => {
                            return Err(invalid(
                                at,
                                &field,
                                format!("ConfigMap {:?} is not in the package", r.name),
                            ));
                        }
                        Some(None) => {
                            return Err(invalid(
                                at,
                                &field,
                                format!("ConfigMap {:?} has no key {:?}", r.name, r.key),
                            ));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let field = format!("env[{j}].valueFrom.secretKeyRef");
                    let values = secret_values(pkg, &r.name, at, &field)?;
                    match values.map(|mut v| v.remove(&r.key)) {
                        Some(Some(bytes)) => Some(String::from_utf8(bytes).map_err(|_| {
                            invalid(
                                at,
                                &field,
                                format!(
                                    "Secret {:?} key {:?} is not UTF-8 text, so it cannot be an environment variable",
                                    r.name, r.key
                                ),
                            )
                        })?),
                        _ if r.optional => None,
                        None => {
                            return Err(invalid(
                                at,
                                &field,
                                format!("Secret {:?} is not in the package", r.name),
                            ));
                        }
                        Some(None) => {
                            return Err(invalid(
                                at,
                                &field,
                                format!("Secret {:?} has no key {:?}", r.name, r.key),
                            ));
                        }
                    }
                } else {
                    return Err(invalid(
                        at,
                        &format!("env[{j}].valueFrom"),
                        "exactly one of configMapKeyRef, secretKeyRef is required",
                    ));
                }
            }
        };
        if let Some(value) = value {
            env.push((e.name.clone(), value));
        }
    }
    Ok(env)
}

/// The decoded values of a Secret, or `None` when it is not in the package.
fn secret_values(
    pkg: &PackageSpec,
    name: &str,
    at: &str,
    field: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Error> {
    pkg.secret(name)
        .map(|s| {
            s.values()
                .map_err(|e| invalid(at, field, format!("Secret {name:?}: {e}")))
        })
        .transpose()
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes the variable's value
/// when `lookup` knows it and stays as written otherwise; `$$` is a
/// literal `$`.
fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(')
            && let Some(end) = r.find(')')
        {
            let name = &r[..end];
            match lookup(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A volume as the agent mounts it, and whether Kubernetes always mounts
/// it read-only (ConfigMap and Secret volumes).
fn mount_source(
    pkg: &PackageSpec,
    v: &manifest::Volume,
    at: &str,
) -> Result<(wire::MountSource, bool), Error> {
    let field = format!("volume {}", v.name);
    if let Some(h) = &v.host_path {
        return Ok((
            wire::MountSource::HostPath {
                path: h.path.clone(),
                kind: h.kind.clone().unwrap_or_default(),
            },
            false,
        ));
    }
    if let Some(e) = &v.empty_dir {
        return Ok((
            wire::MountSource::EmptyDir {
                memory: e.medium.as_deref() == Some("Memory"),
                volume: v.name.clone(),
            },
            false,
        ));
    }
    if let Some(c) = &v.config_map {
        let field = format!("{field}: configMap");
        let data: Option<BTreeMap<String, Vec<u8>>> = pkg.config_map(&c.name).map(|m| {
            m.data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect()
        });
        let what = format!("ConfigMap {:?}", c.name);
        let files = files(data, &c.items, c.optional, &what, at, &field)?;
        let mode = c.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        return Ok((wire::MountSource::Files { files, mode }, true));
    }
    if let Some(s) = &v.secret {
        let field = format!("{field}: secret");
        let data = secret_values(pkg, &s.secret_name, at, &field)?;
        let what = format!("Secret {:?}", s.secret_name);
        let files = files(data, &s.items, s.optional, &what, at, &field)?;
        let mode = s.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        return Ok((wire::MountSource::Files { files, mode }, true));
    }
    Err(invalid(
        at,
        &field,
        "exactly one of hostPath, emptyDir, configMap, secret is required",
    ))
}

/// The files of a ConfigMap or Secret volume, relative path to base64
/// content: every key under its own name, or only `items` under their
/// paths. A missing optional source gives no files, a missing optional key
/// no file.
fn files(
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: &[manifest::KeyToPath],
    optional: bool,
    what: &str,
    at: &str,
    field: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let Some(data) = data else {
        if optional {
            return Ok(BTreeMap::new());
        }
        return Err(invalid(at, field, format!("{what} is not in the package")));
    };
    if items.is_empty() {
        return Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), base64::encode(v)))
            .collect());
    }
    let mut out = BTreeMap::new();
    for item in items {
        match data.get(&item.key) {
            Some(v) => {
                out.insert(item.path.clone(), base64::encode(v));
            }
            None if optional => {}
            None => {
                return Err(invalid(
                    at,
                    field,
                    format!("{what} has no key {:?}", item.key),
                ));
            }
        }
    }
    Ok(out)
}

fn protocol(p: manifest::Protocol) -> &'static str {
    match p {
        manifest::Protocol::Tcp => "TCP",
        manifest::Protocol::Udp => "UDP",
        manifest::Protocol::Sctp => "SCTP",
    }
}

/// A probe in the agent protocol, its port name resolved to the number of
/// the container port of that name.
fn probe_spec(
    c: &manifest::Container,
    p: &manifest::Probe,
    at: &str,
    what: &str,
) -> Result<wire::ProbeSpec, Error> {
    let port = |port: &PortRef, action: &str| -> Result<u16, Error> {
        let field = format!("{what}.{action}.port");
        match port {
            PortRef::Number(0) => Err(invalid(at, &field, "must be 1 to 65535")),
            PortRef::Number(n) => Ok(*n),
            PortRef::Name(name) => c
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| invalid(at, &field, format!("no container port named {name:?}"))),
        }
    };
    let action = match (&p.exec, &p.http_get, &p.tcp_socket) {
        (Some(e), None, None) => wire::ProbeAction::Exec {
            command: e.command.clone(),
        },
        (None, Some(h), None) => wire::ProbeAction::HttpGet {
            path: h.path.clone(),
            port: port(&h.port, "httpGet")?,
            https: h.scheme.as_deref() == Some("HTTPS"),
        },
        (None, None, Some(t)) => wire::ProbeAction::TcpSocket {
            port: port(&t.port, "tcpSocket")?,
        },
        _ => {
            return Err(invalid(
                at,
                what,
                "exactly one of exec, httpGet, tcpSocket is required",
            ));
        }
    };
    Ok(wire::ProbeSpec {
        action,
        initial_delay_seconds: p.initial_delay(),
        period_seconds: p.period(),
        timeout_seconds: p.timeout(),
        failure_threshold: p.failures(),
        success_threshold: p.successes(),
    })
}

/// The domain's probe of a resolved one.
fn domain_probe(p: &wire::ProbeSpec) -> Probe {
    let action = match &p.action {
        wire::ProbeAction::Exec { command } => ProbeAction::Exec(command.clone()),
        wire::ProbeAction::HttpGet { path, port, .. } => ProbeAction::HttpGet {
            path: path.clone(),
            port: *port,
        },
        wire::ProbeAction::TcpSocket { port } => ProbeAction::TcpSocket { port: *port },
    };
    Probe {
        action,
        initial_delay_secs: p.initial_delay_seconds,
        period_secs: p.period_seconds,
        timeout_secs: p.timeout_seconds,
        failure_threshold: p.failure_threshold,
        success_threshold: p.success_threshold,
    }
}

fn resources(r: &manifest::Resources) -> Resources {
    Resources {
        cpu_request_millis: r.cpu_request_millis(),
        cpu_limit_millis: r.cpu_limit_millis(),
        memory_request_bytes: r.memory_request_bytes(),
        memory_limit_bytes: r.memory_limit_bytes(),
    }
}

fn restart_policy(p: Option<manifest::RestartPolicy>) -> RestartPolicy {
    match p.unwrap_or_default() {
        manifest::RestartPolicy::Always => RestartPolicy::Always,
        manifest::RestartPolicy::OnFailure => RestartPolicy::OnFailure,
        manifest::RestartPolicy::Never => RestartPolicy::Never,
    }
}

#[cfg(test)]
mod tests;
