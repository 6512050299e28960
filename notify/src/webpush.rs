//! Web Push without a vendor SDK: the message body encrypted for the browser's subscription
//! (RFC 8291, `aes128gcm` content coding of RFC 8188) and the sender identified to the push
//! service by a VAPID token (RFC 8292, an ES256 JWT). Delivery itself is one HTTP POST
//! (RFC 8030), made by [`crate::Notifier`].

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hkdf::Hkdf;
use std::sync::Arc;

use p256::ecdsa::SigningKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size announced in the header; one record carries the whole message.
const RECORD_SIZE: u32 = 4096;
/// The largest plaintext one record holds (record size less the delimiter and the AEAD tag).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 1 - 16;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("invalid {0}")]
    Key(&'static str),
    #[error("payload of {0} bytes is too large for one push message")]
    TooLarge(usize),
}

/// The browser's keys from its subscription, decoded.
#[derive(Debug, Clone)]
pub struct UaKeys {
    pub public: PublicKey,
    pub auth: [u8; 16],
}

impl UaKeys {
    /// From the subscription's `p256dh` (65-byte uncompressed point) and `auth` (16 bytes),
    /// both base64url as browsers give them (padding tolerated).
    pub fn decode(p256dh: &str, auth: &str) -> Result<Self, PushError> {
        let key = b64(p256dh).ok_or(PushError::Key("p256dh"))?;
        if key.len() != 65 || key[0] != 4 {
            return Err(PushError::Key("p256dh"));
        }
        let public = PublicKey::from_sec1_bytes(&key).map_err(|_| PushError::Key("p256dh"))?;
        let auth = b64(auth)
            .and_then(|a| <[u8; 16]>::try_from(a).ok())
            .ok_or(PushError::Key("auth"))?;
        Ok(Self { public, auth })
    }
}

/// base64url with or without padding.
pub fn b64(s: &str) -> Option<Vec<u8>> {
    B64.decode(s.trim().trim_end_matches('=')).ok()
}

/// `plaintext` encrypted for the subscription (RFC 8291 §3.4): a fresh sender key pair and
/// salt per message, one `aes128gcm` record ending in the 0x02 delimiter. The key agreement is
/// `ring`'s (every message pays one key generation and one agreement; the portable `p256`
/// arithmetic made them most of a push's CPU time).
pub fn encrypt(plaintext: &[u8], ua: &UaKeys) -> Result<Vec<u8>, PushError> {
    use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
    // (`seal` refuses a plaintext too large for one record.)
    let rng = ring::rand::SystemRandom::new();
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| PushError::Key("random"))?;
    let as_secret =
        EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| PushError::Key("random"))?;
    let as_public = as_secret
        .compute_public_key()
        .map_err(|_| PushError::Key("random"))?;
    let ua_public = ua.public.to_encoded_point(false);
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public.as_bytes());
    let as_public: [u8; 65] = as_public
        .as_ref()
        .try_into()
        .map_err(|_| PushError::Key("random"))?;
    agree_ephemeral(as_secret, &peer, |shared| {
        seal(
            plaintext,
            ua,
            ua_public.as_bytes(),
            &as_public,
            shared,
            salt,
        )
    })
    .map_err(|_| PushError::Key("p256dh"))?
}

/// [`encrypt`] with the sender key and salt given (the RFC's worked example checks it).
pub fn encrypt_with(
    plaintext: &[u8],
    ua: &UaKeys,
    as_secret: &SecretKey,
    salt: [u8; 16],
) -> Result<Vec<u8>, PushError> {
    let as_public = as_secret.public_key().to_encoded_point(false);
    let ua_public = ua.public.to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua.public.as_affine());
    seal(
        plaintext,
        ua,
        ua_public.as_bytes(),
        as_public.as_bytes(),
        shared.raw_secret_bytes(),
        salt,
    )
}

