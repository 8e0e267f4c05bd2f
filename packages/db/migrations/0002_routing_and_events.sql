-- Two hooks every procedure calls, so that the same procedures serve one
-- database and the partitions of a PL/Proxy cluster:
--
-- parley.route_check(name): on a cluster partition (parley.partition_info has
--   its row), refuses a user whose hashtext(lower(name)) no longer maps here,
--   with SQLSTATE PZ001 ("moved by a split: try again"); the driver retries and
--   the proxy, switched by then, routes to the new partition. Every call holds
--   a shared advisory lock for its transaction, which the split takes
--   exclusively while it moves rows and switches the proxy. Elsewhere: a no-op
--   but for that lock.
-- parley.emit_event(type, name, data): where PgQ is installed with the queue
--   parley_events (cluster partitions), the event goes into it in the caller's
--   transaction; elsewhere nothing happens.

CREATE TABLE parley.partition_info (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  partition_index integer NOT NULL CHECK (partition_index >= 0),
  partition_count integer NOT NULL CHECK (partition_count > 0 AND partition_count & (partition_count - 1) = 0),
  CHECK (partition_index < partition_count)
);

-- The hash PL/Proxy routes by, the same on the proxy and here.
CREATE FUNCTION parley.user_hash (i_name text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext(lower(i_name)) $$;

CREATE FUNCTION parley.route_check (i_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_index integer;
  v_count integer;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(7370616, 1);
  SELECT partition_index, partition_count INTO v_index, v_count FROM parley.partition_info;
  IF FOUND AND (parley.user_hash(i_name) & (v_count - 1)) <> v_index THEN
    RAISE EXCEPTION 'user % is not on partition % of % (moved by a split): try again', i_name, v_index, v_count
      USING ERRCODE = 'PZ001';
  END IF;
END
$$;

CREATE FUNCTION parley.emit_event (i_type text, i_name text, i_data jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF to_regnamespace('pgq') IS NOT NULL THEN
    PERFORM pgq.insert_event('parley_events', i_type, (i_data || jsonb_build_object('name', i_name, 'at', now()))::text,
      lower(i_name), NULL, NULL, NULL);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION parley.create_account (i_name text, i_display_name text, i_email text, i_password_hash text,
  OUT o_status text, OUT o_name text, OUT o_display_name text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM parley.route_check(i_name);
  INSERT INTO public.accounts (name_key, name, display_name, email, password_hash)
  VALUES (lower(i_name), i_name, coalesce(i_display_name, i_name), i_email, i_password_hash)
  ON CONFLICT (name_key) DO NOTHING
  RETURNING 'ok', name, display_name INTO o_status, o_name, o_display_name;
  IF o_status IS NULL THEN
    o_status := 'name_taken';
  ELSE
    PERFORM parley.emit_event('account_created', o_name, '{}');
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION parley.login_lookup (i_name text, i_address text, i_window_ms bigint,
  OUT o_name text, OUT o_password_hash text,
  OUT o_name_failures integer, OUT o_name_last_failure timestamptz,
  OUT o_address_failures integer, OUT o_address_last_failure timestamptz,
  OUT o_now timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_cutoff timestamptz := now() - i_window_ms * interval '1 millisecond';
BEGIN
  PERFORM parley.route_check(i_name);
  o_now := now();
  SELECT a.name, a.password_hash INTO o_name, o_password_hash FROM public.accounts a WHERE a.name_key = lower(i_name);
  SELECT f.failures, f.last_failure_at INTO o_name_failures, o_name_last_failure
    FROM public.login_failures f WHERE f.kind = 'name' AND f.key = lower(i_name) AND f.last_failure_at > v_cutoff;
  SELECT f.failures, f.last_failure_at INTO o_address_failures, o_address_last_failure
    FROM public.login_failures f WHERE f.kind = 'address' AND f.key = i_address AND f.last_failure_at > v_cutoff;
  o_name_failures := coalesce(o_name_failures, 0);
  o_address_failures := coalesce(o_address_failures, 0);
END
$$;

CREATE OR REPLACE FUNCTION parley.login_failed (i_name text, i_address text, i_window_ms bigint,
  OUT o_name_failures integer, OUT o_address_failures integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_cutoff timestamptz := now() - i_window_ms * interval '1 millisecond';
BEGIN
  PERFORM parley.route_check(i_name);
  INSERT INTO public.login_failures AS f (kind, key, failures, last_failure_at) VALUES ('name', lower(i_name), 1, now())
  ON CONFLICT (kind, key) DO UPDATE
    SET failures = CASE WHEN f.last_failure_at > v_cutoff THEN f.failures + 1 ELSE 1 END, last_failure_at = now()
  RETURNING failures INTO o_name_failures;
  INSERT INTO public.login_failures AS f (kind, key, failures, last_failure_at) VALUES ('address', i_address, 1, now())
  ON CONFLICT (kind, key) DO UPDATE
    SET failures = CASE WHEN f.last_failure_at > v_cutoff THEN f.failures + 1 ELSE 1 END, last_failure_at = now()
  RETURNING failures INTO o_address_failures;
  PERFORM parley.emit_event('login_failed', i_name, jsonb_build_object('address', i_address, 'failures', o_name_failures));
END
$$;

CREATE OR REPLACE FUNCTION parley.login_succeeded (i_name text, i_device_key bytea,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM parley.route_check(i_name);
  UPDATE public.accounts SET credential_serial = credential_serial + 1
   WHERE name_key = lower(i_name)
  RETURNING name, credential_serial INTO o_name, o_serial;
  IF o_name IS NULL THEN
    o_status := 'no_account';
    RETURN;
  END IF;
  DELETE FROM public.login_failures WHERE kind = 'name' AND key = lower(i_name);
  INSERT INTO public.devices AS d (name_key, device_key, current_serial) VALUES (lower(i_name), i_device_key, o_serial)
  ON CONFLICT (name_key, device_key) DO UPDATE SET current_serial = o_serial, last_login_at = now();
  o_status := 'ok';
  PERFORM parley.emit_event('login', o_name, jsonb_build_object('device', encode(i_device_key, 'hex')));
  PERFORM parley.emit_event('credential_issued', o_name,
    jsonb_build_object('device', encode(i_device_key, 'hex'), 'serial', o_serial::text, 'renewal', false));
END
$$;

CREATE OR REPLACE FUNCTION parley.renew_credential (i_name text, i_device_key bytea, i_serial bigint,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_current bigint;
  v_found boolean;
BEGIN
  PERFORM parley.route_check(i_name);
  SELECT true, d.current_serial INTO v_found, v_current FROM public.devices d
   WHERE d.name_key = lower(i_name) AND d.device_key = i_device_key FOR UPDATE;
  IF v_found IS NULL THEN
    o_status := CASE WHEN EXISTS (SELECT 1 FROM public.accounts WHERE name_key = lower(i_name)) THEN 'logged_out' ELSE 'no_account' END;
    RETURN;
  END IF;
  IF v_current IS NULL THEN
    o_status := 'logged_out';
    RETURN;
  END IF;
  IF v_current <> i_serial THEN
    o_status := 'stale';
    RETURN;
  END IF;
  UPDATE public.accounts SET credential_serial = credential_serial + 1 WHERE name_key = lower(i_name)
  RETURNING name, credential_serial INTO o_name, o_serial;
  UPDATE public.devices SET current_serial = o_serial, last_login_at = now()
   WHERE name_key = lower(i_name) AND device_key = i_device_key;
  o_status := 'ok';
  PERFORM parley.emit_event('credential_issued', o_name,
    jsonb_build_object('device', encode(i_device_key, 'hex'), 'serial', o_serial::text, 'renewal', true));
END
$$;

CREATE OR REPLACE FUNCTION parley.logout_device (i_name text, i_device_key bytea, OUT o_status text)
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM parley.route_check(i_name);
  UPDATE public.devices SET current_serial = NULL
   WHERE name_key = lower(i_name) AND device_key = i_device_key AND current_serial IS NOT NULL;
  o_status := CASE WHEN FOUND THEN 'ok' ELSE 'logged_out' END;
END
$$;

-- get_account becomes PL/pgSQL to take part in routing (a SQL function cannot PERFORM).
DROP FUNCTION parley.get_account (text);
CREATE FUNCTION parley.get_account (i_name text, OUT o_name text, OUT o_display_name text, OUT o_created_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  PERFORM parley.route_check(i_name);
  SELECT name, display_name, created_at INTO o_name, o_display_name, o_created_at FROM public.accounts WHERE name_key = lower(i_name);
END
$$;
