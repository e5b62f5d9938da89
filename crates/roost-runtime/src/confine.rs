//! How a container is confined: its capabilities and its seccomp profile.
//!
//! Every container runs with the default capability set ([`DEFAULT`], the
//! set Docker and containerd give), changed only by the manifest's
//! `capabilities.drop` (`ALL` drops every one) and `capabilities.add`; an
//! unprivileged container may add only [`ADDABLE`] (the server refuses
//! anything else before a plan is made). A privileged container gets every
//! capability and no seccomp filter.
//!
//! The seccomp profile ([`seccomp_profile`]) is an allow-list: any system
//! call not listed fails with `EPERM`. The list is what ordinary programs
//! use (files, sockets, processes, threads, timers, signals, memory, System V
//! and POSIX IPC). Left out, so refused, are the calls that reach beyond
//! the container or the kernel's isolation: mounting and namespace changes
//! (`mount`, `umount2`, `pivot_root`, `unshare`, `setns`, new-namespace
//! flags on `clone`), kernel modules and `kexec`, `reboot`, swap, `bpf`,
//! `perf_event_open`, the kernel keyring (`keyctl`, `add_key`,
//! `request_key`), tracing and reading other processes (`ptrace`,
//! `process_vm_readv`/`writev`, `kcmp`), `open_by_handle_at`,
//! `userfaultfd`, `io_uring`, setting clocks (`settimeofday`,
//! `clock_settime`), `acct`, `quotactl`, `lookup_dcookie`, `syslog`,
//! `iopl`/`ioperm`, and socket family `AF_VSOCK`. `clone3` answers `ENOSYS`,
//! so C libraries fall back to `clone`, whose flags the filter can see.
//! runc ignores names its libseccomp does not know, so one list serves
//! every architecture.

use crate::Security;
use crate::spec::{Seccomp, SeccompArg, SeccompRule};

/// Every Linux capability, in bit order (bit 0 is `CAP_CHOWN`).
pub const ALL: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities every container starts with (Docker's and containerd's
/// default set).
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What an unprivileged container may add: the default set (to take back
/// one after dropping `ALL`), locking memory, and scheduling priority and
/// NUMA placement of its own processes. Nothing that reaches the host's
/// network (containers share it), devices, clock, kernel or other
/// processes.
pub const ADDABLE: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    "CAP_IPC_LOCK",
    "CAP_SYS_NICE",
];

/// A capability's canonical name: `NET_ADMIN`, `net_admin` and
/// `CAP_NET_ADMIN` are all `CAP_NET_ADMIN`; `ALL` stays `ALL`. `None` for a
/// name Linux does not have.
pub fn capability(name: &str) -> Option<&'static str> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Some("ALL");
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL.iter().copied().find(|c| *c == full)
}

/// The bounding set of this process (`CapBnd` of `/proc/self/status`), or
/// `None` when it cannot be read. A privileged container gets what its
/// runtime may hand on, which in a confined host (itself a container) is
/// less than every capability.
pub fn current_bounding_set() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    bounding_set_of(&status)
}

fn bounding_set_of(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The capabilities a container runs with: when privileged every one in
/// `bounding` (every one when `None`), else the default set less `drop`
/// (none with `ALL`) plus `add` (every one with `ALL`). Names Linux does
/// not have are left out; the order is the capabilities' bit order.
pub fn capabilities(s: &Security, bounding: Option<u64>) -> Vec<String> {
    let names = |list: &[String]| -> Vec<&'static str> {
        list.iter().filter_map(|n| capability(n)).collect()
    };
    let (add, drop) = (names(&s.add_capabilities), names(&s.drop_capabilities));
    ALL.iter()
        .copied()
        .enumerate()
        .filter(|(bit, c)| {
            (s.privileged && bounding.is_none_or(|b| b & (1 << bit) != 0))
                || add.contains(&"ALL")
                || add.contains(c)
                || (DEFAULT.contains(c) && !drop.contains(&"ALL") && !drop.contains(c))
        })
        .map(|(_, c)| c.to_string())
        .collect()
}

/// System calls allowed without conditions.
const ALLOWED: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "bind",
    "breakpoint",
    "brk",
    "cacheflush",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "chroot",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "modify_ldt",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "set_tls",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "sync_file_range2",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// NUMA placement calls, allowed with `CAP_SYS_NICE` (the kernel checks it
/// only for moving pages of other processes).
const WITH_SYS_NICE: &[&str] = &[
    "get_mempolicy",
    "mbind",
    "set_mempolicy",
    "set_mempolicy_home_node",
];

/// The namespace flags of `clone`: `CLONE_NEWNS`, `CLONE_NEWCGROUP`,
/// `CLONE_NEWUTS`, `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWPID` and
/// `CLONE_NEWNET`.
pub const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// `personality` values allowed: Linux, `UNAME26`, `PER_LINUX32`, both,
/// and the query `0xffffffff`.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// `AF_VSOCK`: sockets to the hypervisor, refused.
const AF_VSOCK: u64 = 40;

/// `EPERM`, what a refused call returns.
const EPERM: u32 = 1;
/// `ENOSYS`, what `clone3` returns so that callers fall back to `clone`.
const ENOSYS: u32 = 38;

/// The seccomp architectures of this build's host: the native one and the
/// compatibility modes the kernel runs beside it.
fn architectures() -> Vec<String> {
    let archs: &[&str] = if cfg!(target_arch = "x86_64") {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &[]
    };
    archs.iter().map(|a| a.to_string()).collect()
}

