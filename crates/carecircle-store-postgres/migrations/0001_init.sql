-- The record store: current versions, past versions, and one index table per search type.
-- Table and column names match the SQLite backend so that the shared SQL runs on both. Text
-- columns use the "C" collation so that comparisons and sorting are bytewise, as in SQLite
-- (string prefix searches rely on it); `deleted` is an integer because the shared SQL writes
-- `r.deleted = 0`.
CREATE TABLE resources (
    pk BIGSERIAL PRIMARY KEY,
    res_type TEXT COLLATE "C" NOT NULL,
    res_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted SMALLINT NOT NULL DEFAULT 0,
    custodian TEXT COLLATE "C",
    body TEXT,
    CONSTRAINT resources_type_id UNIQUE (res_type, res_id)
);
CREATE INDEX resources_last_updated ON resources (last_updated);
CREATE INDEX resources_custodian ON resources (custodian, res_type);

CREATE TABLE resource_versions (
    res_type TEXT COLLATE "C" NOT NULL,
    res_id TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted SMALLINT NOT NULL,
    custodian TEXT COLLATE "C",
    body TEXT,
    PRIMARY KEY (res_type, res_id, version)
);
CREATE INDEX resource_versions_last_updated ON resource_versions (last_updated);

-- Index rows name their parameter by `param_key`, the 64-bit FNV-1a hash of "Type:param"
-- (carecircle_store::sql::param_key), so the resource type is part of every key.
CREATE TABLE idx_string (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    value_norm TEXT COLLATE "C" NOT NULL, value_exact TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value_norm, value_exact)
);
CREATE INDEX idx_string_lookup ON idx_string (param_key, value_norm);

CREATE TABLE idx_token (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param_key, system, code)
);
CREATE INDEX idx_token_lookup ON idx_token (param_key, code, system);

CREATE TABLE idx_reference (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    target_type TEXT COLLATE "C" NOT NULL, target_id TEXT COLLATE "C" NOT NULL, url TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param_key, url, target_type, target_id)
);
CREATE INDEX idx_reference_lookup ON idx_reference (param_key, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (param_key, url);

CREATE TABLE idx_date (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
    PRIMARY KEY (resource_pk, param_key, start_ms, end_ms)
);
CREATE INDEX idx_date_lookup ON idx_date (param_key, start_ms, end_ms);

CREATE TABLE idx_number (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value)
);
CREATE INDEX idx_number_lookup ON idx_number (param_key, value);

CREATE TABLE idx_quantity (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL, system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param_key, value, system, code)
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (param_key, value);

CREATE TABLE idx_uri (
    resource_pk BIGINT NOT NULL, param_key BIGINT NOT NULL,
    uri TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param_key, uri)
);
CREATE INDEX idx_uri_lookup ON idx_uri (param_key, uri);
