//! Loaders for the ipintel data sources.
//!
//! [`load_snapshot`] reads `data/manifest.json` (written by
//! `scripts/fetch_data.py`), verifies every file's size and SHA-256, parses
//! the sources (DB-IP city mmdb, AS CSV, iporigin range table, FireHOL /
//! Spamhaus / Emerging Threats lists, kavachnet, cloudcheck), derives time
//! zones, and hands everything to the core builder. The built snapshot is
//! kept in `<data dir>/cache/snapshot.bin`, which the next load reads
//! instead while no input has changed ([`cache`]). The parsers are public
//! so that tests and tools can run them on small inputs; weights live in
//! [`weights`].
#![forbid(unsafe_code)]

pub mod asn;
pub mod batch;
pub mod cache;
pub mod cloudcheck;
mod error;
pub mod feeds;
mod from_manifest;
pub mod geo;
pub mod iporigin;
pub mod lists;
mod load;
pub mod manifest;
pub mod sample;
pub mod sources;
pub mod state;
pub mod status;
pub mod tz;
pub mod update;
pub mod weights;

pub use cache::{CacheUse, LoadReport, CACHE_ENV};
pub use error::DataError;
pub use ipintel_core::Aggregates;
pub use load::{
    load_snapshot, load_snapshot_report, load_sources, load_sources_report, load_sources_with,
    manifest_sources,
};
pub use sources::SourcesConfig;
pub use status::{DataStatus, SourceError, SourceStatus};
