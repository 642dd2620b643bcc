//! The GitHub App's key pair, App JWT verification and installation tokens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::StandInError;

/// Longest App JWT lifetime GitHub accepts (`exp - iat`).
pub const MAX_JWT_LIFETIME_SECS: i64 = 600;
/// Clock drift GitHub tolerates on `iat` and `exp`.
const CLOCK_DRIFT_SECS: i64 = 60;
/// Lifetime of an installation token.
pub const INSTALLATION_TOKEN_TTL: Duration = Duration::hours(1);

/// An App's RSA key pair.
pub struct AppKey {
    private: RsaPrivateKey,
}

impl AppKey {
    /// A fresh RSA-2048 key pair.
    pub fn generate() -> Result<Self, StandInError> {
        let mut rng = rsa::rand_core::OsRng;
        let private =
            RsaPrivateKey::new(&mut rng, 2048).map_err(|e| StandInError::Key(e.to_string()))?;
        Ok(AppKey { private })
    }

    /// Parses a private key PEM (PKCS#1 as GitHub issues it, or PKCS#8).
    pub fn from_private_pem(pem: &str) -> Result<Self, StandInError> {
        let private = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| StandInError::Key(format!("not an RSA private key PEM: {e}")))?;
        Ok(AppKey { private })
    }

    /// Loads the key at `path`, or generates one and writes it there (mode 0600) if absent.
    pub fn load_or_generate(path: &Path) -> Result<Self, StandInError> {
        if path.exists() {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| StandInError::Io(format!("read {}: {e}", path.display())))?;
            return Self::from_private_pem(&pem);
        }
        let key = Self::generate()?;
        key.write_private_pem(path)?;
        Ok(key)
    }

    /// The private key as PKCS#8 PEM (what an App's key file holds).
    pub fn private_pem(&self) -> Result<String, StandInError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| StandInError::Key(e.to_string()))
    }

    fn write_private_pem(&self, path: &Path) -> Result<(), StandInError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io_error =
            |e: std::io::Error| StandInError::Io(format!("write {}: {e}", path.display()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_error)?;
        file.write_all(self.private_pem()?.as_bytes())
            .map_err(io_error)
    }

    /// The public half, as GitHub keeps it to verify the App's JWTs.
    pub fn public_key(&self) -> RsaPublicKey {
        RsaPublicKey::from(&self.private)
    }
}

/// Verifies App JWTs the way GitHub does.
pub struct JwtVerifier {
    app_id: String,
    key: DecodingKey,
}

impl JwtVerifier {
    pub fn new(app_id: u64, public_key: &RsaPublicKey) -> Self {
        // Explicit, so that another crate enabling jsonwebtoken's aws_lc_rs feature in the same
        // build cannot leave the process without a provider.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let key = DecodingKey::from_rsa_raw_components(
            &public_key.n().to_bytes_be(),
            &public_key.e().to_bytes_be(),
        );
        JwtVerifier {
            app_id: app_id.to_string(),
            key,
        }
    }

    /// Checks signature (RS256), `iss`, `iat` and `exp`; the error is GitHub's message.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<(), String> {
        let mut validation = Validation::new(Algorithm::RS256);
        // Claims are checked below with GitHub's own rules and messages (`iss` may be a number).
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "A JSON web token could not be decoded".to_owned()
                }
                _ => format!("A JSON web token could not be decoded ({e})"),
            })?
            .claims;
        let now = now.timestamp();
        let iat = claims["iat"].as_i64().ok_or(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        )?;
        let exp = claims["exp"].as_i64().ok_or(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        )?;
        // GitHub accepts the App id as a number or a string.
        let iss = match &claims["iss"] {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => String::new(),
        };
        if iss != self.app_id {
            return Err("'Issuer' claim ('iss') must be the App's id".to_owned());
        }
        if iat > now + CLOCK_DRIFT_SECS {
            return Err(
                "'Issued at' claim ('iat') must be an Integer representing a time in the past"
                    .to_owned(),
            );
        }
        if exp <= now - CLOCK_DRIFT_SECS {
            return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_owned());
        }
        if exp - iat > MAX_JWT_LIFETIME_SECS || exp > now + MAX_JWT_LIFETIME_SECS + CLOCK_DRIFT_SECS
        {
            return Err("'Expiration time' claim ('exp') is too far in the future".to_owned());
        }
        Ok(())
    }
}

/// Installation tokens handed out so far, with their expiry.
#[derive(Default)]
pub struct TokenStore {
    tokens: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl TokenStore {
    /// A new `ghs_` token valid for an hour.
    pub fn issue(&self, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut random = [0u8; 36];
        // The OS RNG failing is not recoverable for a token issuer; a fixed token would be worse.
        getrandom::fill(&mut random).expect("the OS random number generator is available");
        let suffix: String = random
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        let token = format!("ghs_{suffix}");
        let expires_at = now + INSTALLATION_TOKEN_TTL;
        self.lock().insert(token.clone(), expires_at);
        (token, expires_at)
    }

    pub fn is_valid(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|expires_at| *expires_at > now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use std::sync::OnceLock;

    fn key() -> &'static AppKey {
        static KEY: OnceLock<AppKey> = OnceLock::new();
        KEY.get_or_init(|| AppKey::generate().expect("generate key"))
    }

    fn sign(key: &AppKey, claims: serde_json::Value) -> String {
        let pem = key.private_pem().expect("pem");
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("encoding key");
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &encoding).expect("sign")
    }

    #[test]
    fn accepts_a_well_formed_app_jwt_with_numeric_or_string_iss() {
        let verifier = JwtVerifier::new(42, &key().public_key());
        let now = Utc::now();
        let t = now.timestamp();
        for iss in [serde_json::json!(42), serde_json::json!("42")] {
            let jwt = sign(
                key(),
                serde_json::json!({"iat": t - 60, "exp": t + 540, "iss": iss}),
            );
            assert_eq!(verifier.verify(&jwt, now), Ok(()));
        }
    }

    #[test]
    fn rejects_wrong_issuer_and_garbage() {
        let verifier = JwtVerifier::new(42, &key().public_key());
        let now = Utc::now();
        let t = now.timestamp();
        let jwt = sign(
            key(),
            serde_json::json!({"iat": t, "exp": t + 60, "iss": 43}),
        );
        assert!(verifier.verify(&jwt, now).is_err());
        assert!(verifier.verify("not.a.jwt", now).is_err());
    }

    #[test]
    fn private_pem_round_trips() {
        let pem = key().private_pem().expect("pem");
        let again = AppKey::from_private_pem(&pem).expect("parse");
        assert_eq!(again.public_key(), key().public_key());
    }
}
