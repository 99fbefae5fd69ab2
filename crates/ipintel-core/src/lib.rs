//! Pure core of ipintel: strict address parsing, the IANA special-purpose
//! ranges, the immutable lookup [`Snapshot`] and its [`SnapshotBuilder`],
//! threat scoring and the JSON record types. No I/O, no async.
//!
//! # Layout of a snapshot
//!
//! Per address family the snapshot holds three interval tables (see
//! `table.rs`): geo ranges -> interned location, AS ranges -> (ASN, holder),
//! and signals -> signal set. Signal ranges may overlap; the builder sweeps
//! them into a partition where each piece names the *set* of signals
//! covering it, and every distinct set gets its score, level, reasons and
//! flags computed once at build time. A lookup is therefore three short
//! index-assisted binary searches plus pointer chasing, with no allocation.
//!
//! [`persist`] writes a built snapshot as bytes and reads it back, for the
//! loader's snapshot cache.
#![forbid(unsafe_code)]

pub mod addr;
mod builder;
mod combined;
mod country;
mod intel;
mod intern;
mod model;
pub mod persist;
mod range;
mod record;
pub mod reports;
pub mod reserved;
mod score;
mod segments;
mod snapshot;
mod table;
mod text;
mod threat;

pub use builder::{Aggregates, GeoRanges, LocationId, SignalDefId, SnapshotBuilder};
pub use country::country_name;
pub use intel::{AsnView, CountryView, FamilyFigures, TopNetwork, FLAG_KINDS, TOP_NETWORKS};
pub use model::{GeoData, Signal, SignalKind, SourceId, SourceMeta};
pub use range::{Cidr, IpRange, RangeError};
pub use record::{GeoView, IpRecord, NetworkView};
pub use score::{noisy_or, ThreatLevel};
pub use segments::{RangeIntel, Segment, Segments};
pub use snapshot::{Snapshot, SnapshotMeta};
pub use threat::{ConnectionType, FlagDetail, Flags, Reason, ThreatInfo, FLAG_MIN_CONFIDENCE};
