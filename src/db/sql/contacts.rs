//! The identity tables: `contacts`, `contact_ids` (id links), `unresolved_ids` (the ids parked
//! events wait for) and `field_definitions`.

pub(crate) const CONTACT_COLUMNS: &str =
    "workspace, email, first_name, last_name, subscribed, custom_fields, field_times, created_at, updated_at";

macro_rules! contact_queries {
    ($db:ty) => {
        use std::collections::{BTreeMap, BTreeSet, HashMap};

        use sqlx::QueryBuilder;

        use super::{Conn, Pool};
        use crate::contacts::ContactState;
        use crate::db::rows::ContactRow;
        use crate::db::sql::chunks;
        use crate::db::sql::contacts::CONTACT_COLUMNS;
        use crate::resolution::{ContactKey, FieldDefinition, Link, LinkKey, Parked};

        /// The stored links among `wanted` (workspace → (id name, value)).
        pub(crate) async fn read_links(
            conn: &mut Conn,
            wanted: &BTreeMap<String, BTreeSet<(String, String)>>,
        ) -> Result<HashMap<LinkKey, Link>, sqlx::Error> {
            let mut links = HashMap::new();
            for (workspace, ids) in wanted {
                let ids: Vec<&(String, String)> = ids.iter().collect();
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT key, value, email, seen_at FROM contact_ids WHERE workspace = ");
                    q.push_bind(workspace.clone()).push(" AND (key, value) IN (");
                    q.push_values(chunk, |mut row, (key, value)| {
                        row.push_bind(key.clone()).push_bind(value.clone());
                    });
                    q.push(")");
                    let rows: Vec<(String, String, String, i64)> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for (key, value, email, seen_at) in rows {
                        links.insert((workspace.clone(), key, value), Link { email, seen_at });
                    }
                }
            }
            Ok(links)
        }

        /// Every contact of `wanted` (workspace → emails): `Some` the stored one, `None` when
        /// there is none.
        pub(crate) async fn read_contacts(
            conn: &mut Conn,
            wanted: &BTreeMap<String, BTreeSet<String>>,
        ) -> Result<HashMap<ContactKey, Option<ContactState>>, sqlx::Error> {
            let mut contacts = HashMap::new();
            for (workspace, emails) in wanted {
                let emails: Vec<&String> = emails.iter().collect();
                for chunk in chunks(&emails) {
                    let mut q = QueryBuilder::<$db>::new(format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace = "));
                    q.push_bind(workspace.clone()).push(" AND email IN (");
                    let mut list = q.separated(", ");
                    for email in chunk {
                        list.push_bind((*email).clone());
                    }
                    q.push(")");
                    let rows: Vec<ContactRow> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for row in rows {
                        let state = row.state();
                        contacts.insert((row.workspace, row.email), Some(state));
                    }
                }
                for email in emails {
                    contacts.entry((workspace.clone(), email.clone())).or_insert(None);
                }
            }
            Ok(contacts)
        }

        pub(crate) async fn get_contact(pool: &Pool, workspace: &str, email: &str) -> Result<Option<ContactRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace = $1 AND email = $2"))
                .bind(workspace)
                .bind(email)
                .fetch_optional(pool)
                .await
        }

        /// Records field definitions (an existing one keeps its first type).
        pub(crate) async fn define_fields(conn: &mut Conn, fields: &[FieldDefinition], now_ms: i64) -> Result<(), sqlx::Error> {
            for chunk in chunks(fields) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO field_definitions (workspace, key, type, provider, first_seen_at) ");
                q.push_values(chunk, |mut row, f| {
                    row.push_bind(f.workspace.clone())
                        .push_bind(f.key.clone())
                        .push_bind(f.kind)
                        .push_bind(f.provider.clone())
                        .push_bind(now_ms);
                });
                q.push(" ON CONFLICT (workspace, key) DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Upserts contacts (key order keeps concurrent writers from deadlocking).
        pub(crate) async fn write_contacts(conn: &mut Conn, contacts: &[(ContactKey, ContactState)], now_ms: i64) -> Result<(), sqlx::Error> {
            for chunk in chunks(contacts) {
                let mut q = QueryBuilder::<$db>::new(format!("INSERT INTO contacts ({CONTACT_COLUMNS}) "));
                q.push_values(chunk, |mut row, ((workspace, email), state)| {
                    row.push_bind(workspace.clone())
                        .push_bind(email.clone())
                        .push_bind(state.first_name.clone())
                        .push_bind(state.last_name.clone())
                        .push_bind(state.subscribed)
                        .push_bind(serde_json::Value::Object(state.custom_fields.clone()).to_string())
                        .push_bind(serde_json::to_string(&state.field_times).unwrap_or_else(|_| "{}".into()))
                        .push_bind(now_ms)
                        .push_bind(now_ms);
                });
                q.push(
                    " ON CONFLICT (workspace, email) DO UPDATE SET \
                     first_name = excluded.first_name, last_name = excluded.last_name, subscribed = excluded.subscribed, \
                     custom_fields = excluded.custom_fields, field_times = excluded.field_times, updated_at = excluded.updated_at",
                );
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Upserts id links.
        pub(crate) async fn write_links(conn: &mut Conn, links: &[(LinkKey, Link)]) -> Result<(), sqlx::Error> {
            for chunk in chunks(links) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO contact_ids (workspace, key, value, email, seen_at) ");
                q.push_values(chunk, |mut row, ((workspace, key, value), link)| {
                    row.push_bind(workspace.clone())
                        .push_bind(key.clone())
                        .push_bind(value.clone())
                        .push_bind(link.email.clone())
                        .push_bind(link.seen_at);
                });
                q.push(" ON CONFLICT (workspace, key, value) DO UPDATE SET email = excluded.email, seen_at = excluded.seen_at");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Drops every id the events `ingest_ids` were parked on.
        pub(crate) async fn clear_parked(conn: &mut Conn, ingest_ids: &[String]) -> Result<(), sqlx::Error> {
            for chunk in chunks(ingest_ids) {
                let mut q = QueryBuilder::<$db>::new("DELETE FROM unresolved_ids WHERE ingest_id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.clone());
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Parks events on the ids they wait for.
        pub(crate) async fn park(conn: &mut Conn, parked: &[Parked]) -> Result<(), sqlx::Error> {
            for chunk in chunks(parked) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO unresolved_ids (ingest_id, workspace, key, value) ");
                q.push_values(chunk, |mut row, p| {
                    row.push_bind(p.ingest_id.clone())
                        .push_bind(p.workspace.clone())
                        .push_bind(p.key.clone())
                        .push_bind(p.value.clone());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// The events parked on each of `links`.
        pub(crate) async fn parked_on(conn: &mut Conn, links: &[&LinkKey]) -> Result<BTreeMap<LinkKey, Vec<String>>, sqlx::Error> {
            let mut by_workspace: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
            for (workspace, key, value) in links {
                by_workspace.entry(workspace.as_str()).or_default().push((key.as_str(), value.as_str()));
            }
            let mut waiting: BTreeMap<LinkKey, Vec<String>> = BTreeMap::new();
            for (workspace, ids) in by_workspace {
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT ingest_id, key, value FROM unresolved_ids WHERE workspace = ");
                    q.push_bind(workspace.to_owned()).push(" AND (key, value) IN (");
                    q.push_values(chunk, |mut row, (key, value)| {
                        row.push_bind((*key).to_owned()).push_bind((*value).to_owned());
                    });
                    q.push(")");
                    let rows: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for (ingest_id, key, value) in rows {
                        waiting.entry((workspace.to_owned(), key, value)).or_default().push(ingest_id);
                    }
                }
            }
            Ok(waiting)
        }

        /// Drops the parked ids of `link` (its events are pending again).
        pub(crate) async fn unpark(conn: &mut Conn, link: &LinkKey) -> Result<(), sqlx::Error> {
            sqlx::query("DELETE FROM unresolved_ids WHERE workspace = $1 AND key = $2 AND value = $3")
                .bind(&link.0)
                .bind(&link.1)
                .bind(&link.2)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    };
}

pub(crate) use contact_queries;
