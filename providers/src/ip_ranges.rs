//! Published webhook source ranges, kept as data (`ip_ranges.toml` beside this crate's
//! `Cargo.toml`) so updating them is a data change. `allow_ips = ["@brevo"]` names a set here.

use std::collections::HashMap;
use std::sync::OnceLock;

use ipnet::IpNet;

/// The file's text.
pub const DATA: &str = include_str!("../ip_ranges.toml");

/// The named lists, parsed once. A list that fails to parse is a bug in the data file, which
/// the tests below catch; at run time such a list (or entry) is left out rather than panicking.
fn lists() -> &'static HashMap<String, Vec<IpNet>> {
    static LISTS: OnceLock<HashMap<String, Vec<IpNet>>> = OnceLock::new();
    LISTS.get_or_init(|| {
        let parsed: HashMap<String, Vec<String>> = toml::from_str(DATA).unwrap_or_default();
        parsed
            .into_iter()
            .map(|(name, list)| (name, list.iter().filter_map(|c| c.parse().ok()).collect()))
            .collect()
    })
}

/// The ranges behind `@<name>`, if such a list exists.
pub fn published(name: &str) -> Option<&'static [IpNet]> {
    lists().get(name).map(Vec::as_slice)
}

/// The names `@<name>` may use, sorted.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = lists().keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_of_the_data_file_parses() {
        let raw: HashMap<String, Vec<String>> = toml::from_str(DATA).expect("ip_ranges.toml");
        assert!(!raw.is_empty());
        for (name, list) in &raw {
            assert!(!list.is_empty(), "{name} is empty");
            for entry in list {
                assert!(entry.parse::<IpNet>().is_ok(), "{name}: {entry:?}");
            }
            assert_eq!(published(name).map(<[IpNet]>::len), Some(list.len()));
        }
        assert!(names().contains(&"brevo"));
        assert_eq!(published("nope"), None);
    }
}
