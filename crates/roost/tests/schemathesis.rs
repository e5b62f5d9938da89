//! The standing bad-input campaign against the served API: schemathesis
//! (installed by `./scripts/test` beside `ROOST_TEST_PYTHON`) reads the
//! OpenAPI document a real system controller serves and calls every
//! operation with generated valid and invalid requests (examples, the
//! coverage phase, fuzzing and stateful sequences). It must find no server
//! error and no answer that departs from the document: no undocumented
//! status code, no body that fails its schema, no wrong content type or
//! missing header.
//!
//! The test command runs it with a small, fixed bound so that it is the
//! same on every run; docs/security.md shows a longer run with a random
//! seed.

use std::path::{Path, PathBuf};

use roost_test_support::{Server, ServerOptions, require_or_skip};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_roost"))
}

/// The `schemathesis` command beside the test Python.
fn schemathesis() -> Option<PathBuf> {
    let python = std::env::var("ROOST_TEST_PYTHON").ok()?;
    let s = Path::new(&python).parent()?.join("schemathesis");
    s.exists().then_some(s)
}

/// The checks that compare answers with the document (and the one for
/// server errors). Schemathesis' checks of which inputs are accepted
/// (`positive_data_acceptance`, `negative_data_acceptance`) are left out:
/// the API keeps StarlingX's answers (an unknown application is a 400, as
/// sysinv answers it), which no schema can express.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance";

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(st) = schemathesis() else {
        assert!(!require_or_skip(
            false,
            "schemathesis beside ROOST_TEST_PYTHON (./scripts/test installs it)"
        ));
        return;
    };
    let sc = Server::start_with(
        bin(),
        ServerOptions {
            args: vec!["--role".into(), "systemcontroller".into()],
            ..Default::default()
        },
    );
    let token = sc.token();
    // Hypothesis keeps its database in the working directory.
    let work = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&st)
        .current_dir(work.path())
        .args([
            "run",
            &format!("{}/openapi.json", sc.url),
            "--url",
            &sc.url,
            "--header",
            &format!("X-Auth-Token: {token}"),
            "--checks",
            CHECKS,
            "--mode",
            "all",
            "--max-examples",
            "5",
            "--seed",
            "1",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}\nserver log:\n{}",
        sc.log()
    );
    // It really ran: every operation it selected was tested, and it
    // selected nearly all of the document's.
    let count = |label: &str| -> Option<usize> {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
        let n = line.trim_start()[label.len()..].trim();
        n.split('/').next()?.trim().parse().ok()
    };
    let (selected, tested) = (count("Selected:"), count("Tested:"));
    assert!(
        selected.is_some() && selected == tested,
        "selected {selected:?}, tested {tested:?}:\n{stdout}"
    );
    let operations = roost_api::openapi::ROUTES.len();
    assert!(
        tested.unwrap_or(0) * 10 >= operations * 9,
        "tested {tested:?} of {operations} operations:\n{stdout}"
    );
    assert!(!sc.log().contains("panicked"), "{}", sc.log());
}
