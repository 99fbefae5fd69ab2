//! Request handlers, one module per area.

pub(crate) mod account;
pub(crate) mod fallback;
pub(crate) mod health;
pub(crate) mod lookup;
