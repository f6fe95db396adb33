//! Encryption at rest for connection secrets (`connections.secrets`).
//!
//! With a key configured (`HOOKGATE_SECRET_KEY` / `secret_key`, 32 bytes as 64 hex characters or
//! base64), every write of a connection's secrets stores `enc:v1:<base64(nonce || ciphertext)>`:
//! AES-256-GCM with a fresh random 96-bit nonce per write, and the connection id as associated
//! data, so a ciphertext copied onto another connection's row does not decrypt.
//! Without a key, secrets are stored as the plaintext JSON array they always were, and a row
//! written either way stays readable: plaintext rows keep working after a key is added and are
//! encrypted on their next write (or by `hookgate connections reencrypt`).
//!
//! Nothing here reads the environment (config.rs hands the key text over), and no error or
//! `Debug` output carries key material or a secret.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The prefix of an encrypted `connections.secrets` value (format version 1).
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// Any version of the encrypted format; a value starting with this is never read as plaintext.
const ENCRYPTED_MARKER: &str = "enc:";
const NONCE_LEN: usize = 12;

/// The key that encrypts connection secrets. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
    /// Keys from before a rotation (`HOOKGATE_SECRET_KEY_PREVIOUS`): tried, in order, for
    /// reading a value the current key does not open; never used to write.
    previous: Vec<Aes256Gcm>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a key text is not a usable key. The messages never contain the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is empty")]
    Empty,
    #[error("must be 32 bytes given as 64 hex characters or as base64 (e.g. `openssl rand -hex 32`); it decodes to {0} bytes")]
    WrongLength(usize),
    #[error("must be 32 bytes given as 64 hex characters or as base64 (e.g. `openssl rand -hex 32`); it is neither")]
    NotHexOrBase64,
}

impl SecretKey {
    /// Parses 64 hex characters or base64 (standard or URL-safe, padded or not) of 32 bytes.
    ///
    /// # Errors
    /// What is wrong with the text, never the text itself.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| KeyError::NotHexOrBase64)?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or(KeyError::NotHexOrBase64)?
        };
        if bytes.len() != 32 {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength(32))?;
        Ok(SecretKey {
            cipher,
            previous: Vec::new(),
        })
    }

    /// This key for writing, also reading values written with any of `previous` (a rotation:
    /// rows not yet moved to the new key stay readable until `connections reencrypt`).
    #[must_use]
    pub fn with_previous(mut self, previous: Vec<SecretKey>) -> SecretKey {
        self.previous
            .extend(previous.into_iter().map(|key| key.cipher));
        self
    }

    /// How many previous keys this key also reads with.
    pub fn previous_count(&self) -> usize {
        self.previous.len()
    }

    /// Encrypts `plaintext` for the row `aad` names, with a fresh random nonce.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption fails only for plaintexts beyond GCM's 64 GiB limit; a JSON array of
        // connection secrets is a few hundred bytes.
        let Ok(ciphertext) = self.cipher.encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        ) else {
            unreachable!("AES-GCM encrypts any plaintext under 64 GiB")
        };
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(sealed))
    }

    /// Decrypts a value [`SecretKey::seal`] made for the same `aad`.
    fn open(&self, aad: &[u8], stored: &str) -> Result<Vec<u8>, SecretsError> {
        let encoded = stored
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(SecretsError::UnknownFormat)?;
        let sealed = STANDARD
            .decode(encoded)
            .map_err(|_| SecretsError::Malformed)?;
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SecretsError::Malformed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        std::iter::once(&self.cipher)
            .chain(&self.previous)
            .find_map(|cipher| {
                cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad,
                        },
                    )
                    .ok()
            })
            .ok_or(SecretsError::WrongKey)
    }
}

/// Why a stored `connections.secrets` value cannot be read. Callers add the connection id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("its secrets are encrypted but no secret key is configured; set HOOKGATE_SECRET_KEY (or `secret_key` in the config file) to the key they were written with")]
    NoKey,
    #[error("its secrets do not decrypt with the configured secret key (a different key, or the value was altered); set HOOKGATE_SECRET_KEY to the key they were written with")]
    WrongKey,
    #[error("its encrypted secrets are not valid `enc:v1:` base64")]
    Malformed,
    #[error("its secrets use an encryption format this version does not know; upgrade hookgate")]
    UnknownFormat,
    #[error("its stored secrets are not a JSON array of strings")]
    NotJson,
}

