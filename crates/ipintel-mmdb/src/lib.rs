//! Writes MaxMind DB files (format 2.0), the format that `libmaxminddb`,
//! `mmdblookup`, the `maxminddb` readers and most log tools read.
//!
//! A file is a binary search tree over address bits ([`tree`]), sixteen
//! zero bytes, a data section of typed values ([`data`]), then the marker
//! `\xAB\xCD\xEFMaxMind.com` and a metadata map ([`write_database`]).
//! [`export_snapshot`] writes everything an ipintel lookup knows about every
//! range of a snapshot in that format ([`export`] lists the fields);
//! [`asn::write_asn_database`] writes AS rows in MaxMind's ASN layout.
#![forbid(unsafe_code)]

pub mod asn;
pub mod data;
pub mod export;
pub mod tree;
mod writer;

pub use data::{DataError, DataSection, Value};
pub use export::{export_snapshot, ExportStats};
pub use tree::{Span, Tree, TreeError};
pub use writer::{write_database, Layout, Metadata};

/// Why a database cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MmdbError {
    /// Writing the output failed.
    #[error("cannot write the database: {0}")]
    Io(#[from] std::io::Error),
    /// A value cannot be encoded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The tree cannot be built.
    #[error(transparent)]
    Tree(#[from] TreeError),
}
