//! Assembling the file: tree, separator, data section, metadata.

use std::io::Write;

use crate::data::{encode_inline, Value};
use crate::tree::Tree;
use crate::MmdbError;

/// Marks the start of the metadata, which readers look for from the end.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// The descriptive part of the metadata.
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    /// What the database holds, e.g. `ipintel-IP-Intel`.
    pub database_type: &'a str,
    /// A sentence in English.
    pub description: &'a str,
    /// When the data was built, Unix seconds.
    pub build_epoch: u64,
}

/// Sizes of a written database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Nodes in the search tree.
    pub node_count: u32,
    /// Bits per record: 24, 28 or 32.
    pub record_size: u16,
    /// Bytes of the search tree.
    pub tree_bytes: u64,
    /// Bytes of the data section.
    pub data_bytes: u64,
    /// Bytes of the whole file.
    pub total_bytes: u64,
}

/// Writes an IPv6 database (IPv4 at `::/96`, see [`crate::tree`]).
/// `data` is the encoded data section ([`crate::DataSection::bytes`]).
pub fn write_database(
    out: &mut impl Write,
    tree: &Tree,
    data: &[u8],
    meta: &Metadata<'_>,
) -> Result<Layout, MmdbError> {
    let record_size = tree.record_size(data.len())?;
    tree.write(out, record_size)?;
    out.write_all(&[0; 16])?;
    out.write_all(data)?;
    out.write_all(METADATA_MARKER)?;
    let metadata = metadata(tree.node_count(), record_size, meta)?;
    out.write_all(&metadata)?;

    let tree_bytes = u64::from(tree.node_count()) * u64::from(record_size) / 4;
    let data_bytes = data.len() as u64;
    Ok(Layout {
        node_count: tree.node_count(),
        record_size,
        tree_bytes,
        data_bytes,
        total_bytes: tree_bytes
            + 16
            + data_bytes
            + METADATA_MARKER.len() as u64
            + metadata.len() as u64,
    })
}

fn metadata(node_count: u32, record_size: u16, meta: &Metadata<'_>) -> Result<Vec<u8>, MmdbError> {
    let map = Value::Map(vec![
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(meta.build_epoch)),
        ("database_type", Value::Str(meta.database_type)),
        (
            "description",
            Value::Map(vec![("en", Value::Str(meta.description))]),
        ),
        ("ip_version", Value::U16(6)),
        ("languages", Value::Array(vec![Value::Str("en")])),
        ("node_count", Value::U32(node_count)),
        ("record_size", Value::U16(record_size)),
    ]);
    let mut out = Vec::with_capacity(512);
    encode_inline(&mut out, &map)?;
    Ok(out)
}
