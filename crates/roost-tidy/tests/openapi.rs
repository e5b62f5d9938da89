//! The committed OpenAPI document (`openapi/roost.json`) is checked by a
//! real validator, openapi-spec-validator from PyPI, which `scripts/test`
//! installs into its virtual environment and names in `ROOST_TEST_PYTHON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use roost_test_support::require_or_skip;

/// Validates the document named by argv[1] as OpenAPI 3.1; exit 3 when the
/// validator is not installed, 1 with every error when the document is
/// invalid. (It does not resolve `$ref`s: roost-api's own tests do.)
const VALIDATE: &str = r#"
import json, sys
try:
    from openapi_spec_validator import OpenAPIV31SpecValidator
except ImportError:
    sys.exit(3)
with open(sys.argv[1]) as f:
    spec = json.load(f)
errors = [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(spec).iter_errors()]
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the validator on `doc`: `None` when it is not installed (the test is
/// skipped outside CI and the test command), else its exit status and output.
fn validate(doc: &Path) -> Option<(bool, String)> {
    let python = std::env::var("ROOST_TEST_PYTHON").ok();
    if !require_or_skip(
        python.is_some(),
        "ROOST_TEST_PYTHON (a Python with openapi-spec-validator; ./scripts/test installs it)",
    ) {
        return None;
    }
    let out = Command::new(python.expect("checked above"))
        .arg("-c")
        .arg(VALIDATE)
        .arg(doc)
        .output()
        .expect("run ROOST_TEST_PYTHON");
    let installed = out.status.code() != Some(3);
    if !require_or_skip(
        installed,
        "openapi-spec-validator in ROOST_TEST_PYTHON (./scripts/test installs it)",
    ) {
        return None;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn the_committed_document_passes_openapi_spec_validator() {
    let doc = workspace_root().join("openapi/roost.json");
    let Some((ok, text)) = validate(&doc) else {
        return;
    };
    assert!(
        ok,
        "openapi/roost.json is not a valid OpenAPI document:\n{text}"
    );
}

#[test]
fn the_validator_refuses_an_undeclared_path_parameter() {
    // Proves the check above can fail: the committed document with the
    // parameters of one operation on `/v1/alarms/{uuid}` removed.
    let text = std::fs::read_to_string(workspace_root().join("openapi/roost.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["paths"]["/v1/alarms/{uuid}"]["get"]["parameters"] = serde_json::Value::Array(vec![]);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-undeclared-parameter.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    let Some((ok, text)) = validate(&path) else {
        return;
    };
    assert!(!ok, "an undeclared path parameter passed the validator");
    assert!(text.contains("uuid"), "{text}");
}
