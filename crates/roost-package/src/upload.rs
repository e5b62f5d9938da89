//! The streaming decoder of StarlingX's upload body (CLIENTS.md fact 31):
//! one JSON object `{"tarfile": ..., "name"?, "app_version"?, "images"?,
//! "binary_data": "<base64 of the whole package>"}` of up to a gigabyte and
//! more. [`UploadDecoder`] is a push parser without I/O of its own: feed it
//! the body in chunks as they arrive, split anywhere; it writes the decoded
//! package to a `Write` as it goes and keeps only the small fields, so memory
//! stays bounded by the chunk size whatever the body's size.
//!
//! Accepted: fields in any order, whitespace, unknown fields (ignored, as
//! StarlingX ignores them; their values are bounded like the small fields),
//! URL-safe or standard base64 with or without padding, and JSON string
//! escapes inside `binary_data` (`\/` as Python's and PHP's encoders write
//! it, `\n` line breaks, `\u00XX`).

use roost_api::apps::AppUploadRequest;
use roost_api::apps::base64::Base64Decoder;

use crate::Error;
use std::io::Write;

/// The largest small field (any value other than `binary_data`) and key.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
const MAX_KEY_BYTES: usize = 1024;
const MAX_FIELDS: usize = 64;

/// The small fields of the body, and what was decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub request: AppUploadRequest,
    /// Bytes of the decoded `binary_data`, or `None` when the body had none
    /// (a URL or server-path upload).
    pub binary_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    /// Before a key; `true` right after a comma (a `}` is then invalid).
    BeforeKey(bool),
    Key,
    AfterKey,
    BeforeValue,
    Binary,
    BinaryEscape,
    /// `\u` in binary_data: digits read so far and the value.
    BinaryUnicode(u8, u32),
    Small,
    AfterValue,
    End,
}

/// The scanner of one small value: finds where it ends.
#[derive(Debug, Default)]
struct Scan {
    depth: u32,
    in_string: bool,
    escape: bool,
    started: bool,
}

/// A push parser of the upload body. See the module docs.
#[derive(Debug)]
pub struct UploadDecoder {
    state: State,
    limit: u64,
    decoded: u64,
    key: Vec<u8>,
    key_escape: bool,
    current_key: String,
    value: Vec<u8>,
    scan: Scan,
    fields: serde_json::Map<String, serde_json::Value>,
    base64: Option<Base64Decoder>,
    saw_binary: bool,
    out: Vec<u8>,
    offset: u64,
}

