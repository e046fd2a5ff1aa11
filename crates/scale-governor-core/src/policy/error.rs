//! The errors of the policy language: one [`PolicyError`] per bad token,
//! and every one of a policy's in [`PolicyErrors`].

use std::fmt;

use crate::quoting::{self, quote};

/// How many errors a policy reports by name; the rest are counted
/// (`and 3 more`).
pub const MAX_REPORTED_ERRORS: usize = 10;

/// The most of a token an error keeps: more than [`quote`] ever shows, so
/// the quote is the same, and a 200 KB token is not held in memory.
const MAX_TOKEN_BYTES: usize = 4 * quoting::MAX_QUOTED + 64;

/// How long a message may get once its tokens are quoted: a safety net, the
/// quotes themselves are bounded.
const MAX_MESSAGE: usize = 800;

/// A policy annotation that does not parse or contradicts another.
///
/// Displays as `<annotation>: at "<token>" (column N): <what was expected>`,
/// or `(line L, column C)` in a value of several lines, so a user can find
/// the bad token without reading the grammar first. The token is quoted
/// with [`quote`]: bounded, and escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyError {
    /// Full annotation key, e.g. `scale-governor.io/windows`.
    pub annotation: String,
    /// The offending token, verbatim (its first few hundred bytes).
    pub token: String,
    /// 1-based line of the token within the annotation value.
    pub line: usize,
    /// 1-based character column of the token within its line.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// Whether the value has several lines: the position names the line.
    multiline: bool,
}

impl std::error::Error for PolicyError {}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: at {} (", self.annotation, quote(&self.token))?;
        if self.multiline {
            write!(f, "line {}, ", self.line)?;
        }
        write!(
            f,
            "column {}): {}",
            self.column,
            quoting::escape(&self.message, MAX_MESSAGE)
        )
    }
}

impl PolicyError {
    /// An error about `token`, which should be a slice of `value`: the
    /// position is then exact even when the same text appears twice.
    pub(crate) fn at(annotation: &str, value: &str, token: &str, message: String) -> PolicyError {
        let (line, column) = position_of(value, token);
        PolicyError {
            annotation: annotation.to_owned(),
            token: kept(token),
            line,
            column,
            message,
            multiline: is_multiline(value),
        }
    }

    /// An error about the annotation as a whole.
    pub(crate) fn whole(annotation: &str, token: &str, message: String) -> PolicyError {
        PolicyError {
            annotation: annotation.to_owned(),
            token: kept(token),
            line: 1,
            column: 1,
            message,
            multiline: false,
        }
    }

    /// The same error, positioned where its token first appears in `value`
    /// (a JSON field's name, say).
    pub(crate) fn found_in(self, value: &str) -> PolicyError {
        let (line, column) = position_of(value, &self.token);
        PolicyError {
            line,
            column,
            multiline: is_multiline(value),
            ..self
        }
    }

    /// A JSON annotation serde_json refused: the token is the JSON token at
    /// the position serde_json names, and its message is quoted as a
    /// foreign one (it may quote the input itself).
    pub(crate) fn json(
        annotation: &str,
        value: &str,
        error: &serde_json::Error,
        expected: &str,
    ) -> PolicyError {
        let text = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let what = text.strip_suffix(&suffix).unwrap_or(&text);
        let token = json_token(value, error);
        PolicyError::at(
            annotation,
            value,
            token,
            format!("{}, {expected}", quoting::foreign(what)),
        )
    }
}

/// A value of several lines; a trailing newline (a YAML `|` block) alone
/// does not count.
fn is_multiline(value: &str) -> bool {
    value.trim_end().contains('\n')
}

fn kept(token: &str) -> String {
    let mut end = token.len().min(MAX_TOKEN_BYTES);
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    token[..end].to_owned()
}

