//! A drained record and its wire formats.
//!
//! A record carries metadata only: ids, provider, connection, workspace, event type, outcome,
//! status codes, stable reason codes and timings. It never carries a request's headers or body,
//! an `Authorization` value, a connection or endpoint secret, a contact's email or a response
//! body, so a drain sends less than the ingest log and the attempt log keep.
//!
//! Attribute names are stable (`hookgate.*`, and OpenTelemetry's `http.response.status_code`).

use serde_json::{json, Map, Value};

use hookgate_providers::time::format_rfc3339_ms;

/// A feed row joined with what it refers to (see `store::read_batch`). The referred rows may be
/// gone (retention), in which case their fields are `None`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub seq: i64,
    pub kind: String,
    pub at: i64,
    pub o_status: Option<String>,
    pub o_reason: Option<String>,
    pub ingest_id: Option<String>,
    pub connection_id: Option<String>,
    pub provider: Option<String>,
    pub workspace: Option<String>,
    pub outcome: Option<String>,
    pub http_status: Option<i32>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub i_reason: Option<String>,
    pub duplicate_of: Option<String>,
    pub delivery_seq: Option<i64>,
    pub attempt: Option<i64>,
    pub status_code: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub endpoint_id: Option<String>,
    pub d_event_type: Option<String>,
    pub d_workspace: Option<String>,
    pub fire_seq: Option<i64>,
    pub fire_created_at: Option<i64>,
}

/// OpenTelemetry severity of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// The OTLP `SeverityNumber` (INFO = 9, WARN = 13, ERROR = 17).
    pub fn number(self) -> i64 {
        match self {
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }
}

/// One record, ready to encode.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: i64,
    /// `ingest`, `delivery` or `processing`.
    pub kind: String,
    pub time_ms: i64,
    pub severity: Severity,
    /// A one-line summary (the OTLP body).
    pub message: String,
    /// Stable attribute names and their values (strings or integers).
    pub attributes: Vec<(&'static str, Value)>,
}

