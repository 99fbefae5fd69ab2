//! Time zones from coordinates, never outside the record's country.
//!
//! DB-IP has no time zone. Candidates come from the zone polygons of
//! `tzf-rs` at the record's coordinates; which countries a zone belongs to
//! comes from the IANA `zone1970.tab` table carried by `timezone-data`.
//!
//! `zone1970.tab` folds zones whose clocks have agreed since 1970 into one
//! (`Europe/Oslo` and `Europe/Stockholm` into `Europe/Berlin`), while the
//! polygons keep the per-country names. A polygon zone missing from
//! `zone1970.tab` is mapped to the `zone1970.tab` zone with identical
//! transitions since 1970 (its canonical zone); its own country is the one
//! of the canonical zone's countries whose geographic centre (from
//! `keshvar`) lies in that polygon. When answering for country `X` from a
//! canonical zone `Z`, the polygon zone owned by `X` that folds into `Z` is
//! preferred (so Norway gets `Europe/Oslo`, not `Europe/Berlin`). `Etc/*`
//! ocean zones are never used.
//!
//! Rule: for the candidates at the point, in order, take the first whose
//! canonical zone lists the record's country. Otherwise, if the country has
//! exactly one `zone1970.tab` zone, use it. Otherwise answer nothing. An
//! answer is thus either a `zone1970.tab` zone that lists the country, or a
//! polygon zone that lies around the country's own centre.

use rustc_hash::FxHashMap;
use timezone_data as td;

/// Resolves (latitude, longitude, country) to an IANA zone.
pub struct TzResolver {
    finder: tzf_rs::DefaultFinder,
    /// zone1970 zone -> countries.
    countries: FxHashMap<&'static str, Vec<&'static str>>,
    /// Polygon zone name -> zone1970 zone (identity for zone1970 zones).
    canonical: FxHashMap<String, &'static str>,
    /// (zone1970 zone, country) -> the country's own polygon zone name.
    local: FxHashMap<(&'static str, &'static str), &'static str>,
    /// Country -> its zone1970 zones.
    zones_of: FxHashMap<&'static str, Vec<&'static str>>,
}

impl std::fmt::Debug for TzResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TzResolver")
            .field("zones", &self.countries.len())
            .finish()
    }
}

type Rules = (Vec<(i64, i32, bool)>, &'static str);

/// Transitions since 1970 and the POSIX rule: equal for zones that agree.
fn rules_since_1970(zone: &td::Zone) -> Rules {
    let transitions = zone
        .transitions()
        .iter()
        .filter(|t| t.when >= 0)
        .map(|t| {
            let ty = zone.type_at(t.type_idx);
            (t.when, ty.offset, ty.is_dst)
        })
        .collect();
    (transitions, zone.extend_raw())
}

impl TzResolver {
    /// Loads the polygon and zone tables (takes a moment; build once).
    pub fn new() -> TzResolver {
        let finder = tzf_rs::DefaultFinder::new();
        let mut countries = FxHashMap::default();
        let mut zones_of: FxHashMap<&'static str, Vec<&'static str>> = FxHashMap::default();
        let mut rules: Vec<(&'static str, Rules)> = Vec::new();
        for name in td::names() {
            let (Some(meta), Ok(zone)) = (td::meta(name), td::load(name)) else {
                continue;
            };
            let codes: Vec<&'static str> = meta.countries().map(|c| c.code).collect();
            for code in &codes {
                zones_of.entry(code).or_default().push(name);
            }
            countries.insert(name, codes);
            rules.push((name, rules_since_1970(&zone)));
        }
        let canonical = canonical_names(&finder, &countries, &rules);
        let local = local_names(&finder, &countries, &canonical);
        TzResolver {
            finder,
            countries,
            canonical,
            local,
            zones_of,
        }
    }

    /// The zone for a record, or `None` (see the module docs for the rule).
    pub fn resolve(&self, latitude: f64, longitude: f64, country: &str) -> Option<&'static str> {
        let candidates = self.finder.get_tz_names(longitude, latitude);
        let hit = candidates
            .iter()
            .filter_map(|name| self.canonical.get(*name).copied())
            .find(|zone| {
                self.countries
                    .get(zone)
                    .is_some_and(|c| c.contains(&country))
            });
        let zone = hit.or_else(|| match self.zones_of.get(country).map(Vec::as_slice) {
            Some([only]) => Some(*only),
            _ => None,
        })?;
        let (key, _) = self.zones_of.get_key_value(country)?;
        Some(self.local.get(&(zone, *key)).copied().unwrap_or(zone))
    }

    /// Countries of a zone, for checks: the `zone1970.tab` list of a
    /// canonical zone, or the owning country of a polygon zone.
    pub fn countries_of(&self, zone: &str) -> Option<Vec<&'static str>> {
        if let Some(c) = self.countries.get(zone) {
            return Some(c.clone());
        }
        let owners: Vec<&'static str> = self
            .local
            .iter()
            .filter(|(_, z)| **z == zone)
            .map(|((_, c), _)| *c)
            .collect();
        (!owners.is_empty()).then_some(owners)
    }
}

