//! Partner lists: a TOML mapping file says which CSV column holds which field, and
//! [`read_records`] turns a CSV into [`SourceRecord`]s with row-numbered errors and warnings.
//!
//! ```toml
//! source = "gp-north"            # optional; the CLI falls back to the file stem
//! local_id = "patient_id"
//! given = "forename"
//! family = "surname"
//! birth_date = "dob"
//! birth_date_format = "%d/%m/%Y"
//! national_id = "nhs_number"
//! national_id_verified = true    # or a column name holding yes/no per row
//! ```

use std::collections::HashSet;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::normalise::parse_birth_date;
use crate::record::{Sex, SourceRecord};

/// Whether a source's national identifiers are verified: for every row, or per row from a column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Verified {
    /// The same answer for every row (e.g. a GP list traced against the national register).
    Always(bool),
    /// A column holding yes/no, true/false, y/n or 1/0.
    Column(String),
}

/// How one partner's CSV maps onto [`SourceRecord`]: each key names a column; any may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The partner's name for its records (the CLI uses the file stem when absent).
    pub source: Option<String>,
    /// Column of the partner's record identifier (the row number when absent).
    pub local_id: Option<String>,
    /// Column of given names.
    pub given: Option<String>,
    /// Column of the family name.
    pub family: Option<String>,
    /// Column of the date of birth.
    pub birth_date: Option<String>,
    /// strftime-like format of the date of birth (default `%Y-%m-%d`).
    pub birth_date_format: Option<String>,
    /// Column of recorded sex.
    pub sex: Option<String>,
    /// Column of the house number or name.
    pub house_number: Option<String>,
    /// Column of the street address.
    pub address: Option<String>,
    /// Column of the town or city.
    pub city: Option<String>,
    /// Column of the postcode.
    pub postcode: Option<String>,
    /// Column of the county, state or region.
    pub region: Option<String>,
    /// Column of the telephone number.
    pub phone: Option<String>,
    /// Column of the national identifier (NHS number).
    pub national_id: Option<String>,
    /// Whether the national identifiers are verified (default: not verified).
    pub national_id_verified: Option<Verified>,
    /// Column naming the partner's key worker.
    pub key_worker: Option<String>,
    /// Column with the key worker's contact details.
    pub key_worker_contact: Option<String>,
    /// Column naming the service the person receives (read by list uploads, not compared).
    pub service: Option<String>,
    /// Field delimiter (default `,`).
    pub delimiter: Option<char>,
}

/// Why a mapping file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The TOML is malformed or has unknown keys.
    #[error("invalid mapping: {0}")]
    Toml(#[from] toml::de::Error),
    /// The delimiter is not a single ASCII character.
    #[error("the delimiter must be one ASCII character, not {0:?}")]
    Delimiter(char),
}

impl Mapping {
    /// Parses a mapping file's text.
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        let mapping: Mapping = toml::from_str(text)?;
        if let Some(delimiter) = mapping.delimiter {
            if !delimiter.is_ascii() {
                return Err(MappingError::Delimiter(delimiter));
            }
        }
        Ok(mapping)
    }
}

/// Why a CSV could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The CSV itself is malformed (or unreadable) at this row.
    #[error("row {row}: {source}")]
    Csv {
        /// 1-based line number in the file (the header is line 1).
        row: u64,
        /// The parser's error.
        source: csv::Error,
    },
    /// The header lacks a column the mapping names.
    #[error("the CSV has no column {column:?} (mapped as `{key}`)")]
    MissingColumn {
        /// The mapping key.
        key: &'static str,
        /// The column the mapping names.
        column: String,
    },
    /// Two rows carry the same local identifier.
    #[error("row {row}: local id {local_id:?} already appeared in this list")]
    DuplicateLocalId {
        /// 1-based line number of the second occurrence.
        row: u64,
        /// The repeated identifier.
        local_id: String,
    },
    /// A row has no local identifier.
    #[error("row {row}: the local id column is empty")]
    EmptyLocalId {
        /// 1-based line number.
        row: u64,
    },
    /// The mapping itself is unusable.
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// A value that was read but could not be used; the rest of the row was kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowIssue {
    /// 1-based line number in the file.
    pub row: u64,
    /// The mapping key of the field.
    pub field: &'static str,
    /// What was wrong.
    pub message: String,
}

/// The records of one list and the values that had to be dropped.
#[derive(Clone, Debug, Default)]
pub struct RecordSet {
    /// One record per data row, in file order.
    pub records: Vec<SourceRecord>,
    /// Unusable values (unparseable dates, unknown sex codes), by row.
    pub issues: Vec<RowIssue>,
}

