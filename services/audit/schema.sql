CREATE TABLE IF NOT EXISTS log (
    seq bigserial PRIMARY KEY,
    org_id text NOT NULL,
    org_seq bigint NOT NULL,
    event_id text NOT NULL UNIQUE,
    type text NOT NULL,
    call_id text,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    entry jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    UNIQUE (org_id, org_seq)
);
CREATE INDEX IF NOT EXISTS log_by_call ON log (call_id) WHERE call_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS chain_heads (
    org_id text PRIMARY KEY,
    org_seq bigint NOT NULL,
    hash text NOT NULL
);

CREATE TABLE IF NOT EXISTS calls (
    call_id text PRIMARY KEY,
    org_id text NOT NULL,
    status text NOT NULL,
    integration_id text,
    tool_name text,
    actor_id text,
    requested_at timestamptz,
    finished_at timestamptz,
    summary jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_org ON calls (org_id, requested_at DESC);

CREATE OR REPLACE FUNCTION refuse_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'log_append_only'
                   AND tgrelid = to_regclass(current_schema() || '.log')) THEN
        CREATE TRIGGER log_append_only BEFORE UPDATE OR DELETE ON log
            FOR EACH ROW EXECUTE FUNCTION refuse_log_change();
        CREATE TRIGGER log_no_truncate BEFORE TRUNCATE ON log
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_log_change();
    END IF;
END $$;