impl Default for TzResolver {
    fn default() -> Self {
        TzResolver::new()
    }
}

fn canonical_names(
    finder: &tzf_rs::DefaultFinder,
    countries: &FxHashMap<&'static str, Vec<&'static str>>,
    rules: &[(&'static str, Rules)],
) -> FxHashMap<String, &'static str> {
    let mut out = FxHashMap::default();
    for name in finder.timezonenames() {
        if let Some((zone, _)) = countries.get_key_value(name) {
            out.insert(name.to_owned(), *zone);
            continue;
        }
        if name.starts_with("Etc/") {
            continue;
        }
        let Ok(zone) = td::load(name) else { continue };
        let wanted = rules_since_1970(&zone);
        let mut same = rules.iter().filter(|(_, r)| *r == wanted).map(|(n, _)| *n);
        if let (Some(only), None) = (same.next(), same.next()) {
            out.insert(name.to_owned(), only);
        }
    }
    out
}

/// For each folded polygon zone, the country (among its canonical zone's)
/// whose centre lies inside it.
fn local_names(
    finder: &tzf_rs::DefaultFinder,
    countries: &FxHashMap<&'static str, Vec<&'static str>>,
    canonical: &FxHashMap<String, &'static str>,
) -> FxHashMap<(&'static str, &'static str), &'static str> {
    let mut out = FxHashMap::default();
    for (name, zone) in canonical {
        let Ok(polygon_zone) = td::load(name) else {
            continue;
        };
        if polygon_zone.name() == *zone {
            continue;
        }
        for code in countries.get(zone).map(Vec::as_slice).unwrap_or_default() {
            let Some((lat, lon)) = country_centre(code) else {
                continue;
            };
            if finder.get_tz_names(lon, lat).contains(&name.as_str()) {
                out.entry((*zone, *code)).or_insert(polygon_zone.name());
            }
        }
    }
    out
}

fn country_centre(code: &str) -> Option<(f64, f64)> {
    let country = keshvar::Alpha2::try_from(code).ok()?.to_country();
    let geo = country.geo();
    Some((geo.latitude(), geo.longitude()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn resolver() -> &'static TzResolver {
        static R: OnceLock<TzResolver> = OnceLock::new();
        R.get_or_init(TzResolver::new)
    }

    #[test]
    fn inside_a_country() {
        let r = resolver();
        assert_eq!(
            r.resolve(37.422, -122.085, "US"),
            Some("America/Los_Angeles")
        );
        assert_eq!(r.resolve(48.85, 2.35, "FR"), Some("Europe/Paris"));
        // Oslo's zone is folded into Berlin by zone1970.tab but kept as
        // Norway's own name.
        assert_eq!(r.resolve(59.91, 10.75, "NO"), Some("Europe/Oslo"));
        assert_eq!(r.resolve(59.33, 18.07, "SE"), Some("Europe/Stockholm"));
        // A Swedish record at a Norwegian point gets Sweden's zone.
        assert_eq!(r.resolve(59.91, 10.75, "SE"), Some("Europe/Stockholm"));
        assert_eq!(r.resolve(52.52, 13.40, "DE"), Some("Europe/Berlin"));
    }

    #[test]
    fn border_points_never_give_the_neighbours_zone() {
        let r = resolver();
        // A point in Strasbourg (France) labelled German: Europe/Paris is
        // not German; Germany's zone1970 zones are Berlin and Busingen's
        // Zurich, so more than one, hence no answer.
        assert_eq!(r.resolve(48.58, 7.75, "DE"), None);
        // A point in Kehl (Germany) labelled French: France has one zone.
        assert_eq!(r.resolve(48.57, 7.81, "FR"), Some("Europe/Paris"));
        // Tijuana labelled US: the point's zone is Mexican.
        let zone = r.resolve(32.52, -117.04, "US");
        assert!(
            zone.is_none_or(|z| r.countries_of(z).is_some_and(|c| c.contains(&"US"))),
            "{zone:?}"
        );
        // Windsor (Canada) labelled US: Detroit is not Canadian.
        let zone = r.resolve(42.30, -83.02, "US");
        assert!(
            zone.is_none_or(|z| r.countries_of(z).is_some_and(|c| c.contains(&"US"))),
            "{zone:?}"
        );
    }

    #[test]
    fn open_sea_and_unknown_countries() {
        let r = resolver();
        assert_eq!(r.resolve(0.0, -30.0, "ZZ"), None);
        assert_eq!(r.resolve(0.0, -30.0, "IS"), Some("Atlantic/Reykjavik"));
    }
}