/// The record from the agreed secret: keys by HKDF as RFC 8291 §3.3–3.4 says, then one
/// AES-128-GCM record with the `aes128gcm` header (RFC 8188 §2.1).
fn seal(
    plaintext: &[u8],
    ua: &UaKeys,
    ua_public: &[u8],
    as_public: &[u8],
    shared: &[u8],
    salt: [u8; 16],
) -> Result<Vec<u8>, PushError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(PushError::TooLarge(plaintext.len()));
    }
    // IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public)
    let mut key_info = Vec::with_capacity(14 + 65 + 65);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&ua.auth), shared)
        .expand(&key_info, &mut ikm)
        .map_err(|_| PushError::Key("hkdf"))?;
    let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .map_err(|_| PushError::Key("hkdf"))?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| PushError::Key("hkdf"))?;
    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let sealed = Aes128Gcm::new(&cek.into())
        .encrypt(Nonce::from_slice(&nonce), record.as_slice())
        .map_err(|_| PushError::Key("aes-gcm"))?;
    let mut out = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(65);
    out.extend_from_slice(as_public);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The application server's VAPID key pair.
#[derive(Clone)]
pub struct Vapid {
    /// Signs the tokens (`ring`'s ES256, as fast as the key agreement of [`encrypt`]).
    key: Arc<ring::signature::EcdsaKeyPair>,
    /// The public key as the `k=` of the header and the browser's `applicationServerKey`.
    public_b64: String,
    /// `mailto:` or `https:` contact for the push service's operators.
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public_b64)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// From the private key as `aednet push keys` prints it (32 bytes, base64url).
    pub fn from_private(private_b64: &str, subject: &str) -> Result<Self, PushError> {
        let bytes = b64(private_b64).ok_or(PushError::Key("vapid private key"))?;
        let key =
            SigningKey::from_slice(&bytes).map_err(|_| PushError::Key("vapid private key"))?;
        let public = key.verifying_key().to_encoded_point(false);
        let public_b64 = B64.encode(public.as_bytes());
        let key = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &bytes,
            public.as_bytes(),
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|_| PushError::Key("vapid private key"))?;
        Ok(Self {
            key: Arc::new(key),
            public_b64,
            subject: subject.to_string(),
        })
    }

    /// A new key pair: (private, public), both base64url.
    pub fn generate() -> (String, String) {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let public = B64.encode(key.verifying_key().to_encoded_point(false).as_bytes());
        (B64.encode(key.to_bytes()), public)
    }

    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header for a push to `endpoint`: `vapid t=<jwt>, k=<public key>`,
    /// the token valid for the endpoint's origin until `exp` (Unix seconds; at most 24 h).
    pub fn authorization(&self, endpoint: &str, exp: i64) -> Result<String, PushError> {
        let url = reqwest::Url::parse(endpoint).map_err(|_| PushError::Key("endpoint"))?;
        let aud = url.origin().ascii_serialization();
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = B64
            .encode(serde_json::json!({"aud": aud, "exp": exp, "sub": self.subject}).to_string());
        let signing_input = format!("{header}.{claims}");
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| PushError::Key("vapid signature"))?;
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(sig.as_ref()),
            self.public_b64
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8291 Appendix A: the worked example, byte for byte.
    #[test]
    fn rfc8291_example() {
        let plaintext = b"When I grow up, I want to be a watermelon";
        let ua = UaKeys::decode(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let as_secret =
            SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").unwrap())
                .unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").unwrap().try_into().unwrap();
        let body = encrypt_with(plaintext, &ua, &as_secret, salt).unwrap();
        assert_eq!(
            B64.encode(body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(matches!(
            UaKeys::decode("AAAA", "BTBZMqHH6r4Tts7J_aSIgg"),
            Err(PushError::Key("p256dh"))
        ));
        let (private, public) = Vapid::generate();
        let ua = UaKeys::decode(&public, "BTBZMqHH6r4Tts7J_aSIgg").unwrap();
        assert!(matches!(
            UaKeys::decode(&public, "short"),
            Err(PushError::Key("auth"))
        ));
        assert!(matches!(
            encrypt(&vec![0; MAX_PLAINTEXT + 1], &ua),
            Err(PushError::TooLarge(_))
        ));
        let v = Vapid::from_private(&private, "mailto:ops@example.org").unwrap();
        assert_eq!(v.public_key(), public);
        assert!(Vapid::from_private("nope", "mailto:x").is_err());
    }
}