/// Reads a partner's CSV (with a header row) into records using `mapping`. The source of every
/// record is `mapping.source`, or `default_source` when the mapping has none. Structural problems
/// (bad CSV, missing columns, empty or repeated ids) are errors; unusable values become issues.
pub fn read_records(mapping: &Mapping, default_source: &str, reader: impl Read) -> Result<RecordSet, ReadError> {
    let delimiter = mapping.delimiter.unwrap_or(',');
    if !delimiter.is_ascii() {
        return Err(MappingError::Delimiter(delimiter).into());
    }
    let mut csv_reader =
        csv::ReaderBuilder::new().delimiter(delimiter as u8).trim(csv::Trim::All).flexible(false).from_reader(reader);
    let headers = csv_reader.headers().map_err(|source| ReadError::Csv { row: 1, source })?.clone();
    let column = |key: &'static str, name: &Option<String>| -> Result<Option<usize>, ReadError> {
        match name {
            None => Ok(None),
            Some(name) => headers
                .iter()
                .position(|header| header == name)
                .map(Some)
                .ok_or_else(|| ReadError::MissingColumn { key, column: name.clone() }),
        }
    };
    let local_id = column("local_id", &mapping.local_id)?;
    let given = column("given", &mapping.given)?;
    let family = column("family", &mapping.family)?;
    let birth_date = column("birth_date", &mapping.birth_date)?;
    let sex = column("sex", &mapping.sex)?;
    let house_number = column("house_number", &mapping.house_number)?;
    let address = column("address", &mapping.address)?;
    let city = column("city", &mapping.city)?;
    let postcode = column("postcode", &mapping.postcode)?;
    let region = column("region", &mapping.region)?;
    let phone = column("phone", &mapping.phone)?;
    let national_id = column("national_id", &mapping.national_id)?;
    let key_worker = column("key_worker", &mapping.key_worker)?;
    let key_worker_contact = column("key_worker_contact", &mapping.key_worker_contact)?;
    let verified_column = match &mapping.national_id_verified {
        Some(Verified::Column(name)) => column("national_id_verified", &Some(name.clone()))?,
        _ => None,
    };
    let always_verified = matches!(mapping.national_id_verified, Some(Verified::Always(true)));
    let date_format = mapping.birth_date_format.as_deref().unwrap_or("%Y-%m-%d");
    let source = mapping.source.clone().unwrap_or_else(|| default_source.to_string());

    let mut set = RecordSet::default();
    let mut seen_ids = HashSet::new();
    let mut row_fields = csv::StringRecord::new();
    let mut data_row = 0u64;
    loop {
        let row = csv_reader.position().line();
        match csv_reader.read_record(&mut row_fields) {
            Ok(false) => break,
            Ok(true) => {}
            Err(source) => return Err(ReadError::Csv { row: source.position().map_or(row, |p| p.line()), source }),
        }
        data_row += 1;
        let row = row_fields.position().map_or(row, |position| position.line());
        let text = |index: Option<usize>| -> Option<String> {
            index.and_then(|index| row_fields.get(index)).filter(|value| !value.is_empty()).map(str::to_string)
        };
        let local_id = match local_id {
            Some(_) => text(local_id).ok_or(ReadError::EmptyLocalId { row })?,
            None => data_row.to_string(),
        };
        if !seen_ids.insert(local_id.clone()) {
            return Err(ReadError::DuplicateLocalId { row, local_id });
        }
        let birth_date_text = text(birth_date);
        let parsed_birth_date = birth_date_text.as_deref().and_then(|value| parse_birth_date(value, date_format));
        if let (Some(value), None) = (&birth_date_text, parsed_birth_date) {
            set.issues.push(RowIssue {
                row,
                field: "birth_date",
                message: format!("{value:?} is not a date in the format {date_format:?}"),
            });
        }
        let sex_text = text(sex);
        let parsed_sex = sex_text.as_deref().and_then(Sex::parse);
        if let (Some(value), None) = (&sex_text, parsed_sex) {
            set.issues.push(RowIssue { row, field: "sex", message: format!("unknown sex code {value:?}") });
        }
        let verified = always_verified
            || text(verified_column).is_some_and(|value| {
                matches!(value.to_ascii_lowercase().as_str(), "y" | "yes" | "true" | "1" | "verified")
            });
        set.records.push(SourceRecord {
            source: source.clone(),
            local_id,
            given_names: text(given),
            family_name: text(family),
            birth_date: parsed_birth_date,
            sex: parsed_sex,
            house_number: text(house_number),
            address: text(address),
            city: text(city),
            postcode: text(postcode),
            region: text(region),
            phone: text(phone),
            national_id: text(national_id),
            national_id_verified: verified,
            key_worker: text(key_worker),
            key_worker_contact: text(key_worker_contact),
        });
    }
    Ok(set)
}