fn allow(names: &[&str]) -> SeccompRule {
    SeccompRule {
        names: names.iter().map(|s| s.to_string()).collect(),
        action: "SCMP_ACT_ALLOW".into(),
        errno_ret: None,
        args: Vec::new(),
    }
}

fn allow_if(name: &str, arg: SeccompArg) -> SeccompRule {
    SeccompRule {
        args: vec![arg],
        ..allow(&[name])
    }
}

fn arg(index: u32, op: &str, value: u64, value_two: u64) -> SeccompArg {
    SeccompArg {
        index,
        value,
        value_two,
        op: op.into(),
    }
}

/// The seccomp profile of an unprivileged container with capabilities
/// `caps` (canonical names, see [`capabilities`]).
pub fn seccomp_profile(caps: &[String]) -> Seccomp {
    let mut syscalls = vec![allow(ALLOWED)];
    syscalls.push(allow_if(
        "clone",
        arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS, 0),
    ));
    syscalls.push(SeccompRule {
        errno_ret: Some(ENOSYS),
        action: "SCMP_ACT_ERRNO".into(),
        ..allow(&["clone3"])
    });
    for p in PERSONALITIES {
        syscalls.push(allow_if("personality", arg(0, "SCMP_CMP_EQ", *p, 0)));
    }
    syscalls.push(allow_if("socket", arg(0, "SCMP_CMP_NE", AF_VSOCK, 0)));
    if caps.iter().any(|c| c == "CAP_SYS_NICE") {
        syscalls.push(allow(WITH_SYS_NICE));
    }
    Seccomp {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        architectures: architectures(),
        syscalls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sec(add: &[&str], drop: &[&str]) -> Security {
        Security {
            add_capabilities: add.iter().map(|s| s.to_string()).collect(),
            drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn capability_names_are_canonical_with_or_without_the_prefix() {
        assert_eq!(capability("NET_ADMIN"), Some("CAP_NET_ADMIN"));
        assert_eq!(capability("cap_chown"), Some("CAP_CHOWN"));
        assert_eq!(capability("all"), Some("ALL"));
        assert_eq!(capability("FLY"), None);
        assert_eq!(ALL.len(), 41);
        for c in DEFAULT.iter().chain(ADDABLE) {
            assert!(ALL.contains(c), "{c}");
        }
        for c in DEFAULT {
            assert!(ADDABLE.contains(c), "{c}");
        }
    }

    #[test]
    fn capabilities_are_the_default_set_less_drops_plus_adds() {
        let capabilities = |s: &Security| capabilities(s, None);
        let default = capabilities(&Security::default());
        assert_eq!(default.len(), DEFAULT.len());
        let none = capabilities(&sec(&[], &["ALL"]));
        assert!(none.is_empty());
        assert_eq!(
            capabilities(&sec(&["NET_BIND_SERVICE"], &["ALL"])),
            ["CAP_NET_BIND_SERVICE"]
        );
        let less = capabilities(&sec(&["IPC_LOCK"], &["chown", "CAP_KILL"]));
        assert!(!less.contains(&"CAP_CHOWN".to_string()));
        assert!(!less.contains(&"CAP_KILL".to_string()));
        assert!(less.contains(&"CAP_IPC_LOCK".to_string()));
        assert_eq!(less.len(), DEFAULT.len() - 1);
        let all = capabilities(&Security {
            privileged: true,
            ..sec(&[], &["ALL"])
        });
        assert_eq!(all.len(), ALL.len());
        // Within a bounding set that lacks CAP_SYS_RESOURCE (bit 24).
        let status = "Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n";
        let bounding = bounding_set_of(status);
        assert_eq!(bounding, Some(0x1ff_feff_ffff));
        let within = super::capabilities(
            &Security {
                privileged: true,
                ..Default::default()
            },
            bounding,
        );
        assert_eq!(within.len(), ALL.len() - 1);
        assert!(!within.contains(&"CAP_SYS_RESOURCE".to_string()));
    }

    #[test]
    fn the_profile_refuses_by_default_and_leaves_out_what_escapes() {
        let p = seccomp_profile(&capabilities(&Security::default(), None));
        assert_eq!(p.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(p.default_errno_ret, Some(EPERM));
        assert!(!p.architectures.is_empty());
        let allowed: Vec<&str> = p
            .syscalls
            .iter()
            .filter(|r| r.action == "SCMP_ACT_ALLOW" && r.args.is_empty())
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        for needed in ["execve", "read", "openat", "wait4", "nanosleep", "accept4"] {
            assert!(allowed.contains(&needed), "{needed}");
        }
        for refused in [
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "swapoff",
            "bpf",
            "perf_event_open",
            "keyctl",
            "add_key",
            "request_key",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "open_by_handle_at",
            "userfaultfd",
            "acct",
            "lookup_dcookie",
            "quotactl",
            "settimeofday",
            "clock_settime",
            "io_uring_setup",
            "syslog",
            "mbind",
        ] {
            assert!(
                !p.syscalls
                    .iter()
                    .any(|r| r.action == "SCMP_ACT_ALLOW" && r.names.iter().any(|n| n == refused)),
                "{refused}"
            );
        }
        let clone = p.syscalls.iter().find(|r| r.names == ["clone"]).unwrap();
        assert_eq!(clone.args[0].value, 0x7e02_0000);
        let clone3 = p.syscalls.iter().find(|r| r.names == ["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret, Some(ENOSYS));
        let nice = seccomp_profile(&capabilities(&sec(&["SYS_NICE"], &[]), None));
        assert!(
            nice.syscalls
                .iter()
                .any(|r| r.names.iter().any(|n| n == "mbind"))
        );
    }
}
