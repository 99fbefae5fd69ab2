//! Request handlers, one module per area.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod batch;
pub(crate) mod body;
pub(crate) mod fallback;
pub(crate) mod health;
pub(crate) mod intel;
pub(crate) mod key_reports;
pub(crate) mod lookup;
pub(crate) mod metrics;
pub(crate) mod portal;
mod report_input;
pub(crate) mod reports;
