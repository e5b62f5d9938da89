use super::*;
use roost_api::apps::agent::{MountSource, ProbeAction as WireAction};
use roost_api::apps::manifest::parse_documents;
use roost_apps::{AppSettings, Apps, HostFacts, UploadRequest};
use roost_types::Timestamp;

const WEB: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data:
  GREETING: hello
  web.conf: "listen 8080;\n"
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
type: Opaque
data:
  token: c2VjcmV0
stringData:
  password: p@ss
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes:
      - name: creds
        secret:
          secretName: web-secret
          defaultMode: 256
          items: [{key: token, path: auth/token}]
      - name: conf
        configMap: {name: web-config}
      - name: scratch
        emptyDir: {medium: Memory}
      containers:
      - name: web
        image: registry.local/web:1.0
        command: ["/bin/httpd"]
        args: ["-f", "-p", "$(PORT)"]
        env:
        - {name: PORT, value: "8080"}
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: web-config, key: GREETING}}
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: web-secret, key: token}}
        - name: UNSET
          valueFrom: {configMapKeyRef: {name: web-config, key: nope, optional: true}}
        - {name: URL, value: "http://localhost:$(PORT)/$$(PORT)/$(UNSET)"}
        - {name: EMPTY}
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests: {cpu: "1", memory: 64Mi}
          limits: {cpu: "1", memory: 64Mi}
        volumeMounts:
        - {name: creds, mountPath: /etc/creds}
        - {name: conf, mountPath: /etc/web, readOnly: false}
        - {name: scratch, mountPath: /tmp/scratch}
        livenessProbe:
          httpGet: {path: /healthz, port: http, scheme: HTTPS}
          periodSeconds: 5
        readinessProbe:
          tcpSocket: {port: 8080}
      - name: sidecar
        image: busybox
        command: ["sh", "-c", "sleep 3600"]
        resources: {requests: {cpu: 100m, memory: 16Mi}}
        volumeMounts:
        - {name: scratch, mountPath: /scratch, readOnly: true}
        livenessProbe:
          exec: {command: [cat, /tmp/healthy]}
"#;

const AGENTS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: collector}
spec:
  selector: {matchLabels: {app: collector}}
  template:
    metadata: {labels: {app: collector}}
    spec:
      hostNetwork: true
      nodeSelector: {collector: enabled}
      volumes:
      - name: logs
        hostPath: {path: /var/log}
      containers:
      - name: collect
        image: docker.io/library/busybox:latest
        ports: [{containerPort: 9100, hostPort: 9100}]
        volumeMounts: [{name: logs, mountPath: /host/logs, readOnly: true}]
      - name: ship
        image: busybox
        ports: [{containerPort: 514, protocol: UDP}]
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: OnFailure
  containers:
  - name: job
    image: busybox:latest
    args: ["echo", "$(MISSING)", "$$HOME"]
"#;

fn image(name: &str, digest: &str, archive: &str) -> wire::ImageRef {
    wire::ImageRef {
        name: name.to_string(),
        digest: digest.to_string(),
        archive: archive.to_string(),
    }
}

fn package(yaml: &str) -> PackageSpec {
    PackageSpec::new(
        parse_documents(yaml).unwrap(),
        [
            image("registry.local/web:1.0", "sha256:1111", "images/web.tar"),
            image(
                "docker.io/library/busybox:latest",
                "sha256:2222",
                "images/busybox.tar",
            ),
        ],
    )
}

/// The application uploaded and applied by the domain on one host, and that
/// host's plan as the domain made it.
fn domain_plan(app: &str, spec: AppSpec, host: HostFacts) -> roost_apps::HostPlan {
    let now = Timestamp(1_000_000);
    let mut apps = Apps::new(AppSettings::default());
    let name = host.name.clone();
    apps.host_changed(host, now);
    apps.upload(
        UploadRequest {
            name: app.into(),
            app_version: "1.0".into(),
            manifest_name: format!("{app}-manifest"),
            manifest_file: "manifests".into(),
        },
        now,
    )
    .unwrap();
    apps.upload_succeeded(app, spec, now).unwrap();
    apps.apply(app, now).unwrap();
    apps.plan(&name).unwrap()
}

