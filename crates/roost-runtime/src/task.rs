//! Container and task life cycle.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use crate::proto as p;
use crate::{
    ContainerConfig, ContainerState, Containerd, Error, ExecOutcome, ExitStatus, Result, TaskState,
    TaskStatus, logs, spec, valid_id,
};

const RUNTIME: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;

fn exit_status(code: u32, at: Option<p::Timestamp>) -> ExitStatus {
    ExitStatus {
        code,
        exited_at: at.and_then(|t| {
            (t.seconds > 0).then(|| {
                SystemTime::UNIX_EPOCH
                    + Duration::from_secs(t.seconds as u64)
                    + Duration::from_nanos(t.nanos.max(0) as u64)
            })
        }),
    }
}

fn status_of(code: i32) -> TaskStatus {
    match code {
        1 => TaskStatus::Created,
        2 => TaskStatus::Running,
        3 => TaskStatus::Stopped,
        4 | 5 => TaskStatus::Paused,
        _ => TaskStatus::Unknown,
    }
}

fn ignore_not_found(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl Containerd {
    fn runc_options(&self) -> Option<p::Any> {
        use prost::Message;
        self.inner.runc_root.as_ref().map(|root| p::Any {
            type_url: RUNC_OPTIONS_TYPE.into(),
            value: p::RuncOptions {
                binary_name: String::new(),
                root: root.display().to_string(),
            }
            .encode_to_vec(),
        })
    }

    /// Creates the container's snapshot, container record and task, and
    /// starts it. On failure whatever was created is removed again.
    pub async fn start(&self, c: &ContainerConfig) -> Result<()> {
        if !valid_id(&c.id) {
            return Err(Error::Invalid(format!(
                "container id {:?}: letters, digits and . _ - between them, at most 76",
                c.id
            )));
        }
        let image = self.resolve_image(&c.image).await?;
        let spec = spec::generate(c, &image.defaults);
        let spec_json = serde_json::to_vec(&spec).map_err(|e| Error::Invalid(e.to_string()))?;
        let log_uri = match &c.log {
            Some(l) => {
                std::fs::create_dir_all(&l.dir)
                    .map_err(Error::io(format!("create {}", l.dir.display())))?;
                logs::binary_uri(l)
            }
            None => String::new(),
        };
        // The snapshot is prepared under a lease until the container that
        // references it exists: containerd's garbage collector (run after
        // every removal) would otherwise take an unreferenced snapshot away
        // between Prepare and the task's mount of it.
        let lease = self.create_lease().await?;
        let mounts = match self
            .prepare_snapshot(&c.id, &image.top_chain_id, Some(&lease))
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.release_lease(&lease).await;
                return Err(e);
            }
        };
        let r = async {
            let _: p::CreateContainerResponse = self
                .unary(
                    "/containerd.services.containers.v1.Containers/Create",
                    &p::CreateContainerRequest {
                        container: Some(p::Container {
                            id: c.id.clone(),
                            labels: c.labels.clone().into_iter().collect(),
                            image: c.image.clone(),
                            runtime: Some(p::ContainerRuntime {
                                name: RUNTIME.into(),
                                options: self.runc_options(),
                            }),
                            spec: Some(p::Any {
                                type_url: SPEC_TYPE.into(),
                                value: spec_json,
                            }),
                            snapshotter: self.inner.snapshotter.clone(),
                            snapshot_key: c.id.clone(),
                        }),
                    },
                )
                .await?;
            let _: p::CreateTaskResponse = self
                .unary(
                    "/containerd.services.tasks.v1.Tasks/Create",
                    &p::CreateTaskRequest {
                        container_id: c.id.clone(),
                        rootfs: mounts,
                        stdin: String::new(),
                        stdout: log_uri.clone(),
                        stderr: log_uri,
                        terminal: false,
                        options: self.runc_options(),
                    },
                )
                .await?;
            let _: p::StartResponse = self
                .unary(
                    "/containerd.services.tasks.v1.Tasks/Start",
                    &p::StartRequest {
                        container_id: c.id.clone(),
                        exec_id: String::new(),
                    },
                )
                .await?;
            Ok(())
        }
        .await;
        self.release_lease(&lease).await;
        if let Err(e) = r {
            if let Err(e2) = self.remove(&c.id).await {
                tracing::warn!(id = %c.id, error = %e2, "cleanup after a failed start");
            }
            return Err(e);
        }
        Ok(())
    }

    /// Drops a lease once what it protected is referenced otherwise (a
    /// lease left behind only delays garbage collection).
    async fn release_lease(&self, lease: &str) {
        if let Err(e) = self.delete_lease(lease, false).await {
            tracing::warn!(%lease, error = %e, "cannot delete a lease");
        }
    }

    async fn get_task(&self, id: &str, exec_id: &str) -> Result<p::Process> {
        let r: p::GetTaskResponse = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/Get",
                &p::GetTaskRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
            )
            .await?;
        r.process
            .ok_or_else(|| Error::NotFound(format!("task {id}")))
    }

    async fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let _: p::Empty = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/Kill",
                &p::KillRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    signal,
                    all,
                },
            )
            .await?;
        Ok(())
    }

    async fn wait_process(&self, id: &str, exec_id: &str) -> Result<ExitStatus> {
        let r: p::WaitResponse = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/Wait",
                &p::WaitRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
            )
            .await?;
        Ok(exit_status(r.exit_status, r.exited_at))
    }

    /// Waits until the container's task exits and returns its status.
    pub async fn wait_exit(&self, id: &str) -> Result<ExitStatus> {
        self.wait_process(id, "").await
    }

    /// Stops the task: SIGTERM, then SIGKILL when it has not exited after
    /// `grace`. The exit status, or `None` when the container has no task.
    /// The container stays (see [`Containerd::remove`]).
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<Option<ExitStatus>> {
        let task = match self.get_task(id, "").await {
            Ok(t) => t,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if status_of(task.status) == TaskStatus::Stopped {
            return Ok(Some(exit_status(task.exit_status, task.exited_at)));
        }
        if let Err(e) = self.kill(id, "", SIGTERM, false).await {
            tracing::debug!(id, error = %e, "SIGTERM");
        }
        if let Ok(r) = tokio::time::timeout(grace, self.wait_process(id, "")).await {
            return r.map(Some);
        }
        if let Err(e) = self.kill(id, "", SIGKILL, true).await {
            tracing::debug!(id, error = %e, "SIGKILL");
        }
        self.wait_process(id, "").await.map(Some)
    }

    /// Removes the container: kills and deletes its task (the shim unmounts
    /// the root filesystem), deletes the container record and its snapshot.
    /// Missing pieces are not an error; nothing is left afterwards.
    pub async fn remove(&self, id: &str) -> Result<()> {
        match self.get_task(id, "").await {
            Ok(t) => {
                if status_of(t.status) != TaskStatus::Stopped {
                    if let Err(e) = self.kill(id, "", SIGKILL, true).await {
                        tracing::debug!(id, error = %e, "SIGKILL before delete");
                    }
                    let waited =
                        tokio::time::timeout(Duration::from_secs(10), self.wait_process(id, ""))
                            .await;
                    if !matches!(waited, Ok(Ok(_))) {
                        tracing::warn!(id, "task did not report its exit after SIGKILL");
                    }
                }
                let r: Result<p::DeleteTaskResponse> = self
                    .unary(
                        "/containerd.services.tasks.v1.Tasks/Delete",
                        &p::DeleteTaskRequest {
                            container_id: id.to_string(),
                        },
                    )
                    .await;
                ignore_not_found(r.map(|_| ()))?;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let r: Result<p::Empty> = self
            .unary(
                "/containerd.services.containers.v1.Containers/Delete",
                &p::DeleteContainerRequest { id: id.to_string() },
            )
            .await;
        ignore_not_found(r.map(|_| ()))?;
        self.remove_snapshot(id).await
    }

    /// Every container of namespace `roost` with its task state.
    pub async fn list(&self) -> Result<Vec<ContainerState>> {
        let cs: p::ListContainersResponse = self
            .unary(
                "/containerd.services.containers.v1.Containers/List",
                &p::ListContainersRequest::default(),
            )
            .await?;
        let ts: p::ListTasksResponse = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/List",
                &p::ListTasksRequest::default(),
            )
            .await?;
        let mut tasks: HashMap<String, p::Process> = ts
            .tasks
            .into_iter()
            // containerd 1.6 fills only `id` (the container id) in lists.
            .map(|t| {
                let key = if t.container_id.is_empty() {
                    t.id.clone()
                } else {
                    t.container_id.clone()
                };
                (key, t)
            })
            .collect();
        let mut out: Vec<ContainerState> = cs
            .containers
            .into_iter()
            .map(|c| {
                let task = tasks.remove(&c.id).map(|t| {
                    let status = status_of(t.status);
                    TaskState {
                        pid: t.pid,
                        status,
                        exit: (status == TaskStatus::Stopped)
                            .then(|| exit_status(t.exit_status, t.exited_at)),
                    }
                });
                ContainerState {
                    id: c.id,
                    image: c.image,
                    labels: c.labels.into_iter().collect::<BTreeMap<_, _>>(),
                    task,
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Runs `argv` inside the running container with the container's
    /// environment and working directory; killed after `timeout`. Output
    /// (stdout and stderr together) is kept up to 64 KiB.
    pub async fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutcome> {
        if argv.is_empty() {
            return Err(Error::Invalid("exec needs a command".into()));
        }
        let r: p::GetContainerResponse = self
            .unary(
                "/containerd.services.containers.v1.Containers/Get",
                &p::GetContainerRequest { id: id.to_string() },
            )
            .await?;
        let container = r
            .container
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        let spec_bytes = container.spec.map(|s| s.value).unwrap_or_default();
        let spec: spec::Spec = serde_json::from_slice(&spec_bytes)
            .map_err(|e| Error::Protocol(format!("container {id} spec: {e}")))?;
        let mut process = spec.process;
        process.args = argv.to_vec();
        process.terminal = false;
        let process_json =
            serde_json::to_vec(&process).map_err(|e| Error::Invalid(e.to_string()))?;

        let exec_id = self.unique("exec");
        std::fs::create_dir_all(&self.inner.scratch).map_err(Error::io(format!(
            "create {}",
            self.inner.scratch.display()
        )))?;
        let out_path = self.inner.scratch.join(format!("{exec_id}.out"));
        let uri = format!("file://{}", logs::percent_encode_path(&out_path));
        let _: p::Empty = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/Exec",
                &p::ExecProcessRequest {
                    container_id: id.to_string(),
                    stdin: String::new(),
                    stdout: uri.clone(),
                    stderr: uri,
                    terminal: false,
                    spec: Some(p::Any {
                        type_url: PROCESS_TYPE.into(),
                        value: process_json,
                    }),
                    exec_id: exec_id.clone(),
                },
            )
            .await?;
        let run = async {
            let _: p::StartResponse = self
                .unary(
                    "/containerd.services.tasks.v1.Tasks/Start",
                    &p::StartRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.clone(),
                    },
                )
                .await?;
            match tokio::time::timeout(timeout, self.wait_process(id, &exec_id)).await {
                Ok(r) => r.map(Some),
                Err(_) => {
                    let _ = self.kill(id, &exec_id, SIGKILL, false).await;
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        self.wait_process(id, &exec_id),
                    )
                    .await;
                    Ok(None)
                }
            }
        }
        .await;
        let del: Result<p::DeleteTaskResponse> = self
            .unary(
                "/containerd.services.tasks.v1.Tasks/DeleteProcess",
                &p::DeleteProcessRequest {
                    container_id: id.to_string(),
                    exec_id: exec_id.clone(),
                },
            )
            .await;
        if let Err(e) = del {
            tracing::debug!(id, exec_id, error = %e, "delete exec process");
        }
        let mut output = std::fs::read(&out_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        output.truncate(ExecOutcome::MAX_OUTPUT);
        let status = run?;
        Ok(ExecOutcome {
            exit_code: status.map(|s| s.code),
            timed_out: status.is_none(),
            output,
        })
    }

    /// Removes everything in namespace `roost` that is not wanted: containers
    /// (with tasks and snapshots) whose id is not in `wanted`, active
    /// snapshots that no container owns (an interrupted start or import) and
    /// leftover leases. Run it when the agent starts, after a crash. Returns
    /// the removed container ids.
    pub async fn reconcile(&self, wanted: &[String]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let containers = self.list().await?;
        for c in &containers {
            if !wanted.contains(&c.id) {
                self.remove(&c.id).await?;
                removed.push(c.id.clone());
            }
        }
        let kept: Vec<&str> = containers
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| wanted.iter().any(|w| w == id))
            .collect();
        for s in self.list_snapshots().await? {
            if s.active && !kept.contains(&s.name.as_str()) {
                self.remove_snapshot(&s.name).await?;
            }
        }
        for lease in self.list_leases().await? {
            if lease.starts_with("roost-lease-") {
                self.delete_lease(&lease, false).await?;
            }
        }
        Ok(removed)
    }
}
