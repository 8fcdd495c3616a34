//! SQL shared by the SQLite and PostgreSQL backends: the index tables each entry goes to, and
//! the translation of a [`SearchQuery`] into one parameterised statement.
//!
//! Both schemas use the same table and column names (see each backend's `migrations/`); only
//! placeholders differ (`?1` against `$1`). Empty strings stand for absent token systems,
//! reference parts and quantity units so that every key column is `NOT NULL`.

use std::fmt::Write as _;

use carecircle_fhir::date::DateRange;
use carecircle_fhir::definitions::{definitions, SearchParamType};
use carecircle_fhir::search::{Condition, Filter, Prefix, SearchQuery, SortKey, StringMatch, TokenSystem, UriMatch};
use carecircle_fhir::text::prefix_upper_bound;
use carecircle_fhir::{IndexEntry, IndexValue};

/// Which SQL dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `?N` placeholders.
    Sqlite,
    /// PostgreSQL: `$N` placeholders.
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// TEXT.
    Text(String),
    /// BIGINT / INTEGER.
    Int(i64),
    /// DOUBLE PRECISION / REAL.
    Real(f64),
}

/// A statement and its bound values.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL text.
    pub sql: String,
    /// Values for its placeholders, in order.
    pub values: Vec<SqlValue>,
}

/// The columns every resource query selects, in this order.
pub const RESOURCE_COLUMNS: &str = "r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.custodian, r.body";

/// The index tables, for deleting a resource's entries.
pub const INDEX_TABLES: &[&str] =
    &["idx_string", "idx_token", "idx_reference", "idx_date", "idx_number", "idx_quantity", "idx_uri"];

/// The key of search parameter `param` of `resource_type` in the index tables: the 64-bit FNV-1a
/// hash of `Type:param`. One integer instead of two strings keeps index rows small and their
/// comparisons cheap; a test checks that no two R4 parameters share a key.
pub fn param_key(resource_type: &str, param: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for byte in resource_type.bytes().chain(std::iter::once(b':')).chain(param.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash as i64
}

/// The keys of `param` for a search across all types: one per type that defines it.
fn param_keys_all_types(param: &str) -> Vec<i64> {
    let defs = definitions();
    defs.resource_types().filter(|t| defs.search_param(t, param).is_some()).map(|t| param_key(t, param)).collect()
}

/// One row of an index table: its table, and its values after `resource_pk, param_key`.
pub fn index_row(entry: &IndexEntry) -> (&'static str, Vec<SqlValue>) {
    use SqlValue::{Int, Real, Text};
    match &entry.value {
        IndexValue::String { normalized, exact } => ("idx_string", vec![Text(normalized.clone()), Text(exact.clone())]),
        IndexValue::Token { system, code } => {
            ("idx_token", vec![Text(system.clone().unwrap_or_default()), Text(code.clone())])
        }
        IndexValue::Reference { target_type, target_id, url } => (
            "idx_reference",
            vec![
                Text(target_type.clone().unwrap_or_default()),
                Text(target_id.clone().unwrap_or_default()),
                Text(url.clone()),
            ],
        ),
        IndexValue::Date(range) => ("idx_date", vec![Int(range.start), Int(range.end)]),
        IndexValue::Number(value) => ("idx_number", vec![Real(*value)]),
        IndexValue::Quantity { value, system, code } => (
            "idx_quantity",
            vec![Real(*value), Text(system.clone().unwrap_or_default()), Text(code.clone().unwrap_or_default())],
        ),
        IndexValue::Uri(uri) => ("idx_uri", vec![Text(uri.clone())]),
    }
}

/// The value columns of an index table, after `resource_pk, param_key`.
pub fn index_columns(table: &str) -> &'static str {
    match table {
        "idx_string" => "value_norm, value_exact",
        "idx_token" => "system, code",
        "idx_reference" => "target_type, target_id, url",
        "idx_date" => "start_ms, end_ms",
        "idx_number" => "value",
        "idx_quantity" => "value, system, code",
        _ => "uri",
    }
}

fn table_for(kind: SearchParamType) -> &'static str {
    match kind {
        SearchParamType::String => "idx_string",
        SearchParamType::Token => "idx_token",
        SearchParamType::Reference => "idx_reference",
        SearchParamType::Date => "idx_date",
        SearchParamType::Number => "idx_number",
        SearchParamType::Quantity => "idx_quantity",
        _ => "idx_uri",
    }
}

/// Writes SQL with placeholders in the dialect's style.
pub struct SqlWriter {
    dialect: Dialect,
    sql: String,
    values: Vec<SqlValue>,
}