fn host() -> HostFacts {
    let mut h = HostFacts::up("controller-0", 4000, 8 << 30);
    h.platform_cpus = vec![0];
    h.application_cpus = vec![1];
    h.isolated_cpus = vec![2, 3];
    h
}

fn b64(s: &str) -> String {
    base64::encode(s.as_bytes())
}

#[test]
fn a_deployment_round_trips_through_the_domain_to_the_agent_plan() {
    let pkg = package(WEB);
    let spec = app_spec("hello", &pkg, Policy::default()).unwrap();
    let [w] = spec.workloads.as_slice() else {
        panic!("{spec:?}")
    };
    assert_eq!(w.name, "web");
    assert_eq!(w.kind, WorkloadKind::Deployment { replicas: 1 });
    assert_eq!(w.template.restart_policy, RestartPolicy::Always);
    let web = &w.template.containers[0];
    assert_eq!(web.image, "registry.local/web:1.0");
    assert_eq!(web.resources.exclusive_cpus(), Some(1));
    assert_eq!(web.resources.memory_limit_bytes, Some(64 << 20));
    assert_eq!(
        web.liveness,
        Some(Probe {
            period_secs: 5,
            ..Probe::new(ProbeAction::HttpGet {
                path: "/healthz".into(),
                port: 8080,
            })
        })
    );
    assert_eq!(
        web.readiness,
        Some(Probe::new(ProbeAction::TcpSocket { port: 8080 }))
    );

    let domain = domain_plan("hello", spec, host());
    assert_eq!(domain.replicas.len(), 1, "{domain:?}");
    let (plan, left_out) = render(&domain, |app: &str| (app == "hello").then_some(&pkg));
    assert!(left_out.is_empty(), "{left_out:?}");
    assert_eq!(plan.host, "controller-0");
    assert_eq!(plan.generation, domain.generation);
    let [r] = plan.replicas.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!(r.id, "hello/web/0");
    assert_eq!(r.app, "hello");
    assert_eq!(r.generation, domain.replicas[0].generation);
    assert_eq!(r.restart_policy, "Always");
    assert_eq!(
        r.images,
        vec![
            pkg.images["registry.local/web:1.0"].clone(),
            pkg.images["docker.io/library/busybox:latest"].clone(),
        ]
    );

    let [web, sidecar] = r.containers.as_slice() else {
        panic!("{r:?}")
    };
    // CPUs exactly as the scheduler gave them: an isolated core of its own
    // for the whole-CPU container, the shared pool for the other.
    for (c, planned) in r.containers.iter().zip(&domain.replicas[0].containers) {
        assert_eq!(c.name, planned.container.name);
        assert_eq!(c.cpuset, planned.cpuset);
        assert_eq!(c.exclusive, planned.exclusive);
    }
    assert!(web.exclusive);
    assert!(matches!(web.cpuset.as_deref(), Some([2 | 3])), "{web:?}");
    assert!(!sidecar.exclusive);
    assert_eq!(sidecar.cpuset, Some(vec![1]));

    assert_eq!(web.image_digest, "sha256:1111");
    assert_eq!(web.command, ["/bin/httpd"]);
    assert_eq!(web.args, ["-f", "-p", "8080"]);
    let env: Vec<(&str, &str)> = web
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("PORT", "8080"),
            ("GREETING", "hello"),
            ("TOKEN", "secret"),
            ("URL", "http://localhost:8080/$(PORT)/$(UNSET)"),
            ("EMPTY", ""),
        ]
    );
    assert_eq!(
        web.ports,
        [wire::PortSpec {
            container_port: 8080,
            host_port: None,
            protocol: "TCP".into(),
        }]
    );
    assert_eq!(web.cpu_millis_request, 1000);
    assert_eq!(web.cpu_millis_limit, Some(1000));
    assert_eq!(web.memory_request_bytes, 64 << 20);
    assert_eq!(web.memory_limit_bytes, Some(64 << 20));
    assert!(!web.host_network);

    assert_eq!(
        web.mounts,
        [
            wire::MountSpec {
                target: "/etc/creds".into(),
                read_only: true,
                source: MountSource::Files {
                    files: [("auth/token".to_string(), b64("secret"))].into(),
                    mode: 0o400,
                },
            },
            wire::MountSpec {
                target: "/etc/web".into(),
                // ConfigMap volumes are read-only whatever the mount says.
                read_only: true,
                source: MountSource::Files {
                    files: [
                        ("GREETING".to_string(), b64("hello")),
                        ("web.conf".to_string(), b64("listen 8080;\n")),
                    ]
                    .into(),
                    mode: 0o644,
                },
            },
            wire::MountSpec {
                target: "/tmp/scratch".into(),
                read_only: false,
                source: MountSource::EmptyDir {
                    memory: true,
                    volume: "scratch".into(),
                },
            },
        ]
    );
    let liveness = web.liveness.as_ref().unwrap();
    assert_eq!(
        liveness.action,
        WireAction::HttpGet {
            path: "/healthz".into(),
            port: 8080,
            https: true,
        }
    );
    assert_eq!(
        (
            liveness.initial_delay_seconds,
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.failure_threshold,
            liveness.success_threshold
        ),
        (0, 5, 1, 3, 1)
    );
    assert_eq!(
        web.readiness.as_ref().unwrap().action,
        WireAction::TcpSocket { port: 8080 }
    );

    // The container names its image as the package provides it, so the
    // agent finds what it imported.
    assert_eq!(sidecar.image, "docker.io/library/busybox:latest");
    assert_eq!(sidecar.image_digest, "sha256:2222");
    assert_eq!(sidecar.cpu_millis_request, 100);
    assert_eq!(sidecar.cpu_millis_limit, None);
    assert_eq!(sidecar.memory_request_bytes, 16 << 20);
    assert!(sidecar.env.is_empty());
    assert_eq!(
        sidecar.mounts,
        [wire::MountSpec {
            target: "/scratch".into(),
            read_only: true,
            source: MountSource::EmptyDir {
                memory: true,
                volume: "scratch".into(),
            },
        }]
    );
    assert_eq!(
        sidecar.liveness.as_ref().unwrap().action,
        WireAction::Exec {
            command: vec!["cat".into(), "/tmp/healthy".into()],
        }
    );
    assert_eq!(sidecar.readiness, None);

    // The plan is what goes over the wire to the agent.
    let text = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<wire::HostPlan>(&text).unwrap(), plan);
}

