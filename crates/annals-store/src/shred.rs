//! Crypto-shredding: the data of chosen events is encrypted with a key of
//! its *subject* (a person, a tenant: an id the application gives), and
//! [`EventStore::forget`](crate::EventStore::forget) deletes that key. The log stays append-only and
//! untouched; the events stay readable as events (stream, version, type,
//! tags, metadata), and their data reads as [`Decoded::Erased`].
//!
//! # The keys
//!
//! - The **master key** ([`MasterKey`], 32 random bytes) is the
//!   application's: from an environment variable, a file, a KMS. It never
//!   reaches the store. Two keys are derived from it with BLAKE3's
//!   `derive_key` (each with its own context string): the *wrapping key*
//!   and the *subject-id key*.
//! - A **data key** (32 random bytes) per subject encrypts that subject's
//!   events. It is kept in the aux space *wrapped* (encrypted) with the
//!   wrapping key, under `annals-store/shred/key/<subject id>`, with a
//!   random 16-byte *generation* that tells it from a key the same subject
//!   may get after being forgotten.
//! - The **subject id** is the first 16 bytes of BLAKE3's keyed hash of
//!   the subject under the subject-id key, in hex. So the subject itself
//!   (an e-mail, a customer number) is written nowhere by the store, and
//!   nobody without the master key can tell which id belongs to whom.
//! - A **key check** (`annals-store/shred/check`): a known text encrypted
//!   with the wrapping key when a master key is first used on the store.
//!   Opening the store with another master key fails on it with
//!   `Error::InvalidInput`, instead of reading every sealed event as erased.
//!
//! # The ciphers
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`), an AEAD with
//! 192-bit nonces: each encryption draws its nonce from the operating
//! system's random generator, and at 192 bits random nonces never collide
//! in practice, so no counter has to be kept (and survive crashes) per key.
//!
//! - Wrapping a data key: associated data `"annals-store data key v1"`,
//!   the subject id and the generation, so a wrapped key copied under
//!   another subject's entry does not unwrap.
//! - Sealing an event's data: associated data `"annals-store sealed event
//!   v1"`, the **event id** and the stored event type, so sealed data
//!   copied into another event (or relabelled) fails authentication
//!   instead of decrypting as that event.
//!
//! # A sealed event's data
//!
//! ```text
//! FF "annals" 01 | subject id (16) | generation (16) | nonce (24) | ciphertext + tag (16)
//! ```
//!
//! 80 bytes more than the plaintext. The first byte, `FF`, never starts
//! UTF-8 text or JSON.

use annals_core::{CorruptionAt, FailedCondition, Field};
use std::collections::HashMap;
use std::fmt;

use annals_core::{AuxWrite, Error, RecordedEvent, Result, show_bytes};
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::keys;

/// The first bytes of a sealed event's data.
pub(crate) const MAGIC: &[u8; 8] = b"\xFFannals\x01";
const ID_BYTES: usize = 16;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const KEY_BYTES: usize = 32;
/// Bytes a sealed event's data has beyond its plaintext.
pub const SEAL_OVERHEAD: usize = MAGIC.len() + 2 * ID_BYTES + NONCE_BYTES + TAG_BYTES;

const WRAP_CONTEXT: &str = "annals-store 2026-12 data key wrapping";
const SUBJECT_CONTEXT: &str = "annals-store 2026-12 subject ids";
const WRAP_AAD: &[u8] = b"annals-store data key v1";
const SEAL_AAD: &[u8] = b"annals-store sealed event v1";
const CHECK_AAD: &[u8] = b"annals-store key check v1";
const CHECK_TEXT: &[u8] = b"annals-store master key check";
/// Format byte of key entries and of the key check.
const FORMAT: u8 = 1;

/// The aux prefix of everything crypto-shredding keeps (the key check and
/// the wrapped data keys): what a copy of a store must take along for its
/// sealed events to stay readable.
pub const KEYS_PREFIX: &str = "annals-store/shred/";

