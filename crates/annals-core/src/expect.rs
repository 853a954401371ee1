//! What an append expects of the store: stream versions (\[D4\], A3),
//! DCB queries and conditions (R6, A8), and conditional aux writes (X2).

use std::fmt;

use crate::error::{Error, FailedCondition, Field, Limit, Result, show_bytes};
use crate::event::{Position, RecordedEvent, Version, check_name};

/// What an append expects of its stream's version (\[D4\]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ExpectedVersion {
    /// No expectation; never fails.
    #[default]
    Any,
    /// The stream must not exist.
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream must exist and its last event must have this version.
    Exact(Version),
}

impl ExpectedVersion {
    /// `Exact(Version(v))`.
    pub fn exact(v: u64) -> Self {
        ExpectedVersion::Exact(Version(v))
    }

    /// Whether a stream whose last version is `actual` (`None`: it does not
    /// exist) satisfies this expectation.
    pub fn is_satisfied_by(self, actual: Option<Version>) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::StreamExists => actual.is_some(),
            ExpectedVersion::Exact(v) => actual == Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::StreamExists => f.write_str("stream exists"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// Most items in a [`Query`], and most types or tags in one item (\[R6\]).
pub const MAX_QUERY_ITEMS: usize = 64;

/// One alternative of a [`Query`]: an event matches it if its type is one of
/// `types` (or `types` is empty) and it carries every one of `tags`.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct QueryItem {
    /// Accepted event types; empty accepts every type.
    pub types: Vec<String>,
    /// Tags an event must all carry.
    pub tags: Vec<String>,
}

impl QueryItem {
    /// An item that matches every event.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an accepted type.
    #[must_use]
    pub fn with_type(mut self, event_type: impl Into<String>) -> Self {
        self.types.push(event_type.into());
        self
    }
    /// Adds a required tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Whether `event` matches this item.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.matches_parts(&event.event_type, &event.tags)
    }

    /// Whether an event of `event_type` carrying `tags` matches this item.
    pub fn matches_parts(&self, event_type: &str, tags: &[String]) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self.tags.iter().all(|t| tags.contains(t))
    }

    /// Whether every event matching `other` matches this item too (both
    /// normalized: types and tags sorted, without repetition).
    fn covers(&self, other: &QueryItem) -> bool {
        let types = self.types.is_empty()
            || (!other.types.is_empty() && is_sorted_subset(&other.types, &self.types));
        types && is_sorted_subset(&self.tags, &other.tags)
    }
}

/// Whether every name of `small` is in `large` (both sorted, without
/// repetition).
fn is_sorted_subset(small: &[String], large: &[String]) -> bool {
    let mut large = large.iter();
    small.iter().all(|s| large.any(|l| l == s))
}

fn sorted_unique(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names.dedup();
    names
}

/// A tag/type query over the global log (\[R6\]): an event matches if it
/// matches any item; the empty query matches everything.
///
/// ```
/// use annals_core::{Query, QueryItem};
/// let q = Query::new()
///     .item(QueryItem::new().with_type("OrderPlaced").with_tag("customer:7"))
///     .item(QueryItem::new().with_tag("vip"));
/// assert_eq!(q.items.len(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Query {
    /// The alternatives.
    pub items: Vec<QueryItem>,
}

impl Query {
    /// The empty query (matches everything).
    pub fn new() -> Self {
        Self::default()
    }
    /// A query of one item.
    pub fn single(item: QueryItem) -> Self {
        Query { items: vec![item] }
    }
    /// Events of any of these types.
    pub fn types<I: IntoIterator<Item = T>, T: Into<String>>(types: I) -> Self {
        Query::single(QueryItem {
            types: types.into_iter().map(Into::into).collect(),
            tags: Vec::new(),
        })
    }
    /// Events carrying all of these tags.
    pub fn tags<I: IntoIterator<Item = T>, T: Into<String>>(tags: I) -> Self {
        Query::single(QueryItem {
            types: Vec::new(),
            tags: tags.into_iter().map(Into::into).collect(),
        })
    }
    /// Adds an item.
    #[must_use]
    pub fn item(mut self, item: QueryItem) -> Self {
        self.items.push(item);
        self
    }

    /// Whether every event matches (the empty query, or an empty item).
    pub fn matches_everything(&self) -> bool {
        self.items.is_empty()
            || self
                .items
                .iter()
                .any(|i| i.types.is_empty() && i.tags.is_empty())
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.matches_parts(&event.event_type, &event.tags)
    }

    /// Whether an event of `event_type` carrying `tags` matches.
    pub fn matches_parts(&self, event_type: &str, tags: &[String]) -> bool {
        self.items.is_empty() || self.items.iter().any(|i| i.matches_parts(event_type, tags))
    }