#[test]
fn daemon_sets_and_pods_render_with_their_own_kinds_and_policies() {
    let pkg = package(AGENTS);
    let spec = app_spec("agents", &pkg, Policy::default()).unwrap();
    let kinds: Vec<(&str, WorkloadKind, RestartPolicy)> = spec
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.kind, w.template.restart_policy))
        .collect();
    assert_eq!(
        kinds,
        [
            ("collector", WorkloadKind::DaemonSet, RestartPolicy::Always),
            ("once", WorkloadKind::Pod, RestartPolicy::OnFailure),
        ]
    );
    assert!(spec.workloads[0].template.host_network);
    assert_eq!(
        spec.workloads[0].template.node_selector,
        [("collector".to_string(), "enabled".to_string())].into()
    );

    let mut h = host();
    h.labels.insert("collector".into(), "enabled".into());
    let domain = domain_plan("agents", spec, h);
    let (plan, left_out) = render(&domain, |_: &str| Some(&pkg));
    assert!(left_out.is_empty(), "{left_out:?}");
    let ids: Vec<&str> = plan.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["agents/collector/controller-0", "agents/once/0"]);

    let collector = &plan.replicas[0];
    assert_eq!(collector.restart_policy, "Always");
    // Both containers name the same image, written two ways: one import.
    assert_eq!(
        collector.images,
        [pkg.images["docker.io/library/busybox:latest"].clone()]
    );
    let [collect, ship] = collector.containers.as_slice() else {
        panic!("{collector:?}")
    };
    assert!(collect.host_network && ship.host_network);
    assert_eq!(
        collect.ports,
        [wire::PortSpec {
            container_port: 9100,
            host_port: Some(9100),
            protocol: "TCP".into(),
        }]
    );
    assert_eq!(ship.ports[0].protocol, "UDP");
    assert_eq!(
        collect.mounts,
        [wire::MountSpec {
            target: "/host/logs".into(),
            read_only: true,
            source: MountSource::HostPath {
                path: "/var/log".into(),
                kind: String::new(),
            },
        }]
    );
    assert_eq!(collect.cpuset, Some(vec![1]));

    let once = &plan.replicas[1];
    assert_eq!(once.restart_policy, "OnFailure");
    let job = &once.containers[0];
    assert!(!job.host_network);
    assert_eq!(job.image_digest, "sha256:2222");
    assert!(job.command.is_empty());
    // Unknown references stay as written, `$$` is a literal `$`.
    assert_eq!(job.args, ["echo", "$(MISSING)", "$HOME"]);
}