/// Longest subject, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;

/// The application's master key: 32 bytes that should come from a
/// cryptographically secure source (a KMS, `openssl rand -hex 32`), never
/// from a password. It is wiped from memory when dropped and never shown
/// by `Debug`.
///
/// ```
/// use annals_store::MasterKey;
/// let key = MasterKey::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")?;
/// assert_eq!(format!("{key:?}"), "MasterKey(…)");
/// assert!(MasterKey::from_hex("abcd").is_err());
/// # Ok::<(), annals_core::Error>(())
/// ```
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// A master key of these 32 bytes.
    pub fn new(bytes: [u8; KEY_BYTES]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A new random master key (from the operating system's generator).
    /// Keep it: without it no sealed event can be read again.
    pub fn generate() -> Result<Self> {
        let bytes = <[u8; KEY_BYTES]>::try_generate().map_err(random_failed)?;
        Ok(MasterKey::new(bytes))
    }

    /// A master key written as 64 hexadecimal digits (surrounding
    /// whitespace is ignored). Anything else is `Error::InvalidInput`,
    /// which never repeats the text.
    pub fn from_hex(text: &str) -> Result<Self> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        if text.len() != 2 * KEY_BYTES {
            return Err(Error::malformed(
                Field::Setting,
                format!(
                    "a master key is {} hexadecimal digits, not {}",
                    2 * KEY_BYTES,
                    text.len()
                ),
            ));
        }
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            match (pair, bytes.get_mut(i)) {
                ([hi, lo], Some(byte)) => match (digit(*hi), digit(*lo)) {
                    (Some(h), Some(l)) => *byte = (h * 16 + l) as u8,
                    _ => {
                        return Err(Error::malformed(
                            Field::Setting,
                            format!(
                                "a master key is hexadecimal: character {} or {} is not a hex digit",
                                2 * i + 1,
                                2 * i + 2
                            ),
                        ));
                    }
                },
                _ => {
                    return Err(Error::malformed(
                        Field::Setting,
                        "a master key is malformed",
                    ));
                }
            }
        }
        Ok(MasterKey(bytes))
    }

    /// The master key in environment variable `var` (64 hexadecimal
    /// digits). A missing or malformed variable is `Error::InvalidInput`
    /// naming the variable, never its value.
    pub fn from_env(var: &str) -> Result<Self> {
        // VarError's Display would show a non-Unicode value: say why here.
        let value = Zeroizing::new(std::env::var(var).map_err(|e| {
            let why = match e {
                std::env::VarError::NotPresent => "it is not set",
                std::env::VarError::NotUnicode(_) => "it is not Unicode text",
            };
            Error::malformed(
                Field::Setting,
                format!("environment variable {var} holds no master key: {why}"),
            )
        })?);
        MasterKey::from_hex(&value).map_err(|e| {
            Error::malformed(Field::Setting, format!("environment variable {var}: {e}"))
        })
    }

    /// The master key as 64 lowercase hexadecimal digits (to store it
    /// where the application keeps its secrets).
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(2 * KEY_BYTES));
        for b in self.0.iter() {
            out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            out.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        out
    }
}

fn random_failed(e: impl fmt::Display) -> Error {
    Error::backend(
        "the operating system's random generator failed",
        e.to_string(),
    )
}

/// A subject's data key as found in the aux space.
pub(crate) struct DataKey {
    pub subject: [u8; ID_BYTES],
    pub generation: [u8; ID_BYTES],
    cipher: XChaCha20Poly1305,
}

/// The ciphers derived from the master key.
#[derive(Clone)]
pub(crate) struct KeyRing {
    wrap: XChaCha20Poly1305,
    subject_key: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyRing(…)")
    }
}

