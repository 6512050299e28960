//! The signed webhook: one JSON POST per message to a deployment's own adapter (an SMS gateway,
//! a vendor-push aggregator such as JPush or Getui), so each deployment plugs in its account
//! without code. The receiver checks `X-Aednet-Signature: v1=<hex HMAC-SHA256>` over
//! `<timestamp>.<body>` with the shared secret, and rejects timestamps (`X-Aednet-Timestamp`,
//! Unix seconds) too far from its clock, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-aednet-signature";
pub const TIMESTAMP_HEADER: &str = "x-aednet-timestamp";

/// `v1=<hex>` for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// Whether `signature` is [`sign`]'s for this body and time (constant-time comparison), for
/// receivers written in Rust and for the tests.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = sign(b"k", 1_700_000_000, b"{}");
        assert!(s.starts_with("v1=") && s.len() == 3 + 64);
        assert!(verify(b"k", 1_700_000_000, b"{}", &s));
        assert!(!verify(b"k", 1_700_000_001, b"{}", &s));
        assert!(!verify(b"other", 1_700_000_000, b"{}", &s));
        assert!(!verify(b"k", 1_700_000_000, b"{ }", &s));
        assert!(!verify(b"k", 1_700_000_000, b"{}", "v1=zz"));
    }
}
