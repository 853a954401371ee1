//! The conformance cases, one module per area of the contract
//! (`docs/contract.md`). Each module exports its cases as `pub async fn`s
//! generic over the [`Harness`], and `cases::<H>()`, its registration list.

use futures::future::BoxFuture;

use annals_core::Capabilities;

use crate::Harness;
use crate::support::CaseResult;

pub mod append;
pub mod aux;
pub mod batch;
pub mod concurrency;
pub mod conditions;
pub mod history;
pub mod lifecycle;
pub mod query;
pub mod read;
pub mod store;
pub mod streams;

/// The body of a case: takes a fresh harness, runs to a verdict.
pub type CaseFn<H> = fn(H) -> BoxFuture<'static, CaseResult>;

/// One registered case.
pub struct Case<H> {
    /// `module::case_name`.
    pub name: String,
    /// Whether the case runs against a backend with these capabilities;
    /// otherwise it is reported as ignored.
    pub runs_if: fn(&Capabilities) -> bool,
    /// The case.
    pub body: CaseFn<H>,
}

impl<H> Case<H> {
    /// A case of `module` named `name`.
    pub fn new(
        module: &str,
        name: &str,
        runs_if: fn(&Capabilities) -> bool,
        body: CaseFn<H>,
    ) -> Self {
        let module = module.rsplit("::").next().unwrap_or(module);
        Case {
            name: format!("{module}::{name}"),
            runs_if,
            body,
        }
    }
}

/// Registers a case function of the current module: `case!(f)` always
/// runs, `case!(f, |c| c.truncate)` only with that capability.
macro_rules! case {
    ($f:ident) => {
        $crate::cases::Case::new(
            module_path!(),
            stringify!($f),
            |_| true,
            |h| Box::pin($f::<H>(h)),
        )
    };
    ($f:ident, $runs_if:expr) => {
        $crate::cases::Case::new(module_path!(), stringify!($f), $runs_if, |h| {
            Box::pin($f::<H>(h))
        })
    };
}
pub(crate) use case;

/// Every case of every module.
pub fn all<H: Harness>() -> Vec<Case<H>> {
    let mut all = Vec::new();
    all.extend(append::cases::<H>());
    all.extend(batch::cases::<H>());
    all.extend(conditions::cases::<H>());
    all.extend(concurrency::cases::<H>());
    all.extend(read::cases::<H>());
    all.extend(query::cases::<H>());
    all.extend(streams::cases::<H>());
    all.extend(aux::cases::<H>());
    all.extend(lifecycle::cases::<H>());
    all.extend(store::cases::<H>());
    all.extend(history::cases::<H>());
    all
}
