-- The serial number of the certificate issued to a subcloud at enrollment
-- (or renewal), and the one before it until the subcloud uses the new one.
-- A certificate whose serial is not on the subcloud's record is refused.

ALTER TABLE subclouds ADD COLUMN cert_serial TEXT;
ALTER TABLE subclouds ADD COLUMN prev_cert_serial TEXT;
