-- The record store: current versions, past versions, and one index table per search type.
CREATE TABLE resources (
    pk INTEGER PRIMARY KEY,
    res_type TEXT NOT NULL,
    res_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    custodian TEXT,
    body TEXT,
    UNIQUE (res_type, res_id)
);
CREATE INDEX resources_last_updated ON resources (last_updated);
CREATE INDEX resources_custodian ON resources (custodian, res_type);

CREATE TABLE resource_versions (
    res_type TEXT NOT NULL,
    res_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    custodian TEXT,
    body TEXT,
    PRIMARY KEY (res_type, res_id, version)
) WITHOUT ROWID;
CREATE INDEX resource_versions_last_updated ON resource_versions (last_updated);

-- Index rows name their parameter by `param_key`, the 64-bit FNV-1a hash of "Type:param"
-- (carecircle_store::sql::param_key), so the resource type is part of every key.
CREATE TABLE idx_string (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    value_norm TEXT NOT NULL, value_exact TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value_norm, value_exact)
) WITHOUT ROWID;
CREATE INDEX idx_string_lookup ON idx_string (param_key, value_norm);

CREATE TABLE idx_token (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, system, code)
) WITHOUT ROWID;
CREATE INDEX idx_token_lookup ON idx_token (param_key, code, system);

CREATE TABLE idx_reference (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    target_type TEXT NOT NULL, target_id TEXT NOT NULL, url TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, url, target_type, target_id)
) WITHOUT ROWID;
CREATE INDEX idx_reference_lookup ON idx_reference (param_key, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (param_key, url);

CREATE TABLE idx_date (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
    PRIMARY KEY (resource_pk, param_key, start_ms, end_ms)
) WITHOUT ROWID;
CREATE INDEX idx_date_lookup ON idx_date (param_key, start_ms, end_ms);

CREATE TABLE idx_number (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value)
) WITHOUT ROWID;
CREATE INDEX idx_number_lookup ON idx_number (param_key, value);

CREATE TABLE idx_quantity (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value, system, code)
) WITHOUT ROWID;
CREATE INDEX idx_quantity_lookup ON idx_quantity (param_key, value);

CREATE TABLE idx_uri (
    resource_pk INTEGER NOT NULL, param_key INTEGER NOT NULL,
    uri TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, uri)
) WITHOUT ROWID;
CREATE INDEX idx_uri_lookup ON idx_uri (param_key, uri);
