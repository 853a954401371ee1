//! Every clause of the contract, `docs/contract.md`, is named by at least
//! one conformance case, and every clause a case names is in the contract.
//!
//! A clause is defined by a list item that starts with its ID in bold
//! brackets (`- **[A4]** …`). A case — a function registered with `case!`
//! in `src/cases/` — names a clause in brackets (`[A4]`) in the comments
//! right above it, or by its name's leading words (`a4_exact_race_…`,
//! `r4_r5_reader_…`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const CONTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/contract.md");
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cases");

/// Whether `word` is a clause ID: one capital letter, then digits.
fn is_clause_id(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && !chars.as_str().is_empty()
        && chars.as_str().chars().all(|c| c.is_ascii_digit())
}

/// The IDs in brackets in `text`: `[A4]`, `[R4]`.
fn bracketed_ids(text: &str) -> Vec<String> {
    text.split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once(']'))
        .map(|(inside, _)| inside)
        .filter(|inside| is_clause_id(inside))
        .map(str::to_string)
        .collect()
}

/// The clauses the contract defines, in the order it defines them.
fn defined_clauses(contract: &str) -> Vec<String> {
    contract
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- **["))
        .filter_map(|rest| rest.split_once("]**"))
        .map(|(id, _)| id)
        .filter(|id| is_clause_id(id))
        .map(str::to_string)
        .collect()
}

/// The cases registered in one file of `src/cases` (`case!(name` …), each
/// with the clause IDs it names.
fn cases_in(source: &str) -> BTreeMap<String, BTreeSet<String>> {
    let registered: BTreeSet<&str> = source
        .split("case!(")
        .skip(1)
        .filter_map(|rest| {
            let name = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()?;
            (!name.is_empty()).then_some(name)
        })
        .collect();
    let lines: Vec<&str> = source.lines().collect();
    let mut cases = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("pub async fn ") else {
            continue;
        };
        let name = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        if !registered.contains(name) {
            continue;
        }
        let mut named = BTreeSet::new();
        // Its name's leading words: `r4_r5_reader_follows…` names R4, R5.
        for word in name.split('_') {
            let id = word.to_ascii_uppercase();
            if !is_clause_id(&id) {
                break;
            }
            named.insert(id);
        }
        // The comments (and attributes) right above it.
        for above in lines[..i].iter().rev() {
            let above = above.trim_start();
            if above.starts_with("//") {
                named.extend(bracketed_ids(above));
            } else if !above.starts_with("#[") {
                break;
            }
        }
        cases.insert(name.to_string(), named);
    }
    cases
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every case of the suite, with the clauses it names.
fn all_cases() -> BTreeMap<String, BTreeSet<String>> {
    let mut files: Vec<PathBuf> = fs::read_dir(CASES)
        .unwrap_or_else(|e| panic!("cannot list {CASES}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut cases = BTreeMap::new();
    for file in files {
        let module = file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_string();
        for (name, named) in cases_in(&read(&file)) {
            cases.insert(format!("{module}::{name}"), named);
        }
    }
    cases
}

#[test]
fn every_clause_of_the_contract_is_named_by_a_case() {
    let clauses = defined_clauses(&read(Path::new(CONTRACT)));
    assert!(
        clauses.len() >= 30,
        "found only {} clauses in {CONTRACT} (items like `- **[A1]** …`): {clauses:?}",
        clauses.len()
    );
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = clauses.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(twice.is_empty(), "{CONTRACT} defines {twice:?} twice");

    let cases = all_cases();
    assert!(
        cases.len() >= 100,
        "found only {} registered cases in {CASES}",
        cases.len()
    );
    let named: BTreeSet<&String> = cases.values().flatten().collect();
    let unnamed: Vec<&String> = clauses.iter().filter(|id| !named.contains(id)).collect();
    assert!(
        unnamed.is_empty(),
        "no conformance case names {unnamed:?} (in brackets in the comment above it, or by \
         its name's first word); every clause of {CONTRACT} needs at least one"
    );
    let unknown: BTreeMap<&String, Vec<&String>> = named
        .iter()
        .filter(|id| !seen.contains(**id))
        .map(|id| {
            let by = cases
                .iter()
                .filter(|(_, ids)| ids.contains(*id))
                .map(|(case, _)| case)
                .collect();
            (*id, by)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "cases name clauses {CONTRACT} does not define: {unknown:?}"
    );
    let covered = clauses.len() - unnamed.len();
    println!(
        "contract clauses named by a case: {covered} of {}",
        clauses.len()
    );
}

#[test]
fn the_parsers_find_what_they_should() {
    assert_eq!(
        defined_clauses("- **[A1]** one\n  - **[B22]** two\n- [C3] not bold\n- **[x1]** no"),
        ["A1", "B22"]
    );
    assert_eq!(
        bracketed_ids("// [A2] [R4] and [not] [a1] [A] [A1x]"),
        ["A2", "R4"]
    );
    let source = "\
case!(a4_first), case!(plain, |c| c.x)
// [S1] the comment
/// `[D3]`: doc
#[allow(unused)]
pub async fn a4_r8_first<H: Harness>(h: H) -> CaseResult { }
// [X1] not above a case
pub async fn helper() {}
pub async fn a4_first<H>(h: H) {}
// [M2]
pub async fn plain<H>(h: H) {}
";
    let cases = cases_in(source);
    let ids = |name: &str| -> Vec<&str> { cases[name].iter().map(String::as_str).collect() };
    assert_eq!(cases.len(), 2, "{cases:?}");
    assert_eq!(ids("a4_first"), ["A4"]);
    assert_eq!(ids("plain"), ["M2"]);
}
