-- What a partition needs for its events (Debian postgresql-15-pgq3): the pgq
-- extension, the queue parley.emit_event writes to (see
-- packages/db/migrations/0002_routing_and_events.sql), its ticker settings,
-- and the statistics consumer's registration, so that the queue keeps every
-- event from now on until that consumer has recorded it.
--
-- Safe to apply again. Needs a superuser (pgq is not a trusted extension).
-- The installer (installPartitionQueue in src/consumer.ts) runs it in one
-- transaction under an advisory lock and may then change the settings and
-- register another consumer name.
--
-- Ticks: a batch holds the events between two ticks, so events reach the
-- consumer only after the next tick. Ticks come from pgqd (src/pgqd.ts) or
-- from the consumer calling pgq.ticker (tick: true), never both. pgq.ticker
-- makes a tick when ticker_max_count events are waiting, or when the oldest
-- waiting event is ticker_max_lag old; with no events, ticks thin out up to one
-- per ticker_idle_period. The lag below is short, for tests and a snappy
-- audit trail; the idle period keeps an idle queue's tick table small.

-- pgq creates its roles (server-wide) when missing; two partitions of one
-- server installing at once would race on them, so make sure they exist first.
-- A concurrent creator makes ours wait, then fail harmlessly.
DO $$
DECLARE
  v_role text;
BEGIN
  FOREACH v_role IN ARRAY ARRAY['pgq_reader', 'pgq_writer', 'pgq_admin'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I', v_role);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
  IF NOT pg_has_role('pgq_admin', 'pgq_reader', 'MEMBER') OR NOT pg_has_role('pgq_admin', 'pgq_writer', 'MEMBER') THEN
    BEGIN
      GRANT pgq_reader, pgq_writer TO pgq_admin;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS pgq;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pgq.queue WHERE queue_name = 'parley_events') THEN
    PERFORM pgq.create_queue('parley_events');
  END IF;
END
$$;

SELECT pgq.set_queue_config('parley_events', 'ticker_max_lag', '100 milliseconds');
SELECT pgq.set_queue_config('parley_events', 'ticker_max_count', '500');
SELECT pgq.set_queue_config('parley_events', 'ticker_idle_period', '5 seconds');

-- The statistics consumer (EventConsumer's default consumerName).
SELECT pgq.register_consumer('parley_events', 'parley_stats');
