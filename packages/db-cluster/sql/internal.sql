-- The internal (statistics) database: what the PgQ consumer
-- (packages/db-cluster/src/consumer.ts) makes of the partitions' parley_events
-- queues. An audit trail with one row per event, keyed by (source partition,
-- ev_id), and counters: registrations per day, logins, failed logins and
-- credentials issued per hour (UTC buckets of the event's own time, "at").
--
-- Exactly-once in effect: PgQ delivers at least once (a consumer killed after
-- recording a batch but before pgq.finish_batch gets the same batch again), so
-- parley_internal.record_batch inserts the audit rows ON CONFLICT DO NOTHING
-- and counts only the rows it did insert, all in the caller's one transaction.
--
-- Applying this file again is harmless (IF NOT EXISTS / OR REPLACE); the
-- installer runs it in one transaction under an advisory lock. Everything is
-- reached through the functions below, never the tables.

CREATE SCHEMA IF NOT EXISTS parley_internal;

-- One row per event ever recorded.
CREATE TABLE IF NOT EXISTS parley_internal.audit_events (
  partition text NOT NULL,
  ev_id bigint NOT NULL,
  batch_id bigint NOT NULL,
  ev_type text NOT NULL,
  -- When PgQ stored the event, and the event's own time (data.at; ev_time when missing).
  ev_time timestamptz NOT NULL,
  at timestamptz NOT NULL,
  ev_txid bigint,
  -- ev_extra1: lower(user name).
  name_key text,
  -- ev_data as JSON, or as text (raw_data) when it is not JSON.
  data jsonb,
  raw_data text,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partition, ev_id)
);
CREATE INDEX IF NOT EXISTS audit_events_name_key_at ON parley_internal.audit_events (name_key, at);

-- One row per batch recorded; deliveries > 1 when PgQ handed the batch out again.
CREATE TABLE IF NOT EXISTS parley_internal.batches (
  partition text NOT NULL,
  batch_id bigint NOT NULL,
  events integer NOT NULL,
  new_events bigint NOT NULL,
  deliveries integer NOT NULL DEFAULT 1,
  duplicate_events bigint NOT NULL DEFAULT 0,
  first_recorded_at timestamptz NOT NULL DEFAULT now(),
  last_recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partition, batch_id)
);

CREATE TABLE IF NOT EXISTS parley_internal.stat_events (
  partition text NOT NULL,
  ev_type text NOT NULL,
  events bigint NOT NULL,
  PRIMARY KEY (partition, ev_type)
);

