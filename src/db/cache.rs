//! The batch cache: what this process knows the store already holds, so applies skip writes
//! that would change nothing.

/// What this process knows is already in the database, so the pipeline can skip writes that
/// would change nothing: field definitions already made, and trigger schemas that already list
/// every key of a payload. Entries are added only after the transaction that wrote them
/// committed; another process's additions are simply written again (`ON CONFLICT DO NOTHING`).
#[derive(Debug, Default)]
pub struct Known {
    fields: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    triggers: std::sync::Mutex<
        std::collections::HashMap<(String, String), std::collections::BTreeSet<String>>,
    >,
}

/// What a transaction wrote that [`Known`] should learn once it commits.
#[derive(Debug, Default)]
pub struct Learned {
    pub fields: Vec<(String, String)>,
    pub triggers: Vec<((String, String), std::collections::BTreeSet<String>)>,
}

impl Known {
    pub fn has_field(&self, workspace: &str, key: &str) -> bool {
        self.fields
            .lock()
            .map(|f| f.contains(&(workspace.to_owned(), key.to_owned())))
            .unwrap_or(false)
    }

    /// Whether the trigger's known schema already lists every key of `payload`.
    pub fn trigger_covers(
        &self,
        workspace: &str,
        trigger: &str,
        payload: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.triggers
            .lock()
            .ok()
            .and_then(|t| {
                t.get(&(workspace.to_owned(), trigger.to_owned()))
                    .map(|keys| payload.keys().all(|k| keys.contains(k)))
            })
            .unwrap_or(false)
    }

    pub fn learn(&self, learned: Learned) {
        if let Ok(mut fields) = self.fields.lock() {
            fields.extend(learned.fields);
        }
        if let Ok(mut triggers) = self.triggers.lock() {
            for (key, keys) in learned.triggers {
                triggers.entry(key).or_default().extend(keys);
            }
        }
    }
}
