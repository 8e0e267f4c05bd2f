-- What a split does on a partition, as procedures (the tool never writes table SQL).
-- The split takes parley.split_lock() on every old partition: exclusive
-- against the shared lock every user procedure holds (parley.route_check), so
-- nothing changes there while rows are copied and the proxy is switched.

CREATE OR REPLACE FUNCTION parley.split_lock () RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(7370616, 1) $$;

-- The rows of users who will live on partition i_target once there are i_new_count partitions.
CREATE OR REPLACE FUNCTION parley.split_export (i_new_count integer, i_target integer,
  OUT o_accounts json, OUT o_devices json, OUT o_failures json)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  SELECT coalesce(json_agg(a), '[]') INTO o_accounts FROM public.accounts a
   WHERE (parley.user_hash(a.name_key) & (i_new_count - 1)) = i_target;
  SELECT coalesce(json_agg(d), '[]') INTO o_devices FROM public.devices d
   WHERE (parley.user_hash(d.name_key) & (i_new_count - 1)) = i_target;
  SELECT coalesce(json_agg(f), '[]') INTO o_failures FROM public.login_failures f
   WHERE f.kind = 'name' AND (parley.user_hash(f.key) & (i_new_count - 1)) = i_target;
END
$$;

-- On a new partition, before the switch: replaces whatever an earlier try left with these rows.
CREATE OR REPLACE FUNCTION parley.split_import (i_accounts json, i_devices json, i_failures json, OUT o_accounts integer)
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM public.devices;
  DELETE FROM public.login_failures;
  DELETE FROM public.accounts;
  INSERT INTO public.accounts SELECT * FROM json_populate_recordset(NULL::public.accounts, i_accounts);
  INSERT INTO public.devices SELECT * FROM json_populate_recordset(NULL::public.devices, i_devices);
  INSERT INTO public.login_failures SELECT * FROM json_populate_recordset(NULL::public.login_failures, i_failures);
  SELECT count(*) INTO o_accounts FROM public.accounts;
END
$$;

-- On an old partition, after the switch: it now holds only its share of i_new_count; drops the rest.
CREATE OR REPLACE FUNCTION parley.split_finish (i_new_count integer, OUT o_moved integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_index integer;
BEGIN
  UPDATE parley.partition_info SET partition_count = i_new_count RETURNING partition_index INTO v_index;
  DELETE FROM public.devices d WHERE (parley.user_hash(d.name_key) & (i_new_count - 1)) <> v_index;
  DELETE FROM public.login_failures f WHERE f.kind = 'name' AND (parley.user_hash(f.key) & (i_new_count - 1)) <> v_index;
  DELETE FROM public.accounts a WHERE (parley.user_hash(a.name_key) & (i_new_count - 1)) <> v_index;
  GET DIAGNOSTICS o_moved = ROW_COUNT;
END
$$;
