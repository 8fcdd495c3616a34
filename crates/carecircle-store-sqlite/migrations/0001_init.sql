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

CREATE TABLE idx_string (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    value_norm TEXT NOT NULL, value_exact TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param, value_norm, value_exact)
) WITHOUT ROWID;
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, value_norm);

CREATE TABLE idx_token (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param, system, code)
) WITHOUT ROWID;
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);

CREATE TABLE idx_reference (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT NOT NULL, target_id TEXT NOT NULL, url TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param, url, target_type, target_id)
) WITHOUT ROWID;
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (res_type, param, url);

CREATE TABLE idx_date (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
    PRIMARY KEY (resource_pk, param, start_ms, end_ms)
) WITHOUT ROWID;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms, end_ms);

CREATE TABLE idx_number (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (resource_pk, param, value)
) WITHOUT ROWID;
CREATE INDEX idx_number_lookup ON idx_number (res_type, param, value);

CREATE TABLE idx_quantity (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param, value, system, code)
) WITHOUT ROWID;
CREATE INDEX idx_quantity_lookup ON idx_quantity (res_type, param, value);

CREATE TABLE idx_uri (
    resource_pk INTEGER NOT NULL, res_type TEXT NOT NULL, param TEXT NOT NULL,
    uri TEXT NOT NULL,
    PRIMARY KEY (resource_pk, param, uri)
) WITHOUT ROWID;
CREATE INDEX idx_uri_lookup ON idx_uri (res_type, param, uri);