impl SqlWriter {
    /// An empty statement.
    pub fn new(dialect: Dialect) -> SqlWriter {
        SqlWriter { dialect, sql: String::new(), values: Vec::new() }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: SqlValue) -> &mut Self {
        self.values.push(value);
        let n = self.values.len();
        match self.dialect {
            Dialect::Sqlite => write!(self.sql, "?{n}"),
            Dialect::Postgres => write!(self.sql, "${n}"),
        }
        .ok();
        self
    }

    /// Appends a text placeholder.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bind(SqlValue::Text(value.to_string()))
    }

    /// Appends an integer placeholder.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.bind(SqlValue::Int(value))
    }

    /// Appends a real placeholder.
    pub fn real(&mut self, value: f64) -> &mut Self {
        self.bind(SqlValue::Real(value))
    }

    /// The finished statement.
    pub fn finish(self) -> Statement {
        Statement { sql: self.sql, values: self.values }
    }
}

/// What a search statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchShape {
    /// The page of resources ([`RESOURCE_COLUMNS`], then the number of all matches).
    Page,
    /// One row with the number of matches.
    Count,
}

/// The statement running `query` for a page of resources or for the count.
pub fn search_statement(dialect: Dialect, query: &SearchQuery, shape: SearchShape) -> Statement {
    search_statement_with_driver(dialect, query, shape, None)
}

/// The most matches an estimate counts before it stops: enough to tell a selective filter from
/// a broad one, cheap enough to run for every filter of every search.
pub const ESTIMATE_CAP: i64 = 64;

/// For a query with several index filters, one statement per such filter counting its matches up
/// to [`ESTIMATE_CAP`], keyed by the filter's position; empty when there is nothing to choose.
pub fn driver_estimates(dialect: Dialect, query: &SearchQuery) -> Vec<(usize, Statement)> {
    let driving: Vec<usize> = (0..query.filters.len()).filter(|&i| drives_by_index(&query.filters[i])).collect();
    if driving.len() < 2 {
        return Vec::new();
    }
    driving
        .into_iter()
        .map(|i| {
            let mut w = SqlWriter::new(dialect);
            w.push("SELECT COUNT(*) FROM (");
            write_index_subquery(&mut w, query.resource_type.as_deref(), &query.filters[i], Subquery::Select);
            w.push(" LIMIT ").int(ESTIMATE_CAP).push(") t");
            (i, w.finish())
        })
        .collect()
}

/// The filter to drive the search from: the one with the fewest estimated matches.
pub fn choose_driver(estimates: &[(usize, usize)]) -> Option<usize> {
    estimates.iter().min_by_key(|(_, n)| *n).map(|(i, _)| *i)
}

/// [`search_statement`] driven by filter `driver` (see [`driver_estimates`]): its matches are
/// listed from the lookup index, and every other index filter is checked per candidate through
/// the `(resource_pk, param_key, …)` primary key, so the cost follows the most selective filter.
/// Without a driver every filter is a lookup of its own.
pub fn search_statement_with_driver(
    dialect: Dialect,
    query: &SearchQuery,
    shape: SearchShape,
    driver: Option<usize>,
) -> Statement {
    let mut w = SqlWriter::new(dialect);
    match shape {
        // The page also carries the number of all matches (window computed before LIMIT), so
        // one query gives both; the count statement is only needed for a page past the end.
        SearchShape::Page => w
            .push("SELECT ")
            .push(RESOURCE_COLUMNS)
            .push(", COUNT(*) OVER () AS match_count FROM resources r WHERE r.deleted = 0"),
        SearchShape::Count => w.push("SELECT COUNT(*) FROM resources r WHERE r.deleted = 0"),
    };
    // Index keys embed the resource type, so when an index lookup can drive the query the type
    // test is redundant; leaving it out stops a planner without statistics from scanning every
    // resource of the type through the (res_type, res_id) index instead.
    if let Some(resource_type) = &query.resource_type {
        if !query.filters.iter().any(drives_by_index) {
            w.push(" AND r.res_type = ").text(resource_type);
        }
    }
    // The driver lists candidates; the other index filters test each candidate, so a common
    // family name combined with a rare birth date costs the size of the answer, not of the name.
    let resource_type = query.resource_type.as_deref();
    let driver = driver.filter(|&d| query.filters.get(d).is_some_and(drives_by_index));
    let indexed = query.filters.iter().any(drives_by_index);
    for (i, filter) in query.filters.iter().enumerate() {
        w.push(" AND ");
        if driver.is_some_and(|d| d != i) && drives_by_index(filter) {
            write_index_subquery(&mut w, resource_type, filter, Subquery::Exists);
        } else if indexed && dialect == Dialect::Sqlite && is_custodian_filter(filter) {
            // SQLite plans without statistics: offered the custodian index, it lists every
            // resource of the partner and tests the index filter on each (a search by identifier
            // with `_source` then costs the partner's whole record). Unary `+` keeps the
            // custodian test off that index, so the index filter drives.
            w.push("(");
            for (i, condition) in filter.any_of.iter().enumerate() {
                if i > 0 {
                    w.push(" OR ");
                }
                if let Condition::Custodian(custodian) = condition {
                    w.push("+r.custodian = ").text(custodian);
                }
            }
            w.push(")");
        } else {
            write_filter(&mut w, resource_type, filter);
        }
    }
    if shape == SearchShape::Page {
        w.push(" ORDER BY ");
        for key in &query.sort {
            write_sort_key(&mut w, query.resource_type.as_deref(), key);
            w.push(", ");
        }
        w.push("r.pk LIMIT ").int(query.count as i64).push(" OFFSET ").int(query.offset as i64);
    }
    w.finish()
}

