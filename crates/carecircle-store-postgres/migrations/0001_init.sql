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

CREATE TABLE idx_string (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    value_norm TEXT COLLATE "C" NOT NULL, value_exact TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param, value_norm, value_exact)
);
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, value_norm);

CREATE TABLE idx_token (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param, system, code)
);
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);

CREATE TABLE idx_reference (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    target_type TEXT COLLATE "C" NOT NULL, target_id TEXT COLLATE "C" NOT NULL, url TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param, url, target_type, target_id)
);
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id, target_type);
CREATE INDEX idx_reference_target ON idx_reference (target_id, target_type);
CREATE INDEX idx_reference_url ON idx_reference (res_type, param, url);

CREATE TABLE idx_date (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
    PRIMARY KEY (resource_pk, param, start_ms, end_ms)
);
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms, end_ms);

CREATE TABLE idx_number (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (resource_pk, param, value)
);
CREATE INDEX idx_number_lookup ON idx_number (res_type, param, value);

CREATE TABLE idx_quantity (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL, system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param, value, system, code)
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (res_type, param, value);

CREATE TABLE idx_uri (
    resource_pk BIGINT NOT NULL, res_type TEXT COLLATE "C" NOT NULL, param TEXT COLLATE "C" NOT NULL,
    uri TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (resource_pk, param, uri)
);
CREATE INDEX idx_uri_lookup ON idx_uri (res_type, param, uri);