/// 1-based line and character column of `token` in `value`.
fn position_of(value: &str, token: &str) -> (usize, usize) {
    let base = value.as_ptr() as usize;
    let start = token.as_ptr() as usize;
    let byte = if start >= base && start + token.len() <= base + value.len() {
        start - base
    } else {
        value.find(token).unwrap_or(0)
    };
    let before = value.get(..byte).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

/// The token of `value` a serde_json error is about. A syntax error points
/// at the character it could not read: the rest of that line. A data error
/// points at the last character of the value it refused: that value (a
/// string's content, a number, a word).
fn json_token<'v>(value: &'v str, error: &serde_json::Error) -> &'v str {
    let line_start = value
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum::<usize>();
    let line_end = value[line_start..]
        .find('\n')
        .map_or(value.len(), |i| line_start + i);
    let mut at = (line_start + error.column().saturating_sub(1)).min(line_end);
    while !value.is_char_boundary(at) {
        at -= 1;
    }
    if !error.is_data() {
        return &value[at..line_end];
    }
    let end = value[at..line_end]
        .chars()
        .next()
        .map_or(at, |c| at + c.len_utf8());
    let line = &value[line_start..end];
    if let Some(body) = line.strip_suffix('"') {
        // A string: its content, back to the opening quote past escaped ones.
        let mut open = body.rfind('"');
        while let Some(i) = open {
            let backslashes = body[..i].chars().rev().take_while(|c| *c == '\\').count();
            if backslashes % 2 == 0 {
                break;
            }
            open = body[..i].rfind('"');
        }
        let start = open.map_or(0, |i| i + 1);
        return &value[line_start + start..line_start + body.len()];
    }
    let start = line
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .map_or(0, |i| i + 1);
    &value[line_start + start..end]
}

/// Every error found in a workload's policy annotations, in the order of
/// the annotations and within each in the order written. The first
/// [`MAX_REPORTED_ERRORS`] are kept; the rest are counted.
///
/// Displays the one error as it is, several as `N errors: <first>; <second>
/// …; and K more`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors {
    kept: Vec<PolicyError>,
    total: usize,
}

impl std::error::Error for PolicyErrors {}

impl From<PolicyError> for PolicyErrors {
    fn from(error: PolicyError) -> PolicyErrors {
        PolicyErrors {
            kept: vec![error],
            total: 1,
        }
    }
}

impl PolicyErrors {
    /// No errors yet.
    pub(crate) fn new() -> PolicyErrors {
        PolicyErrors {
            kept: Vec::new(),
            total: 0,
        }
    }

    /// Adds one error.
    pub(crate) fn push(&mut self, error: PolicyError) {
        self.total += 1;
        if self.kept.len() < MAX_REPORTED_ERRORS {
            self.kept.push(error);
        }
    }

    /// Adds every error of `other`.
    pub(crate) fn append(&mut self, other: PolicyErrors) {
        let counted_only = other.total - other.kept.len();
        for error in other.kept {
            self.push(error);
        }
        self.total += counted_only;
    }

    /// `Ok(value)` when nothing was found.
    pub(crate) fn or_ok<T>(self, value: T) -> Result<T, PolicyErrors> {
        if self.total == 0 {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// The first error.
    pub fn first(&self) -> &PolicyError {
        &self.kept[0]
    }

    /// The errors kept, at most [`MAX_REPORTED_ERRORS`].
    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        self.kept.iter()
    }

    /// How many errors were found, kept or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The display in at most `max_bytes`: as many whole errors as fit, the
    /// rest counted (`and 4 more`), so a message with a size limit (an
    /// Event's note) still names every error it can and says how many it
    /// leaves out.
    pub fn summary(&self, max_bytes: usize) -> String {
        let full = self.to_string();
        if full.len() <= max_bytes {
            return full;
        }
        let mut out = if self.total > 1 {
            format!("{} errors: ", self.total)
        } else {
            String::new()
        };
        let mut shown = 0;
        for error in &self.kept {
            let text = error.to_string();
            let sep = if shown == 0 { "" } else { "; " };
            let more = format!("; and {} more", self.total - shown - 1);
            if out.len() + sep.len() + text.len() + more.len() > max_bytes {
                break;
            }
            out.push_str(sep);
            out.push_str(&text);
            shown += 1;
        }
        if shown == 0 {
            // Not even one fits whole: the first, cut.
            let room = max_bytes.saturating_sub(out.len() + 24);
            out.push_str(&cut(&self.kept[0].to_string(), room));
            shown = 1;
        }
        if self.total > shown {
            out.push_str(&format!("; and {} more", self.total - shown));
        }
        out
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with `…`.
fn cut(text: &str, max: usize) -> String {
    let mut end = max.saturating_sub('…'.len_utf8()).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total > 1 {
            write!(f, "{} errors: ", self.total)?;
        }
        for (i, error) in self.kept.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        let left = self.total - self.kept.len();
        if left > 0 {
            write!(f, "; and {left} more")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