/// A column holding values encrypted with the secret key, as `hookgate connections reencrypt`
/// moves them to a new key. Each value's associated data is `hookgate:<table>.<column>:<id>`,
/// binding it to its row.
#[derive(Debug, Clone, Copy)]
pub struct EncryptedColumn {
    pub table: &'static str,
    pub id_column: &'static str,
    pub column: &'static str,
}

/// Every column encrypted at rest. Outbound endpoints' signing secrets, once they exist, are
/// one more entry here (and `encode_value`/`decode_value` with it where they are written).
pub const ENCRYPTED_COLUMNS: &[EncryptedColumn] = &[
    EncryptedColumn {
        table: "connections",
        id_column: "id",
        column: "secrets",
    },
    // Endpoint signing secrets, written by `delivery::endpoint` through `seal_text` with the
    // same associated data (`hookgate:endpoints.secrets:<id>`).
    EncryptedColumn {
        table: "endpoints",
        id_column: "id",
        column: "secrets",
    },
];

impl EncryptedColumn {
    fn aad(&self, id: &str) -> Vec<u8> {
        format!("hookgate:{}.{}:{id}", self.table, self.column).into_bytes()
    }

    /// The value to store for row `id`: `plaintext` encrypted with `key`, else as it is.
    pub fn encode_value(&self, id: &str, plaintext: &[u8], key: Option<&SecretKey>) -> String {
        match key {
            Some(key) => key.seal(&self.aad(id), plaintext),
            None => String::from_utf8_lossy(plaintext).into_owned(),
        }
    }

    /// The plaintext of a stored value of row `id` (a plaintext value needs no key).
    ///
    /// # Errors
    /// The value is encrypted and the key (current or previous) is missing or wrong, or the
    /// value is damaged.
    pub fn decode_value(
        &self,
        id: &str,
        stored: &str,
        key: Option<&SecretKey>,
    ) -> Result<Vec<u8>, SecretsError> {
        if is_encrypted(stored) {
            key.ok_or(SecretsError::NoKey)?.open(&self.aad(id), stored)
        } else {
            Ok(stored.as_bytes().to_vec())
        }
    }
}

const CONNECTION_SECRETS: EncryptedColumn = ENCRYPTED_COLUMNS[0];

/// Whether a stored value is encrypted (in any format version).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(ENCRYPTED_MARKER)
}

/// The value to store for `secrets` of `connection_id`: encrypted with `key`, else plaintext JSON.
pub fn encode_secrets(connection_id: &str, secrets: &[&str], key: Option<&SecretKey>) -> String {
    let json = serde_json::to_string(secrets).unwrap_or_else(|_| "[]".into());
    CONNECTION_SECRETS.encode_value(connection_id, json.as_bytes(), key)
}

/// Reads a stored value back into the secrets (plaintext rows need no key).
///
/// # Errors
/// The row is encrypted and the key is missing or wrong, or the value is damaged.
pub fn decode_secrets(
    connection_id: &str,
    stored: &str,
    key: Option<&SecretKey>,
) -> Result<Vec<String>, SecretsError> {
    let json = CONNECTION_SECRETS.decode_value(connection_id, stored, key)?;
    // The serde error is dropped on purpose: its message can quote the value.
    serde_json::from_slice(&json).map_err(|_| SecretsError::NotJson)
}

/// The value to store for an arbitrary secret-bearing `text` of row `row` in `table`
/// (`endpoints.secrets`, ...): encrypted with `key` and bound to that row, else the text as is.
pub fn seal_text(table: &str, row: &str, text: &str, key: Option<&SecretKey>) -> String {
    match key {
        Some(key) => key.seal(
            format!("hookgate:{table}:{row}").as_bytes(),
            text.as_bytes(),
        ),
        None => text.to_owned(),
    }
}

