-- Agents' client certificates: the certificate the cloud CA issued to the
-- host's agent (PEM; public), its serial, and the serial of the one it
-- replaced (accepted until the agent first uses the new one).
ALTER TABLE hosts ADD COLUMN agent_cert TEXT;
ALTER TABLE hosts ADD COLUMN agent_cert_serial TEXT;
ALTER TABLE hosts ADD COLUMN agent_cert_prev_serial TEXT;
-- TPM attestation (JSON): the host's attestation key, the PCR values it
-- must quote, the last verified quote and why attestation failed, if it did.
ALTER TABLE hosts ADD COLUMN tpm TEXT;
