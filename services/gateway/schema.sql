CREATE TABLE IF NOT EXISTS orgs (
    org_id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    user_id text PRIMARY KEY,
    org_id text NOT NULL REFERENCES orgs (org_id),
    email text NOT NULL UNIQUE,
    role text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until timestamptz
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id text PRIMARY KEY,
    org_id text NOT NULL,
    user_id text NOT NULL,
    name text NOT NULL,
    prefix text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE TABLE IF NOT EXISTS sessions (
    token_hash text PRIMARY KEY,
    user_id text NOT NULL,
    org_id text NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS custom_integrations (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL,
    mcp_url text NOT NULL,
    auth jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, integration_id)
);

CREATE TABLE IF NOT EXISTS installed (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    name text NOT NULL,
    mcp_url text NOT NULL,
    auth_method text NOT NULL,
    status text NOT NULL,
    error text,
    install_event_id text NOT NULL,
    installed_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, integration_id)
);

CREATE TABLE IF NOT EXISTS tools (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    name text NOT NULL,
    title text,
    description text NOT NULL,
    input_schema jsonb NOT NULL,
    PRIMARY KEY (org_id, integration_id, name)
);

CREATE TABLE IF NOT EXISTS calls (
    call_id text PRIMARY KEY,
    org_id text NOT NULL,
    request_id text,
    coalesced boolean NOT NULL DEFAULT false,
    status text NOT NULL,
    outcome jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS calls_by_request ON calls (request_id) WHERE request_id IS NOT NULL;
-- Every call the gateway accepted, recorded before its call.requested is published (and projected from it):
-- an await of an id not here is a 404, and an idempotency key names one call per org. Until the bus confirms
-- the publish, `pending_event` keeps the very event to send again.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS integration_id text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS tool_name text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS args_hash text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS idempotency_key text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS published boolean NOT NULL DEFAULT true;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS pending_event text;
ALTER TABLE calls ADD COLUMN IF NOT EXISTS created_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS calls_by_idempotency_key ON calls (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS org_settings (
    org_id text PRIMARY KEY,
    approval_expiry_seconds integer NOT NULL
);

ALTER TABLE custom_integrations ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'mcp';
ALTER TABLE custom_integrations ADD COLUMN IF NOT EXISTS openapi jsonb;
ALTER TABLE custom_integrations ADD COLUMN IF NOT EXISTS timeout_seconds double precision;
ALTER TABLE installed ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'mcp';

-- OAuth authorization server for MCP clients. Clients, codes and tokens are operational state (secrets only as
-- hashes); grants are projected from oauth.grant_created / oauth.grant_revoked.
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id text PRIMARY KEY,
    client_name text NOT NULL,
    redirect_uris jsonb NOT NULL,
    grant_types jsonb NOT NULL,
    token_endpoint_auth_method text NOT NULL,
    secret_hash text,
    metadata jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS oauth_grants (
    grant_id text PRIMARY KEY,
    org_id text NOT NULL,
    user_id text NOT NULL,
    client_id text NOT NULL,
    client_name text NOT NULL,
    redirect_uri text NOT NULL,
    resource text NOT NULL,
    scope text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX IF NOT EXISTS oauth_grants_by_org ON oauth_grants (org_id, created_at DESC);

CREATE TABLE IF NOT EXISTS oauth_codes (
    code_hash text PRIMARY KEY,
    grant_id text NOT NULL,
    client_id text NOT NULL,
    redirect_uri text,
    code_challenge text NOT NULL,
    resource text NOT NULL,
    scope text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE TABLE IF NOT EXISTS oauth_tokens (
    token_hash text PRIMARY KEY,
    kind text NOT NULL,
    grant_id text NOT NULL,
    client_id text NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS oauth_tokens_by_grant ON oauth_tokens (grant_id);

CREATE TABLE IF NOT EXISTS oauth_keys (
    name text PRIMARY KEY,
    secret text NOT NULL
);

-- Sign-ins to upstream MCP servers in progress: the state is kept only as a hash.
CREATE TABLE IF NOT EXISTS upstream_oauth_flows (
    state_hash text PRIMARY KEY,
    flow_id text NOT NULL UNIQUE,
    org_id text NOT NULL,
    integration_id text NOT NULL,
    user_id text,
    actor jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    finished_at timestamptz,
    outcome text
);
CREATE INDEX IF NOT EXISTS upstream_oauth_flows_by_integration ON upstream_oauth_flows (org_id, integration_id);

-- Two-factor secrets, encrypted with the gateway's secret key; recovery codes only as hashes.
CREATE TABLE IF NOT EXISTS user_totp (
    user_id text PRIMARY KEY,
    pending_secret text,
    secret text,
    enabled boolean NOT NULL DEFAULT false,
    last_step bigint NOT NULL DEFAULT 0,
    failures integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    recovery_hashes text[] NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS invitations (
    invitation_id text PRIMARY KEY,
    org_id text NOT NULL,
    email text NOT NULL,
    role text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    invited_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS invitations_by_org ON invitations (org_id, created_at DESC);
