CREATE TABLE IF NOT EXISTS integrations (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    name text NOT NULL,
    mcp_url text NOT NULL,
    auth jsonb NOT NULL,
    auth_method text NOT NULL,
    sealed_credential text,
    installed boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, integration_id)
);

CREATE TABLE IF NOT EXISTS executors (
    executor_id text PRIMARY KEY,
    seen_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS claims (
    call_id text PRIMARY KEY,
    org_id text NOT NULL,
    claimed_by text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    outcome jsonb,
    finished_at timestamptz
);

ALTER TABLE integrations ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'mcp';
ALTER TABLE integrations ADD COLUMN IF NOT EXISTS openapi jsonb;
ALTER TABLE integrations ADD COLUMN IF NOT EXISTS document jsonb;
ALTER TABLE integrations ADD COLUMN IF NOT EXISTS timeout_seconds double precision;
ALTER TABLE integrations ADD COLUMN IF NOT EXISTS tools_hash text;

-- Signing in to upstream MCP servers with OAuth. Secrets (client secrets, PKCE verifiers, tokens) are sealed to
-- this executor's key; the rest says where tokens come from.
CREATE TABLE IF NOT EXISTS upstream_oauth_clients (
    issuer text NOT NULL,
    redirect_uri text NOT NULL,
    client_id text NOT NULL,
    sealed_secret text,
    auth_method text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, redirect_uri)
);

CREATE TABLE IF NOT EXISTS upstream_oauth_flows (
    flow_id text PRIMARY KEY,
    org_id text NOT NULL,
    integration_id text NOT NULL,
    sealed_verifier text NOT NULL,
    connection jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE TABLE IF NOT EXISTS upstream_tokens (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    status text NOT NULL,
    sealed_tokens text NOT NULL,
    connection jsonb NOT NULL,
    connected_at timestamptz NOT NULL,
    refreshed_at timestamptz,
    problem text,
    PRIMARY KEY (org_id, integration_id)
);

-- When the event stream this executor last worked on was created: a different one means NATS lost its store,
-- and the outcomes recorded here are published again so that no call stays open.
CREATE TABLE IF NOT EXISTS stream_epochs (
    stream text PRIMARY KEY,
    created text NOT NULL
);

-- The heartbeat sweep looks for claims without an outcome every 2 s: only those, not every call ever claimed.
CREATE INDEX IF NOT EXISTS claims_open ON claims (claimed_at) WHERE outcome IS NULL;
