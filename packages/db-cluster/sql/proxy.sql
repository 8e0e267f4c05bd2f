-- The proxy database: no tables of users, only PL/Proxy functions with the
-- very signatures of the partitions' procedures, each routed by
-- parley.user_hash(i_name) = hashtext(lower(i_name)) to one of the partitions
-- (RUN ON ALL for the directory), and the cluster configuration that a split
-- switches at once by bumping its version.

CREATE EXTENSION IF NOT EXISTS plproxy;
CREATE SCHEMA IF NOT EXISTS plproxy;
CREATE SCHEMA IF NOT EXISTS parley;
CREATE SCHEMA IF NOT EXISTS parley_cluster;

CREATE TABLE IF NOT EXISTS parley_cluster.partitions (
  partition_index integer PRIMARY KEY CHECK (partition_index >= 0),
  name text NOT NULL UNIQUE,
  connstr text NOT NULL
);

CREATE TABLE IF NOT EXISTS parley_cluster.version (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  version integer NOT NULL
);
INSERT INTO parley_cluster.version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- PL/Proxy asks for the version on every call and reloads the partitions when it grew.
CREATE OR REPLACE FUNCTION plproxy.get_cluster_version (cluster_name text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF cluster_name <> 'parley' THEN
    RAISE EXCEPTION 'unknown cluster %', cluster_name;
  END IF;
  RETURN (SELECT version FROM parley_cluster.version);
END
$$;

CREATE OR REPLACE FUNCTION plproxy.get_cluster_partitions (cluster_name text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
  IF cluster_name <> 'parley' THEN
    RAISE EXCEPTION 'unknown cluster %', cluster_name;
  END IF;
  RETURN QUERY SELECT connstr FROM parley_cluster.partitions ORDER BY partition_index;
END
$$;

CREATE OR REPLACE FUNCTION plproxy.get_cluster_config (IN cluster_name text, OUT key text, OUT val text) RETURNS SETOF record
LANGUAGE sql AS $$
  VALUES ('connection_lifetime', '1800'), ('query_timeout', '30')
$$;

-- Adds partitions (or replaces them all) and bumps the version: every proxy
-- connection switches at its next call. The only way the tools change the cluster.
CREATE OR REPLACE FUNCTION parley_cluster.switch_partitions (i_replace boolean, i_indexes integer[], i_names text[],
  i_connstrs text[], OUT o_version integer, OUT o_partitions integer)
LANGUAGE plpgsql AS $$
BEGIN
  IF i_replace THEN
    DELETE FROM parley_cluster.partitions;
  END IF;
  INSERT INTO parley_cluster.partitions (partition_index, name, connstr)
  SELECT * FROM unnest(i_indexes, i_names, i_connstrs);
  SELECT count(*) INTO o_partitions FROM parley_cluster.partitions;
  IF o_partitions & (o_partitions - 1) <> 0 OR EXISTS (SELECT 1 FROM parley_cluster.partitions WHERE partition_index >= o_partitions) THEN
    RAISE EXCEPTION 'PL/Proxy needs partitions 0..N-1 with N a power of two, not %', o_partitions;
  END IF;
  UPDATE parley_cluster.version SET version = version + 1 RETURNING version INTO o_version;
END
$$;

CREATE OR REPLACE FUNCTION parley.user_hash (i_name text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext(lower(i_name)) $$;

CREATE OR REPLACE FUNCTION parley.create_account (i_name text, i_display_name text, i_email text, i_password_hash text,
  OUT o_status text, OUT o_name text, OUT o_display_name text)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.login_lookup (i_name text, i_address text, i_window_ms bigint,
  OUT o_name text, OUT o_password_hash text,
  OUT o_name_failures integer, OUT o_name_last_failure timestamptz,
  OUT o_address_failures integer, OUT o_address_last_failure timestamptz,
  OUT o_now timestamptz)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.login_failed (i_name text, i_address text, i_window_ms bigint,
  OUT o_name_failures integer, OUT o_address_failures integer)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.login_succeeded (i_name text, i_device_key bytea,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.renew_credential (i_name text, i_device_key bytea, i_serial bigint,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.logout_device (i_name text, i_device_key bytea, OUT o_status text)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

CREATE OR REPLACE FUNCTION parley.get_account (i_name text, OUT o_name text, OUT o_display_name text, OUT o_created_at timestamptz)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON parley.user_hash(i_name); $$;

-- Every partition's matches, in parallel; the proxy merges, orders and limits as one database would.
CREATE OR REPLACE FUNCTION parley.search_directory_all (i_query text, i_limit integer)
RETURNS TABLE (o_name text, o_display_name text)
LANGUAGE plproxy AS $$ CLUSTER 'parley'; RUN ON ALL; TARGET parley.search_directory; $$;

CREATE OR REPLACE FUNCTION parley.search_directory (i_query text, i_limit integer)
RETURNS TABLE (o_name text, o_display_name text)
LANGUAGE sql AS $$
  WITH q AS (
    SELECT replace(replace(replace(lower(i_query), '\', '\\'), '%', '\%'), '_', '\_') AS pattern
  )
  SELECT s.o_name, s.o_display_name
    FROM parley.search_directory_all(i_query, i_limit) s, q
   ORDER BY (lower(s.o_name) LIKE q.pattern || '%') DESC, lower(s.o_name)
   LIMIT greatest(1, least(i_limit, 100))
$$;

-- The migrations the partitions run, so that `migrate()` on the proxy can check them (and never applies one here).
CREATE TABLE IF NOT EXISTS schema_migrations (
  version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()
);
