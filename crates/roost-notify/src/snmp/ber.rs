//! The subset of BER (X.690) that SNMP messages use: definite lengths,
//! primitive INTEGER, OCTET STRING, NULL and OBJECT IDENTIFIER, the
//! application types of SNMPv2-SMI, and constructed SEQUENCEs and PDUs.
//!
//! Encoders append to a `Vec<u8>`; a constructed value is built by encoding
//! its contents into a buffer first and then wrapping it with [`tlv`].

use crate::Error;

pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const NULL: u8 = 0x05;
pub const OBJECT_IDENTIFIER: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const IP_ADDRESS: u8 = 0x40;
pub const COUNTER32: u8 = 0x41;
pub const GAUGE32: u8 = 0x42;
pub const TIME_TICKS: u8 = 0x43;
pub const COUNTER64: u8 = 0x46;
/// SNMPv2-Trap-PDU, context-specific constructed tag 7 (RFC 3416).
pub const SNMPV2_TRAP: u8 = 0xa7;

/// Appends a definite length: one octet below 128, else 0x80 | n followed
/// by n big-endian octets.
pub fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = (len as u64).to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// The number of octets `push_len` writes for `len`.
pub fn len_len(len: usize) -> usize {
    let mut v = Vec::with_capacity(9);
    push_len(&mut v, len);
    v.len()
}

/// Appends tag, length and contents.
pub fn tlv(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    push_len(out, contents.len());
    out.extend_from_slice(contents);
}

/// Appends a signed INTEGER (two's complement, fewest octets).
pub fn integer(out: &mut Vec<u8>, value: i64) {
    signed_with_tag(out, INTEGER, value);
}

fn signed_with_tag(out: &mut Vec<u8>, tag: u8, value: i64) {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    // Drop a leading octet while it only repeats the sign of the next one.
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    tlv(out, tag, &bytes[start..]);
}

/// Appends an unsigned application value (Counter32, Gauge32, TimeTicks,
/// Counter64): the magnitude as a non-negative two's complement number.
pub fn unsigned(out: &mut Vec<u8>, tag: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(bytes.len() - 1);
    let mut contents = Vec::with_capacity(9);
    if bytes[skip] & 0x80 != 0 {
        contents.push(0);
    }
    contents.extend_from_slice(&bytes[skip..]);
    tlv(out, tag, &contents);
}

/// Appends an OCTET STRING.
pub fn octet_string(out: &mut Vec<u8>, value: &[u8]) {
    tlv(out, OCTET_STRING, value);
}

/// Appends an OBJECT IDENTIFIER. It needs at least two arcs, the first
/// 0, 1 or 2, and the second below 40 unless the first is 2.
pub fn oid(out: &mut Vec<u8>, arcs: &[u32]) -> Result<(), Error> {
    let bad = || Error::Encode(format!("invalid object identifier {arcs:?}"));
    let (first, second) = match arcs {
        [a, b, ..] => (*a, *b),
        _ => return Err(bad()),
    };
    if first > 2 || (first < 2 && second >= 40) {
        return Err(bad());
    }
    let mut contents = Vec::with_capacity(arcs.len() + 4);
    push_arc(&mut contents, u64::from(first) * 40 + u64::from(second));
    for arc in &arcs[2..] {
        push_arc(&mut contents, u64::from(*arc));
    }
    tlv(out, OBJECT_IDENTIFIER, &contents);
    Ok(())
}