#[test]
fn an_image_no_archive_provides_is_refused_naming_the_container() {
    let mut pkg = package(WEB);
    pkg.images.remove("docker.io/library/busybox:latest");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application hello: Deployment web: container sidecar: image \"busybox\" is not in the package (no archive under images/ provides it)"
    );
}

#[test]
fn an_unknown_probe_port_name_is_refused_naming_the_field() {
    let mut pkg = package(WEB);
    let Object::Deployment(d) = &mut pkg.objects[2] else {
        panic!()
    };
    let probe = d.spec.template.spec.containers[0]
        .liveness_probe
        .as_mut()
        .unwrap();
    probe.http_get.as_mut().unwrap().port = PortRef::Name("metrics".into());
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "application hello: Deployment web: container web: livenessProbe.httpGet.port: no container port named \"metrics\""
    );
}

#[test]
fn missing_config_maps_and_secrets_are_refused_unless_optional() {
    let mut pkg = package(WEB);
    pkg.objects.retain(|o| !matches!(o, Object::Secret(_)));
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application hello: Deployment web: container web: env[2].valueFrom.secretKeyRef: Secret \"web-secret\" is not in the package"
    );

    let mut pkg = package(WEB);
    pkg.objects.retain(|o| !matches!(o, Object::ConfigMap(_)));
    let Object::Deployment(d) = &mut pkg.objects[1] else {
        panic!()
    };
    let spec = &mut d.spec.template.spec;
    spec.containers[0].env.retain(|e| e.name != "GREETING");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "application hello: Deployment web: container web: volume conf: configMap: ConfigMap \"web-config\" is not in the package"
    );
    // Optional: no files, and no variable.
    let Object::Deployment(d) = &mut pkg.objects[1] else {
        panic!()
    };
    d.spec.template.spec.volumes[1]
        .config_map
        .as_mut()
        .unwrap()
        .optional = true;
    let spec = app_spec("hello", &pkg, Policy::default()).unwrap();
    let domain = domain_plan("hello", spec, host());
    let (plan, _) = render(&domain, |_: &str| Some(&pkg));
    let web = &plan.replicas[0].containers[0];
    assert_eq!(
        web.mounts[1].source,
        MountSource::Files {
            files: BTreeMap::new(),
            mode: 0o644,
        }
    );
    assert!(web.env.iter().all(|(k, _)| k != "UNSET"), "{:?}", web.env);
}

#[test]
fn what_the_domain_refuses_is_invalid() {
    let yaml = WEB.replace("replicas: 1", "replicas: 1001");
    let e = app_spec("hello", &package(&yaml), Policy::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    assert!(e.to_string().contains("at most 1000"), "{e}");
}

#[test]
fn replicas_of_unknown_apps_or_workloads_are_left_out() {
    let pkg = package(WEB);
    let mut domain = domain_plan(
        "hello",
        app_spec("hello", &pkg, Policy::default()).unwrap(),
        host(),
    );
    let mut gone = domain.replicas[0].clone();
    gone.id = "hello/old/0".into();
    gone.workload = "old".into();
    let mut removed = domain.replicas[0].clone();
    removed.id = "bye/web/0".into();
    removed.app = "bye".into();
    domain.replicas.insert(0, gone);
    domain.replicas.push(removed);
    let (plan, left_out) = render(&domain, |app: &str| (app == "hello").then_some(&pkg));
    assert_eq!(left_out, ["hello/old/0", "bye/web/0"]);
    let ids: Vec<&str> = plan.replicas.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["hello/web/0"]);
}

