use super::*;

const GOOD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      hostNetwork: true
      nodeSelector: {zone: a}
      volumes:
        - name: conf
          configMap: {name: web-conf}
        - name: creds
          secret: {secretName: web-secret}
        - name: scratch
          emptyDir: {}
        - name: logs
          hostPath: {path: /var/log/web, type: DirectoryOrCreate}
      containers:
        - name: httpd
          image: registry.local/web:1.0
          command: ["/bin/httpd"]
          args: ["-f", "-p", "8080"]
          env:
            - {name: PLAIN, value: "x"}
            - name: FROM_CM
              valueFrom: {configMapKeyRef: {name: web-conf, key: greeting}}
            - name: FROM_SECRET
              valueFrom: {secretKeyRef: {name: web-secret, key: password}}
          ports:
            - {name: http, containerPort: 8080, hostPort: 8080, protocol: TCP}
          resources:
            requests: {cpu: 250m, memory: 64Mi}
            limits: {cpu: 1, memory: 128Mi}
          volumeMounts:
            - {name: conf, mountPath: /etc/web, readOnly: true}
            - {name: scratch, mountPath: /tmp}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            initialDelaySeconds: 1
            periodSeconds: 2
            timeoutSeconds: 1
            failureThreshold: 3
            successThreshold: 1
          readinessProbe:
            tcpSocket: {port: 8080}
        - name: sidecar
          image: registry.local/side:1.0
          livenessProbe:
            exec: {command: [/bin/true]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
type: Opaque
data: {password: cGFzcw==}
stringData: {user: admin}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: a, image: "registry.local/agent:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers: [{name: job, image: "registry.local/job:1", resources: {requests: {cpu: "2"}}}]
---
"#;

fn sources(objects: &[Object]) -> Vec<(Source, Object)> {
    objects
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                Source {
                    file: "manifests/app.yaml".into(),
                    document: i + 1,
                },
                o.clone(),
            )
        })
        .collect()
}

fn refs(objects: &[Object]) -> Result<(), Error> {
    let s = sources(objects);
    check_references(s.iter().map(|(s, o)| (s, o)))
}

#[test]
fn good_manifest_reads_every_supported_field() {
    let objects = parse_documents(GOOD).unwrap();
    assert_eq!(
        objects.iter().map(Object::describe).collect::<Vec<_>>(),
        [
            "Deployment web",
            "ConfigMap web-conf",
            "Secret web-secret",
            "DaemonSet agent",
            "Pod once"
        ]
    );
    refs(&objects).unwrap();
    let Object::Deployment(d) = &objects[0] else {
        panic!()
    };
    assert_eq!(d.spec.replicas, 2);
    let spec = &d.spec.template.spec;
    assert!(spec.host_network);
    let c = &spec.containers[0];
    assert_eq!(c.resources.cpu_request_millis(), 250);
    assert_eq!(c.resources.cpu_limit_millis(), Some(1000));
    assert_eq!(c.resources.memory_request_bytes(), 64 << 20);
    assert_eq!(c.resources.memory_limit_bytes(), Some(128 << 20));
    let live = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        live.http_get.as_ref().unwrap().port,
        PortRef::Name("http".into())
    );
    assert_eq!((live.period(), live.failures()), (2, 3));
    let ready = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        ready.tcp_socket.as_ref().unwrap().port,
        PortRef::Number(8080)
    );
    assert_eq!(
        (ready.period(), ready.timeout(), ready.successes()),
        (10, 1, 1)
    );
    let Object::Secret(s) = &objects[2] else {
        panic!()
    };
    let values = s.values().unwrap();
    assert_eq!(values["password"], b"pass");
    assert_eq!(values["user"], b"admin");
    let Object::Pod(p) = &objects[4] else {
        panic!()
    };
    assert_eq!(p.spec.restart_policy, Some(RestartPolicy::Never));
    assert_eq!(p.spec.containers[0].resources.cpu_request_millis(), 2000);
}

