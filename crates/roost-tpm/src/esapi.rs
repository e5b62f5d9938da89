//! The TPM through tss-esapi: a deterministic ECC P-256 attestation key,
//! PCR quotes and PCR extends.

use std::str::FromStr;

use crate::{Error, Quote};

use tss_esapi::{
    Context, TctiNameConf,
    attributes::ObjectAttributesBuilder,
    handles::{KeyHandle, PcrHandle},
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
        resource_handles::Hierarchy,
        session_handles::AuthSession,
    },
    structures::{
        AttestInfo, Data, Digest, DigestValues, EccParameter, EccPoint, EccScheme, HashScheme,
        KeyDerivationFunctionScheme, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder,
        PcrSlot, Private, Public, PublicBuilder, PublicEccParametersBuilder,
        PublicKeyedHashParameters, SensitiveData, Signature, SignatureScheme,
        SymmetricDefinitionObject,
    },
    traits::{Marshall, UnMarshall},
};

/// An open TPM context with the attestation key loaded.
pub struct Tpm {
    context: Context,
    ak: KeyHandle,
    ak_public: Vec<u8>,
}

/// Every authorization used here (endorsement hierarchy, attestation key, PCRs) is an empty
/// password. Commands without authorized handles (PCR_Read) must be sent without it.
const PASSWORD: Option<AuthSession> = Some(AuthSession::Password);

/// How often a quote is retried when the PCRs change between quoting and reading them.
const QUOTE_ATTEMPTS: usize = 3;

impl Tpm {
    /// Opens the TPM through a TCTI string such as "swtpm:host=127.0.0.1,port=2321" or
    /// "device:/dev/tpmrm0", and creates the attestation key as a primary key in the
    /// endorsement hierarchy: the same template always yields the same key on the same TPM.
    pub fn open(tcti: &str) -> Result<Tpm, Error> {
        let tcti = TctiNameConf::from_str(tcti)?;
        let mut context = Context::new(tcti)?;
        let template = ak_template()?;
        let created = context.execute_with_session(PASSWORD, |ctx| {
            ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
        })?;
        // Transient objects (the key, if this fails) are flushed when the Context is dropped,
        // which matters on TPMs without a resource manager such as swtpm.
        let ak_public = ec_point(&created.out_public)?;
        Ok(Tpm {
            context,
            ak: created.key_handle,
            ak_public,
        })
    }

    /// The attestation key's public point, SEC1 uncompressed (0x04 || X || Y), 65 bytes.
    pub fn ak_public(&self) -> Vec<u8> {
        self.ak_public.clone()
    }

    /// TPM2_Quote with `nonce` as qualifying data over the SHA-256 bank PCRs `pcrs`, plus a PCR
    /// read of the same selection so the verifier can recompute the PCR digest.
    pub fn quote(&mut self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, Error> {
        let mut indices = pcrs.to_vec();
        indices.sort_unstable();
        indices.dedup();
        if indices.is_empty() {
            return Err(Error::Invalid("no PCRs selected".into()));
        }
        let selection = pcr_selection(&indices)?;
        let nonce = Data::try_from(nonce.to_vec())?;

        // Read, quote, read again: if the values did not change, they are the quoted ones.
        for _ in 0..QUOTE_ATTEMPTS {
            let before = self.read_pcrs(&indices, &selection)?;
            let (attest, signature) = self.context.execute_with_session(PASSWORD, |ctx| {
                ctx.quote(
                    self.ak,
                    nonce.clone(),
                    SignatureScheme::Null,
                    selection.clone(),
                )
            })?;
            let after = self.read_pcrs(&indices, &selection)?;
            if before != after {
                continue;
            }
            if !matches!(attest.attested(), AttestInfo::Quote { .. }) {
                return Err(Error::Invalid(
                    "TPM returned a non-quote attestation".into(),
                ));
            }
            let Signature::EcDsa(sig) = signature else {
                return Err(Error::Invalid("TPM returned a non-ECDSA signature".into()));
            };
            return Ok(Quote {
                // Marshalling the parsed attestation again yields the TPMS_ATTEST bytes
                // the TPM signed (the TPM2B_ATTEST content without its size prefix).
                attest: attest.marshall()?,
                signature_r: sig.signature_r().value().to_vec(),
                signature_s: sig.signature_s().value().to_vec(),
                pcrs: after,
            });
        }
        Err(Error::Invalid("PCRs kept changing while quoting".into()))
    }

    /// Extends PCR `index` of the SHA-256 bank with `digest`.
    pub fn extend(&mut self, index: u8, digest: [u8; 32]) -> Result<(), Error> {
        let pcr = PcrHandle::try_from(u32::from(index))?;
        let mut values = DigestValues::new();
        values.set(HashingAlgorithm::Sha256, Digest::try_from(digest.to_vec())?);
        self.context
            .execute_with_session(PASSWORD, |ctx| ctx.pcr_extend(pcr, values))?;
        Ok(())
    }

    /// Reads the SHA-256 values of `indices` (sorted); a single TPM2_PCR_Read returns at most
    /// 8 digests, so this loops until the whole selection has been read.
    fn read_pcrs(
        &mut self,
        indices: &[u8],
        selection: &PcrSelectionList,
    ) -> Result<Vec<(u8, [u8; 32])>, Error> {
        let mut remaining = selection.clone();
        let mut values = Vec::with_capacity(indices.len());
        while !remaining.is_empty() {
            let (_, read, digests) = self.context.pcr_read(remaining.clone())?;
            let slots: Vec<PcrSlot> = read
                .get_selections()
                .iter()
                .filter(|s| s.hashing_algorithm() == HashingAlgorithm::Sha256)
                .flat_map(|s| s.selected())
                .collect();
            if slots.is_empty() || slots.len() != digests.value().len() {
                return Err(Error::Invalid("unexpected PCR read result".into()));
            }
            for (slot, digest) in slots.iter().zip(digests.value()) {
                let index = u8::try_from(u32::from(*slot).trailing_zeros()).unwrap_or(u8::MAX);
                let value = <[u8; 32]>::try_from(digest.value())
                    .map_err(|_| Error::Invalid(format!("PCR {index} is not 32 bytes")))?;
                values.push((index, value));
            }
            remaining.subtract(&read)?;
        }
        values.sort_unstable_by_key(|(index, _)| *index);
        if values
            .iter()
            .map(|(index, _)| *index)
            .ne(indices.iter().copied())
        {
            return Err(Error::Invalid(
                "TPM did not return all selected PCRs".into(),
            ));
        }
        Ok(values)
    }
}

/// Template of the attestation key: restricted ECDSA-SHA256 signing key on NIST P-256.
fn ak_template() -> Result<Public, Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()?;
    let parameters = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(true)
        .build()?;
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()?)
}

