//! `roost certificate …`: the inventory (`GET /v1/certificates`), an
//! operator's API certificate (`POST /v1/certificate_install`) and the
//! rotation of the cloud CA (`POST /v1/certificates/rotate_ca`).

use std::path::PathBuf;

use roost_api::certificates::{CertificateInstall, CertificateInstalled, CertificateList};
use serde_json::Value;

use crate::credentials::Env;
use crate::error::Error;
use crate::output::{Column, OutputArgs, list_items, print_data, render_list};
use crate::query::Query;
use crate::{Io, connect};

/// Certificate verbs.
#[derive(clap::Subcommand, Debug)]
pub enum CertificateCommand {
    /// Every certificate the cloud uses, with its validity and fingerprint
    List(OutputArgs),
    /// Install a server certificate for the API (it is presented from the
    /// next connection on; Roost does not renew it, it alarms before expiry)
    Install(InstallArgs),
    /// Rotate the cloud CA: a new CA and a new API certificate; clients of
    /// the old CA keep working; write the new bundle for clients with --bundle
    RotateCa(RotateArgs),
}

/// Flags of `roost certificate install`.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The certificate chain, PEM (server certificate first)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Its private key, PEM
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// Flags of `roost certificate rotate-ca`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// Write the CA bundle clients should trust (new and previous CA) here
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

pub(crate) fn run(cmd: CertificateCommand, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    match cmd {
        CertificateCommand::List(output) => list(&output, env, io),
        CertificateCommand::Install(args) => install(&args, env, io),
        CertificateCommand::RotateCa(args) => rotate(&args, env, io),
    }
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::failure(format!("unexpected {what}: {e}")))
}

fn list(output: &OutputArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let reply = connect(env)?.get("/v1/certificates", &Query::new())?;
    if output.output.is_data() && output.columns.is_empty() {
        return print_data(io, output, &reply);
    }
    // Checked for its shape; the columns read the JSON.
    let _: CertificateList = parse(reply.clone(), "certificate listing")?;
    let certificates = list_items(&reply, "certificates")?;
    render_list(io, output, &certificate_columns(), &certificates, "")
}

/// The columns of `roost certificate list`: Name, Mode, Source, Subject,
/// Issuer, Not after, Fingerprint; wide adds the purpose and the UUID.
pub fn certificate_columns() -> Vec<Column<'static>> {
    vec![
        Column::key("Name", "name"),
        Column::key("Mode", "mode"),
        Column::key("Source", "source"),
        Column::key("Subject", "subject"),
        Column::key("Issuer", "issuer"),
        Column::key("Not after", "not_after"),
        Column::key("Fingerprint (SHA-256)", "fingerprint"),
        Column::key("Purpose", "purpose").wide(),
        Column::key("UUID", "uuid").wide(),
    ]
}

fn read(path: &PathBuf) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))
}

fn show(reply: Value, output: &OutputArgs, io: &mut Io<'_>) -> Result<CertificateInstalled, Error> {
    if output.output.is_data() {
        print_data(io, output, &reply)?;
    }
    let done: CertificateInstalled = parse(reply, "answer")?;
    if !output.output.is_data() {
        writeln!(
            io.out,
            "The API now presents {} (valid until {}, SHA-256 {})",
            done.certificate
                .subject
                .as_deref()
                .unwrap_or("a certificate"),
            done.certificate.not_after,
            done.certificate.fingerprint
        )?;
    }
    Ok(done)
}

fn install(args: &InstallArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let body = CertificateInstall {
        certificate_pem: read(&args.cert)?,
        private_key_pem: read(&args.key)?,
    };
    let reply = connect(env)?.post("/v1/certificate_install", &body)?;
    show(reply, &args.output, io).map(drop)
}

fn rotate(args: &RotateArgs, env: &Env, io: &mut Io<'_>) -> Result<(), Error> {
    let reply = connect(env)?
        .send(
            reqwest::Method::POST,
            "/v1/certificates/rotate_ca",
            &Query::new(),
            crate::client::NO_BODY,
        )?
        .body;
    let done = show(reply, &args.output, io)?;
    if let Some(path) = &args.bundle {
        std::fs::write(path, &done.ca_bundle_pem)
            .map_err(|e| Error::usage(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
