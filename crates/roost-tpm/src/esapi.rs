//! The TPM through tss-esapi: a deterministic ECC P-256 attestation key,
//! PCR quotes and PCR extends.

use std::str::FromStr;

use crate::{Quote, TpmError};

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
        AttestInfo, Data, Digest, DigestValues, EccPoint, EccScheme, HashScheme,
        KeyDerivationFunctionScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Public,
        PublicBuilder, PublicEccParametersBuilder, Signature, SignatureScheme,
        SymmetricDefinitionObject,
    },
    traits::Marshall,
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
    pub fn open(tcti: &str) -> Result<Tpm, TpmError> {
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
    pub fn quote(&mut self, nonce: &[u8], pcrs: &[u8]) -> Result<Quote, TpmError> {
        let mut indices = pcrs.to_vec();
        indices.sort_unstable();
        indices.dedup();
        if indices.is_empty() {
            return Err(TpmError::Invalid("no PCRs selected".into()));
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
                return Err(TpmError::Invalid(
                    "TPM returned a non-quote attestation".into(),
                ));
            }
            let Signature::EcDsa(sig) = signature else {
                return Err(TpmError::Invalid(
                    "TPM returned a non-ECDSA signature".into(),
                ));
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
        Err(TpmError::Invalid("PCRs kept changing while quoting".into()))
    }

    /// Extends PCR `index` of the SHA-256 bank with `digest`.
    pub fn extend(&mut self, index: u8, digest: [u8; 32]) -> Result<(), TpmError> {
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
    ) -> Result<Vec<(u8, [u8; 32])>, TpmError> {
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
                return Err(TpmError::Invalid("unexpected PCR read result".into()));
            }
            for (slot, digest) in slots.iter().zip(digests.value()) {
                let index = u8::try_from(u32::from(*slot).trailing_zeros()).unwrap_or(u8::MAX);
                let value = <[u8; 32]>::try_from(digest.value())
                    .map_err(|_| TpmError::Invalid(format!("PCR {index} is not 32 bytes")))?;
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
            return Err(TpmError::Invalid(
                "TPM did not return all selected PCRs".into(),
            ));
        }
        Ok(values)
    }
}

/// Template of the attestation key: restricted ECDSA-SHA256 signing key on NIST P-256.
fn ak_template() -> Result<Public, TpmError> {
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
fn pcr_selection(indices: &[u8]) -> Result<PcrSelectionList, TpmError> {
    let slots = indices
        .iter()
        .map(|&i| {
            let bit = 1u32
                .checked_shl(u32::from(i))
                .ok_or_else(|| TpmError::Invalid(format!("PCR index {i} out of range")))?;
            Ok(PcrSlot::try_from(bit)?)
        })
        .collect::<Result<Vec<_>, TpmError>>()?;
    Ok(PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()?)
}

/// SEC1 uncompressed encoding of an ECC P-256 public key.
fn ec_point(public: &Public) -> Result<Vec<u8>, TpmError> {
    let Public::Ecc { unique, .. } = public else {
        return Err(TpmError::Invalid(
            "attestation key is not an ECC key".into(),
        ));
    };
    let mut point = Vec::with_capacity(65);
    point.push(0x04);
    for coordinate in [unique.x().value(), unique.y().value()] {
        if coordinate.len() > 32 {
            return Err(TpmError::Invalid(
                "ECC coordinate longer than 32 bytes".into(),
            ));
        }
        point.resize(point.len() + 32 - coordinate.len(), 0);
        point.extend_from_slice(coordinate);
    }
    Ok(point)
}