/// Whether a filter is `_source` (positive, every value a custodian).
fn is_custodian_filter(filter: &Filter) -> bool {
    !filter.negated
        && !filter.any_of.is_empty()
        && filter.any_of.iter().all(|condition| matches!(condition, Condition::Custodian(_)))
}

/// Whether a filter is a positive lookup in an index table (every match has an index row of the
/// resource's type), which can drive the query.
fn drives_by_index(filter: &Filter) -> bool {
    !filter.negated
        && filter.any_of.iter().all(|condition| match condition {
            Condition::Missing(missing) => !missing,
            Condition::Id(_) | Condition::LastUpdated(..) | Condition::Custodian(_) => false,
            _ => true,
        })
}

fn write_sort_key(w: &mut SqlWriter, resource_type: Option<&str>, key: &SortKey) {
    let direction = if key.descending { " DESC" } else { " ASC" };
    let (aggregate, column, table) = match (key.param.as_str(), key.kind) {
        ("_id", _) => {
            w.push("r.res_id").push(direction);
            return;
        }
        ("_lastUpdated", _) => {
            w.push("r.last_updated").push(direction);
            return;
        }
        (_, SearchParamType::String) => ("MIN", "value_norm", "idx_string"),
        (_, SearchParamType::Token) => ("MIN", "code", "idx_token"),
        (_, SearchParamType::Date) if key.descending => ("MAX", "end_ms", "idx_date"),
        (_, SearchParamType::Date) => ("MIN", "start_ms", "idx_date"),
        (_, SearchParamType::Number) => ("MIN", "value", "idx_number"),
        (_, SearchParamType::Quantity) => ("MIN", "value", "idx_quantity"),
        _ => ("MIN", "uri", "idx_uri"),
    };
    let aggregate = if key.descending && aggregate == "MIN" { "MAX" } else { aggregate };
    // Resources without a value sort last in both directions.
    let mut inner = SqlWriter { dialect: w.dialect, sql: String::new(), values: std::mem::take(&mut w.values) };
    inner.push(&format!("(SELECT {aggregate}(s.{column}) FROM {table} s WHERE s.resource_pk = r.pk AND "));
    write_param_key(&mut inner, "s", resource_type, &key.param);
    inner.push(")");
    let sub = std::mem::take(&mut inner.sql);
    w.values = inner.values;
    w.push("CASE WHEN ").push(&sub).push(" IS NULL THEN 1 ELSE 0 END, ").push(&sub).push(direction);
    // The subquery text repeats its placeholder number, which both dialects allow.
}

fn write_filter(w: &mut SqlWriter, resource_type: Option<&str>, filter: &Filter) {
    if filter.negated {
        w.push("NOT ");
    }
    match filter.any_of.first() {
        Some(Condition::Id(_) | Condition::LastUpdated(..) | Condition::Custodian(_)) => {
            w.push("(");
            for (i, condition) in filter.any_of.iter().enumerate() {
                if i > 0 {
                    w.push(" OR ");
                }
                write_column_condition(w, condition);
            }
            w.push(")");
        }
        Some(Condition::Missing(true)) => {
            w.push("r.pk NOT IN (");
            write_index_subquery(w, resource_type, filter, Subquery::Select);
            w.push(")");
        }
        _ => {
            w.push("r.pk IN (");
            write_index_subquery(w, resource_type, filter, Subquery::Select);
            w.push(")");
        }
    }
}

/// A condition on a column of `resources` (`_id`, `_lastUpdated`, `_source`).
fn write_column_condition(w: &mut SqlWriter, condition: &Condition) {
    match condition {
        Condition::Id(id) => {
            w.push("r.res_id = ").text(id);
        }
        Condition::Custodian(custodian) => {
            w.push("r.custodian = ").text(custodian);
        }
        Condition::LastUpdated(prefix, range) => {
            write_date_comparison(w, "r.last_updated", "r.last_updated", *prefix, *range)
        }
        _ => {
            w.push("1 = 0");
        }
    }
}

