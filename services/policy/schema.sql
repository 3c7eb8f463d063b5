CREATE TABLE IF NOT EXISTS tool_modes (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    tool_name text NOT NULL,
    mode text NOT NULL CHECK (mode IN ('allow', 'require_approval', 'deny')),
    source text NOT NULL,
    set_by text NOT NULL,
    set_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, integration_id, tool_name)
);

ALTER TABLE tool_modes ADD COLUMN IF NOT EXISTS pinned jsonb;
ALTER TABLE tool_modes ADD COLUMN IF NOT EXISTS pinned_fingerprint text;

CREATE TABLE IF NOT EXISTS tool_definitions (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    tool_name text NOT NULL,
    definition jsonb NOT NULL,
    fingerprint text NOT NULL,
    PRIMARY KEY (org_id, integration_id, tool_name)
);

CREATE TABLE IF NOT EXISTS tool_changes (
    org_id text NOT NULL,
    integration_id text NOT NULL,
    tool_name text NOT NULL,
    before jsonb NOT NULL,
    after jsonb NOT NULL,
    after_fingerprint text NOT NULL,
    mode_before text NOT NULL,
    mode_after text NOT NULL,
    detected_at timestamptz NOT NULL,
    event_id text NOT NULL,
    PRIMARY KEY (org_id, integration_id, tool_name)
);