    /// The same query in its smallest form: each item's types and tags
    /// sorted and without repetition, no item that another item already
    /// covers (the same item again, or one that asks more of an event), and
    /// the empty query when some item matches everything. It matches
    /// exactly the events this query matches; a store reads with it, so a
    /// query costs what its distinct items cost (\[R6\]).
    ///
    /// ```
    /// use annals_core::{Query, QueryItem};
    /// let repeated = Query { items: vec![QueryItem::new().with_type("A").with_type("A"); 64] };
    /// assert_eq!(repeated.normalized(), Query::types(["A"]));
    /// let covered = Query::tags(["x"]).item(QueryItem::new().with_type("B").with_tag("x"));
    /// assert_eq!(covered.normalized(), Query::tags(["x"]));
    /// assert_eq!(Query::tags(["x"]).item(QueryItem::new()).normalized(), Query::new());
    /// ```
    pub fn normalized(&self) -> Query {
        if self.matches_everything() {
            return Query::new();
        }
        let mut items: Vec<QueryItem> = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let item = QueryItem {
                types: sorted_unique(&item.types),
                tags: sorted_unique(&item.tags),
            };
            if items.iter().any(|kept| kept.covers(&item)) {
                continue;
            }
            items.retain(|kept| !item.covers(kept));
            items.push(item);
        }
        Query { items }
    }

    /// Checks the limits of \[R6\] and the names in it.
    pub fn validate(&self) -> Result<()> {
        if self.items.len() > MAX_QUERY_ITEMS {
            return Err(Error::limit(
                Limit::QueryItems,
                MAX_QUERY_ITEMS,
                self.items.len(),
                format!(
                    "query has {} items, more than the limit of {MAX_QUERY_ITEMS}",
                    self.items.len()
                ),
            ));
        }
        for (i, item) in self.items.iter().enumerate() {
            for (limit, n, what) in [
                (Limit::QueryTypes, item.types.len(), "types"),
                (Limit::QueryTags, item.tags.len(), "tags"),
            ] {
                if n > MAX_QUERY_ITEMS {
                    return Err(Error::limit(
                        limit,
                        MAX_QUERY_ITEMS,
                        n,
                        format!(
                            "query item {i} has {n} {what}, more than the limit of {MAX_QUERY_ITEMS}"
                        ),
                    ));
                }
            }
            for t in &item.types {
                check_name("query type", Field::EventType, t)?;
            }
            for t in &item.tags {
                check_name("query tag", Field::Tag, t)?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for QueryItem {
    /// `type A|B and tag x and tag y`, or `any event` for an empty item.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.types.is_empty() {
            parts.push(format!("type {}", self.types.join("|")));
        }
        parts.extend(self.tags.iter().map(|t| format!("tag {t}")));
        if parts.is_empty() {
            f.write_str("any event")
        } else {
            f.write_str(&parts.join(" and "))
        }
    }
}

impl fmt::Display for Query {
    /// The items joined by `or`, each in parentheses when there are several.
    ///
    /// ```
    /// use annals_core::{Query, QueryItem};
    /// let q = Query::single(QueryItem::new().with_type("Placed").with_tag("vip")).item(QueryItem::new().with_tag("x"));
    /// assert_eq!(q.to_string(), "(type Placed and tag vip) or (tag x)");
    /// assert_eq!(Query::new().to_string(), "any event");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.items.as_slice() {
            [] => f.write_str("any event"),
            [one] => write!(f, "{one}"),
            items => {
                let parts: Vec<String> = items.iter().map(|i| format!("({i})")).collect();
                f.write_str(&parts.join(" or "))
            }
        }
    }
}

/// A Dynamic Consistency Boundary condition (\[A8\]): the append fails if any
/// readable event matching `fail_if_events_match` has a position greater
/// than `after` (any position when `None`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AppendCondition {
    /// The events that must not have appeared.
    pub fail_if_events_match: Query,
    /// The head the caller decided from (a [`Page`](crate::Page)'s `head`).
    pub after: Option<Position>,
}

impl AppendCondition {
    /// Fails if an event matching `query` appeared after `after`.
    pub fn new(query: Query, after: Option<Position>) -> Self {
        AppendCondition {
            fail_if_events_match: query,
            after,
        }
    }

    /// The [`Error::AppendConditionFailed`] of this condition, naming its
    /// query and `after`.
    pub fn failure(&self) -> Error {
        Error::condition_failed(
            FailedCondition::Events(self.clone()),
            format!(
                "an event matching {} was appended after position {}",
                self.fail_if_events_match,
                self.after
                    .map_or_else(|| "0 (none given)".to_string(), |p| p.to_string())
            ),
        )
    }
}

/// Longest aux key, in bytes (\[X1\]).
pub const MAX_AUX_KEY_BYTES: usize = 1024;

/// What an [`AuxWrite`] requires of its key's current value (\[X2\]).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum AuxCondition {
    /// No requirement.
    #[default]
    None,
    /// The key must be absent.
    Absent,
    /// The key's value must equal these bytes.
    Equals(Vec<u8>),
}

/// A put or delete in the aux space, optionally conditional (\[X2\]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuxWrite {
    /// The key, 1 to 1024 bytes.
    pub key: Vec<u8>,
    /// `Some(value)` puts, `None` deletes.
    pub value: Option<Vec<u8>>,
    /// What the key's current value must be.
    pub condition: AuxCondition,
}

