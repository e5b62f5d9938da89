-- Host labels (sysinv's label API; applications select hosts by them) and
-- the function of each logical CPU (platform, application,
-- application-isolated). Both are JSON kept with the host row, so that they
-- change in the same transaction as the host itself.

ALTER TABLE hosts ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hosts ADD COLUMN cpu_functions TEXT NOT NULL DEFAULT '{}';