/// SHA-256 bank selection of the given PCR indices.
fn pcr_selection(indices: &[u8]) -> Result<PcrSelectionList, Error> {
    let slots = indices
        .iter()
        .map(|&i| {
            let bit = 1u32
                .checked_shl(u32::from(i))
                .ok_or_else(|| Error::Invalid(format!("PCR index {i} out of range")))?;
            Ok(PcrSlot::try_from(bit)?)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()?)
}

/// SEC1 uncompressed encoding of an ECC P-256 public key.
fn ec_point(public: &Public) -> Result<Vec<u8>, Error> {
    let Public::Ecc { unique, .. } = public else {
        return Err(Error::Invalid("attestation key is not an ECC key".into()));
    };
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    for coordinate in [unique.x().value(), unique.y().value()] {
        if coordinate.len() > 32 {
            return Err(Error::Invalid("ECC coordinate longer than 32 bytes".into()));
        }
        point.resize(point.len() + 32 - coordinate.len(), 0);
        point.extend_from_slice(coordinate);
    }
    Ok(point)
}

/// Largest secret `seal` accepts: the TPM's MAX_SYM_DATA, the size limit of sealed data.
pub const MAX_SEALED_SECRET: usize = 128;

/// Format version of the blobs written by `seal`.
const SEALED_BLOB_VERSION: u8 = 1;

/// Seals `secret` (1 to 128 bytes) to this TPM: the blob can be unsealed only by the same TPM
/// (its owner hierarchy's storage seed). Returns an opaque blob to store in a file.
///
/// The blob is a version byte followed by the sealed object's public area (TPM2B_PUBLIC) and
/// its private area (TPM2B_PRIVATE, encrypted and integrity-protected by the TPM under the
/// storage primary key): each a big-endian u16 length and the bytes.
pub fn seal(tcti: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
    // The TPM refuses a data object with empty sensitive data unless it generates the data
    // itself (sensitiveDataOrigin), which would not be the caller's secret.
    if secret.is_empty() {
        return Err(Error::Invalid("cannot seal an empty secret".into()));
    }
    if secret.len() > MAX_SEALED_SECRET {
        return Err(Error::Invalid(format!(
            "secret is {} bytes, at most {MAX_SEALED_SECRET} can be sealed",
            secret.len()
        )));
    }
    let sensitive = SensitiveData::try_from(secret.to_vec())?;
    let template = sealed_object_template()?;
    let (mut context, primary) = open_with_storage_primary(tcti)?;
    let created = context.execute_with_session(PASSWORD, |ctx| {
        ctx.create(primary, template, None, Some(sensitive), None, None)
    })?;
    // `create` loads nothing; the primary is flushed when the Context is dropped.
    let public = created.out_public.marshall()?;
    let mut blob = Vec::with_capacity(5 + public.len() + created.out_private.len());
    blob.push(SEALED_BLOB_VERSION);
    push_sized(&mut blob, &public)?;
    push_sized(&mut blob, created.out_private.value())?;
    Ok(blob)
}

/// Unseals a blob made by `seal` on the same TPM.
pub fn unseal(tcti: &str, blob: &[u8]) -> Result<Vec<u8>, Error> {
    let (public, private) = parse_sealed_blob(blob)?;
    let (mut context, primary) = open_with_storage_primary(tcti)?;
    // The TPM checks the private area's integrity with a key derived from the storage primary
    // key, so a blob sealed by another TPM (or altered) fails here, mostly with TPM_RC_INTEGRITY.
    let object = context
        .execute_with_session(PASSWORD, |ctx| ctx.load(primary, private, public))
        .map_err(|e| {
            Error::Invalid(format!(
                "this TPM cannot load the sealed blob (sealed by another TPM, owner hierarchy \
                 cleared since, or corrupted): {e}"
            ))
        })?;
    let secret = context.execute_with_session(PASSWORD, |ctx| ctx.unseal(object.into()))?;
    // The primary key and the loaded object are flushed when the Context is dropped, which
    // matters on TPMs without a resource manager such as swtpm.
    Ok(secret.value().to_vec())
}

/// Opens a Context and creates the storage primary key of the owner hierarchy. The template
/// is deterministic, so every call yields the same key on the same TPM (until the owner
/// hierarchy is cleared). The key is a transient object that the Context flushes on drop.
fn open_with_storage_primary(tcti: &str) -> Result<(Context, KeyHandle), Error> {
    let tcti = TctiNameConf::from_str(tcti)?;
    let mut context = Context::new(tcti)?;
    let template = storage_primary_template()?;
    let primary = context.execute_with_session(PASSWORD, |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
    })?;
    Ok((context, primary.key_handle))
}