/// Reads back a value [`seal_text`] stored for the same table and row.
///
/// # Errors
/// The value is encrypted and the key is missing or wrong, or it is damaged.
pub fn open_text(
    table: &str,
    row: &str,
    stored: &str,
    key: Option<&SecretKey>,
) -> Result<String, SecretsError> {
    if !is_encrypted(stored) {
        return Ok(stored.to_owned());
    }
    let key = key.ok_or(SecretsError::NoKey)?;
    let bytes = key.open(format!("hookgate:{table}:{row}").as_bytes(), stored)?;
    String::from_utf8(bytes).map_err(|_| SecretsError::NotJson)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> SecretKey {
        SecretKey::parse(HEX).expect("key")
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let secrets = ["whsec_round_trip_secret", "second"];
        let a = encode_secrets("conn-1", &secrets, Some(&key()));
        let b = encode_secrets("conn-1", &secrets, Some(&key()));
        assert!(a.starts_with(ENCRYPTED_PREFIX), "{a}");
        assert_ne!(a, b, "every write gets a fresh nonce");
        assert!(!a.contains("round_trip"));
        for stored in [&a, &b] {
            assert_eq!(
                decode_secrets("conn-1", stored, Some(&key())).expect("decrypts"),
                secrets
            );
        }
    }

    #[test]
    fn plaintext_rows_read_with_or_without_a_key() {
        let stored = encode_secrets("c", &["plain-secret"], None);
        assert_eq!(stored, r#"["plain-secret"]"#);
        assert_eq!(
            decode_secrets("c", &stored, None).expect("plain"),
            ["plain-secret"]
        );
        assert_eq!(
            decode_secrets("c", &stored, Some(&key())).expect("plain with key"),
            ["plain-secret"]
        );
    }

    #[test]
    fn wrong_or_missing_key_is_an_error() {
        let stored = encode_secrets("c", &["s3cret-value"], Some(&key()));
        assert_eq!(decode_secrets("c", &stored, None), Err(SecretsError::NoKey));
        let other = SecretKey::parse(&"ab".repeat(32)).expect("key");
        assert_eq!(
            decode_secrets("c", &stored, Some(&other)),
            Err(SecretsError::WrongKey)
        );
        // Bound to its row: the same ciphertext on another connection does not decrypt.
        assert_eq!(
            decode_secrets("other-connection", &stored, Some(&key())),
            Err(SecretsError::WrongKey)
        );
        for error in [SecretsError::NoKey, SecretsError::WrongKey] {
            assert!(error.to_string().contains("HOOKGATE_SECRET_KEY"));
        }
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let stored = encode_secrets("c", &["s3cret-value"], Some(&key()));
        let mut sealed = STANDARD
            .decode(&stored[ENCRYPTED_PREFIX.len()..])
            .expect("base64");
        for i in [0, NONCE_LEN, sealed.len() - 1] {
            sealed[i] ^= 0x01;
            let tampered = format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(&sealed));
            assert_eq!(
                decode_secrets("c", &tampered, Some(&key())),
                Err(SecretsError::WrongKey),
                "byte {i}"
            );
            sealed[i] ^= 0x01;
        }
        for bad in ["enc:v1:!!!", "enc:v1:", "enc:v1:AAAA", "enc:v2:AAAA"] {
            assert!(decode_secrets("c", bad, Some(&key())).is_err(), "{bad}");
        }
        assert_eq!(
            decode_secrets("c", "not json", None),
            Err(SecretsError::NotJson)
        );
    }

    #[test]
    fn keys_parse_from_hex_and_base64_only_at_32_bytes() {
        let bytes: Vec<u8> = (0u8..32).collect();
        for text in [
            HEX.to_owned(),
            HEX.to_uppercase(),
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
        ] {
            let parsed = SecretKey::parse(&text).expect("parses");
            let stored = encode_secrets("c", &["x"], Some(&parsed));
            assert_eq!(
                decode_secrets("c", &stored, Some(&key())).expect("same key"),
                ["x"]
            );
        }
        assert_eq!(SecretKey::parse("").err(), Some(KeyError::Empty));
        assert_eq!(
            SecretKey::parse(&STANDARD.encode([1u8; 16])).err(),
            Some(KeyError::WrongLength(16))
        );
        let error = SecretKey::parse("not a key, surely-secret-text").expect_err("bad");
        assert!(!error.to_string().contains("surely-secret-text"));
        assert_eq!(format!("{:?}", key()), "SecretKey(<redacted>)");
    }
}