impl AuxWrite {
    /// Puts `value` at `key`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        AuxWrite {
            key: key.into(),
            value: Some(value.into()),
            condition: AuxCondition::None,
        }
    }
    /// Deletes `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        AuxWrite {
            key: key.into(),
            value: None,
            condition: AuxCondition::None,
        }
    }
    /// Only if the key's current value equals `expected`.
    #[must_use]
    pub fn if_equals(mut self, expected: impl Into<Vec<u8>>) -> Self {
        self.condition = AuxCondition::Equals(expected.into());
        self
    }
    /// Only if the key is absent.
    #[must_use]
    pub fn if_absent(mut self) -> Self {
        self.condition = AuxCondition::Absent;
        self
    }

    /// Bytes this write counts against `max_append_bytes` (\[X1\]): its key,
    /// its value, and the value its condition compares with.
    pub fn payload_bytes(&self) -> usize {
        let compared = match &self.condition {
            AuxCondition::Equals(v) => v.len(),
            _ => 0,
        };
        self.key
            .len()
            .saturating_add(self.value.as_ref().map_or(0, Vec::len))
            .saturating_add(compared)
    }

    /// Checks this write's condition against its key's `current` value
    /// (\[X2\]): [`Error::AppendConditionFailed`] naming the key when it
    /// does not hold.
    ///
    /// ```
    /// use annals_core::{AuxWrite, FailedCondition};
    /// let write = AuxWrite::put("k", "new").if_equals("old");
    /// assert!(write.check_condition(Some(b"old")).is_ok());
    /// let err = write.check_condition(None).unwrap_err();
    /// assert_eq!(err.failed_condition(), Some(&FailedCondition::AuxKey(b"k".to_vec())));
    /// ```
    pub fn check_condition(&self, current: Option<&[u8]>) -> Result<()> {
        let (holds, what) = match &self.condition {
            AuxCondition::None => return Ok(()),
            AuxCondition::Absent => (current.is_none(), "absent".to_string()),
            AuxCondition::Equals(v) => (
                current == Some(v.as_slice()),
                format!("equal to {}", show_bytes(v)),
            ),
        };
        if holds {
            return Ok(());
        }
        Err(Error::condition_failed(
            FailedCondition::AuxKey(self.key.clone()),
            format!("aux key {} is not {what}", show_bytes(&self.key)),
        ))
    }
}

/// Checks an aux key against \[X1\].
pub fn validate_aux_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::empty(Field::AuxKey, "aux key is empty"));
    }
    if key.len() > MAX_AUX_KEY_BYTES {
        return Err(Error::limit(
            Limit::AuxKeyBytes,
            MAX_AUX_KEY_BYTES,
            key.len(),
            format!(
                "aux key of {} bytes is longer than the limit of {MAX_AUX_KEY_BYTES}",
                key.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of types and tags an event of this test can have.
    fn events() -> Vec<(String, Vec<String>)> {
        let mut all = Vec::new();
        for ty in ["A", "B", "C"] {
            for tags in [
                &[][..],
                &["x"],
                &["y"],
                &["x", "y"],
                &["y", "z"],
                &["x", "y", "z"],
            ] {
                all.push((ty.to_string(), tags.iter().map(|t| t.to_string()).collect()));
            }
        }
        all
    }

    #[test]
    fn a_normalized_query_matches_the_same_events_and_is_smallest() {
        let item = |types: &[&str], tags: &[&str]| QueryItem {
            types: types.iter().map(|t| t.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        };
        let queries = [
            Query {
                items: vec![item(&["A"; 64], &[]); 64],
            },
            Query {
                items: vec![
                    item(&["B", "A", "B"], &["y", "x", "y"]),
                    item(&["A"], &["x", "y", "z"]),
                ],
            },
            Query {
                items: vec![
                    item(&[], &["x"]),
                    item(&["C"], &["x", "z"]),
                    item(&["C"], &[]),
                ],
            },
            Query {
                items: vec![
                    item(&["A"], &["x"]),
                    item(&[], &["y"]),
                    item(&["A", "B"], &[]),
                ],
            },
            Query {
                items: vec![item(&["A"], &[]), item(&[], &[])],
            },
        ];
        for query in queries {
            let normal = query.normalized();
            for (ty, tags) in events() {
                assert_eq!(
                    normal.matches_parts(&ty, &tags),
                    query.matches_parts(&ty, &tags),
                    "{query} and {normal} on {ty} {tags:?}"
                );
            }
            assert_eq!(normal.normalized(), normal, "normalizing twice");
        }
        let q = Query {
            items: vec![
                item(&["B", "A", "B"], &["y", "x", "y"]),
                item(&["A"], &["x", "y", "z"]),
            ],
        };
        assert_eq!(
            q.normalized(),
            Query::single(item(&["A", "B"], &["x", "y"]))
        );
    }
}
