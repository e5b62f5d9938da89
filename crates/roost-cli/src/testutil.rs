//! A tiny scripted HTTP/1.1 server for testing the verbs without Roost: it
//! answers successive connections with canned replies, in order, and records
//! what it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::Io;
use crate::credentials::Env;
use crate::error::Error;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// One canned reply.
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Canned {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.to_string(),
        }
    }

    /// A webob-style HTML error page, as dcmanager's endpoints send them.
    pub fn html(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "text/html; charset=UTF-8".into())],
            body: body.to_string(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

pub struct FakeServer {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(replies: Vec<Canned>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            for reply in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                    }
                }
                let length = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                record.lock().unwrap().push(Seen {
                    method,
                    target,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
                let mut stream = reader.into_inner();
                let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                for (name, value) in &reply.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(reply.body.as_bytes()).unwrap();
            }
        });
        Self {
            url,
            seen,
            thread: Some(thread),
        }
    }

    /// Waits until every canned reply was sent, then returns what was seen.
    pub fn finish(mut self) -> Vec<Seen> {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.seen.lock().unwrap().clone()
    }

    /// An environment that points the verbs at this server with a token.
    pub fn env(&self) -> Env {
        Env {
            roost_url: Some(self.url.clone()),
            roost_token: Some("test-token".into()),
            ..Env::default()
        }
    }
}

/// What a verb printed and returned.
pub struct Outcome {
    pub out: String,
    pub err: String,
    pub result: Result<(), Error>,
}

/// Runs a parsed command line (without the program name) against `env`,
/// with `input` as standard input (not a terminal).
pub fn run_verb(args: &[&str], env: &Env, input: &str) -> Outcome {
    run_verb_on(args, env, input, false)
}

/// [`run_verb`] with standard output a terminal or not.
pub fn run_verb_on(args: &[&str], env: &Env, input: &str, out_terminal: bool) -> Outcome {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        global: crate::GlobalArgs,
        #[command(subcommand)]
        cmd: crate::ClientCommand,
    }
    let mut argv = vec!["roost"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let cmd = cli.cmd;
    let mut env = env.clone();
    if let Some(name) = cli.global.context {
        env.context = Some(name);
    }
    let env = &env;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = input.as_bytes();
    let result = crate::execute(
        cmd,
        env,
        &mut Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
            interactive: false,
            err_terminal: false,
            out_terminal,
        },
    );
    Outcome {
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
        result,
    }
}
