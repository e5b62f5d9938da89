//! The upload decoder fed in random pieces decodes exactly what it decodes
//! in one piece.

use proptest::prelude::*;
use roost_api::apps::base64::encode;
use roost_package::upload::{Upload, UploadDecoder};

fn body(
    data: &[u8],
    url_safe: bool,
    padded: bool,
    escape_slash: bool,
    order: usize,
    spaces: bool,
) -> Vec<u8> {
    let mut b64 = encode(data);
    if url_safe {
        b64 = b64.replace('+', "-").replace('/', "_");
    }
    if !padded {
        b64 = b64.trim_end_matches('=').to_string();
    }
    if escape_slash {
        b64 = b64.replace('/', "\\/");
    }
    let sep = if spaces { ", \n  " } else { "," };
    let mut fields = [
        r#""tarfile": "\/root\/hello-1.0-1.tgz""#.to_string(),
        r#""name": "hello""#.to_string(),
        r#""app_version":"1.0-1""#.to_string(),
        r#""images": true"#.to_string(),
        format!(r#""binary_data": "{b64}""#),
    ];
    let n = fields.len();
    fields.rotate_left(order % n);
    if order % 2 == 1 {
        fields.swap(0, n - 1);
    }
    format!("{{{}}}", fields.join(sep)).into_bytes()
}

fn decode(body: &[u8], cuts: &[usize]) -> (Upload, Vec<u8>) {
    let mut d = UploadDecoder::new(1 << 20);
    let mut out = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut prev = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        d.push(&body[prev..c], &mut out).unwrap();
        prev = c;
    }
    (d.finish().unwrap(), out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_splits_equal_one_shot(
        data in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        url_safe in any::<bool>(),
        padded in any::<bool>(),
        escape_slash in any::<bool>(),
        order in 0usize..10,
        spaces in any::<bool>(),
    ) {
        let body = body(&data, url_safe, padded, escape_slash, order, spaces);
        let one = decode(&body, &[]);
        let split = decode(&body, &cuts);
        prop_assert_eq!(&one.1, &data);
        prop_assert_eq!(&split.1, &data);
        prop_assert_eq!(&one.0, &split.0);
        prop_assert_eq!(one.0.request.tarfile.as_str(), "/root/hello-1.0-1.tgz");
        prop_assert_eq!(one.0.binary_bytes, Some(data.len() as u64));
        // Byte by byte too.
        let mut d = UploadDecoder::new(1 << 20);
        let mut out = Vec::new();
        for b in &body {
            d.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        prop_assert_eq!(d.finish().unwrap(), one.0);
        prop_assert_eq!(out, data);
    }
}
