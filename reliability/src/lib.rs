//! What the crash writer (`annals-crash-writer`) and the crash tests share:
//! the events it writes, which can be checked byte for byte from their ids
//! alone, and the acknowledgement lines it prints.
//!
//! Every event's data is derived from its id ([`payload`]); its metadata
//! names the append (or batch) it belongs to and how many events that
//! append wrote ([`Membership`]), so a reader can tell a whole append from a
//! part of one without knowing what the writer printed.
#![forbid(unsafe_code)]

use annals::{NewEvent, Uuid};

/// The data of the event with id `id`: 16 to 527 bytes, a function of the
/// id alone.
pub fn payload(id: Uuid) -> Vec<u8> {
    let seed = id.as_u128();
    let len = 16 + (seed % 512) as usize;
    let bytes = id.as_bytes();
    (0..len)
        .map(|i| bytes[i % 16] ^ (i as u8).wrapping_mul(31))
        .collect()
}

/// Which append an event belongs to: the append's own id, the event's
/// index in it, and how many events the append wrote (over every stream of
/// a batch).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Membership {
    /// The append's id.
    pub append: Uuid,
    /// The event's index in the append, from 0.
    pub index: u32,
    /// Events in the whole append.
    pub count: u32,
}

impl Membership {
    /// As stored in the event's metadata.
    pub fn to_metadata(self) -> Vec<u8> {
        format!(
            "append={} index={} count={}",
            self.append, self.index, self.count
        )
        .into_bytes()
    }

    /// Read back from an event's metadata.
    pub fn from_metadata(metadata: &[u8]) -> Option<Membership> {
        let text = std::str::from_utf8(metadata).ok()?;
        let mut parts = text.split(' ');
        let append = parts.next()?.strip_prefix("append=")?.parse().ok()?;
        let index = parts.next()?.strip_prefix("index=")?.parse().ok()?;
        let count = parts.next()?.strip_prefix("count=")?.parse().ok()?;
        Some(Membership {
            append,
            index,
            count,
        })
    }
}

/// `count` events of one append, the first at `first_index` of it.
pub fn new_events(append: Uuid, first_index: u32, n: u32, count: u32) -> Vec<NewEvent> {
    (first_index..first_index + n)
        .map(|index| {
            let id = Uuid::now_v7();
            NewEvent::builder(if index % 2 == 0 { "Even" } else { "Odd" })
                .id(id)
                .data(payload(id))
                .metadata(
                    Membership {
                        append,
                        index,
                        count,
                    }
                    .to_metadata(),
                )
                .tag(format!("append:{}", append.simple()))
                .build()
        })
        .collect()
}

/// What the writer prints once an append returned: one line per stream it
/// wrote to.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ack {
    /// The append's id (a batch's parts share it).
    pub append: Uuid,
    /// The stream.
    pub stream: String,
    /// The version of its first event.
    pub first_version: u64,
    /// The positions of its events, in order.
    pub positions: Vec<u64>,
    /// The ids of its events, in order.
    pub ids: Vec<Uuid>,
}

impl Ack {
    /// The line (no newline).
    pub fn to_line(&self) -> String {
        let positions: Vec<String> = self.positions.iter().map(u64::to_string).collect();
        let ids: Vec<String> = self.ids.iter().map(Uuid::to_string).collect();
        format!(
            "ack {} {} {} {} {}",
            self.append,
            self.stream,
            self.first_version,
            positions.join(","),
            ids.join(",")
        )
    }

    /// Parses a line; `None` for anything else (e.g. a line cut by the
    /// kill).
    pub fn parse(line: &str) -> Option<Ack> {
        let mut parts = line.split(' ');
        if parts.next()? != "ack" {
            return None;
        }
        let append = parts.next()?.parse().ok()?;
        let stream = parts.next()?.to_string();
        let first_version = parts.next()?.parse().ok()?;
        let positions = parts
            .next()?
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()
            .ok()?;
        let ids = parts
            .next()?
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Uuid>, _>>()
            .ok()?;
        (parts.next().is_none() && ids.len() == positions.len() && !ids.is_empty()).then_some(Ack {
            append,
            stream,
            first_version,
            positions,
            ids,
        })
    }
}

/// The backends every check runs against: the drivers compiled into
/// `annals` here (this crate's features), in the order messages list them.
/// A backend that keeps files takes part in the kill -9, power-loss and
/// damage checks; every backend in the races and the model check.
pub fn backends() -> Vec<&'static annals::driver::Driver> {
    annals::drivers()
        .into_iter()
        .filter(|d| d.target != annals::driver::Target::Server)
        .collect()
}

/// The backends that keep their store in files ([`backends`] whose
/// stores are persistent).
pub fn backends_on_disk() -> Vec<&'static annals::driver::Driver> {
    backends()
        .into_iter()
        .filter(|d| d.target.takes_path() && d.capabilities.persistent)
        .collect()
}

/// The path of a store named `name` of `driver` in the folder `dir`: the
/// file `name.<scheme>` or the folder `name`; `None` for a backend that
/// takes no path.
pub fn store_path(
    driver: &annals::driver::Driver,
    dir: &std::path::Path,
    name: &str,
) -> Option<std::path::PathBuf> {
    use annals::driver::Target;
    match driver.target {
        Target::File => Some(dir.join(format!("{name}.{}", driver.scheme))),
        Target::Folder => Some(dir.join(name)),
        Target::Nothing | Target::Server => None,
    }
}

/// The URL of a store named `name` of `driver` in `dir` (see
/// [`store_path`]), with `options` (`key=value&…`, may be empty).
pub fn store_url(
    driver: &annals::driver::Driver,
    dir: &std::path::Path,
    name: &str,
    options: &str,
) -> String {
    let scheme = annals::Scheme::of(driver);
    let base = match store_path(driver, dir, name) {
        Some(path) => scheme
            .url_for(path)
            .expect("a temp dir's path is a valid store path"),
        None => format!("{scheme}://"),
    };
    if options.is_empty() {
        base
    } else {
        format!("{base}?{options}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_metadata_round_trip() {
        let ack = Ack {
            append: Uuid::now_v7(),
            stream: "w1-2".into(),
            first_version: 7,
            positions: vec![10, 11],
            ids: vec![Uuid::now_v7(), Uuid::now_v7()],
        };
        assert_eq!(Ack::parse(&ack.to_line()), Some(ack.clone()));
        let cut = ack.to_line();
        assert_eq!(Ack::parse(&cut[..cut.len() - 3]), None);
        let m = Membership {
            append: Uuid::now_v7(),
            index: 2,
            count: 5,
        };
        assert_eq!(Membership::from_metadata(&m.to_metadata()), Some(m));
        let id = Uuid::now_v7();
        assert_eq!(payload(id), payload(id));
        assert_ne!(payload(id), payload(Uuid::now_v7()));
    }
}
