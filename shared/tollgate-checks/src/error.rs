//! [`SpecError`]: what is wrong with a spec, by field path. Its own module
//! so that the parsers (`spec`, `expect`, `parse`, `template`) all depend on
//! it and none on another through it.

/// A problem with the spec, found while parsing it or when variables are
/// applied. `Display` starts with the field path:
/// `checks[2].expect.status: expected a code, a list or a range like "200-299", got "2xx"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The text is not valid YAML / JSON.
    #[error("spec is not valid {format}: {message}")]
    Syntax {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// What kind of error and where, never the text around it
        /// ([`tollgate_core::doc_error`]).
        message: String,
    },
    /// A field has a wrong type, value or name.
    #[error("{path}: {message}")]
    Invalid {
        /// Where: `checks[2].expect.status`.
        path: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A template uses a variable the caller did not supply.
    #[error("{path}: unknown variable ${{{name}}}; {hint}")]
    UnknownVariable {
        /// The field holding the template.
        path: String,
        /// The variable's name.
        name: String,
        /// Which variables exist and how to pass one.
        hint: String,
    },
}

impl SpecError {
    pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            path: if path.is_empty() {
                "spec".to_owned()
            } else {
                path.to_owned()
            },
            message: message.into(),
        }
    }

    /// The field path, when the error is about one field.
    pub fn path(&self) -> Option<&str> {
        match self {
            SpecError::Syntax { .. } => None,
            SpecError::Invalid { path, .. } | SpecError::UnknownVariable { path, .. } => Some(path),
        }
    }
}