/// How an index subquery is used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subquery {
    /// `SELECT x.resource_pk …`: list the matching resources (through the lookup index).
    Select,
    /// `EXISTS (SELECT 1 … x.resource_pk = r.pk …)`: test one candidate (through the primary key).
    Exists,
}

/// `SELECT x.resource_pk FROM idx_… x WHERE x.param_key = … AND (value ORs)`: the resources with
/// an index row of the filter's parameter matching any of its values (any value for `:missing`);
/// or, as [`Subquery::Exists`], whether resource `r` has one.
fn write_index_subquery(w: &mut SqlWriter, resource_type: Option<&str>, filter: &Filter, mode: Subquery) {
    match mode {
        Subquery::Select => w.push("SELECT x.resource_pk FROM ").push(table_for(filter.kind)).push(" x WHERE "),
        Subquery::Exists => {
            w.push("EXISTS (SELECT 1 FROM ").push(table_for(filter.kind)).push(" x WHERE x.resource_pk = r.pk AND ")
        }
    };
    write_param_key(w, "x", resource_type, &filter.param);
    if matches!(filter.any_of.first(), Some(Condition::Missing(_))) {
        if mode == Subquery::Exists {
            w.push(")");
        }
        return;
    }
    if filter.kind == SearchParamType::Reference {
        if let Some(ids) = reference_target_ids(&filter.any_of) {
            w.push(" AND ");
            write_in_list(w, "x.target_id", &ids);
        }
    }
    if let Some(codes) = token_codes(&filter.any_of) {
        // Several values (`identifier=a|1,b|2,…`): the ORed conditions below do not let the
        // lookup index `(param_key, code, system)` past `param_key`, so without this list every
        // index row of the parameter is read; with it, only the rows of the codes asked for.
        w.push(" AND ");
        write_in_list(w, "x.code", &codes);
    }
    w.push(" AND (");
    for (i, condition) in filter.any_of.iter().enumerate() {
        if i > 0 {
            w.push(" OR ");
        }
        w.push("(");
        write_value_condition(w, condition);
        w.push(")");
    }
    w.push(")");
    if mode == Subquery::Exists {
        w.push(")");
    }
}

/// The codes of a filter of several token values that all name a code (each once), else `None`.
fn token_codes(conditions: &[Condition]) -> Option<Vec<&str>> {
    if conditions.len() < 2 {
        return None;
    }
    let mut codes: Vec<&str> = Vec::with_capacity(conditions.len());
    for condition in conditions {
        match condition {
            Condition::Token { code: Some(code), .. } => {
                if !codes.contains(&code.as_str()) {
                    codes.push(code);
                }
            }
            _ => return None,
        }
    }
    Some(codes)
}

/// The predicate on an index row `x` for one value of a parameter.
fn write_value_condition(w: &mut SqlWriter, condition: &Condition) {
    match condition {
        Condition::String(matching) => match matching {
            StringMatch::Prefix(text) => write_prefix(w, "x.value_norm", text),
            StringMatch::Exact(text) => {
                let normalized = carecircle_fhir::text::normalize_for_search(text);
                write_prefix(w, "x.value_norm", &normalized);
                w.push(" AND x.value_exact = ").text(text);
            }
            StringMatch::Contains(text) => {
                w.push("x.value_norm LIKE ").text(&format!("%{}%", escape_like(text))).push(" ESCAPE '\\'");
            }
        },
        Condition::Token { system, code } => {
            w.push("1 = 1");
            if let Some(code) = code {
                w.push(" AND x.code = ").text(code);
            }
            match system {
                TokenSystem::Any => {}
                TokenSystem::None => {
                    w.push(" AND x.system = ''");
                }
                TokenSystem::Is(system) => {
                    w.push(" AND x.system = ").text(system);
                }
            }
        }
        Condition::Reference { target_type, target_id, url } => {
            let mut wrote = false;
            if let Some(id) = target_id {
                w.push("(x.target_id = ").text(id);
                if let Some(t) = target_type {
                    w.push(" AND x.target_type = ").text(t);
                }
                w.push(")");
                wrote = true;
            }
            if let Some(url) = url {
                if wrote {
                    w.push(" OR ");
                }
                w.push("x.url = ").text(url);
                wrote = true;
            }
            if !wrote {
                w.push("1 = 0");
            }
        }
        Condition::Date(prefix, range) => write_date_comparison(w, "x.start_ms", "x.end_ms", *prefix, *range),
        Condition::Number(prefix, low, high) => write_number_comparison(w, "x.value", *prefix, *low, *high),
        Condition::Quantity { prefix, low, high, system, code } => {
            write_number_comparison(w, "x.value", *prefix, *low, *high);
            if let Some(system) = system {
                w.push(" AND x.system = ").text(system);
            }
            if let Some(code) = code {
                w.push(" AND x.code = ").text(code);
            }
        }
        Condition::Uri(mode, uri) => match mode {
            UriMatch::Exact => {
                w.push("x.uri = ").text(uri);
            }
            UriMatch::Below => write_prefix(w, "x.uri", uri),
            UriMatch::Above => {
                // Every ancestor of the uri at a '/' boundary, and the uri itself.
                w.push("x.uri IN (");
                let mut ancestors: Vec<&str> = uri
                    .match_indices('/')
                    .map(|(i, _)| &uri[..i])
                    .filter(|a| !a.is_empty() && !a.ends_with(':') && !a.ends_with('/'))
                    .collect();
                ancestors.push(uri);
                for (i, ancestor) in ancestors.iter().enumerate() {
                    if i > 0 {
                        w.push(", ");
                    }
                    w.text(ancestor);
                }
                w.push(")");
            }
        },
        Condition::Id(_) | Condition::LastUpdated(..) | Condition::Custodian(_) | Condition::Missing(_) => {
            w.push("1 = 0");
        }
    }
}

