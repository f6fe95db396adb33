//! `docs/fields.md` against what the adapters really produce: every `<provider>_*` key in a
//! normalization snapshot (`providers/tests/snapshots/`) is documented in that provider's
//! section, and every key a section documents appears in some snapshot of that provider.
//!
//! A documented key with a `<placeholder>` (`supabase_<column>`) stands for every key it
//! matches. Keys the fixtures do not exercise yet are listed in [`NOT_IN_ANY_FIXTURE`]; the test
//! fails when one of them starts appearing, so the list only shrinks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Documented keys that no fixture produces yet, by provider.
const NOT_IN_ANY_FIXTURE: &[(&str, &str)] = &[
    ("clerk", "clerk_external_id"),
    ("clerk", "clerk_username"),
    ("shopify", "shopify_fulfillment_status"),
    ("stripe", "stripe_cancel_at"),
    ("stripe", "stripe_trial_end"),
];

type Keys = BTreeMap<String, BTreeSet<String>>;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `<provider>_*` keys of every snapshot, by provider: contact fields, fire-only fields and
/// identity id names.
fn snapshot_keys() -> Keys {
    let dir = root().join("providers/tests/snapshots");
    let mut keys = Keys::new();
    for entry in std::fs::read_dir(&dir).expect("snapshots") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some((provider, _)) = name.split_once('@') else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read snapshot");
        // insta's header, then the JSON.
        let body = text.splitn(3, "---").nth(2).unwrap_or("");
        let value: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{name} does not hold JSON: {e}"));
        let found = keys.entry(provider.to_owned()).or_default();
        let events = value["normalize"].as_array().cloned().unwrap_or_default();
        for event in &events {
            for map in [&event["contact"]["fields"], &event["event_fields"]] {
                if let Some(map) = map.as_object() {
                    found.extend(map.keys().cloned());
                }
            }
            for pair in event["identity"]["ids"].as_array().into_iter().flatten() {
                if let Some(key) = pair[0].as_str() {
                    found.insert(key.to_owned());
                }
            }
        }
    }
    for (provider, found) in &mut keys {
        let prefix = format!("{provider}_");
        found.retain(|k| k.starts_with(&prefix));
    }
    keys
}

/// The backticked `<provider>_*` keys of each `## <Provider>` section of `docs/fields.md`.
fn documented_keys(text: &str) -> Keys {
    let mut keys = Keys::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = Some(title.trim().to_lowercase());
            continue;
        }
        let Some(provider) = &section else { continue };
        let prefix = format!("{provider}_");
        for (i, token) in line.split('`').enumerate() {
            let key_like = token
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_<>".contains(c));
            if i % 2 == 1 && token.starts_with(&prefix) && key_like {
                keys.entry(provider.clone())
                    .or_default()
                    .insert(token.to_owned());
            }
        }
    }
    keys
}

/// Whether `key` is `documented`, literally or through a `<placeholder>`.
fn covers(documented: &str, key: &str) -> bool {
    let Some(open) = documented.find('<') else {
        return documented == key;
    };
    let close = documented.find('>').unwrap_or(documented.len() - 1);
    let (head, tail) = (&documented[..open], &documented[close + 1..]);
    key.len() > head.len() + tail.len() && key.starts_with(head) && key.ends_with(tail)
}

#[test]
fn fields_md_matches_the_snapshots() {
    let text = std::fs::read_to_string(root().join("docs/fields.md")).expect("docs/fields.md");
    let documented = documented_keys(&text);
    let seen = snapshot_keys();
    assert!(seen.len() >= 8, "snapshots of every provider: {seen:?}");
    let mut problems = Vec::new();
    for (provider, keys) in &seen {
        let docs = documented.get(provider).cloned().unwrap_or_default();
        for key in keys {
            if !docs.iter().any(|d| covers(d, key)) {
                problems.push(format!(
                    "{key} is in a {provider} snapshot but not in docs/fields.md's {provider} section"
                ));
            }
        }
    }
    for (provider, docs) in &documented {
        let keys = seen.get(provider).cloned().unwrap_or_default();
        for doc in docs.iter().filter(|d| !d.contains('<')) {
            let exempt = NOT_IN_ANY_FIXTURE.contains(&(provider.as_str(), doc.as_str()));
            match (keys.contains(doc), exempt) {
                (false, false) => problems.push(format!(
                    "{doc} is documented for {provider} but no snapshot shows it"
                )),
                (true, true) => problems.push(format!(
                    "{doc} now appears in a snapshot: remove it from NOT_IN_ANY_FIXTURE"
                )),
                _ => {}
            }
        }
    }
    for (provider, key) in NOT_IN_ANY_FIXTURE {
        assert!(
            documented.get(*provider).is_some_and(|d| d.contains(*key)),
            "NOT_IN_ANY_FIXTURE names {key}, which docs/fields.md does not document"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_check_reads_sections_and_placeholders() {
    let docs = documented_keys(
        "## Stripe\n| `stripe_a`, `stripe_b` | `other_c` |\n## Supabase\n`supabase_<column>` and `supabase_x`\n",
    );
    assert_eq!(
        docs["stripe"].iter().collect::<Vec<_>>(),
        ["stripe_a", "stripe_b"]
    );
    assert_eq!(docs["supabase"].len(), 2);
    assert!(covers("supabase_<column>", "supabase_role"));
    assert!(covers("supabase_<table>_id", "supabase_profiles_id"));
    assert!(!covers("supabase_<table>_id", "supabase_role"));
    assert!(!covers("supabase_<column>", "supabase_"));
    assert!(!covers("stripe_a", "stripe_ab"));
}