fn ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl UploadDecoder {
    /// `limit`: the most bytes of decoded package accepted.
    pub fn new(limit: u64) -> Self {
        UploadDecoder {
            state: State::Start,
            limit,
            decoded: 0,
            key: Vec::new(),
            key_escape: false,
            current_key: String::new(),
            value: Vec::new(),
            scan: Scan::default(),
            fields: serde_json::Map::new(),
            base64: None,
            saw_binary: false,
            out: Vec::new(),
            offset: 0,
        }
    }

    fn invalid(&self, what: &str) -> Error {
        Error::Upload(format!("{what} at byte {}", self.offset))
    }

    /// Feeds the next piece of the body; decoded package bytes go to `sink`.
    pub fn push<W: Write + ?Sized>(&mut self, chunk: &[u8], sink: &mut W) -> Result<(), Error> {
        let mut i = 0;
        while i < chunk.len() {
            if self.state == State::Binary {
                // Fast path: everything up to the next quote or backslash is
                // base64 text.
                let rest = &chunk[i..];
                let end = rest
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(rest.len());
                self.feed_base64(&rest[..end], sink)?;
                i += end;
                self.offset += end as u64;
                if i == chunk.len() {
                    break;
                }
            }
            let b = chunk[i];
            self.step(b, sink)?;
            i += 1;
            self.offset += 1;
        }
        Ok(())
    }

    fn feed_base64<W: Write + ?Sized>(&mut self, text: &[u8], sink: &mut W) -> Result<(), Error> {
        if text.is_empty() {
            return Ok(());
        }
        let d = self.base64.as_mut().expect("decoder exists in binary_data");
        self.out.clear();
        d.push(text, &mut self.out).map_err(Error::Base64)?;
        self.emit(sink)
    }

    fn emit<W: Write + ?Sized>(&mut self, sink: &mut W) -> Result<(), Error> {
        self.decoded += self.out.len() as u64;
        if self.decoded > self.limit {
            return Err(Error::UploadTooLarge { limit: self.limit });
        }
        sink.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    fn step<W: Write + ?Sized>(&mut self, b: u8, sink: &mut W) -> Result<(), Error> {
        match self.state {
            State::Start => {
                if b == b'{' {
                    self.state = State::BeforeKey(false);
                } else if !ws(b) {
                    return Err(self.invalid("expected a JSON object"));
                }
            }
            State::BeforeKey(after_comma) => {
                if b == b'"' {
                    if self.fields.len() + usize::from(self.saw_binary) >= MAX_FIELDS {
                        return Err(self.invalid("too many fields"));
                    }
                    self.key.clear();
                    self.key.push(b'"');
                    self.key_escape = false;
                    self.state = State::Key;
                } else if b == b'}' && !after_comma {
                    self.state = State::End;
                } else if !ws(b) {
                    return Err(self.invalid("expected a key"));
                }
            }
            State::Key => {
                self.key.push(b);
                if self.key.len() > MAX_KEY_BYTES {
                    return Err(self.invalid("key too long"));
                }
                if self.key_escape {
                    self.key_escape = false;
                } else if b == b'\\' {
                    self.key_escape = true;
                } else if b == b'"' {
                    self.current_key = serde_json::from_slice(&self.key)
                        .map_err(|e| Error::Upload(format!("invalid key: {e}")))?;
                    self.state = State::AfterKey;
                }
            }
            State::AfterKey => {
                if b == b':' {
                    self.state = State::BeforeValue;
                } else if !ws(b) {
                    return Err(self.invalid("expected ':'"));
                }
            }
            State::BeforeValue => {
                if ws(b) {
                    return Ok(());
                }
                if self.current_key == "binary_data" {
                    if self.saw_binary {
                        return Err(self.invalid("binary_data given twice"));
                    }
                    if b == b'"' {
                        self.saw_binary = true;
                        self.base64 = Some(Base64Decoder::new());
                        self.state = State::Binary;
                        return Ok(());
                    }
                    if b != b'n' {
                        return Err(self.invalid("binary_data must be a string"));
                    }
                }
                self.value.clear();
                self.scan = Scan::default();
                self.state = State::Small;
                return self.small(b);
            }
            State::Binary => match b {
                b'"' => {
                    let d = self.base64.take().expect("decoder exists in binary_data");
                    self.out.clear();
                    d.finish(&mut self.out).map_err(Error::Base64)?;
                    self.emit(sink)?;
                    self.state = State::AfterValue;
                }
                b'\\' => self.state = State::BinaryEscape,
                _ => unreachable!("the fast path stops only at a quote or backslash"),
            },
            State::BinaryEscape => {
                self.state = State::Binary;
                match b {
                    b'/' => self.feed_base64(b"/", sink)?,
                    b'n' | b'r' | b't' => {}
                    b'u' => self.state = State::BinaryUnicode(0, 0),
                    _ => return Err(self.invalid("invalid escape in binary_data")),
                }
            }
            State::BinaryUnicode(n, v) => {
                let digit = char::from(b)
                    .to_digit(16)
                    .ok_or_else(|| self.invalid("invalid \\u escape in binary_data"))?;
                let v = v * 16 + digit;
                if n == 3 {
                    self.state = State::Binary;
                    let byte = u8::try_from(v)
                        .ok()
                        .filter(u8::is_ascii)
                        .ok_or_else(|| self.invalid("non-ASCII character in binary_data"))?;
                    self.feed_base64(&[byte], sink)?;
                } else {
                    self.state = State::BinaryUnicode(n + 1, v);
                }
            }
            State::Small => return self.small(b),
            State::AfterValue => {
                if b == b',' {
                    self.state = State::BeforeKey(true);
                } else if b == b'}' {
                    self.state = State::End;
                } else if !ws(b) {
                    return Err(self.invalid("expected ',' or '}'"));
                }
            }
            State::End => {
                if !ws(b) {
                    return Err(self.invalid("data after the JSON object"));
                }
            }
        }
        Ok(())
    }

    /// One byte of a small value; stores the value when it ends.
    fn small(&mut self, b: u8) -> Result<(), Error> {
        let s = &mut self.scan;
        let scalar_end =
            !s.in_string && s.depth == 0 && s.started && !self.value.starts_with(b"\"");
        if scalar_end && (ws(b) || b == b',' || b == b'}') {
            // A number, true, false or null ends at the byte after it.
            self.store()?;
            self.state = State::AfterValue;
            return self.step(b, &mut std::io::sink());
        }
        self.value.push(b);
        if self.value.len() > MAX_FIELD_BYTES {
            return Err(self.invalid(&format!("field {:?} too long", self.current_key)));
        }
        let s = &mut self.scan;
        s.started = true;
        let mut done = false;
        if s.in_string {
            if s.escape {
                s.escape = false;
            } else if b == b'\\' {
                s.escape = true;
            } else if b == b'"' {
                s.in_string = false;
                done = s.depth == 0;
            }
        } else {
            match b {
                b'"' => s.in_string = true,
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' => {
                    s.depth = s
                        .depth
                        .checked_sub(1)
                        .ok_or_else(|| Error::Upload("unbalanced brackets".into()))?;
                    done = s.depth == 0;
                }
                _ => {}
            }
        }
        if done {
            self.store()?;
            self.state = State::AfterValue;
        }
        Ok(())
    }

    fn store(&mut self) -> Result<(), Error> {
        let v: serde_json::Value = serde_json::from_slice(&self.value)
            .map_err(|e| Error::Upload(format!("field {:?}: {e}", self.current_key)))?;
        if self.current_key != "binary_data" {
            self.fields.insert(std::mem::take(&mut self.current_key), v);
        }
        Ok(())
    }

    /// Bytes of decoded package written so far.
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded
    }

    /// Ends the body: it must have been one whole object with `tarfile`.
    pub fn finish(self) -> Result<Upload, Error> {
        if self.state != State::End {
            return Err(Error::Upload("the body ends before its JSON object".into()));
        }
        let request: AppUploadRequest =
            serde_json::from_value(serde_json::Value::Object(self.fields))
                .map_err(|e| Error::Upload(e.to_string()))?;
        Ok(Upload {
            request,
            binary_bytes: self.saw_binary.then_some(self.decoded),
        })
    }
}