/// Reads one column of a CSV as it is (trimmed, blanks as `None`), one value per data row, in
/// the order [`read_records`] returns records. Used for a truth column in evaluations.
pub fn read_column(mapping: &Mapping, reader: impl Read, column: &str) -> Result<Vec<Option<String>>, ReadError> {
    let delimiter = mapping.delimiter.unwrap_or(',');
    let mut csv_reader = csv::ReaderBuilder::new().delimiter(delimiter as u8).trim(csv::Trim::All).from_reader(reader);
    let headers = csv_reader.headers().map_err(|source| ReadError::Csv { row: 1, source })?.clone();
    let index = headers
        .iter()
        .position(|header| header == column)
        .ok_or_else(|| ReadError::MissingColumn { key: "truth", column: column.to_string() })?;
    let mut values = Vec::new();
    for row in csv_reader.records() {
        let row = row.map_err(|source| ReadError::Csv { row: source.position().map_or(0, |p| p.line()), source })?;
        values.push(row.get(index).filter(|value| !value.is_empty()).map(str::to_string));
    }
    Ok(values)
}

/// Writes `source,record_id,person_id` rows with a header.
pub fn write_person_ids<'a>(
    writer: impl std::io::Write,
    rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<(), csv::Error> {
    let mut csv_writer = csv::Writer::from_writer(writer);
    csv_writer.write_record(["source", "record_id", "person_id"])?;
    for (source, record_id, person_id) in rows {
        csv_writer.write_record([source, record_id, person_id])?;
    }
    csv_writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BirthDate;

    const GP_MAPPING: &str = r#"
        source = "gp-north"
        local_id = "id"
        given = "forename"
        family = "surname"
        birth_date = "dob"
        birth_date_format = "%d/%m/%Y"
        national_id = "nhs"
        national_id_verified = "traced"
    "#;

    #[test]
    fn a_mapped_csv_becomes_records_with_issues_by_row() {
        let mapping = Mapping::from_toml(GP_MAPPING).unwrap();
        let csv = "id,forename,surname,dob,nhs,traced,extra\n\
                   g1, Joseph ,Smith,14/03/1971,943 476 5919,yes,x\n\
                   g2,J.,Smyth,not a date,,no,y\n";
        let set = read_records(&mapping, "ignored", csv.as_bytes()).unwrap();
        assert_eq!(set.records.len(), 2);
        let joseph = &set.records[0];
        assert_eq!(joseph.source, "gp-north");
        assert_eq!(joseph.given_names.as_deref(), Some("Joseph"));
        assert_eq!(joseph.birth_date, BirthDate::new(1971, 3, 14));
        assert!(joseph.national_id_verified);
        assert!(!set.records[1].national_id_verified);
        assert_eq!(set.records[1].national_id, None);
        assert_eq!(set.issues.len(), 1);
        assert_eq!((set.issues[0].row, set.issues[0].field), (3, "birth_date"));
    }

    #[test]
    fn structural_problems_are_errors_with_rows() {
        let mapping = Mapping::from_toml(GP_MAPPING).unwrap();
        let missing = read_records(&mapping, "x", "id,forename\n1,a\n".as_bytes()).unwrap_err();
        assert!(matches!(missing, ReadError::MissingColumn { key: "family", .. }), "{missing}");
        let header = "id,forename,surname,dob,nhs,traced\n";
        let duplicate =
            read_records(&mapping, "x", format!("{header}1,a,b,,,\n2,a,b,,,\n1,c,d,,,\n").as_bytes()).unwrap_err();
        assert!(matches!(duplicate, ReadError::DuplicateLocalId { row: 4, .. }), "{duplicate}");
        let ragged = read_records(&mapping, "x", format!("{header}1,a,b,,,\n2,a\n").as_bytes()).unwrap_err();
        assert!(matches!(ragged, ReadError::Csv { row: 3, .. }), "{ragged}");
        let empty = read_records(&mapping, "x", format!("{header},a,b,,,\n").as_bytes()).unwrap_err();
        assert!(matches!(empty, ReadError::EmptyLocalId { row: 2 }), "{empty}");
    }

    #[test]
    fn mappings_reject_unknown_keys_and_default_the_source() {
        assert!(Mapping::from_toml("given = \"a\"\nnickname = \"b\"").is_err());
        let mapping = Mapping::from_toml("given = \"name\"\nnational_id_verified = true").unwrap();
        let set = read_records(&mapping, "housing", "name\nJoe\n".as_bytes()).unwrap();
        assert_eq!(set.records[0].source, "housing");
        assert_eq!(set.records[0].local_id, "1");
    }
}