/// Base 128, most significant group first, bit 8 set on all but the last.
fn push_arc(out: &mut Vec<u8>, arc: u64) {
    let mut groups = [0u8; 10];
    let mut n = 0;
    let mut v = arc;
    loop {
        groups[n] = (v & 0x7f) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(groups[i] | if i > 0 { 0x80 } else { 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn lengths_use_the_short_form_below_128_and_the_long_form_above() {
        assert_eq!(enc(|v| push_len(v, 0)), [0x00]);
        assert_eq!(enc(|v| push_len(v, 127)), [0x7f]);
        assert_eq!(enc(|v| push_len(v, 128)), [0x81, 0x80]);
        assert_eq!(enc(|v| push_len(v, 255)), [0x81, 0xff]);
        assert_eq!(enc(|v| push_len(v, 256)), [0x82, 0x01, 0x00]);
        assert_eq!(enc(|v| push_len(v, 65_507)), [0x82, 0xff, 0xe3]);
        assert_eq!(enc(|v| push_len(v, 0x01_0000)), [0x83, 0x01, 0x00, 0x00]);
        assert_eq!(len_len(127), 1);
        assert_eq!(len_len(300), 3);
    }

    #[test]
    fn integers_take_the_fewest_twos_complement_octets() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x02, 0x01, 0x00]),
            (1, &[0x02, 0x01, 0x01]),
            (127, &[0x02, 0x01, 0x7f]),
            (128, &[0x02, 0x02, 0x00, 0x80]),
            (256, &[0x02, 0x02, 0x01, 0x00]),
            (-1, &[0x02, 0x01, 0xff]),
            (-128, &[0x02, 0x01, 0x80]),
            (-129, &[0x02, 0x02, 0xff, 0x7f]),
            (2_147_483_647, &[0x02, 0x04, 0x7f, 0xff, 0xff, 0xff]),
            (-2_147_483_648, &[0x02, 0x04, 0x80, 0x00, 0x00, 0x00]),
        ];
        for (value, want) in cases {
            assert_eq!(enc(|v| integer(v, *value)), *want, "{value}");
        }
    }

    #[test]
    fn unsigned_values_get_a_leading_zero_when_the_top_bit_is_set() {
        assert_eq!(enc(|v| unsigned(v, TIME_TICKS, 0)), [0x43, 0x01, 0x00]);
        assert_eq!(
            enc(|v| unsigned(v, TIME_TICKS, 200)),
            [0x43, 0x02, 0x00, 0xc8]
        );
        assert_eq!(
            enc(|v| unsigned(v, COUNTER32, u64::from(u32::MAX))),
            [0x41, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(
            enc(|v| unsigned(v, GAUGE32, 0x1234)),
            [0x42, 0x02, 0x12, 0x34]
        );
    }

    #[test]
    fn object_identifiers_pack_the_first_two_arcs_and_use_base_128() {
        // sysUpTime.0
        assert_eq!(
            enc(|v| oid(v, &[1, 3, 6, 1, 2, 1, 1, 3, 0]).unwrap()),
            [0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00]
        );
        // The X.690 example 2.999.3 and an enterprise number above 127.
        assert_eq!(
            enc(|v| oid(v, &[2, 999, 3]).unwrap()),
            [0x06, 0x03, 0x88, 0x37, 0x03]
        );
        assert_eq!(
            enc(|v| oid(v, &[1, 3, 6, 1, 4, 1, 731]).unwrap()),
            [0x06, 0x07, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x85, 0x5b]
        );
        assert_eq!(
            enc(|v| oid(v, &[1, 3, u32::MAX]).unwrap()),
            [0x06, 0x06, 0x2b, 0x8f, 0xff, 0xff, 0xff, 0x7f]
        );
        for bad in [&[][..], &[1], &[3, 1], &[1, 40]] {
            assert!(oid(&mut Vec::new(), bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn strings_and_sequences_wrap_their_contents() {
        assert_eq!(
            enc(|v| octet_string(v, b"public")),
            [0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c']
        );
        let long = vec![0x41u8; 200];
        let got = enc(|v| octet_string(v, &long));
        assert_eq!(&got[..3], &[0x04, 0x81, 200]);
        assert_eq!(got.len(), 203);
        assert_eq!(enc(|v| tlv(v, NULL, &[])), [0x05, 0x00]);
    }
}
