//! carecircle's record linkage engine: decides which partner records describe the same person.
//!
//! The flow is `mapping` (partner CSV → [`SourceRecord`]) → `features` (normalised, phonetic
//! and nickname forms) → `blocking` (candidate pairs) → `compare` (a level per field) →
//! `model` (Fellegi-Sunter weights trained by expectation-maximisation) → `cluster` (persons,
//! honouring verified identifiers and review decisions) → `ids` (stable person ids). [`link`]
//! runs the whole batch; [`LinkIndex`] matches one record at a time against a trained model.
//! Pure library: no I/O beyond the readers it is given, no async.

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod evaluate;
pub mod features;
pub mod ids;
pub mod index;
pub mod mapping;
pub mod model;
pub mod nicknames;
pub mod normalise;
pub mod record;
pub mod run;
pub mod similarity;

pub use cluster::{Decision, ReviewDecisions};
pub use evaluate::{pairwise_quality, PairwiseQuality};
pub use ids::{assign_person_ids, PersonId};
pub use index::{Grade, LinkIndex, PersonCandidate, UpsertOutcome};
pub use mapping::{read_column, read_records, write_person_ids, Mapping, MappingError, ReadError, RecordSet, RowIssue};
pub use model::{Model, ModelError};
pub use record::{BirthDate, RecordKey, Sex, SourceRecord};
pub use run::{link, LinkError, LinkOptions, LinkResult, NoProgress, Progress, ReviewPair};
