//! Integration tests of the access engine: the decision matrix, agreement lifecycle, and
//! profile parsing of Contracts, Consents, Organizations and DPIAs.

mod fixture;
mod lifecycle;
mod matrix;
mod profiles;