CREATE TABLE IF NOT EXISTS parley_internal.stat_registrations_per_day (
  day date PRIMARY KEY,
  registrations bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS parley_internal.stat_logins_per_hour (
  hour timestamptz PRIMARY KEY,
  logins bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS parley_internal.stat_failed_logins_per_hour (
  hour timestamptz PRIMARY KEY,
  failures bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS parley_internal.stat_credentials_per_hour (
  hour timestamptz PRIMARY KEY,
  issued bigint NOT NULL,
  renewals bigint NOT NULL
);

-- Records one PgQ batch of one partition. i_events is a JSON array of objects
-- {ev_id, ev_type, ev_time, ev_txid, ev_extra1, at, data, raw_data} (at, data,
-- raw_data may be null). Events already recorded (same partition and ev_id)
-- are skipped and counted nowhere; o_duplicates says how many there were.
-- One call is one transaction: all of the batch is recorded, or none of it.
CREATE OR REPLACE FUNCTION parley_internal.record_batch (i_partition text, i_batch_id bigint, i_events jsonb,
  OUT o_events integer, OUT o_new_events integer, OUT o_duplicates integer)
LANGUAGE plpgsql AS $$
DECLARE
  v_clash bigint;
BEGIN
  IF i_partition IS NULL OR i_batch_id IS NULL OR jsonb_typeof(i_events) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'record_batch needs a partition, a batch id and a JSON array of events' USING ERRCODE = '22023';
  END IF;
  o_events := jsonb_array_length(i_events);

  WITH ins AS (
    INSERT INTO parley_internal.audit_events AS a
      (partition, ev_id, batch_id, ev_type, ev_time, at, ev_txid, name_key, data, raw_data)
    SELECT i_partition, e.ev_id, i_batch_id, coalesce(e.ev_type, ''), e.ev_time, coalesce(e.at, e.ev_time), e.ev_txid,
           e.ev_extra1, e.data, e.raw_data
      FROM jsonb_to_recordset(i_events) AS e (ev_id bigint, ev_type text, ev_time timestamptz, ev_txid bigint,
                                               ev_extra1 text, at timestamptz, data jsonb, raw_data text)
     ORDER BY e.ev_id
    ON CONFLICT (partition, ev_id) DO NOTHING
    RETURNING a.ev_type, a.at, a.data
  ),
  by_type AS (
    INSERT INTO parley_internal.stat_events AS s (partition, ev_type, events)
    SELECT i_partition, ev_type, count(*) FROM ins GROUP BY ev_type ORDER BY ev_type
    ON CONFLICT (partition, ev_type) DO UPDATE SET events = s.events + excluded.events
  ),
  registrations AS (
    INSERT INTO parley_internal.stat_registrations_per_day AS s (day, registrations)
    SELECT (at AT TIME ZONE 'UTC')::date AS day, count(*) FROM ins WHERE ev_type = 'account_created' GROUP BY 1 ORDER BY 1
    ON CONFLICT (day) DO UPDATE SET registrations = s.registrations + excluded.registrations
  ),
  logins AS (
    INSERT INTO parley_internal.stat_logins_per_hour AS s (hour, logins)
    SELECT date_trunc('hour', at, 'UTC') AS hour, count(*) FROM ins WHERE ev_type = 'login' GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET logins = s.logins + excluded.logins
  ),
  failures AS (
    INSERT INTO parley_internal.stat_failed_logins_per_hour AS s (hour, failures)
    SELECT date_trunc('hour', at, 'UTC') AS hour, count(*) FROM ins WHERE ev_type = 'login_failed' GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET failures = s.failures + excluded.failures
  ),
  credentials AS (
    INSERT INTO parley_internal.stat_credentials_per_hour AS s (hour, issued, renewals)
    SELECT date_trunc('hour', at, 'UTC') AS hour, count(*), count(*) FILTER (WHERE data ->> 'renewal' = 'true')
      FROM ins WHERE ev_type = 'credential_issued' GROUP BY 1 ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET issued = s.issued + excluded.issued, renewals = s.renewals + excluded.renewals
  )
  SELECT count(*) INTO o_new_events FROM ins;

  o_duplicates := o_events - o_new_events;
  IF o_duplicates > 0 THEN
    -- A replay brings the same events (same transaction ids). Anything else under
    -- a recorded key means the partition's queue started over (ev_id from 1):
    -- refuse, rather than drop its events as duplicates.
    SELECT e.ev_id INTO v_clash
      FROM jsonb_to_recordset(i_events) AS e (ev_id bigint, ev_txid bigint)
      JOIN parley_internal.audit_events a ON a.partition = i_partition AND a.ev_id = e.ev_id
     WHERE a.ev_txid IS DISTINCT FROM e.ev_txid
     LIMIT 1;
    IF FOUND THEN
      RAISE EXCEPTION 'partition %: event % was recorded before from another transaction; was its queue re-created? Consume it under a new partition name', i_partition, v_clash
        USING ERRCODE = '23505';
    END IF;
  END IF;
  INSERT INTO parley_internal.batches AS b (partition, batch_id, events, new_events, duplicate_events)
  VALUES (i_partition, i_batch_id, o_events, o_new_events, o_duplicates)
  ON CONFLICT (partition, batch_id) DO UPDATE
    SET deliveries = b.deliveries + 1,
        new_events = b.new_events + excluded.new_events,
        duplicate_events = b.duplicate_events + excluded.duplicate_events,
        last_recorded_at = now();
END
$$;

-- Reading. Ranges are half-open, [i_from, i_to); NULL means unbounded.

CREATE OR REPLACE FUNCTION parley_internal.registrations_per_day (i_from date DEFAULT NULL, i_to date DEFAULT NULL)
RETURNS TABLE (o_day date, o_registrations bigint)
LANGUAGE sql STABLE AS $$
  SELECT day, registrations FROM parley_internal.stat_registrations_per_day
   WHERE (i_from IS NULL OR day >= i_from) AND (i_to IS NULL OR day < i_to)
   ORDER BY day
$$;

CREATE OR REPLACE FUNCTION parley_internal.logins_per_hour (i_from timestamptz DEFAULT NULL, i_to timestamptz DEFAULT NULL)
RETURNS TABLE (o_hour timestamptz, o_logins bigint)
LANGUAGE sql STABLE AS $$
  SELECT hour, logins FROM parley_internal.stat_logins_per_hour
   WHERE (i_from IS NULL OR hour >= i_from) AND (i_to IS NULL OR hour < i_to)
   ORDER BY hour
$$;

CREATE OR REPLACE FUNCTION parley_internal.failed_logins_per_hour (i_from timestamptz DEFAULT NULL, i_to timestamptz DEFAULT NULL)
RETURNS TABLE (o_hour timestamptz, o_failures bigint)
LANGUAGE sql STABLE AS $$
  SELECT hour, failures FROM parley_internal.stat_failed_logins_per_hour
   WHERE (i_from IS NULL OR hour >= i_from) AND (i_to IS NULL OR hour < i_to)
   ORDER BY hour
$$;

CREATE OR REPLACE FUNCTION parley_internal.credentials_per_hour (i_from timestamptz DEFAULT NULL, i_to timestamptz DEFAULT NULL)
RETURNS TABLE (o_hour timestamptz, o_issued bigint, o_renewals bigint)
LANGUAGE sql STABLE AS $$
  SELECT hour, issued, renewals FROM parley_internal.stat_credentials_per_hour
   WHERE (i_from IS NULL OR hour >= i_from) AND (i_to IS NULL OR hour < i_to)
   ORDER BY hour
$$;

-- Events recorded, by source partition and type.
CREATE OR REPLACE FUNCTION parley_internal.events_by_partition ()
RETURNS TABLE (o_partition text, o_ev_type text, o_events bigint)
LANGUAGE sql STABLE AS $$
  SELECT partition, ev_type, events FROM parley_internal.stat_events ORDER BY partition, ev_type
$$;

-- Delivery bookkeeping: batches recorded, how often PgQ handed them out, and
-- how many events arrived again (recorded once, counted once).
CREATE OR REPLACE FUNCTION parley_internal.batch_summary (
  OUT o_batches bigint, OUT o_deliveries bigint, OUT o_replayed_batches bigint, OUT o_duplicate_events bigint)
LANGUAGE sql STABLE AS $$
  SELECT count(*), coalesce(sum(deliveries), 0), count(*) FILTER (WHERE deliveries > 1), coalesce(sum(duplicate_events), 0)
    FROM parley_internal.batches
$$;

-- The audit trail of one partition, in event order, a page at a time.
CREATE OR REPLACE FUNCTION parley_internal.audit_events (i_partition text, i_after_ev_id bigint, i_limit integer)
RETURNS TABLE (o_partition text, o_ev_id bigint, o_batch_id bigint, o_ev_type text, o_name_key text, o_at timestamptz,
               o_ev_time timestamptz, o_data jsonb, o_raw_data text, o_recorded_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT partition, ev_id, batch_id, ev_type, name_key, at, ev_time, data, raw_data, recorded_at
    FROM parley_internal.audit_events
   WHERE partition = i_partition AND ev_id > coalesce(i_after_ev_id, -1)
   ORDER BY ev_id
   LIMIT greatest(coalesce(i_limit, 1000), 0)
$$;

-- The audit trail of one user (any spelling of the name), newest first.
CREATE OR REPLACE FUNCTION parley_internal.audit_trail (i_name text, i_limit integer)
RETURNS TABLE (o_partition text, o_ev_id bigint, o_ev_type text, o_at timestamptz, o_data jsonb)
LANGUAGE sql STABLE AS $$
  SELECT partition, ev_id, ev_type, at, data
    FROM parley_internal.audit_events
   WHERE name_key = lower(i_name)
   ORDER BY at DESC, partition, ev_id DESC
   LIMIT greatest(coalesce(i_limit, 100), 0)
$$;
