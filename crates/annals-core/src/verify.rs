//! The report of a full integrity check of a store ([`LogBackend::verify`]).
//!
//! [`LogBackend::verify`]: crate::LogBackend::verify

use std::fmt;
use std::sync::Arc;

/// Most problems a [`VerifyReport`] lists one by one; it counts the rest in
/// [`VerifyReport::problems_not_listed`], so a badly damaged store cannot
/// make the report grow without bound.
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// Called now and then during a check with the number of records checked so
/// far, e.g. to draw a progress bar.
pub type VerifyProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// One thing wrong in a store: where, and what.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    /// Where it is, e.g. `log record at position 7`.
    pub location: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// What a full integrity check found ([`LogBackend::verify`]).
///
/// ```
/// use annals_core::{Problem, VerifyReport};
/// let mut report = VerifyReport::default();
/// assert!(report.is_clean());
/// report.add(Problem { location: "log record at position 3".into(), message: "checksum mismatch".into() });
/// assert!(!report.is_clean());
/// assert_eq!(report.problem_count(), 1);
/// ```
///
/// [`LogBackend::verify`]: crate::LogBackend::verify
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct VerifyReport {
    /// Records checked, in every space of the store.
    pub records: u64,
    /// Log records (events, readable or not yet compacted away) checked.
    pub events: u64,
    /// Streams (metadata records) checked.
    pub streams: u64,
    /// The problems found, at most [`MAX_LISTED_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems found beyond the listed ones.
    pub problems_not_listed: u64,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.problems_not_listed == 0
    }

    /// Every problem found, listed or not.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.problems_not_listed
    }

    /// Records a problem (counted only, past [`MAX_LISTED_PROBLEMS`]).
    pub fn add(&mut self, problem: Problem) {
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.problems_not_listed += 1;
        }
    }
}