/// How a sealed event's data opens.
pub(crate) enum Opened {
    /// The plaintext.
    Plain(Vec<u8>),
    /// The subject's key (this generation of it) is gone: forgotten.
    Erased,
}

impl KeyRing {
    pub(crate) fn new(master: &MasterKey) -> Self {
        let mut wrap = blake3::derive_key(WRAP_CONTEXT, master.0.as_ref());
        let cipher = XChaCha20Poly1305::new(&Key::from(wrap));
        wrap.zeroize();
        KeyRing {
            wrap: cipher,
            subject_key: Zeroizing::new(blake3::derive_key(SUBJECT_CONTEXT, master.0.as_ref())),
        }
    }

    /// The id under which `subject`'s key is kept.
    pub(crate) fn subject_id(&self, subject: &str) -> Result<[u8; ID_BYTES]> {
        check_subject(subject)?;
        let hash = blake3::keyed_hash(&self.subject_key, subject.as_bytes());
        let mut id = [0u8; ID_BYTES];
        id.copy_from_slice(hash.as_bytes().get(..ID_BYTES).unwrap_or(&[0; ID_BYTES]));
        Ok(id)
    }

    /// Checks (or, on a store that has none yet, makes) the key check
    /// value: the aux write to commit when it is new, `None` when the
    /// store's check opens with this master key. Another master key is
    /// `Error::InvalidInput`.
    pub(crate) fn check(&self, existing: Option<&[u8]>) -> Result<Option<Vec<u8>>> {
        let Some(value) = existing else {
            let nonce = XNonce::try_generate().map_err(random_failed)?;
            let sealed = self
                .wrap
                .encrypt(
                    &nonce,
                    Payload {
                        msg: CHECK_TEXT,
                        aad: CHECK_AAD,
                    },
                )
                .map_err(|_| Error::backend("encrypting the key check", "AEAD failure"))?;
            let mut value = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
            value.push(FORMAT);
            value.extend_from_slice(nonce.as_slice());
            value.extend_from_slice(&sealed);
            return Ok(Some(value));
        };
        let opened = match value {
            [FORMAT, rest @ ..] if rest.len() > NONCE_BYTES => {
                let (nonce, sealed) = rest.split_at(NONCE_BYTES);
                let nonce = XNonce::try_from(nonce).map_err(|_| check_damaged(value))?;
                self.wrap
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: sealed,
                            aad: CHECK_AAD,
                        },
                    )
                    .ok()
            }
            _ => return Err(check_damaged(value)),
        };
        match opened {
            Some(text) if text == CHECK_TEXT => Ok(None),
            _ => Err(Error::malformed(
                Field::Setting,
                format!(
                    "wrong master key: this store's data keys were made with another master key \
                 (its key check {} does not open with the one given)",
                    String::from_utf8_lossy(keys::SHRED_CHECK)
                ),
            )),
        }
    }

    /// A new data key for `subject`, and its aux entry.
    pub(crate) fn new_key(&self, subject: [u8; ID_BYTES]) -> Result<(DataKey, Vec<u8>)> {
        let mut secret = Zeroizing::new(<[u8; KEY_BYTES]>::try_generate().map_err(random_failed)?);
        let generation = <[u8; ID_BYTES]>::try_generate().map_err(random_failed)?;
        let nonce = XNonce::try_generate().map_err(random_failed)?;
        let aad = wrap_aad(&subject, &generation);
        let wrapped = self
            .wrap
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::backend("wrapping a data key", "AEAD failure"))?;
        let mut entry = Vec::with_capacity(1 + ID_BYTES + NONCE_BYTES + wrapped.len());
        entry.push(FORMAT);
        entry.extend_from_slice(&generation);
        entry.extend_from_slice(nonce.as_slice());
        entry.extend_from_slice(&wrapped);
        let cipher = XChaCha20Poly1305::new(&Key::from(*secret));
        secret.zeroize();
        Ok((
            DataKey {
                subject,
                generation,
                cipher,
            },
            entry,
        ))
    }

    /// The data key in `entry`, the aux value at `key` for `subject`.
    /// An entry that does not unwrap is `Error::Corruption` naming the key
    /// (the master key itself was checked when the store was opened).
    pub(crate) fn unwrap_key(
        &self,
        key: &[u8],
        subject: [u8; ID_BYTES],
        entry: &[u8],
    ) -> Result<DataKey> {
        let damaged = |why: &str| {
            Error::corruption(
                CorruptionAt::AuxKey(key.to_vec()),
                format!(
                    "data key entry {} ({} bytes) {why}",
                    show_bytes(key),
                    entry.len()
                ),
            )
        };
        let [FORMAT, rest @ ..] = entry else {
            return Err(damaged("is not a key entry of format 1"));
        };
        if rest.len() != ID_BYTES + NONCE_BYTES + KEY_BYTES + TAG_BYTES {
            return Err(damaged("has the wrong length"));
        }
        let (generation, rest) = rest.split_at(ID_BYTES);
        let (nonce, wrapped) = rest.split_at(NONCE_BYTES);
        let mut gen_bytes = [0u8; ID_BYTES];
        gen_bytes.copy_from_slice(generation);
        let nonce = XNonce::try_from(nonce).map_err(|_| damaged("has a bad nonce"))?;
        let aad = wrap_aad(&subject, &gen_bytes);
        let secret = Zeroizing::new(
            self.wrap
                .decrypt(
                    &nonce,
                    Payload {
                        msg: wrapped,
                        aad: &aad,
                    },
                )
                .map_err(|_| damaged("does not unwrap with the master key (damaged or moved)"))?,
        );
        let cipher = XChaCha20Poly1305::new_from_slice(&secret)
            .map_err(|_| damaged("holds a key of the wrong size"))?;
        Ok(DataKey {
            subject,
            generation: gen_bytes,
            cipher,
        })
    }
}