fn push_str(attrs: &mut Vec<(&'static str, Value)>, key: &'static str, v: Option<&str>) {
    if let Some(v) = v {
        attrs.push((key, Value::String(v.to_owned())));
    }
}

fn push_int(attrs: &mut Vec<(&'static str, Value)>, key: &'static str, v: Option<i64>) {
    if let Some(v) = v {
        attrs.push((key, Value::from(v)));
    }
}

impl Record {
    /// Builds the record of a feed row.
    pub fn from_row(row: &OutboxRow) -> Record {
        let mut a = Vec::new();
        a.push(("hookgate.record", Value::String(row.kind.clone())));
        push_int(&mut a, "hookgate.seq", Some(row.seq));
        let (severity, message) = match row.kind.as_str() {
            "delivery" => {
                let code = row.status_code.unwrap_or(0);
                let ok = (200..300).contains(&code);
                let outcome = if ok { "succeeded" } else { "failed" };
                push_str(&mut a, "hookgate.outcome", Some(outcome));
                push_str(&mut a, "hookgate.endpoint", row.endpoint_id.as_deref());
                push_str(&mut a, "hookgate.workspace", row.d_workspace.as_deref());
                push_str(&mut a, "hookgate.event_type", row.d_event_type.as_deref());
                if let (Some(created), Some(seq)) = (row.fire_created_at, row.fire_seq) {
                    let id = crate::delivery::message_id(created, seq);
                    push_str(&mut a, "hookgate.message_id", Some(&id));
                }
                if let Some(d) = row.delivery_seq {
                    push_str(&mut a, "hookgate.delivery_id", Some(&format!("dlv_{d}")));
                }
                push_int(&mut a, "hookgate.attempt", row.attempt);
                push_int(&mut a, "http.response.status_code", row.status_code);
                push_int(&mut a, "hookgate.duration_ms", row.duration_ms);
                push_str(&mut a, "hookgate.reason", row.error.as_deref());
                let severity = if ok { Severity::Info } else { Severity::Warn };
                let message = format!(
                    "delivery {} to {} attempt {}: {outcome} ({code})",
                    row.d_event_type.as_deref().unwrap_or("?"),
                    row.endpoint_id.as_deref().unwrap_or("?"),
                    row.attempt.unwrap_or(0),
                );
                (severity, message)
            }
            kind => {
                let processing = kind == "processing";
                push_str(&mut a, "hookgate.ingest_id", row.ingest_id.as_deref());
                push_str(&mut a, "hookgate.provider", row.provider.as_deref());
                push_str(&mut a, "hookgate.connection", row.connection_id.as_deref());
                push_str(&mut a, "hookgate.workspace", row.workspace.as_deref());
                push_str(&mut a, "hookgate.event_type", row.event_type.as_deref());
                push_str(&mut a, "hookgate.event_id", row.event_id.as_deref());
                let outcome = if processing {
                    row.o_status.as_deref()
                } else {
                    row.outcome.as_deref()
                };
                push_str(&mut a, "hookgate.outcome", outcome);
                if processing {
                    push_str(&mut a, "hookgate.reason", row.o_reason.as_deref());
                } else {
                    push_str(&mut a, "hookgate.status", row.o_status.as_deref());
                    push_str(&mut a, "hookgate.reason", row.i_reason.as_deref());
                    push_str(&mut a, "hookgate.duplicate_of", row.duplicate_of.as_deref());
                    push_int(
                        &mut a,
                        "http.response.status_code",
                        row.http_status.map(i64::from),
                    );
                }
                let outcome = outcome.unwrap_or("unknown");
                let severity = match outcome {
                    "rejected" | "unresolved" => Severity::Warn,
                    "failed" => Severity::Error,
                    _ => Severity::Info,
                };
                let message = format!(
                    "{kind} {}/{} {}: {outcome}",
                    row.provider.as_deref().unwrap_or("?"),
                    row.connection_id.as_deref().unwrap_or("?"),
                    row.event_type.as_deref().unwrap_or("-"),
                );
                (severity, message)
            }
        };
        Record {
            seq: row.seq,
            kind: row.kind.clone(),
            time_ms: row.at,
            severity,
            message,
            attributes: a,
        }
    }
}

/// OTLP `AnyValue` of a JSON string or integer (integers as strings, as OTLP JSON encodes
/// 64-bit integers).
fn any_value(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!({ "intValue": n.to_string() }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    }
}

fn unix_nano(ms: i64) -> String {
    (i128::from(ms) * 1_000_000).to_string()
}

/// The OTLP/HTTP JSON body (`ExportLogsServiceRequest`) of a batch: one resource
/// (`service.name = hookgate`), one scope, one log record per record.
pub fn otlp_body(records: &[Record], observed_ms: i64) -> Vec<u8> {
    let logs: Vec<Value> = records
        .iter()
        .map(|r| {
            let attributes: Vec<Value> = r
                .attributes
                .iter()
                .map(|(k, v)| json!({ "key": k, "value": any_value(v) }))
                .collect();
            json!({
                "timeUnixNano": unix_nano(r.time_ms),
                "observedTimeUnixNano": unix_nano(observed_ms),
                "severityNumber": r.severity.number(),
                "severityText": r.severity.text(),
                "body": { "stringValue": r.message },
                "attributes": attributes,
            })
        })
        .collect();
    let body = json!({
        "resourceLogs": [{
            "resource": {
                "attributes": [
                    { "key": "service.name", "value": { "stringValue": "hookgate" } },
                    { "key": "service.version", "value": { "stringValue": env!("CARGO_PKG_VERSION") } },
                ]
            },
            "scopeLogs": [{
                "scope": { "name": "hookgate", "version": env!("CARGO_PKG_VERSION") },
                "logRecords": logs,
            }]
        }]
    });
    body.to_string().into_bytes()
}

/// The `http` drain's body: a JSON array, one object per record:
/// `{"seq","record","time","severity","message","attributes":{...}}`.
pub fn http_body(records: &[Record]) -> Vec<u8> {
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            let attributes: Map<String, Value> = r
                .attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            json!({
                "seq": r.seq,
                "record": r.kind,
                "time": format_rfc3339_ms(r.time_ms),
                "severity": r.severity.text(),
                "message": r.message,
                "attributes": attributes,
            })
        })
        .collect();
    Value::Array(list).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_row() -> OutboxRow {
        OutboxRow {
            seq: 7,
            kind: "ingest".into(),
            at: 1_700_000_000_123,
            o_status: Some("pending".into()),
            o_reason: None,
            ingest_id: Some("01HX".into()),
            connection_id: Some("stripe-live".into()),
            provider: Some("stripe".into()),
            workspace: Some("acme".into()),
            outcome: Some("accepted".into()),
            http_status: Some(200),
            event_id: Some("evt_1".into()),
            event_type: Some("invoice.paid".into()),
            i_reason: None,
            duplicate_of: None,
            delivery_seq: None,
            attempt: None,
            status_code: None,
            duration_ms: None,
            error: None,
            endpoint_id: None,
            d_event_type: None,
            d_workspace: None,
            fire_seq: None,
            fire_created_at: None,
        }
    }

    #[test]
    fn otlp_encodes_times_as_strings_and_attributes_as_any_values() {
        let r = Record::from_row(&ingest_row());
        let body: Value =
            serde_json::from_slice(&otlp_body(&[r], 1_700_000_001_000)).expect("json");
        let log = &body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(log["timeUnixNano"], "1700000000123000000");
        assert_eq!(log["severityNumber"], 9);
        assert_eq!(log["severityText"], "INFO");
        let attrs = log["attributes"].as_array().expect("attributes");
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            get("hookgate.provider"),
            Some(json!({"stringValue": "stripe"}))
        );
        assert_eq!(
            get("http.response.status_code"),
            Some(json!({"intValue": "200"}))
        );
        assert_eq!(
            get("hookgate.outcome"),
            Some(json!({"stringValue": "accepted"}))
        );
        assert_eq!(
            body["resourceLogs"][0]["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "hookgate"}})
        );
    }

    #[test]
    fn severity_follows_the_outcome() {
        let mut row = ingest_row();
        row.outcome = Some("rejected".into());
        assert_eq!(Record::from_row(&row).severity, Severity::Warn);
        row.kind = "processing".into();
        row.o_status = Some("failed".into());
        assert_eq!(Record::from_row(&row).severity, Severity::Error);
        row.o_status = Some("processed".into());
        assert_eq!(Record::from_row(&row).severity, Severity::Info);
        let mut d = ingest_row();
        d.kind = "delivery".into();
        d.status_code = Some(503);
        let rec = Record::from_row(&d);
        assert_eq!(rec.severity, Severity::Warn);
        assert!(rec
            .attributes
            .contains(&("hookgate.outcome", Value::String("failed".into()))));
    }
}
