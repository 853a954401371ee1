//! Schema evolution: upcasters and type aliases, applied on read so old
//! events decode into today's types without rewriting history.
//!
//! A typed event's **schema version** ([`TypedEvent::VERSION`](crate::TypedEvent::VERSION),
//! 1 by default) is stored in the event's metadata as the JSON object
//! `{"annals_schema":N}` — only when N is above 1, so version-1 events
//! (and every typed event written before versions existed) keep empty
//! metadata. Metadata that is empty, not a JSON object, or an object
//! without `annals_schema` is version 1: events the application appended
//! straight to the backend read as version 1 too. The event type is not
//! touched, so a query by type finds every version.
//!
//! An **upcaster** turns the JSON data of version N of an event type into
//! version N + 1; the store chains them (1 → 2 → 3) up to the highest
//! version registered for the type. An **alias** renames a type: events
//! stored under the old name read under the new one, and then go through
//! the new name's upcasters (versions carry on across a rename).

use annals_core::Field;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use annals_core::{BoxError, Error, RecordedEvent, Result};
use serde_json::{Map, Value};

use crate::shred;

/// The metadata field that holds a typed event's schema version.
pub const SCHEMA_FIELD: &str = "annals_schema";

/// An upcaster: the JSON data of one version of an event type in, the next
/// version's out. An error stops the read with `Error::Decode` naming the
/// event and the versions.
pub type UpcastFn = dyn Fn(Value) -> std::result::Result<Value, BoxError> + Send + Sync;

/// The upcasters and aliases of a store.
#[derive(Clone, Default)]
pub(crate) struct Schema {
    /// Old type name → today's name (chains already followed).
    aliases: HashMap<String, String>,
    /// (type, version) → the upcaster from that version to the next.
    upcasters: HashMap<(String, u32), Arc<UpcastFn>>,
    /// Type → the highest version its upcasters reach.
    latest: HashMap<String, u32>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut upcasters: Vec<(&str, u32)> = self
            .upcasters
            .keys()
            .map(|(t, v)| (t.as_str(), *v))
            .collect();
        upcasters.sort_unstable();
        f.debug_struct("Schema")
            .field("aliases", &self.aliases)
            .field("upcasters", &upcasters)
            .finish()
    }
}

/// What the builder collects before checking it.
#[derive(Default)]
pub(crate) struct SchemaBuilder {
    pub aliases: Vec<(String, String)>,
    pub upcasters: Vec<(String, u32, Arc<UpcastFn>)>,
}

fn check_type_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') {
        return Err(Error::malformed(
            Field::Setting,
            format!("{what} {name:?} is not an event type (1 to 255 bytes, no NUL)"),
        ));
    }
    Ok(())
}

impl SchemaBuilder {
    /// Checks everything and resolves alias chains: a bad name, version 0,
    /// two upcasters for one version, two targets for one alias, an alias
    /// cycle, or an upcaster registered under an old (aliased) name is
    /// `Error::InvalidInput`.
    pub(crate) fn build(self) -> Result<Schema> {
        let mut direct: HashMap<String, String> = HashMap::new();
        for (old, new) in self.aliases {
            check_type_name("alias", &old)?;
            check_type_name("alias target", &new)?;
            if old == new {
                return Err(Error::malformed(
                    Field::Setting,
                    format!("event type {old:?} is aliased to itself"),
                ));
            }
            if let Some(other) = direct.get(&old)
                && *other != new
            {
                return Err(Error::malformed(
                    Field::Setting,
                    format!("event type {old:?} is aliased twice: to {other:?} and to {new:?}"),
                ));
            }
            direct.insert(old, new);
        }
        let mut aliases = HashMap::with_capacity(direct.len());
        for old in direct.keys() {
            let mut seen = HashSet::from([old.as_str()]);
            let mut current = old.as_str();
            while let Some(next) = direct.get(current) {
                if !seen.insert(next.as_str()) {
                    return Err(Error::malformed(
                        Field::Setting,
                        format!("the aliases of event type {old:?} form a cycle through {next:?}"),
                    ));
                }
                current = next;
            }
            aliases.insert(old.clone(), current.to_string());
        }
        let mut upcasters = HashMap::with_capacity(self.upcasters.len());
        let mut latest: HashMap<String, u32> = HashMap::new();
        for (event_type, from, f) in self.upcasters {
            check_type_name("upcaster event type", &event_type)?;
            if let Some(new) = aliases.get(&event_type) {
                return Err(Error::malformed(
                    Field::Setting,
                    format!(
                        "an upcaster is registered for event type {event_type:?}, an alias of \
                     {new:?}: register it under {new:?} (aliased events read under that name)"
                    ),
                ));
            }
            let Some(to) = from.checked_add(1).filter(|_| from >= 1) else {
                return Err(Error::malformed(
                    Field::Setting,
                    format!(
                        "an upcaster of event type {event_type:?} starts at version {from}: \
                     versions run from 1 to {}",
                        u32::MAX - 1
                    ),
                ));
            };
            let top = latest.entry(event_type.clone()).or_insert(to);
            *top = (*top).max(to);
            if upcasters.insert((event_type.clone(), from), f).is_some() {
                return Err(Error::malformed(
                    Field::Setting,
                    format!("two upcasters of event type {event_type:?} start at version {from}"),
                ));
            }
        }
        Ok(Schema {
            aliases,
            upcasters,
            latest,
        })
    }
}

