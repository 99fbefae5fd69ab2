//! String interning for the snapshot build.

use rustc_hash::FxHashMap;

use crate::table::NONE;

/// Stores each distinct string once; ids are dense `u32`s.
#[derive(Debug, Default)]
pub(crate) struct StrPool {
    strings: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
}

impl StrPool {
    /// Id of `s`, adding it if new.
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(NONE);
        self.strings.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// Id of `s`, or [`NONE`] for `None`.
    pub(crate) fn intern_opt(&mut self, s: Option<&str>) -> u32 {
        s.map_or(NONE, |s| self.intern(s))
    }

    /// The string for an id, `None` for [`NONE`].
    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(|s| &**s)
    }
}
