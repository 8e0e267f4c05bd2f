-- Accounts, devices and login throttling, with the stored procedures that are
-- the only way the login server touches them. Every procedure names the user
-- it is about first (i_name), so that a PL/Proxy proxy with the same
-- signatures can route it by hashtext(lower(i_name)).
-- Written for PostgreSQL 15 (Debian) and PGlite (PostgreSQL 18) alike.

CREATE SCHEMA IF NOT EXISTS parley;

CREATE TABLE public.accounts (
  name_key text PRIMARY KEY,                 -- lower(name): names are unique case-insensitively
  name text NOT NULL,                        -- as the user wrote it
  display_name text NOT NULL,
  email text,
  password_hash text NOT NULL,               -- Argon2id PHC string
  listed boolean NOT NULL DEFAULT true,      -- shown in directory search
  credential_serial bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (name_key = lower(name))
);
CREATE INDEX accounts_name_prefix ON public.accounts (name_key text_pattern_ops);
CREATE INDEX accounts_display_prefix ON public.accounts (lower(display_name) text_pattern_ops);

CREATE TABLE public.devices (
  name_key text NOT NULL REFERENCES public.accounts (name_key) ON DELETE CASCADE,
  device_key bytea NOT NULL CHECK (length(device_key) = 32),
  current_serial bigint,                     -- NULL once logged out: no renewal
  first_login_at timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name_key, device_key)
);

-- Failed logins, per name (known or not, so the answer does not tell) and per client address.
CREATE TABLE public.login_failures (
  kind text NOT NULL CHECK (kind IN ('name', 'address')),
  key text NOT NULL,
  failures integer NOT NULL,
  last_failure_at timestamptz NOT NULL,
  PRIMARY KEY (kind, key)
);

-- Registration. o_status: 'ok' or 'name_taken' (also under concurrent registration: the primary key decides).
CREATE FUNCTION parley.create_account (i_name text, i_display_name text, i_email text, i_password_hash text,
  OUT o_status text, OUT o_name text, OUT o_display_name text)
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.accounts (name_key, name, display_name, email, password_hash)
  VALUES (lower(i_name), i_name, coalesce(i_display_name, i_name), i_email, i_password_hash)
  ON CONFLICT (name_key) DO NOTHING
  RETURNING 'ok', name, display_name INTO o_status, o_name, o_display_name;
  IF o_status IS NULL THEN
    o_status := 'name_taken';
  END IF;
END
$$;

-- What a login needs: the password hash (NULL for an unknown name) and the
-- recent failures by name and by address (0 once older than i_window_ms).
CREATE FUNCTION parley.login_lookup (i_name text, i_address text, i_window_ms bigint,
  OUT o_name text, OUT o_password_hash text,
  OUT o_name_failures integer, OUT o_name_last_failure timestamptz,
  OUT o_address_failures integer, OUT o_address_last_failure timestamptz,
  OUT o_now timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_cutoff timestamptz := now() - i_window_ms * interval '1 millisecond';
BEGIN
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

-- A wrong password or unknown name: counts against the name and the address.
CREATE FUNCTION parley.login_failed (i_name text, i_address text, i_window_ms bigint,
  OUT o_name_failures integer, OUT o_address_failures integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_cutoff timestamptz := now() - i_window_ms * interval '1 millisecond';
BEGIN
  INSERT INTO public.login_failures AS f (kind, key, failures, last_failure_at) VALUES ('name', lower(i_name), 1, now())
  ON CONFLICT (kind, key) DO UPDATE
    SET failures = CASE WHEN f.last_failure_at > v_cutoff THEN f.failures + 1 ELSE 1 END, last_failure_at = now()
  RETURNING failures INTO o_name_failures;
  INSERT INTO public.login_failures AS f (kind, key, failures, last_failure_at) VALUES ('address', i_address, 1, now())
  ON CONFLICT (kind, key) DO UPDATE
    SET failures = CASE WHEN f.last_failure_at > v_cutoff THEN f.failures + 1 ELSE 1 END, last_failure_at = now()
  RETURNING failures INTO o_address_failures;
END
$$;

-- A right password: forget the name's failures, register the device and give
-- it the next credential serial. o_status: 'ok' or 'no_account'.
CREATE FUNCTION parley.login_succeeded (i_name text, i_device_key bytea,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plpgsql AS $$
BEGIN
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
END
$$;

-- Renewal: only the device's current credential may be renewed, once.
-- o_status: 'ok', 'stale' (an older credential, or already renewed), 'logged_out', 'no_account'.
CREATE FUNCTION parley.renew_credential (i_name text, i_device_key bytea, i_serial bigint,
  OUT o_status text, OUT o_name text, OUT o_serial bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_current bigint;
  v_found boolean;
BEGIN
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
END
$$;

-- Logout: the device's credential can no longer be renewed. o_status: 'ok' or 'logged_out' (already).
CREATE FUNCTION parley.logout_device (i_name text, i_device_key bytea, OUT o_status text)
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE public.devices SET current_serial = NULL
   WHERE name_key = lower(i_name) AND device_key = i_device_key AND current_serial IS NOT NULL;
  o_status := CASE WHEN FOUND THEN 'ok' ELSE 'logged_out' END;
END
$$;

-- One account's public face.
CREATE FUNCTION parley.get_account (i_name text, OUT o_name text, OUT o_display_name text, OUT o_created_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT name, display_name, created_at FROM public.accounts WHERE name_key = lower(i_name)
$$;

-- Directory search: name prefix, or display name prefix (of the whole or of any word).
-- i_query is matched literally (LIKE wildcards are escaped). Runs on every partition in a cluster.
CREATE FUNCTION parley.search_directory (i_query text, i_limit integer)
RETURNS TABLE (o_name text, o_display_name text)
LANGUAGE sql STABLE AS $$
  WITH q AS (
    SELECT replace(replace(replace(lower(i_query), '\', '\\'), '%', '\%'), '_', '\_') AS pattern
  )
  SELECT a.name, a.display_name
    FROM public.accounts a, q
   WHERE a.listed
     AND (a.name_key LIKE q.pattern || '%'
       OR lower(a.display_name) LIKE q.pattern || '%'
       OR lower(a.display_name) LIKE '% ' || q.pattern || '%')
   ORDER BY (a.name_key LIKE q.pattern || '%') DESC, a.name_key
   LIMIT greatest(1, least(i_limit, 100))
$$;
