//! The one error type of Gradus: every fallible call returns [`Result`].

use std::path::PathBuf;

/// Result alias used across Gradus.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in Gradus, with the data needed to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value has the wrong type or an invalid value.
    #[error("invalid config at {path}: {message}")]
    Config {
        /// JSON path of the offending value, e.g. `optimizer.betas[1]`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration object has a key its type does not know.
    #[error("unknown field `{field}` at {path}, expected one of {}{}", .expected.join(", "), did_you_mean(.suggestion))]
    UnknownField {
        /// JSON path of the object holding the key.
        path: String,
        /// The unknown key.
        field: String,
        /// Every valid key of that object.
        expected: Vec<String>,
        /// The valid key nearest to `field`, if any is close.
        suggestion: Option<String>,
    },
    /// A `"type"` names no registered component of its kind.
    #[error("unknown {kind} `{name}` at {path}; registered: {}{}", .valid.join(", "), did_you_mean(.suggestion))]
    UnknownName {
        /// The component kind, e.g. `optimizer`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// JSON path of the `type` field.
        path: String,
        /// Every registered name of that kind.
        valid: Vec<String>,
        /// The registered name nearest to `name`, if any is close.
        suggestion: Option<String>,
    },
    /// Two registrations claim the same name within one kind.
    #[error("duplicate {kind} name `{name}`: registered by {first} and by {second}")]
    DuplicateName {
        /// The component kind.
        kind: &'static str,
        /// The name registered twice.
        name: String,
        /// Origin (module path) of the first registration.
        first: String,
        /// Origin (module path) of the second registration.
        second: String,
    },
    /// A hyperparameter is outside its valid range (wording follows PyTorch).
    #[error("{0}")]
    InvalidHyperparameter(String),
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {context}: expected {expected:?}, got {actual:?}")]
    ShapeMismatch {
        /// What was being checked, e.g. `state of layers.0.weight`.
        context: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape found.
        actual: Vec<usize>,
    },
    /// Saved state does not match what it is loaded into.
    #[error("state mismatch: {0}")]
    StateMismatch(String),
    /// A state or data file is unreadable, truncated or corrupt.
    #[error("rejected {path}: {message}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        message: String,
    },
    /// A file-system operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A NaN or infinity where a finite value is required.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// A request this build or component cannot serve.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An error from Candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// A [`Error::Config`] at `path`.
    pub fn config(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Gives an error raised without a JSON path (a hyperparameter range check such as
    /// PyTorch's `Invalid learning rate: -0.5`, a non-finite value) the `path` of the config it
    /// came from, as [`Error::Config`]; errors that already name where they are stay as they are.
    pub fn at(self, path: &str) -> Self {
        match self {
            Error::InvalidHyperparameter(message) | Error::NonFinite(message) => {
                Error::config(crate::config::display_path(path), message)
            }
            other => other,
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// So that `?` on a Gradus result works in Candle code (`fn main() -> candle_core::Result<()>`):
/// a wrapped Candle error comes back as itself, any other as `candle_core::Error::Wrapped`.
impl From<Error> for candle_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Candle(inner) => inner,
            other => candle_core::Error::wrap(other),
        }
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}