#[test]
fn image_references_are_compared_written_in_full() {
    for (short, full) in [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("me/tool:2", "docker.io/me/tool:2"),
        ("registry.local/web:1.0", "registry.local/web:1.0"),
        ("registry.local:5000/web", "registry.local:5000/web:latest"),
        ("localhost/web", "localhost/web:latest"),
        ("web@sha256:ab", "docker.io/library/web@sha256:ab"),
        ("web:1@sha256:ab", "docker.io/library/web:1@sha256:ab"),
    ] {
        assert_eq!(normalize_image(short), full, "{short}");
    }
    let pkg = package(WEB);
    assert_eq!(pkg.image("busybox:latest").unwrap().digest, "sha256:2222");
    assert!(pkg.image("busybox:1.36").is_none());
    assert!(pkg.image("registry.local/web").is_none());
}

/// WEB with `securityContext` (YAML flow text) on its sidecar.
fn with_security(context: &str) -> PackageSpec {
    package(&WEB.replacen(
        "      - name: sidecar\n        image: busybox\n",
        &format!(
            "      - name: sidecar\n        image: busybox\n        securityContext: {context}\n"
        ),
        1,
    ))
}

#[test]
fn a_security_context_reaches_the_plan_with_canonical_capabilities() {
    let pkg = with_security(
        "{readOnlyRootFilesystem: true, runAsUser: 1000, runAsGroup: 100, capabilities: {drop: [ALL], add: [net_bind_service, CAP_IPC_LOCK]}}",
    );
    let spec = app_spec("hello", &pkg, Policy::default()).unwrap();
    let domain = domain_plan("hello", spec, host());
    let (plan, _) = render(&domain, |_: &str| Some(&pkg));
    let containers = &plan.replicas[0].containers;
    // No securityContext: the defaults, confined.
    assert_eq!(containers[0].security, wire::SecuritySpec::default());
    assert_eq!(
        containers[1].security,
        wire::SecuritySpec {
            privileged: false,
            add_capabilities: vec!["CAP_NET_BIND_SERVICE".into(), "CAP_IPC_LOCK".into()],
            drop_capabilities: vec!["ALL".into()],
            read_only_root_filesystem: true,
            allow_privilege_escalation: false,
            run_as_user: Some(1000),
            run_as_group: Some(100),
        }
    );
}

#[test]
fn privileged_containers_are_refused_unless_the_cloud_allows_them() {
    let pkg = with_security("{privileged: true}");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "application hello: Deployment web: container sidecar: securityContext.privileged: privileged containers are not allowed"
        ),
        "{text}"
    );
    assert!(text.contains("allow_privileged"), "{text}");
    let allowing = Policy {
        allow_privileged: true,
    };
    let spec = app_spec("hello", &pkg, allowing).unwrap();
    let domain = domain_plan("hello", spec, host());
    let (plan, _) = render(&domain, |_: &str| Some(&pkg));
    assert!(plan.replicas[0].containers[1].security.privileged);
    // A privileged container may add anything; it has everything anyway.
    let pkg = with_security("{privileged: true, capabilities: {add: [SYS_ADMIN]}}");
    app_spec("hello", &pkg, allowing).unwrap();
    let pkg = with_security("{privileged: true, allowPrivilegeEscalation: false}");
    let e = app_spec("hello", &pkg, allowing).unwrap_err();
    assert!(
        e.to_string()
            .contains("securityContext.allowPrivilegeEscalation: cannot be false"),
        "{e}"
    );
}

#[test]
fn capabilities_outside_the_addable_list_or_unknown_are_refused_naming_the_field() {
    let pkg = with_security("{capabilities: {add: [NET_BIND_SERVICE, SYS_ADMIN]}}");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "application hello: Deployment web: container sidecar: securityContext.capabilities.add[1]: CAP_SYS_ADMIN may not be added to an unprivileged container"
        ),
        "{e}"
    );
    let pkg = with_security("{capabilities: {add: [ALL]}}");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(
        e.to_string().contains("capabilities.add[0]: ALL may not"),
        "{e}"
    );
    let pkg = with_security("{capabilities: {drop: [CHOWN, FLY]}}");
    let e = app_spec("hello", &pkg, Policy::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("securityContext.capabilities.drop[1]: \"FLY\" is not a Linux capability"),
        "{e}"
    );
}