fn err(yaml: &str) -> String {
    parse_documents(yaml).unwrap_err().to_string()
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let yaml = GOOD.replacen(
        "      hostNetwork: true\n",
        "      hostNetwork: true\n      affinity: {}\n",
        1,
    );
    let e = parse_documents(&yaml).unwrap_err();
    let Error::Manifest {
        document,
        object,
        path,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*document, Some(1));
    assert_eq!(object.as_deref(), Some("Deployment web"));
    assert_eq!(path.as_deref(), Some("spec.template.spec.affinity"), "{e}");
    let text = e.in_file("manifests/app.yaml").to_string();
    assert!(
        text.starts_with("manifests/app.yaml: document 1 (Deployment web): spec.template.spec.affinity: unknown field `affinity`"),
        "{text}"
    );
    let yaml = GOOD.replacen(
        "          image: registry.local/side:1.0\n",
        "          image: registry.local/side:1.0\n          securityContext: {seLinuxOptions: {level: s0}}\n",
        1,
    );
    assert!(
        err(&yaml).contains(
            "spec.template.spec.containers[1].securityContext.seLinuxOptions: unknown field"
        ),
        "{}",
        err(&yaml)
    );
    let yaml = GOOD.replacen(
        "metadata: {name: web-conf}",
        "metadata: {name: web-conf, annotations: {a: b}}",
        1,
    );
    assert!(
        err(&yaml)
            .starts_with("document 2 (ConfigMap web-conf): metadata.annotations: unknown field"),
        "{}",
        err(&yaml)
    );
    let yaml = GOOD.replacen(
        "requests: {cpu: 250m, memory: 64Mi}",
        "requests: {cpu: 250m, memory: 64Mi, nvidia.com/gpu: 1}",
        1,
    );
    assert!(
        err(&yaml).contains("resources.requests.nvidia.com/gpu: unknown field"),
        "{}",
        err(&yaml)
    );
    assert!(
        err("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
            .contains("kind: unsupported kind \"Service\"")
    );
    assert!(err("apiVersion: v1\nmetadata: {name: s}\n").contains("kind: missing kind"));
}

#[test]
fn bad_values_are_refused_with_their_path() {
    let cases = [
        (
            "cpu: 250m, memory",
            "cpu: lots, memory",
            "resources.requests.cpu: invalid quantity \"lots\"",
        ),
        ("replicas: 2", "replicas: -1", "spec.replicas:"),
        (
            "name: httpd",
            "name: Httpd",
            "containers[0].name: \"Httpd\" is not a valid container name",
        ),
        (
            "name: sidecar",
            "name: httpd",
            "containers[1].name: duplicate container name",
        ),
        (
            "{name: conf, mountPath: /etc/web",
            "{name: nothere, mountPath: /etc/web",
            "volumeMounts[0].name: no volume named \"nothere\"",
        ),
        (
            "name: scratch\n",
            "name: conf\n",
            "volumes[2].name: duplicate volume name \"conf\"",
        ),
        (
            "tcpSocket: {port: 8080}",
            "tcpSocket: {port: 8080}\n            exec: {command: [x]}",
            "readinessProbe: exactly one of",
        ),
        (
            "requests: {cpu: 250m",
            "requests: {cpu: 2",
            "requests.cpu: must not be more than limits.cpu",
        ),
        (
            "matchLabels: {app: web}",
            "matchLabels: {app: other}",
            "spec.selector.matchLabels: selector app=other does not match",
        ),
        (
            "apiVersion: apps/v1\nkind: Deployment",
            "apiVersion: v1\nkind: Deployment",
            "apiVersion: Deployment must have apiVersion apps/v1",
        ),
        (
            "path: /var/log/web",
            "path: var/log",
            "hostPath.path: must be an absolute path",
        ),
        (
            "data: {password: cGFzcw==}",
            "data: {password: \"c!\"}",
            "data.password: invalid base64",
        ),
        (
            "httpGet: {path: /healthz, port: http}",
            "httpGet: {path: /healthz, port: web}",
            "httpGet.port: no container port named \"web\"",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let yaml = GOOD.replacen(from, to, 1);
        let got = err(&yaml);
        assert!(got.contains(want), "{from} -> {to}: {got}");
    }
    assert!(err("a: [").contains("document 1: invalid YAML"));
}

#[test]
fn references_are_checked_across_the_package() {
    let objects = parse_documents(GOOD).unwrap();
    // Without the ConfigMap: the volume refers to a missing one.
    let without: Vec<Object> = objects
        .iter()
        .filter(|o| o.kind() != "ConfigMap")
        .cloned()
        .collect();
    let e = refs(&without).unwrap_err().to_string();
    assert!(
        e.contains("(Deployment web): spec.template.spec.volumes[0].configMap.name: ConfigMap \"web-conf\" is not in the package"),
        "{e}"
    );
    // A key that is not in the ConfigMap.
    let yaml = GOOD.replacen("key: greeting", "key: missing", 1);
    let e = refs(&parse_documents(&yaml).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "env[1].valueFrom.configMapKeyRef: ConfigMap \"web-conf\" has no key \"missing\""
        ),
        "{e}"
    );
    let yaml = GOOD.replacen("key: password", "key: pw", 1);
    let e = refs(&parse_documents(&yaml).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("secretKeyRef: Secret \"web-secret\" has no key \"pw\""),
        "{e}"
    );
    // Duplicate names: two workloads called web (a Pod and a Deployment).
    let yaml = GOOD.replacen("metadata: {name: once}", "metadata: {name: web}", 1);
    let e = refs(&parse_documents(&yaml).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("document 5 (Pod web): metadata.name: duplicate workload name \"web\" (also in manifests/app.yaml document 1)"), "{e}");
}

#[test]
fn file_modes_are_read_as_manifests_write_them() {
    let pod = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  volumes:\n  - name: c\n    configMap: {{name: conf, defaultMode: {mode}}}\n  containers: [{{name: a, image: \"registry.local/a:1\"}}]\n"
        )
    };
    let mode_of = |yaml: &str| -> Result<Option<u32>, String> {
        let objects = parse_documents(yaml).map_err(|e| e.to_string())?;
        let Object::Pod(p) = &objects[0] else {
            panic!("not a pod")
        };
        Ok(p.spec.volumes[0].config_map.as_ref().unwrap().default_mode)
    };
    assert_eq!(mode_of(&pod("0400")), Ok(Some(0o400)));
    assert_eq!(mode_of(&pod("0o644")), Ok(Some(0o644)));
    assert_eq!(mode_of(&pod("420")), Ok(Some(420)));
    let e = mode_of(&pod("\"rw\"")).unwrap_err();
    assert!(
        e.contains("defaultMode") && e.contains("invalid file mode"),
        "{e}"
    );
    assert!(mode_of(&pod("01777")).unwrap_err().contains("at most 0777"));
}

#[test]
fn a_security_context_is_read_and_host_namespaces_are_refused() {
    let yaml = GOOD.replacen(
        "          image: registry.local/side:1.0\n",
        "          image: registry.local/side:1.0
          securityContext:
            privileged: false
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            runAsUser: 1000
            runAsGroup: 100
            capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
",
        1,
    );
    let objects = parse_documents(&yaml).unwrap();
    let (_, spec) = objects[0].pod_spec().unwrap();
    let sc = spec.containers[1].security_context.as_ref().unwrap();
    assert_eq!(
        *sc,
        SecurityContext {
            privileged: Some(false),
            capabilities: Some(Capabilities {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()],
            }),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            run_as_user: Some(1000),
            run_as_group: Some(100),
        }
    );
    assert_eq!(spec.containers[0].security_context, None);
    // The host's PID and IPC namespaces are not offered: refused by name.
    for field in ["hostPID", "hostIPC"] {
        let yaml = GOOD.replacen(
            "      hostNetwork: true\n",
            &format!("      hostNetwork: true\n      {field}: true\n"),
            1,
        );
        let e = err(&yaml);
        assert!(
            e.contains(&format!("spec.template.spec.{field}: unknown field")),
            "{e}"
        );
    }
    let yaml = GOOD.replacen(
        "          image: registry.local/side:1.0\n",
        "          image: registry.local/side:1.0\n          securityContext: {runAsUser: -1}\n",
        1,
    );
    assert!(
        err(&yaml).contains("spec.template.spec.containers[1].securityContext.runAsUser"),
        "{}",
        err(&yaml)
    );
}