/// The values `target_id` can take in the index rows matching any of `conditions` (reference
/// conditions), so that the reference lookup index `(param_key, target_id, …)` can seek them
/// instead of scanning every row of the parameter; `None` when some condition is not a
/// reference. A condition on an id matches rows with that id. A row's `target_id` is taken from
/// its own url (the id of a trailing `Type/id`, optionally followed by `/_history/n`), or is
/// `''`, so a row whose url is `url` has `''` or one of the segments of `url` between `/`, `?`
/// and `#`: listing them all is a superset that costs a few seeks and needs no copy of the
/// parsing rule.
fn reference_target_ids(conditions: &[Condition]) -> Option<Vec<&str>> {
    let mut ids: Vec<&str> = Vec::new();
    for condition in conditions {
        let Condition::Reference { target_id, url, .. } = condition else { return None };
        ids.extend(target_id.as_deref());
        if let Some(url) = url {
            ids.push("");
            ids.extend(url.split(['/', '?', '#']));
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Some(ids)
}

/// The keys of every reference parameter of `source_type` (`*`: of every type), so that a
/// lookup by target alone can seek the `(param_key, target_id, …)` index once per key.
fn reference_param_keys(source_type: &str) -> Vec<i64> {
    let defs = definitions();
    let types: Vec<&str> = if source_type == "*" { defs.resource_types().collect() } else { vec![source_type] };
    let mut keys = Vec::new();
    for resource_type in types {
        for param in defs.search_params(resource_type) {
            if param.kind == SearchParamType::Reference {
                keys.push(param_key(resource_type, &param.code));
            }
        }
    }
    keys
}

/// `alias.param_key = key`, or `IN (keys)` for a search across all types.
fn write_param_key(w: &mut SqlWriter, alias: &str, resource_type: Option<&str>, param: &str) {
    w.push(alias).push(".param_key");
    match resource_type {
        Some(t) => {
            w.push(" = ").int(param_key(t, param));
        }
        None => {
            let keys = param_keys_all_types(param);
            if keys.is_empty() {
                w.push(" IS NULL");
                return;
            }
            w.push(" IN (");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                w.int(*key);
            }
            w.push(")");
        }
    }
}

fn write_prefix(w: &mut SqlWriter, column: &str, prefix: &str) {
    w.push(column).push(" >= ").text(prefix);
    if let Some(upper) = prefix_upper_bound(prefix) {
        w.push(" AND ").push(column).push(" < ").text(&upper);
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Date comparison between a stored range `[start, end]` and the parameter's range (R4
/// §3.1.1.5.7 semantics, both ranges closed). Where the semantics imply a bound on `start`
/// (`start <= end` always holds) it is written out too, so that an index on `start` is scanned
/// over a bounded range rather than to its end.
fn write_date_comparison(w: &mut SqlWriter, start: &str, end: &str, prefix: Prefix, range: DateRange) {
    let (ps, pe) = (range.start, range.end);
    match prefix {
        Prefix::Eq => {
            w.push("(").push(start).push(" >= ").int(ps).push(" AND ").push(start).push(" <= ").int(pe);
            w.push(" AND ").push(end).push(" <= ").int(pe).push(")");
        }
        Prefix::Ne => {
            w.push("(").push(start).push(" < ").int(ps).push(" OR ").push(end).push(" > ").int(pe).push(")");
        }
        Prefix::Gt => {
            w.push(end).push(" > ").int(pe);
        }
        Prefix::Lt => {
            w.push(start).push(" < ").int(ps);
        }
        Prefix::Ge => {
            w.push("(").push(end).push(" > ").int(pe).push(" OR (").push(start).push(" >= ").int(ps);
            w.push(" AND ").push(end).push(" <= ").int(pe).push("))");
        }
        Prefix::Le => {
            w.push("(").push(start).push(" <= ").int(pe).push(" AND (").push(start).push(" < ").int(ps);
            w.push(" OR ").push(end).push(" <= ").int(pe).push("))");
        }
        Prefix::Sa => {
            w.push(start).push(" > ").int(pe);
        }
        Prefix::Eb => {
            w.push("(").push(start).push(" < ").int(ps).push(" AND ").push(end).push(" < ").int(ps).push(")");
        }
        Prefix::Ap => {
            w.push("(").push(start).push(" <= ").int(pe).push(" AND ").push(end).push(" >= ").int(ps).push(")");
        }
    }
}

/// Number comparison: `eq`/`ne` use the value's implied precision `[low, high)`; the ordering
/// prefixes compare with the written value; `ap` allows 10%.
fn write_number_comparison(w: &mut SqlWriter, column: &str, prefix: Prefix, low: f64, high: f64) {
    let value = (low + high) / 2.0;
    match prefix {
        Prefix::Eq => {
            w.push("(").push(column).push(" >= ").real(low).push(" AND ").push(column).push(" < ").real(high).push(")");
        }
        Prefix::Ne => {
            w.push("(").push(column).push(" < ").real(low).push(" OR ").push(column).push(" >= ").real(high).push(")");
        }
        Prefix::Gt | Prefix::Sa => {
            w.push(column).push(" > ").real(value);
        }
        Prefix::Lt | Prefix::Eb => {
            w.push(column).push(" < ").real(value);
        }
        Prefix::Ge => {
            w.push(column).push(" >= ").real(value);
        }
        Prefix::Le => {
            w.push(column).push(" <= ").real(value);
        }
        Prefix::Ap => {
            let margin = (value * 0.1).abs().max(high - low);
            w.push("(")
                .push(column)
                .push(" >= ")
                .real(value - margin)
                .push(" AND ")
                .push(column)
                .push(" <= ")
                .real(value + margin)
                .push(")");
        }
    }
}

/// The parameter keys that link resources into the Patient compartment, from the R4
/// CompartmentDefinition.
pub fn compartment_link_keys() -> Vec<i64> {
    let defs = definitions();
    let mut keys = Vec::new();
    for resource_type in defs.resource_types() {
        if let Some(params) = defs.patient_compartment_params(resource_type) {
            for param in params {
                keys.push(param_key(resource_type, param));
            }
        }
    }
    keys
}

/// The statements paging through the Patient compartment of `patient_id` (the patient, then
/// linked resources by insertion order) and counting it.
pub fn compartment_statements(
    dialect: Dialect,
    patient_id: &str,
    count: usize,
    offset: usize,
) -> (Statement, Statement) {
    let build = |shape: SearchShape| {
        let mut w = SqlWriter::new(dialect);
        match shape {
            SearchShape::Page => w.push("SELECT ").push(RESOURCE_COLUMNS),
            SearchShape::Count => w.push("SELECT COUNT(*)"),
        };
        w.push(" FROM resources r WHERE r.deleted = 0 AND ((r.res_type = 'Patient' AND r.res_id = ").text(patient_id);
        w.push(") OR r.pk IN (SELECT x.resource_pk FROM idx_reference x WHERE x.target_id = ").text(patient_id);
        w.push(" AND x.target_type = 'Patient' AND x.param_key IN (");
        for (i, key) in compartment_link_keys().iter().enumerate() {
            if i > 0 {
                w.push(", ");
            }
            w.int(*key);
        }
        w.push(")))");
        if shape == SearchShape::Page {
            w.push(" ORDER BY CASE WHEN r.res_type = 'Patient' AND r.res_id = ").text(patient_id);
            w.push(" THEN 0 ELSE 1 END, r.pk LIMIT ").int(count as i64).push(" OFFSET ").int(offset as i64);
        }
        w.finish()
    };
    (build(SearchShape::Page), build(SearchShape::Count))
}

/// The statement finding `(target_type, target_id)` pairs referenced by `sources` (of
/// `source_type`) through `param` (`*` for any) and optionally only to `target_type`.
pub fn include_targets_statement(
    dialect: Dialect,
    sources: &[(String, String)],
    source_type: &str,
    param: &str,
    target_type: Option<&str>,
) -> Statement {
    let mut w = SqlWriter::new(dialect);
    // The sources' rows are listed first, so that their index rows are read through the
    // `(resource_pk, …)` primary key rather than by scanning the parameter's lookup range.
    w.push("SELECT DISTINCT x.target_type, x.target_id FROM idx_reference x WHERE x.resource_pk IN (SELECT r.pk FROM resources r WHERE ");
    write_key_list(&mut w, "r.res_type", "r.res_id", sources);
    w.push(") AND x.target_id <> '' AND x.target_type <> ''");
    if param != "*" && source_type != "*" {
        w.push(" AND x.param_key = ").int(param_key(source_type, param));
    }
    if let Some(t) = target_type {
        w.push(" AND x.target_type = ").text(t);
    }
    w.finish()
}

/// The `(type, id)` keys of `resources`.
pub fn keys_of(resources: &[crate::StoredResource]) -> Vec<(String, String)> {
    resources.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect()
}

/// The keys of the page's resources an `_include` starts from (those of its source type).
pub fn include_sources(
    resources: &[crate::StoredResource],
    include: &carecircle_fhir::search::Include,
) -> Vec<(String, String)> {
    resources
        .iter()
        .filter(|r| include.source_type == "*" || r.resource_type == include.source_type)
        .map(|r| (r.resource_type.clone(), r.id.clone()))
        .collect()
}

/// The statement reading the current, not deleted versions of `keys`.
pub fn read_many_statement(dialect: Dialect, keys: &[(String, String)]) -> Statement {
    let mut w = SqlWriter::new(dialect);
    w.push("SELECT ").push(RESOURCE_COLUMNS).push(" FROM resources r WHERE r.deleted = 0 AND (");
    write_key_list(&mut w, "r.res_type", "r.res_id", keys);
    w.push(") ORDER BY r.pk");
    w.finish()
}

/// The statement finding resources of `source_type` that reference any of `targets` through
/// `param` (`*` for any).
pub fn revinclude_statement(
    dialect: Dialect,
    targets: &[(String, String)],
    source_type: &str,
    param: &str,
) -> Statement {
    let mut w = SqlWriter::new(dialect);
    // No test of `r.res_type`: the parameter keys name the source type already, and with it a
    // planner without statistics scans every resource of the type instead of the index.
    w.push("SELECT ").push(RESOURCE_COLUMNS).push(" FROM resources r WHERE r.deleted = 0");
    // Both leading columns of the reference lookup index are listed: the parameter keys and the
    // targets' ids; the types are checked per target.
    let ids: Vec<&str> = targets.iter().map(|(_, id)| id.as_str()).collect();
    w.push(" AND r.pk IN (SELECT x.resource_pk FROM idx_reference x WHERE ");
    write_in_list(&mut w, "x.target_id", &ids);
    w.push(" AND (");
    write_key_list(&mut w, "x.target_type", "x.target_id", targets);
    w.push(")");
    if param != "*" && source_type != "*" {
        w.push(" AND x.param_key = ").int(param_key(source_type, param));
    } else {
        // The reference index leads with the parameter key: name every possible one.
        let keys = reference_param_keys(source_type);
        if keys.is_empty() {
            w.push(" AND 1 = 0");
        } else {
            w.push(" AND x.param_key IN (");
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    w.push(", ");
                }
                w.int(*key);
            }
            w.push(")");
        }
    }
    w.push(") ORDER BY r.pk");
    w.finish()
}

/// `(type_column = T AND id_column IN (…)) OR …`, one group per type: the shape both SQLite and
/// PostgreSQL turn into index seeks on `(type, id)` (a list of `(type = … AND id = …)` pairs of
/// one type made SQLite scan the whole type). `1 = 0` for no keys.
fn write_key_list(w: &mut SqlWriter, type_column: &str, id_column: &str, keys: &[(String, String)]) {
    let mut by_type: Vec<(&str, Vec<&str>)> = Vec::new();
    for (resource_type, id) in keys {
        match by_type.iter_mut().find(|(t, _)| t == resource_type) {
            Some((_, ids)) => ids.push(id),
            None => by_type.push((resource_type, vec![id])),
        }
    }
    if by_type.is_empty() {
        w.push("1 = 0");
    }
    for (i, (resource_type, ids)) in by_type.iter().enumerate() {
        if i > 0 {
            w.push(" OR ");
        }
        w.push("(").push(type_column).push(" = ").text(resource_type).push(" AND ");
        write_in_list(w, id_column, ids);
        w.push(")");
    }
}

/// `column IN (values…)`, or `1 = 0` for no values.
fn write_in_list(w: &mut SqlWriter, column: &str, values: &[&str]) {
    if values.is_empty() {
        w.push("1 = 0");
        return;
    }
    w.push(column).push(" IN (");
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            w.push(", ");
        }
        w.text(value);
    }
    w.push(")");
}