fn check_damaged(value: &[u8]) -> Error {
    Error::corruption(
        CorruptionAt::AuxKey(keys::SHRED_CHECK.to_vec()),
        format!(
            "the key check at aux key {} ({} bytes) is not of format {FORMAT}",
            String::from_utf8_lossy(keys::SHRED_CHECK),
            value.len()
        ),
    )
}

fn wrap_aad(subject: &[u8; ID_BYTES], generation: &[u8; ID_BYTES]) -> Vec<u8> {
    [WRAP_AAD, subject, generation].concat()
}

fn seal_aad(event_id: &annals_core::Uuid, event_type: &str) -> Vec<u8> {
    [SEAL_AAD, event_id.as_bytes(), event_type.as_bytes()].concat()
}

/// Checks a subject: 1 to [`MAX_SUBJECT_BYTES`] bytes.
pub(crate) fn check_subject(subject: &str) -> Result<()> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(Error::malformed(
            Field::Setting,
            format!(
                "a subject is 1 to {MAX_SUBJECT_BYTES} bytes, not {}",
                subject.len()
            ),
        ));
    }
    Ok(())
}

impl DataKey {
    /// `data` sealed as the data of the event `event_id` of type
    /// `event_type`.
    pub(crate) fn seal(
        &self,
        event_id: &annals_core::Uuid,
        event_type: &str,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        let nonce = XNonce::try_generate().map_err(random_failed)?;
        let aad = seal_aad(event_id, event_type);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: data,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::backend("sealing an event", "AEAD failure"))?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + data.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.subject);
        out.extend_from_slice(&self.generation);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }
}

/// The parts of a sealed event's data.
pub(crate) struct Envelope<'a> {
    pub subject: [u8; ID_BYTES],
    pub generation: [u8; ID_BYTES],
    nonce: &'a [u8],
    sealed: &'a [u8],
}