/// The ECC NIST P-256 storage root key template of the TCG Provisioning Guidance (7.5.1):
/// restricted decryption key with AES-128-CFB, unique x and y 32 zero bytes each.
fn storage_primary_template() -> Result<Public, Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let parameters = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
        .with_ecc_scheme(EccScheme::Null)
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(false)
        .with_is_decryption_key(true)
        .with_restricted(true)
        .build()?;
    let zero = EccParameter::try_from(vec![0u8; 32])?;
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::new(zero.clone(), zero))
        .build()?)
}

/// Template of a sealed data object: a KeyedHash object with neither sign nor decrypt, whose
/// sensitive data is the secret supplied at creation; usable with an empty password.
fn sealed_object_template() -> Result<Public, Error> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .build()?;
    Ok(PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()?)
}

/// Appends `bytes` with a big-endian u16 length prefix.
fn push_sized(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(bytes.len())
        .map_err(|_| Error::Invalid("sealed blob field longer than 65535 bytes".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Splits a big-endian u16 length-prefixed field off the front of `input`.
fn take_sized<'a>(input: &mut &'a [u8], what: &str) -> Result<&'a [u8], Error> {
    let truncated = || Error::Invalid(format!("sealed blob truncated in the {what}"));
    let (len, rest) = input.split_first_chunk::<2>().ok_or_else(truncated)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(truncated());
    }
    let (field, rest) = rest.split_at(len);
    *input = rest;
    Ok(field)
}

/// Parses a blob written by `seal` into the sealed object's public and private areas.
fn parse_sealed_blob(blob: &[u8]) -> Result<(Public, Private), Error> {
    let Some((&version, mut rest)) = blob.split_first() else {
        return Err(Error::Invalid("sealed blob is empty".into()));
    };
    if version != SEALED_BLOB_VERSION {
        return Err(Error::Invalid(format!(
            "unsupported sealed blob version {version}"
        )));
    }
    let public_bytes = take_sized(&mut rest, "public area")?;
    let private_bytes = take_sized(&mut rest, "private area")?;
    if !rest.is_empty() {
        return Err(Error::Invalid(format!(
            "{} trailing bytes after the sealed blob",
            rest.len()
        )));
    }
    let invalid_public = |_| Error::Invalid("sealed blob has an invalid public area".into());
    let public = Public::unmarshall(public_bytes).map_err(invalid_public)?;
    // Unmarshalling ignores bytes after the structure; re-marshalling must give the same bytes.
    if public.marshall().map_err(invalid_public)? != public_bytes {
        return Err(Error::Invalid(
            "sealed blob has an invalid public area".into(),
        ));
    }
    if !matches!(public, Public::KeyedHash { .. }) {
        return Err(Error::Invalid(
            "sealed blob does not hold a sealed data object".into(),
        ));
    }
    let private = Private::try_from(private_bytes.to_vec())
        .map_err(|_| Error::Invalid("sealed blob has an invalid private area".into()))?;
    Ok((public, private))
}
