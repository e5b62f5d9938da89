//! A stand-alone container logger for containerd's `binary://` log URIs:
//! `roost-container-logger <subcommand> <spec>` does what Roost's hidden
//! logger subcommand does (see `roost_runtime::logs`).

fn main() {
    let spec = std::env::args().nth(2).unwrap_or_default();
    if let Err(e) = roost_runtime::logs::run_logger(&spec) {
        eprintln!("roost-container-logger: {e}");
        std::process::exit(1);
    }
}