/// Whether `event`'s data is sealed (it may then be erased).
///
/// ```
/// use annals_core::{NewEvent, RecordedEvent};
/// # let event = |data: &[u8]| RecordedEvent {
/// #     stream_id: annals_core::StreamId::new("s").unwrap(), stream_version: annals_core::Version(0),
/// #     position: annals_core::Position(1), recorded_at: annals_core::Timestamp(0),
/// #     event_id: annals_core::Uuid::nil(), event_type: "T".into(), data: data.to_vec(),
/// #     metadata: vec![], tags: vec![] };
/// assert!(!annals_store::is_sealed(&event(br#"{"plain":true}"#)));
/// ```
pub fn is_sealed(event: &RecordedEvent) -> bool {
    event.data.starts_with(MAGIC)
}

/// The envelope of a sealed event's data; `None` if it is not sealed. An
/// envelope too short to hold its parts is `Error::Corruption` naming the
/// event.
pub(crate) fn envelope(event: &RecordedEvent) -> Result<Option<Envelope<'_>>> {
    let Some(rest) = event.data.strip_prefix(MAGIC.as_slice()) else {
        return Ok(None);
    };
    if rest.len() < 2 * ID_BYTES + NONCE_BYTES + TAG_BYTES {
        return Err(Error::corruption(
            CorruptionAt::Position(event.position),
            format!(
                "the sealed data of the event of stream {} at version {} has {} bytes, \
             fewer than a sealed event's {SEAL_OVERHEAD}",
                event.stream_id,
                event.stream_version,
                event.data.len()
            ),
        ));
    }
    let (subject, rest) = rest.split_at(ID_BYTES);
    let (generation, rest) = rest.split_at(ID_BYTES);
    let (nonce, sealed) = rest.split_at(NONCE_BYTES);
    let mut env = Envelope {
        subject: [0; ID_BYTES],
        generation: [0; ID_BYTES],
        nonce,
        sealed,
    };
    env.subject.copy_from_slice(subject);
    env.generation.copy_from_slice(generation);
    Ok(Some(env))
}

impl Envelope<'_> {
    /// Opens the envelope of `event` with `key`, the subject's current key
    /// (`None`: it has none, it was forgotten).
    pub(crate) fn open(&self, event: &RecordedEvent, key: Option<&DataKey>) -> Result<Opened> {
        let Some(key) = key.filter(|k| k.generation == self.generation) else {
            return Ok(Opened::Erased);
        };
        let failed = || {
            Error::corruption(
                CorruptionAt::Position(event.position),
                format!(
                    "the sealed data of the event of stream {} at version {} (type {:?}, id {}) \
                 fails authentication: damaged, or copied from another event",
                    event.stream_id, event.stream_version, event.event_type, event.event_id
                ),
            )
        };
        let nonce = XNonce::try_from(self.nonce).map_err(|_| failed())?;
        let aad = seal_aad(&event.event_id, &event.event_type);
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: self.sealed,
                    aad: &aad,
                },
            )
            .map(Opened::Plain)
            .map_err(|_| failed())
    }
}

/// The data keys looked up while revealing one page, by subject id: a key
/// is read from the aux space once per page, never kept longer, so a
/// `forget` in another process is honoured by the next page.
#[derive(Default)]
pub(crate) struct PageKeys {
    keys: HashMap<[u8; ID_BYTES], Option<DataKey>>,
}

impl PageKeys {
    pub(crate) async fn get(
        &mut self,
        ring: &KeyRing,
        backend: &dyn annals_core::LogBackend,
        subject: [u8; ID_BYTES],
    ) -> Result<Option<&DataKey>> {
        let slot = match self.keys.entry(subject) {
            std::collections::hash_map::Entry::Occupied(slot) => slot.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let key = keys::shred_key(&subject);
                let found = match backend.aux_get(&key).await? {
                    Some(entry) => Some(ring.unwrap_key(&key, subject, &entry)?),
                    None => None,
                };
                slot.insert(found)
            }
        };
        Ok(slot.as_ref())
    }
}

