//! Why a command failed, as one line and an exit code.

use std::fmt;
use std::process::ExitCode;

/// A failed command: the one line printed on stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    code: u8,
}

/// The exit code of a command that failed (an error from the store, bad
/// input, an I/O error).
pub const EXIT_FAILED: u8 = 1;
/// The exit code of `verify` when it found problems, and of `migrate` when
/// the stores differ afterwards.
pub const EXIT_PROBLEMS: u8 = 3;

impl Failure {
    /// Bad input: a file or a flag's value.
    pub fn input(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_FAILED,
        }
    }

    /// An I/O error while doing `what`.
    pub fn io(what: &str, error: impl fmt::Display) -> Failure {
        Failure::input(format!("{what}: {error}"))
    }

    /// The store (or the check) found problems.
    pub fn problems(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_PROBLEMS,
        }
    }

    /// The same failure, its message put after `place` (e.g. `FILE line
    /// 7`).
    pub fn at(self, place: &str) -> Failure {
        Failure {
            message: format!("{place}: {}", self.message),
            code: self.code,
        }
    }

    /// Prints the message on one line and gives the exit code.
    pub fn report(self) -> ExitCode {
        let one_line = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        eprintln!("annals: error: {one_line}");
        ExitCode::from(self.code)
    }
}

impl From<annals::Error> for Failure {
    fn from(error: annals::Error) -> Failure {
        Failure::input(error.to_string())
    }
}

/// `.fail()`: an annals error as a [`Failure`].
pub trait Fail<T> {
    /// The error as a [`Failure`].
    fn fail(self) -> Result<T, Failure>;
}

impl<T> Fail<T> for annals::Result<T> {
    fn fail(self) -> Result<T, Failure> {
        self.map_err(Failure::from)
    }
}
