CREATE TABLE IF NOT EXISTS requests (
    request_id text PRIMARY KEY,
    org_id text NOT NULL,
    call_id text NOT NULL,
    integration_id text NOT NULL,
    tool_name text NOT NULL,
    args_hash text NOT NULL,
    spec jsonb NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired')),
    decision text,
    decided_by jsonb,
    decided_ip text,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    decided_at timestamptz,
    announced boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX IF NOT EXISTS one_pending_request_per_call
    ON requests (org_id, integration_id, tool_name, args_hash) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS requests_by_org ON requests (org_id, status, created_at DESC);
CREATE INDEX IF NOT EXISTS requests_unannounced ON requests (announced) WHERE NOT announced;
CREATE INDEX IF NOT EXISTS requests_expiring ON requests (expires_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS request_calls (
    call_id text PRIMARY KEY,
    request_id text NOT NULL REFERENCES requests (request_id),
    coalesced boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS org_settings (
    org_id text PRIMARY KEY,
    approval_expiry_seconds integer NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_recently_decided ON requests (org_id, decided_at DESC) WHERE status <> 'pending';