/// What [`Decoded`] holds for an event: the value, or the marker of data
/// erased by [`EventStore::forget`](crate::EventStore::forget).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decoded<E> {
    /// The event's value.
    Event(E),
    /// The event's data was sealed for a subject that has since been
    /// forgotten: only the event itself (stream, version, type, tags,
    /// metadata) is left. Not an error: a projection skips it and goes on.
    Erased,
}

/// A decoded value equals the value itself (`typed.event == value`);
/// erased data equals no value.
impl<E: PartialEq> PartialEq<E> for Decoded<E> {
    fn eq(&self, other: &E) -> bool {
        self.event() == Some(other)
    }
}

impl<E> Decoded<E> {
    /// The value, unless erased.
    pub fn event(&self) -> Option<&E> {
        match self {
            Decoded::Event(e) => Some(e),
            Decoded::Erased => None,
        }
    }

    /// The value, unless erased.
    pub fn into_event(self) -> Option<E> {
        match self {
            Decoded::Event(e) => Some(e),
            Decoded::Erased => None,
        }
    }

    /// Whether the data was erased.
    pub fn is_erased(&self) -> bool {
        matches!(self, Decoded::Erased)
    }
}

/// The aux writes that make sure `subject`'s key is `key` when the append
/// they ride on commits (\[X2\]): the entry is put if absent (a new key) or
/// put again unchanged if equal (an existing one), so an append racing a
/// `forget` fails instead of writing data under a forgotten key.
pub(crate) fn key_guard(subject: &[u8; ID_BYTES], entry: Vec<u8>, new: bool) -> AuxWrite {
    let write = AuxWrite::put(keys::shred_key(subject), entry.clone());
    if new {
        write.if_absent()
    } else {
        write.if_equals(entry)
    }
}

/// How many times an append of sealed events is tried again when a key
/// it relies on was created or forgotten meanwhile.
const SEAL_ATTEMPTS: usize = 8;

impl crate::EventStore {
    fn key_ring(&self, what: &str) -> Result<&KeyRing> {
        self.inner.history.keys.as_ref().ok_or_else(|| {
            Error::malformed(Field::Setting, format!(
                "{what} needs the master key: open the EventStore with EventStoreBuilder::master_key"
            ))
        })
    }

