//! English country names for ISO 3166-1 alpha-2 codes.

use keshvar::{Alpha2, Country};

/// A short English name for `code`, or `None` for an unknown code.
///
/// The names come from the `keshvar` data set. Its ISO short name is used
/// when it reads as a plain name; names in the ISO "inverted" style
/// (`Korea (Republic of)`, `Taiwan, Province of China`) or with an " of "
/// clause (`United States of America`) give way to the first common name
/// without brackets or commas (`South Korea`, `Taiwan`, `United States`).
pub fn country_name(code: &str) -> Option<&'static str> {
    let alpha2 = Alpha2::try_from(code.to_ascii_uppercase().as_str()).ok()?;
    let country: Country = alpha2.to_country();
    let iso = country.iso_short_name();
    if is_plain(iso) && !iso.contains(" of ") {
        return Some(iso);
    }
    let common = country
        .unofficial_name_list()
        .iter()
        .copied()
        .find(|n| is_plain(n) && n.is_ascii());
    Some(common.unwrap_or(iso))
}

fn is_plain(name: &str) -> bool {
    !name.contains(['(', ','])
}

#[cfg(test)]
mod tests {
    use super::country_name;

    #[test]
    fn names() {
        let cases = [
            ("US", Some("United States")),
            ("us", Some("United States")),
            ("DE", Some("Germany")),
            ("KR", Some("South Korea")),
            ("TW", Some("Taiwan")),
            ("GB", Some("United Kingdom")),
            ("RU", Some("Russian Federation")),
            ("IR", Some("Iran")),
            ("FR", Some("France")),
            ("ZZ", None),
            ("", None),
            ("USA", None),
        ];
        for (code, want) in cases {
            assert_eq!(country_name(code), want, "{code}");
        }
    }
}
