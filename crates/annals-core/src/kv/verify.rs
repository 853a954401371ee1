//! The full integrity check of a key-value store, on one snapshot.
//!
//! Every space of the layout is scanned once; each record is checked on its
//! own (checksum, format, key shape) and against the records it refers to
//! (an index entry against its log record, a log record against its index
//! entries and stream metadata). Memory stays flat: nothing is collected
//! per event or per stream, only point reads are made.

use crate::backend::Direction;
use crate::error::Result;
use crate::event::{Position, RecordedEvent, StreamId, Timestamp, Version};
use crate::kv::codec;
use crate::kv::engine::{KvSnapshot, Scan};
use crate::kv::layout::{self, StoreMeta, StreamMeta, describe_key};
use crate::verify::{Problem, VerifyReport};

/// How many records pass between two progress calls.
const PROGRESS_EVERY: u64 = 4096;

/// Checks everything in `snap`; `progress` gets the records checked so far.
/// Only an engine error that stops a scan is an `Err`.
pub(crate) fn verify<S: KvSnapshot>(snap: &S, progress: &dyn Fn(u64)) -> Result<VerifyReport> {
    let mut check = Checker {
        snap,
        progress,
        report: VerifyReport::default(),
    };
    let meta = check.store_meta()?;
    check.log(meta)?;
    check.stream_index()?;
    check.stream_metas()?;
    check.name_index(layout::TYPE_INDEX)?;
    check.name_index(layout::TAG_INDEX)?;
    check.aux()?;
    check.unknown_keys()?;
    progress(check.report.records);
    Ok(check.report)
}

/// A value, or what is wrong with it.
type Checked<T = ()> = std::result::Result<T, String>;

struct Checker<'a, S> {
    snap: &'a S,
    progress: &'a dyn Fn(u64),
    report: VerifyReport,
}

/// A `(name, number)` key split into its parts, if it has that shape.
fn split_named(key: &[u8]) -> Option<(&str, u64)> {
    let name_end = key.len().checked_sub(9)?;
    if name_end < 1 || key[name_end] != 0 {
        return None;
    }
    let name = std::str::from_utf8(&key[1..name_end]).ok()?;
    Some((name, layout::trailing_number(key)?))
}

