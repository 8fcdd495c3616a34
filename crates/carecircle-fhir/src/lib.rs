//! FHIR R4 engine for carecircle: the official definitions, search-index extraction, search
//! parsing and `OperationOutcome` issues. Pure library: no I/O, no async, no database.

pub mod date;
pub mod definitions;
pub mod fhirpath;
pub mod index;
pub mod outcome;
pub mod search;
pub mod text;
pub mod validate;

pub use definitions::{definitions, Definitions, SearchParamDef, SearchParamType};
pub use index::{extract_index, IndexEntry, IndexValue};
pub use outcome::{Issue, IssueSeverity, IssueType};