    /// Forgets `subject`: deletes its data key, in one aux write. From then
    /// on every event sealed for it reads as erased ([`Decoded::Erased`],
    /// and its data stays sealed in raw reads) through every store and
    /// backend, while its other fields, and every other subject's events,
    /// read as before. Answers whether the subject had a key. A later event
    /// sealed for the same subject gets a new key, which opens only the
    /// new events.
    ///
    /// What it cannot reach — copies of the key or plaintext outside the
    /// store (backups taken before, process memory, projections,
    /// snapshots) — is listed in the README ("Crypto-shredding"). The
    /// engine may keep the deleted entry's bytes in free space until it
    /// compacts (`backend().compact()`): they stay wrapped by the master
    /// key.
    pub async fn forget(&self, subject: &str) -> Result<bool> {
        let ring = self.key_ring("forget")?;
        let key = keys::shred_key(&ring.subject_id(subject)?);
        for _ in 0..SEAL_ATTEMPTS {
            let Some(entry) = self.backend().aux_get(&key).await? else {
                return Ok(false);
            };
            match self
                .backend()
                .aux_write(vec![AuxWrite::delete(key.clone()).if_equals(entry)])
                .await
            {
                Ok(()) => return Ok(true),
                Err(Error::AppendConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::condition_failed(
            FailedCondition::AuxKey(key),
            format!("the key of a subject changed {SEAL_ATTEMPTS} times while forgetting it"),
        ))
    }

    /// Appends `events` to `stream` if `expected` holds (\[A1\]–\[A5\]), each
    /// event's data sealed with the key of `subject` (made on first use).
    /// The key is checked in the same atomic write (\[X2\]): an append that
    /// races a [`forget`](crate::EventStore::forget) of the subject never
    /// writes data under the forgotten key.
    pub async fn append_sealed(
        &self,
        stream: &annals_core::StreamId,
        expected: annals_core::ExpectedVersion,
        subject: &str,
        events: Vec<annals_core::NewEvent>,
    ) -> Result<annals_core::AppendResult> {
        let events = events
            .into_iter()
            .map(|e| (e, Some(subject.to_string())))
            .collect();
        self.append_prepared(stream, expected, events).await
    }

    /// Appends events, sealing the data of those given a subject.
    pub(crate) async fn append_prepared(
        &self,
        stream: &annals_core::StreamId,
        expected: annals_core::ExpectedVersion,
        events: Vec<(annals_core::NewEvent, Option<String>)>,
    ) -> Result<annals_core::AppendResult> {
        if events.iter().all(|(_, s)| s.is_none()) {
            let events = events.into_iter().map(|(e, _)| e).collect();
            return self.backend().append(stream, expected, events).await;
        }
        let ring = self.key_ring("an event sealed for a subject")?;
        let mut subjects: HashMap<[u8; ID_BYTES], &str> = HashMap::new();
        for (_, subject) in &events {
            if let Some(subject) = subject {
                subjects.insert(ring.subject_id(subject)?, subject);
            }
        }
        for _ in 0..SEAL_ATTEMPTS {
            let mut data_keys = HashMap::with_capacity(subjects.len());
            let mut guards = Vec::with_capacity(subjects.len());
            for id in subjects.keys() {
                let key = keys::shred_key(id);
                let (data_key, entry, new) = match self.backend().aux_get(&key).await? {
                    Some(entry) => (ring.unwrap_key(&key, *id, &entry)?, entry, false),
                    None => {
                        let (data_key, entry) = ring.new_key(*id)?;
                        (data_key, entry, true)
                    }
                };
                guards.push(key_guard(id, entry, new));
                data_keys.insert(*id, data_key);
            }
            let mut sealed = Vec::with_capacity(events.len());
            for (event, subject) in &events {
                let mut event = event.clone();
                if let Some(subject) = subject {
                    let id = ring.subject_id(subject)?;
                    let key = data_keys.get(&id).ok_or_else(|| {
                        Error::malformed(
                            Field::Setting,
                            format!(
                                "no data key was prepared for a subject of event {}",
                                event.event_id
                            ),
                        )
                    })?;
                    event.data = key.seal(&event.event_id, &event.event_type, &event.data)?;
                }
                sealed.push(event);
            }
            let mut append = annals_core::Append::new(stream.clone(), expected, sealed);
            append.aux = guards;
            match self.backend().append_with(append).await {
                // The append carries no condition of its own: a failed
                // condition is a key made or forgotten meanwhile.
                Err(Error::AppendConditionFailed { .. }) => continue,
                other => return other,
            }
        }
        Err(Error::condition_failed(
            FailedCondition::AuxKey(Vec::new()),
            format!(
                "the keys of the subjects of an append to stream {stream} changed \
             {SEAL_ATTEMPTS} times while appending"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use annals_core::{Position, StreamId, Timestamp, Uuid, Version};

    use super::*;

    fn recorded(id: Uuid, event_type: &str, data: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            stream_id: StreamId::new("s").expect("an id"),
            stream_version: Version(3),
            position: Position(9),
            recorded_at: Timestamp(0),
            event_id: id,
            event_type: event_type.into(),
            data,
            metadata: Vec::new(),
            tags: Vec::new(),
        }
    }

    fn ring() -> (KeyRing, DataKey, Vec<u8>) {
        let ring = KeyRing::new(&MasterKey::new([9; 32]));
        let subject = ring.subject_id("customer-1").expect("a subject");
        let (key, entry) = ring.new_key(subject).expect("a key");
        (ring, key, entry)
    }

    #[test]
    fn master_keys_parse_and_never_show() {
        let key = MasterKey::generate().expect("random bytes");
        let hex = key.to_hex();
        let again = MasterKey::from_hex(&format!("  {}\n", hex.as_str())).expect("its own hex");
        assert_eq!(again.to_hex(), hex);
        assert!(!format!("{key:?}").contains(hex.as_str()));
        let mut bad = hex.to_string();
        bad.replace_range(10..11, "g");
        let err = MasterKey::from_hex(&bad).expect_err("not hex").to_string();
        assert!(
            !err.contains(&bad),
            "the message never repeats the text: {err}"
        );
        assert!(MasterKey::from_hex("é".repeat(32).as_str()).is_err());
        assert!(MasterKey::from_env("ANNALS_TEST_SURELY_UNSET_VARIABLE").is_err());
    }

    #[test]
    fn sealed_data_opens_only_as_its_own_event() {
        let (ring, key, entry) = ring();
        let id = Uuid::from_u128(7);
        let data = key.seal(&id, "T", b"secret").expect("sealed");
        assert_eq!(data.len(), SEAL_OVERHEAD + 6);
        let event = recorded(id, "T", data.clone());
        let env = envelope(&event).expect("parses").expect("sealed");
        let unwrapped = ring.unwrap_key(b"k", key.subject, &entry).expect("unwraps");
        match env.open(&event, Some(&unwrapped)).expect("opens") {
            Opened::Plain(p) => assert_eq!(p, b"secret"),
            Opened::Erased => panic!("not erased"),
        }
        assert!(matches!(env.open(&event, None), Ok(Opened::Erased)));

        // Copied into another event, relabelled, or damaged: Corruption.
        for other in [
            recorded(Uuid::from_u128(8), "T", data.clone()),
            recorded(id, "U", data.clone()),
            recorded(id, "T", {
                let mut d = data.clone();
                if let Some(last) = d.last_mut() {
                    *last ^= 1;
                }
                d
            }),
        ] {
            let env = envelope(&other).expect("parses").expect("sealed");
            assert!(matches!(
                env.open(&other, Some(&unwrapped)),
                Err(Error::Corruption { .. })
            ));
        }
        // Too short to be an envelope.
        let short = recorded(id, "T", MAGIC.to_vec());
        assert!(matches!(envelope(&short), Err(Error::Corruption { .. })));
        assert!(
            envelope(&recorded(id, "T", b"{}".to_vec()))
                .expect("plain")
                .is_none()
        );
    }

    #[test]
    fn key_entries_are_bound_to_their_subject_and_master_key() {
        let (ring, key, entry) = ring();
        let other_subject = ring.subject_id("customer-2").expect("a subject");
        assert!(matches!(
            ring.unwrap_key(b"k", other_subject, &entry),
            Err(Error::Corruption { .. })
        ));
        let other_ring = KeyRing::new(&MasterKey::new([8; 32]));
        assert!(other_ring.unwrap_key(b"k", key.subject, &entry).is_err());
        assert!(matches!(
            ring.unwrap_key(b"k", key.subject, &entry[..10]),
            Err(Error::Corruption { .. })
        ));
        // The key check: made once, opens with its master key only.
        let check = ring.check(None).expect("made").expect("new");
        assert!(ring.check(Some(&check)).expect("opens").is_none());
        assert!(matches!(
            other_ring.check(Some(&check)),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            ring.check(Some(b"\x02junk")),
            Err(Error::Corruption { .. })
        ));
        // Subject ids depend on the master key, and subjects are checked.
        assert_ne!(
            ring.subject_id("customer-1").expect("id"),
            other_ring.subject_id("customer-1").expect("id")
        );
        assert!(ring.subject_id("").is_err());
    }
}