impl<S: KvSnapshot> Checker<'_, S> {
    fn problem(&mut self, key: &[u8], message: impl Into<String>) {
        self.report.add(Problem {
            location: describe_key(key),
            message: message.into(),
        });
    }

    /// Counts one record and reports progress now and then.
    fn tick(&mut self) {
        self.report.records += 1;
        if self.report.records.is_multiple_of(PROGRESS_EVERY) {
            (self.progress)(self.report.records);
        }
    }

    /// Scans `[start, end)` forward, visiting every entry.
    fn scan(
        &mut self,
        start: &[u8],
        end: &[u8],
        mut visit: impl FnMut(&mut Self, &[u8], &[u8]),
    ) -> Result<()> {
        let snap = self.snap;
        snap.scan(start, end, Direction::Forward, &mut |key, value| {
            self.tick();
            visit(self, key, value);
            Ok(Scan::Continue)
        })
    }

    /// The log record at `position`, with the problem reading it if any.
    fn event_at(&self, position: Position) -> Result<Checked<RecordedEvent>> {
        let key = layout::log_key(position);
        Ok(match self.snap.get(&key)? {
            None => Err(format!("position {position} holds no event")),
            Some(value) => codec::decode_event(&key, position, &value)
                .map_err(|e| format!("the event it points at is unreadable ({e})")),
        })
    }

    fn stream_meta(&self, stream: &str) -> Result<Checked<StreamMeta>> {
        let key = layout::stream_meta_key(stream);
        Ok(match self.snap.get(&key)? {
            None => Err(format!("stream {stream:?} has no metadata")),
            Some(value) => codec::decode::<StreamMeta>(&key, &value)
                .map_err(|e| format!("the metadata of stream {stream:?} is unreadable ({e})")),
        })
    }

    fn store_meta(&mut self) -> Result<Option<StoreMeta>> {
        let key = layout::STORE_META_KEY;
        let Some(value) = self.snap.get(key)? else {
            return Ok(Some(StoreMeta::default()));
        };
        match codec::decode::<StoreMeta>(key, &value) {
            Ok(meta) => {
                if meta.last_recorded_at > Timestamp::MAX.0 {
                    self.problem(
                        key,
                        beyond_year_9999("the last recorded_at", meta.last_recorded_at),
                    );
                }
                Ok(Some(meta))
            }
            Err(e) => {
                self.problem(key, e.to_string());
                Ok(None)
            }
        }
    }

    /// Every log record: readable, at or below the head, in its stream
    /// index, its type index and its tags' index, below its stream's next
    /// version.
    fn log(&mut self, meta: Option<StoreMeta>) -> Result<()> {
        self.scan(&[layout::LOG], &[layout::LOG + 1], |this, key, value| {
            this.report.events += 1;
            let position = match (key.len(), layout::trailing_number(key)) {
                (9, Some(p)) if p > 0 => Position(p),
                _ => return this.problem(key, "is not a log key (prefix + position > 0)"),
            };
            if let Some(meta) = meta
                && position.0 > meta.head
            {
                this.problem(
                    key,
                    format!("is beyond the store's head (position {})", meta.head),
                );
            }
            let event = match codec::decode_event(key, position, value) {
                Ok(event) => event,
                Err(e) => return this.problem(key, e.to_string()),
            };
            if event.recorded_at > Timestamp::MAX {
                this.problem(
                    key,
                    beyond_year_9999("its recorded_at", event.recorded_at.0),
                );
            }
            if let Err(why) = this.event_references(&event) {
                this.problem(key, why);
            }
        })
    }

    /// Checks what a log record refers to; the first problem found.
    fn event_references(&self, event: &RecordedEvent) -> Checked {
        let stream = event.stream_id.as_str();
        let version = event.stream_version;
        let lookup = |r: Result<Option<Vec<u8>>>| r.map_err(|e| format!("reading failed: {e}"));

        let index_key = layout::stream_index_key(stream, version);
        match lookup(self.snap.get(&index_key))? {
            None => {
                return Err(format!(
                    "{stream:?} version {version} is not in the stream index"
                ));
            }
            Some(v) => match codec::decode::<u64>(&index_key, &v) {
                Ok(p) if p == event.position.0 => {}
                Ok(p) => {
                    return Err(format!(
                        "the stream index has {stream:?} version {version} at position {p}"
                    ));
                }
                // The stream index scan reports the entry itself.
                Err(_) => {}
            },
        }
        let type_key = layout::type_key(&event.event_type, event.position);
        if lookup(self.snap.get(&type_key))?.is_none() {
            return Err(format!(
                "type {:?} index entry is missing",
                event.event_type
            ));
        }
        for tag in &event.tags {
            if lookup(self.snap.get(&layout::tag_key(tag, event.position)))?.is_none() {
                return Err(format!("tag {tag:?} index entry is missing"));
            }
        }
        match self.stream_meta(stream).map_err(|e| e.to_string())? {
            Err(why) => Err(why),
            Ok(meta) if version.0 >= meta.next_version => Err(format!(
                "version {version} is beyond stream {stream:?}'s next version {}",
                meta.next_version
            )),
            Ok(_) => Ok(()),
        }
    }

    /// Every stream index entry points at its event; each stream's entries
    /// are gap-free and cover its readable versions.
    fn stream_index(&mut self) -> Result<()> {
        // The stream being walked: its name, metadata, and the version of
        // its last entry seen.
        let mut current: Option<(String, Option<StreamMeta>, u64)> = None;
        self.scan(
            &[layout::STREAM_INDEX],
            &[layout::STREAM_INDEX + 1],
            |this, key, value| {
                let Some((name, version)) = split_named(key) else {
                    return this.problem(key, "is not a stream index key");
                };
                match &mut current {
                    Some((n, _, last)) if n == name => {
                        if last.checked_add(1) != Some(version) {
                            this.problem(
                                key,
                                format!(
                                    "versions {}..{} are missing before it",
                                    last.saturating_add(1),
                                    version
                                ),
                            );
                        }
                        *last = version;
                    }
                    _ => {
                        if let Some(done) = current.take() {
                            this.stream_index_end(done);
                        }
                        let meta = match this.stream_meta(name) {
                            Ok(Ok(meta)) => Some(meta),
                            Ok(Err(why)) => {
                                this.problem(key, why);
                                None
                            }
                            Err(e) => {
                                this.problem(key, e.to_string());
                                None
                            }
                        };
                        if let Some(m) = meta
                            && !m.deleted
                            && version > m.floor
                            && m.floor < m.next_version
                        {
                            this.problem(
                                key,
                                format!(
                                    "is the stream's first entry, but versions {}..{} are readable",
                                    m.floor, version
                                ),
                            );
                        }
                        current = Some((name.to_string(), meta, version));
                    }
                }
                let position = match codec::decode::<u64>(key, value) {
                    Ok(p) => Position(p),
                    Err(e) => return this.problem(key, e.to_string()),
                };
                match this.event_at(position) {
                    Ok(Ok(event))
                        if event.stream_id.as_str() == name
                            && event.stream_version == Version(version) => {}
                    Ok(Ok(event)) => this.problem(
                        key,
                        format!(
                            "points at position {position}, which holds {:?} version {}",
                            event.stream_id.as_str(),
                            event.stream_version
                        ),
                    ),
                    Ok(Err(why)) => this.problem(key, format!("points at a bad record: {why}")),
                    Err(e) => this.problem(key, e.to_string()),
                }
            },
        )?;
        if let Some(done) = current {
            self.stream_index_end(done);
        }
        Ok(())
    }

    /// The last entry of a stream's index must be its last version.
    fn stream_index_end(&mut self, (name, meta, last): (String, Option<StreamMeta>, u64)) {
        let Some(meta) = meta else { return };
        if last.checked_add(1) != Some(meta.next_version) {
            let key = layout::stream_index_key(&name, Version(last));
            self.problem(
                &key,
                format!(
                    "is the stream's last entry, but its metadata says the next version is {}",
                    meta.next_version
                ),
            );
        }
    }

    /// Every stream's metadata: a valid id, consistent numbers, and (for a
    /// live stream with events) an index entry for its last version.
    fn stream_metas(&mut self) -> Result<()> {
        self.scan(
            &[layout::STREAM_META],
            &[layout::STREAM_META + 1],
            |this, key, value| {
                this.report.streams += 1;
                let id = std::str::from_utf8(&key[1..])
                    .ok()
                    .and_then(|s| StreamId::new(s).ok());
                let Some(id) = id else {
                    return this.problem(key, "the key is not a valid stream id");
                };
                let meta = match codec::decode::<StreamMeta>(key, value) {
                    Ok(meta) => meta,
                    Err(e) => return this.problem(key, e.to_string()),
                };
                if meta.floor > meta.next_version || meta.created > meta.next_version {
                    return this.problem(
                        key,
                        format!(
                            "floor {} or first version {} is above the next version {}",
                            meta.floor, meta.created, meta.next_version
                        ),
                    );
                }
                if !meta.deleted && meta.floor < meta.next_version {
                    let last = Version(meta.next_version - 1);
                    match this.snap.get(&layout::stream_index_key(id.as_str(), last)) {
                        Ok(Some(_)) => {}
                        Ok(None) => this.problem(
                            key,
                            format!("its last version {last} is not in the stream index"),
                        ),
                        Err(e) => this.problem(key, e.to_string()),
                    }
                }
            },
        )
    }

    /// Every type or tag index entry points at an event of that type or
    /// carrying that tag.
    fn name_index(&mut self, prefix: u8) -> Result<()> {
        self.scan(&[prefix], &[prefix + 1], |this, key, value| {
            let Some((name, position)) = split_named(key).filter(|(_, p)| *p > 0) else {
                return this.problem(key, "is not an index key (prefix + name + 00 + position)");
            };
            if let Err(e) = codec::unseal(key, value) {
                return this.problem(key, e.to_string());
            }
            match this.event_at(Position(position)) {
                Ok(Ok(event)) => {
                    let matches = if prefix == layout::TYPE_INDEX {
                        event.event_type == name
                    } else {
                        event.has_tag(name)
                    };
                    if !matches {
                        this.problem(
                            key,
                            format!(
                                "points at position {position}, an event of type {:?} with tags {:?}",
                                event.event_type, event.tags
                            ),
                        );
                    }
                }
                Ok(Err(why)) => this.problem(key, format!("points at a bad record: {why}")),
                Err(e) => this.problem(key, e.to_string()),
            }
        })
    }

    /// Every aux value's checksum.
    fn aux(&mut self) -> Result<()> {
        self.scan(&[layout::AUX], &[layout::AUX + 1], |this, key, value| {
            if let Err(e) = codec::unseal(key, value) {
                this.problem(key, e.to_string());
            }
        })
    }

    /// Keys in no space of the layout (but the engine's own), or in the
    /// meta space under another name than the store's metadata.
    fn unknown_keys(&mut self) -> Result<()> {
        self.scan(&[layout::META], &[layout::LOG], |this, key, _| {
            if key != layout::STORE_META_KEY {
                this.problem(key, "is not a key annals writes");
            }
        })?;
        self.scan(
            &[layout::AUX + 1],
            &[layout::ENGINE_PRIVATE],
            |this, key, _| {
                this.problem(key, "is not a key annals writes");
            },
        )
    }
}

/// The problem of a time beyond [`Timestamp::MAX`], which annals never
/// records.
fn beyond_year_9999(what: &str, micros: u64) -> String {
    format!(
        "{what} is {micros} µs after 1970, beyond 9999-12-31T23:59:59.999999Z, the latest time \
         annals records"
    )
}