/// Decodes a whole body from a blocking reader in 64 KiB pieces.
pub fn decode_reader<R: std::io::Read, W: Write + ?Sized>(
    mut input: R,
    sink: &mut W,
    limit: u64,
) -> Result<Upload, Error> {
    let mut decoder = UploadDecoder::new(limit);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::from(e)),
        };
        decoder.push(&buf[..n], sink)?;
    }
    decoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use roost_api::apps::base64::encode;

    fn decode_all(body: &[u8], limit: u64) -> Result<(Upload, Vec<u8>), Error> {
        let mut d = UploadDecoder::new(limit);
        let mut out = Vec::new();
        d.push(body, &mut out)?;
        Ok((d.finish()?, out))
    }

    #[test]
    fn as_system_sends_it() {
        let data = b"\x1f\x8b\x08 a package \xff\xfe".to_vec();
        let url_b64 = encode(&data).replace('+', "-").replace('/', "_");
        let body = format!(
            r#"{{"tarfile": "/root/hello-1.0-1.tgz", "name": "hello", "app_version": "1.0-1", "images": true, "binary_data": "{url_b64}"}}"#
        );
        let (up, out) = decode_all(body.as_bytes(), 1 << 20).unwrap();
        assert_eq!(out, data);
        assert_eq!(up.binary_bytes, Some(data.len() as u64));
        assert_eq!(up.request.tarfile, "/root/hello-1.0-1.tgz");
        assert_eq!(up.request.name.as_deref(), Some("hello"));
        assert_eq!(up.request.images, Some(true));
        let mut out2 = Vec::new();
        assert_eq!(
            decode_reader(body.as_bytes(), &mut out2, 1 << 20).unwrap(),
            up
        );
        assert_eq!(out2, data);
    }

    #[test]
    fn any_order_escapes_and_unknown_fields() {
        let data: Vec<u8> = (0..=255u8).collect();
        let b64 = encode(&data)
            .replace('/', "\\/")
            .replacen('A', "\\u0041", 1);
        let body = format!(
            "  {{\"binary_data\" : \"{b64}\",\n \"extra\": {{\"a\": [1, \"]}}\"]}}, \"n\": null, \"x\": 1.5e3,\"tarfile\":\"a\\\"b.tgz\", \"app_version\": null}}\n"
        );
        let (up, out) = decode_all(body.as_bytes(), 1 << 20).unwrap();
        assert_eq!(out, data);
        assert_eq!(up.request.tarfile, "a\"b.tgz");
        assert_eq!(up.request.app_version, None);
        // A URL upload: no binary_data at all.
        let (up, out) = decode_all(br#"{"tarfile": "https://x/y.tgz"}"#, 10).unwrap();
        assert_eq!((up.binary_bytes, out.len()), (None, 0));
    }

    #[test]
    fn refusals() {
        let cases: [(&[u8], &str); 9] = [
            (b"[]", "expected a JSON object"),
            (br#"{"tarfile": "a", "binary_data": "Zm9v"#, "ends before"),
            (
                br#"{"tarfile": "a", "binary_data": "Zm9v!"}"#,
                "invalid base64 character",
            ),
            (
                br#"{"tarfile": "a", "binary_data": "Zm9v\q"}"#,
                "invalid escape",
            ),
            (
                br#"{"tarfile": "a", "binary_data": 12}"#,
                "must be a string",
            ),
            (br#"{"binary_data": "Zm9v"}"#, "missing field `tarfile`"),
            (br#"{"tarfile": "a",}"#, "expected a key"),
            (br#"{"tarfile": "a"} x"#, "data after"),
            (
                br#"{"tarfile": "a", "binary_data": "", "binary_data": ""}"#,
                "given twice",
            ),
        ];
        for (body, want) in cases {
            let e = decode_all(body, 100).unwrap_err().to_string();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(body));
        }
        let body = format!(
            r#"{{"tarfile": "a", "binary_data": "{}"}}"#,
            encode(&[0; 101])
        );
        assert!(matches!(
            decode_all(body.as_bytes(), 100),
            Err(Error::UploadTooLarge { limit: 100 })
        ));
        let long = format!(r#"{{"tarfile": "{}"}}"#, "a".repeat(MAX_FIELD_BYTES + 1));
        assert!(
            decode_all(long.as_bytes(), 100)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }
}