/// The schema version stored in `event`'s metadata. An `annals_schema`
/// that is not a whole number from 1 to `u32::MAX` is `Error::Decode`.
pub(crate) fn stored_version(event: &RecordedEvent) -> Result<u32> {
    if event.metadata.is_empty() || event.metadata.first() != Some(&b'{') {
        return Ok(1);
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&event.metadata) else {
        return Ok(1);
    };
    match map.get(SCHEMA_FIELD) {
        None => Ok(1),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                decode_error(
                    event,
                    "its schema version",
                    format!(
                        "metadata field {SCHEMA_FIELD} = {v} is not a version from 1 to {}",
                        u32::MAX
                    )
                    .into(),
                )
            }),
    }
}

/// The metadata a typed event of schema `version` is written with.
pub(crate) fn metadata_for(version: u32) -> Vec<u8> {
    if version == 1 {
        Vec::new()
    } else {
        format!("{{\"{SCHEMA_FIELD}\":{version}}}").into_bytes()
    }
}

/// `event`'s metadata with its schema version set to `version` (other
/// fields of a JSON object kept).
fn with_version(event: &RecordedEvent, version: u32) -> Vec<u8> {
    match serde_json::from_slice::<Value>(&event.metadata) {
        Ok(Value::Object(mut map)) => {
            map.insert(SCHEMA_FIELD.to_string(), Value::from(version));
            serde_json::to_vec(&map).unwrap_or_else(|_| metadata_for(version))
        }
        _ => {
            let mut map = Map::new();
            map.insert(SCHEMA_FIELD.to_string(), Value::from(version));
            serde_json::to_vec(&map).unwrap_or_else(|_| metadata_for(version))
        }
    }
}

pub(crate) fn decode_error(event: &RecordedEvent, target: &str, source: BoxError) -> Error {
    Error::Decode {
        stream: event.stream_id.clone(),
        version: event.stream_version,
        event_type: event.event_type.clone(),
        target: target.to_string(),
        source,
    }
}

impl Schema {
    /// Today's name of event type `name`.
    #[cfg(test)]
    pub(crate) fn current_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, String::as_str)
    }

    /// Renames `event` by the aliases and upcasts its data to the highest
    /// version registered for its type. Sealed data (an erased event) is
    /// left as it is. Upcasting twice does nothing the second time. On an
    /// error the event is renamed but its data and metadata are untouched.
    /// A
    /// missing step of the chain, data that is not JSON, or an upcaster's
    /// error is `Error::Decode` naming the type and the version.
    pub(crate) fn upcast(&self, event: &mut RecordedEvent) -> Result<()> {
        if let Some(new) = self.aliases.get(&event.event_type) {
            event.event_type.clone_from(new);
        }
        let Some(&latest) = self.latest.get(&event.event_type) else {
            return Ok(());
        };
        if shred::is_sealed(event) {
            return Ok(());
        }
        let from = stored_version(event)?;
        if from >= latest {
            return Ok(());
        }
        let mut json: Value = serde_json::from_slice(&event.data).map_err(|e| {
            decode_error(
                event,
                &format!("JSON of schema version {from}, to upcast"),
                e.into(),
            )
        })?;
        for version in from..latest {
            let Some(step) = self.upcasters.get(&(event.event_type.clone(), version)) else {
                return Err(missing_upcaster(event, version, latest));
            };
            json = step(json).map_err(|e| {
                decode_error(
                    event,
                    &format!(
                        "schema version {} (upcasting from version {version})",
                        version + 1
                    ),
                    e,
                )
            })?;
        }
        event.data = serde_json::to_vec(&json).map_err(|e| {
            decode_error(event, &format!("JSON of schema version {latest}"), e.into())
        })?;
        event.metadata = with_version(event, latest);
        Ok(())
    }
}

/// The error of a chain with no upcaster from `version` of `event`'s type.
pub(crate) fn missing_upcaster(event: &RecordedEvent, version: u32, target: u32) -> Error {
    decode_error(
        event,
        &format!("schema version {target}"),
        format!(
            "no upcaster of event type {:?} from schema version {version} is registered",
            event.event_type
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(f: fn(Value) -> Value) -> Arc<UpcastFn> {
        Arc::new(move |v| Ok(f(v)))
    }

    #[test]
    fn aliases_resolve_chains_and_refuse_cycles() {
        let b = SchemaBuilder {
            aliases: vec![("A".into(), "B".into()), ("B".into(), "C".into())],
            upcasters: vec![],
        };
        let s = b.build().expect("a schema");
        assert_eq!(s.current_name("A"), "C");
        assert_eq!(s.current_name("B"), "C");
        assert_eq!(s.current_name("C"), "C");
        let cycle = SchemaBuilder {
            aliases: vec![("A".into(), "B".into()), ("B".into(), "A".into())],
            upcasters: vec![],
        };
        assert!(matches!(cycle.build(), Err(Error::InvalidInput { .. })));
    }

    #[test]
    fn bad_upcasters_are_refused() {
        let zero = SchemaBuilder {
            aliases: vec![],
            upcasters: vec![("T".into(), 0, up(|v| v))],
        };
        assert!(matches!(zero.build(), Err(Error::InvalidInput { .. })));
        let twice = SchemaBuilder {
            aliases: vec![],
            upcasters: vec![("T".into(), 1, up(|v| v)), ("T".into(), 1, up(|v| v))],
        };
        assert!(matches!(twice.build(), Err(Error::InvalidInput { .. })));
        let under_alias = SchemaBuilder {
            aliases: vec![("Old".into(), "New".into())],
            upcasters: vec![("Old".into(), 1, up(|v| v))],
        };
        assert!(matches!(
            under_alias.build(),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn metadata_versions() {
        assert!(metadata_for(1).is_empty());
        assert_eq!(metadata_for(3), br#"{"annals_schema":3}"#);
    }
}
