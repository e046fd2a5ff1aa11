//! The one error type of the policy language.

/// A policy annotation that does not parse or contradicts another.
///
/// Displays as `<annotation>: at "<token>" (column N): <what was expected>`,
/// so a user can find the bad token without reading the grammar first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{annotation}: at \"{token}\" (column {column}): {message}")]
#[non_exhaustive]
pub struct PolicyError {
    /// Full annotation key, e.g. `scale-governor.io/windows`.
    pub annotation: String,
    /// The offending token, verbatim.
    pub token: String,
    /// 1-based character column of the token within the annotation value.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl PolicyError {
    /// An error about `token`, which should be a slice of `value`: the column
    /// is then exact even when the same text appears twice.
    pub(crate) fn at(annotation: &str, value: &str, token: &str, message: String) -> PolicyError {
        PolicyError {
            annotation: annotation.to_owned(),
            token: token.to_owned(),
            column: column_of(value, token),
            message,
        }
    }

    /// An error about the annotation as a whole.
    pub(crate) fn whole(annotation: &str, token: &str, message: String) -> PolicyError {
        PolicyError {
            annotation: annotation.to_owned(),
            token: token.to_owned(),
            column: 1,
            message,
        }
    }
}

fn column_of(value: &str, token: &str) -> usize {
    let base = value.as_ptr() as usize;
    let start = token.as_ptr() as usize;
    let byte = if start >= base && start + token.len() <= base + value.len() {
        start - base
    } else {
        value.find(token).unwrap_or(0)
    };
    value.get(..byte).map_or(0, |prefix| prefix.chars().count()) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_follows_the_slice_not_the_first_match() {
        let value = "Mon-Fri x; Sat x";
        let second_x = &value[15..16];
        let err = PolicyError::at("k", value, second_x, "m".into());
        assert_eq!(err.column, 16);
    }

    #[test]
    fn column_counts_characters() {
        let value = "Zürich Foo";
        let err = PolicyError::at("k", value, &value[8..], "m".into());
        assert_eq!(err.column, 8);
    }
}
