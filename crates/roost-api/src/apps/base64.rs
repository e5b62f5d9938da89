//! Base64 decoding for application bodies: `binary_data` of an upload (URL-safe
//! from `system`, standard from other tools) and Secret `data`. One decoder
//! accepts both alphabets, with or without `=` padding, skips ASCII
//! whitespace (wrapped output), and works incrementally: input may be split at
//! any byte, so a body of a gigabyte is decoded in small pieces.

use crate::Error;

const INVALID: u8 = 0xff;
const SKIP: u8 = 0xfe;
const PAD: u8 = 0xfd;

const TABLE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'-' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'_' as usize] = 63;
    t[b'=' as usize] = PAD;
    t[b' ' as usize] = SKIP;
    t[b'\n' as usize] = SKIP;
    t[b'\r' as usize] = SKIP;
    t[b'\t' as usize] = SKIP;
    t
};

/// An incremental base64 decoder (standard or URL-safe alphabet).
#[derive(Debug, Clone, Default)]
pub struct Base64Decoder {
    acc: u32,
    /// Sextets in `acc` (0..=3).
    n: u8,
    /// `=` seen in the current group.
    pad: u8,
    /// A padded group ended the text: only whitespace may follow.
    ended: bool,
    offset: u64,
}

impl Base64Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input`, appending whole bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        out.reserve(input.len() / 4 * 3 + 3);
        let mut i = 0;
        // Fast path: whole groups of four alphabet characters.
        if self.n == 0 && self.pad == 0 && !self.ended {
            while i + 4 <= input.len() {
                let (a, b, c, d) = (
                    TABLE[input[i] as usize],
                    TABLE[input[i + 1] as usize],
                    TABLE[input[i + 2] as usize],
                    TABLE[input[i + 3] as usize],
                );
                if (a | b | c | d) >= 64 {
                    break;
                }
                let v = (u32::from(a) << 18)
                    | (u32::from(b) << 12)
                    | (u32::from(c) << 6)
                    | u32::from(d);
                out.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
                i += 4;
            }
            self.offset += i as u64;
        }
        for &byte in &input[i..] {
            let at = self.offset;
            self.offset += 1;
            match TABLE[byte as usize] {
                SKIP => {}
                INVALID => return Err(Error::Base64Byte(char::from(byte), at)),
                PAD => {
                    if self.ended || self.n < 2 {
                        return Err(Error::Base64Padding(at));
                    }
                    self.pad += 1;
                    if self.n + self.pad > 4 {
                        return Err(Error::Base64Padding(at));
                    }
                    if self.n + self.pad == 4 {
                        self.flush(out);
                        self.ended = true;
                    }
                }
                v => {
                    if self.ended || self.pad > 0 {
                        return Err(Error::Base64Padding(at));
                    }
                    self.acc = (self.acc << 6) | u32::from(v);
                    self.n += 1;
                    if self.n == 4 {
                        let a = self.acc;
                        out.extend_from_slice(&[(a >> 16) as u8, (a >> 8) as u8, a as u8]);
                        self.acc = 0;
                        self.n = 0;
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        let a = self.acc;
        match self.n {
            2 => out.push((a >> 4) as u8),
            3 => out.extend_from_slice(&[(a >> 10) as u8, (a >> 2) as u8]),
            _ => {}
        }
        self.acc = 0;
        self.n = 0;
        self.pad = 0;
    }

    /// Ends the text: an unpadded last group of 2 or 3 characters is decoded;
    /// a lone character or incomplete padding is an error.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.pad > 0 {
            return Err(Error::Base64Padding(self.offset));
        }
        match self.n {
            0 => Ok(()),
            1 => Err(Error::Base64Truncated),
            _ => {
                self.flush(out);
                Ok(())
            }
        }
    }
}

/// Decodes a whole base64 text (either alphabet).
pub fn decode(text: &[u8]) -> Result<Vec<u8>, Error> {
    let mut d = Base64Decoder::new();
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    d.push(text, &mut out)?;
    d.finish(&mut out)?;
    Ok(out)
}

/// Encodes with the standard alphabet and padding.
pub fn encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                s.push(char::from(ALPHABET[((v >> (18 - 6 * k)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc.as_bytes()).unwrap(), plain.as_bytes());
            assert_eq!(
                decode(enc.trim_end_matches('=').as_bytes()).unwrap(),
                plain.as_bytes()
            );
        }
        // URL-safe and standard alphabets alike.
        assert_eq!(decode(b"-_8=").unwrap(), decode(b"+/8=").unwrap());
        assert_eq!(decode(b"Zm9v\nYmFy\n").unwrap(), b"foobar");
    }

    #[test]
    fn refusals() {
        assert_eq!(decode(b"Zm9v!"), Err(Error::Base64Byte('!', 4)));
        assert!(matches!(decode(b"Z"), Err(Error::Base64Truncated)));
        assert!(matches!(decode(b"Z==="), Err(Error::Base64Padding(_))));
        assert!(matches!(decode(b"Zg==Zg=="), Err(Error::Base64Padding(_))));
        assert!(matches!(decode(b"Zg="), Err(Error::Base64Padding(_))));
        assert!(matches!(decode(b"Zm8=="), Err(Error::Base64Padding(_))));
    }

    proptest! {
        #[test]
        fn split_anywhere(data in proptest::collection::vec(any::<u8>(), 0..200), cuts in proptest::collection::vec(0usize..300, 0..6), url in any::<bool>()) {
            let mut text = encode(&data);
            if url {
                text = text.replace('+', "-").replace('/', "_");
            }
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut d = Base64Decoder::new();
            let mut out = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                d.push(&bytes[prev..c], &mut out).unwrap();
                prev = c;
            }
            d.finish(&mut out).unwrap();
            prop_assert_eq!(out, data);
        }
    }
}
