-- The optional second heartbeat network (cluster-host).
ALTER TABLE hosts ADD COLUMN cluster_ip TEXT;
ALTER TABLE hosts ADD COLUMN cluster_port INTEGER;