/// The statements paging through history (newest first) and counting it.
pub fn history_statements(dialect: Dialect, query: &crate::HistoryQuery) -> (Statement, Statement) {
    let build = |shape: SearchShape| {
        let mut w = SqlWriter::new(dialect);
        let mut conditions = SqlWriter { dialect, sql: String::new(), values: Vec::new() };
        conditions.push("1 = 1");
        if let Some(t) = &query.resource_type {
            conditions.push(" AND res_type = ").text(t);
        }
        if let Some(id) = &query.id {
            conditions.push(" AND res_id = ").text(id);
        }
        if let Some(since) = query.since {
            conditions.push(" AND last_updated >= ").int(since);
        }
        // Both halves reuse the same placeholders, so the values are bound once.
        let condition_sql = conditions.sql.clone();
        w.values = conditions.values;
        let union = format!(
            "SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resources WHERE {condition_sql} \
             UNION ALL SELECT res_type, res_id, version, last_updated, deleted, custodian, body FROM resource_versions WHERE {condition_sql}"
        );
        match shape {
            SearchShape::Page => {
                w.push("SELECT r.res_type, r.res_id, r.version, r.last_updated, r.deleted, r.custodian, r.body FROM (")
                    .push(&union)
                    .push(") r ORDER BY r.last_updated DESC, r.res_type, r.res_id, r.version DESC LIMIT ")
                    .int(query.count as i64)
                    .push(" OFFSET ")
                    .int(query.offset as i64);
            }
            SearchShape::Count => {
                w.push("SELECT COUNT(*) FROM (").push(&union).push(") r");
            }
        }
        w.finish()
    };
    (build(SearchShape::Page), build(SearchShape::Count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use carecircle_fhir::search::{parse_search, Handling};

    fn statement(dialect: Dialect, pairs: &[(&str, &str)]) -> Statement {
        let params: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let query = parse_search(Some("Patient"), &params, Handling::Strict).unwrap();
        search_statement(dialect, &query, SearchShape::Page)
    }

    #[test]
    fn placeholders_follow_the_dialect() {
        let sqlite = statement(Dialect::Sqlite, &[("family", "smith")]);
        let postgres = statement(Dialect::Postgres, &[("family", "smith")]);
        assert!(sqlite.sql.contains("?1") && !sqlite.sql.contains("$1"));
        assert!(postgres.sql.contains("$1") && !postgres.sql.contains("?1"));
        assert_eq!(sqlite.values, postgres.values);
    }

    #[test]
    fn string_prefix_becomes_an_index_range() {
        let s = statement(Dialect::Sqlite, &[("family", "Smi")]);
        assert!(s.sql.contains("x.value_norm >= ") && s.sql.contains("x.value_norm < "));
        assert!(s.values.contains(&SqlValue::Text("smi".into())) && s.values.contains(&SqlValue::Text("smj".into())));
    }

    #[test]
    fn every_r4_parameter_has_its_own_key() {
        let defs = definitions();
        let mut seen = std::collections::HashMap::new();
        for resource_type in defs.resource_types() {
            for param in defs.search_params(resource_type) {
                let key = param_key(resource_type, &param.code);
                if let Some(other) = seen.insert(key, format!("{resource_type}:{}", param.code)) {
                    panic!("{other} and {resource_type}:{} share key {key}", param.code);
                }
            }
        }
        assert!(seen.len() > 3000);
    }

    #[test]
    fn several_token_values_name_their_codes_for_the_lookup_index() {
        let s = statement(Dialect::Sqlite, &[("identifier", "urn:a|1,urn:b|2,urn:c|1")]);
        assert!(s.sql.contains("x.code IN (?2, ?3)"), "{}", s.sql);
        assert_eq!(&s.values[1..3], &[SqlValue::Text("1".into()), SqlValue::Text("2".into())]);
        // One value needs no list (its own condition uses the index); a value without a code
        // (`urn:a|`) matches any code, so no list can be given.
        assert!(!statement(Dialect::Sqlite, &[("identifier", "urn:a|1")]).sql.contains("x.code IN"));
        assert!(!statement(Dialect::Sqlite, &[("identifier", "urn:a|1,urn:b|")]).sql.contains("x.code IN"));
    }

    #[test]
    fn sqlite_keeps_source_off_the_custodian_index_when_an_index_filter_can_drive() {
        let with_index = statement(Dialect::Sqlite, &[("identifier", "urn:a|1"), ("_source", "Organization/o")]);
        assert!(with_index.sql.contains("(+r.custodian = ?"), "{}", with_index.sql);
        let alone = statement(Dialect::Sqlite, &[("_source", "Organization/o")]);
        assert!(alone.sql.contains("r.custodian = ?") && !alone.sql.contains("+r.custodian"), "{}", alone.sql);
        let postgres = statement(Dialect::Postgres, &[("identifier", "urn:a|1"), ("_source", "Organization/o")]);
        assert!(!postgres.sql.contains("+r.custodian"), "{}", postgres.sql);
    }

    #[test]
    fn sort_placeholders_are_counted_once_per_value() {
        let s = statement(Dialect::Postgres, &[("family", "smith"), ("_sort", "-birthdate")]);
        let highest = s.values.len();
        assert!(s.sql.contains(&format!("${highest}")));
        assert!(!s.sql.contains(&format!("${}", highest + 1)));
    }
}
