//! Published webhook source ranges, kept as data (`ip_ranges.toml` beside this crate's
//! `Cargo.toml`) so updating them is a data change. `allow_ips = ["@brevo"]` names a set here.

/// The file's text; the service parses it with `ipnet` when it expands `@<name>`.
pub const DATA: &str = include_str!("../ip_ranges.toml");
