//! Annotation input quoted into a message, safely. Every message that echoes
//! what a user wrote (a policy error, a warning, a reason, and through them
//! the admission response, the Event and the log line) quotes it here:
//!
//! - **bounded**: at most [`MAX_QUOTED`] characters of it, cut on a
//!   character boundary and marked with `…`, so a 200 KB token does not
//!   become a 200 KB `kubectl` error, Event and log line;
//! - **escaped**: control characters (C0, DEL, C1), bidirectional controls
//!   (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C), zero-width and
//!   other invisible characters and unusual spaces are written as `\u{202e}`
//!   (`\n`, `\r` and `\t` as such), so a message cannot reorder or hide text
//!   in a terminal.
//!
//! The escaped form is plain text: quoting it again changes nothing.

use std::fmt::{self, Write as _};

/// How many characters of a token a message quotes, at most.
pub const MAX_QUOTED: usize = 80;

/// How long a message from another library (serde_json's, say) may be once
/// its quoted parts are cut to [`MAX_QUOTED`]: room for its own words and a
/// list of the expected fields.
pub const MAX_FOREIGN: usize = 400;

/// Whether `c` is written escaped: it could hide, move or reorder text.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Unusual spaces: they make one token look like two.
            '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
            // Format characters: soft hyphen, Arabic marks and the letter mark.
            | '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
            | '\u{890}'..='\u{891}' | '\u{8e2}' | '\u{110bd}' | '\u{110cd}'
            // Invisible: the grapheme joiner, fillers, variation selectors.
            | '\u{34f}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}' | '\u{3164}' | '\u{ffa0}' | '\u{fe00}'..='\u{fe0f}'
            | '\u{e0100}'..='\u{e01ef}'
            // Zero-width characters and the LRM/RLM marks.
            | '\u{200b}'..='\u{200f}'
            // Line and paragraph separators, the embeddings and overrides.
            | '\u{2028}'..='\u{202e}'
            // Word joiner, invisible operators, the isolates, deprecated formats.
            | '\u{2060}'..='\u{206f}'
            // Byte-order mark, interlinear annotations, tags.
            | '\u{feff}' | '\u{fff0}'..='\u{fffb}' | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e007f}'
        )
}

/// How `c` is written in a message.
fn rendered(c: char, out: &mut impl fmt::Write) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if needs_escape(c) => write!(out, "\\u{{{:x}}}", u32::from(c)),
        c => out.write_char(c),
    }
}

/// How many characters [`rendered`] writes for `c`.
fn width(c: char) -> usize {
    match c {
        '\n' | '\r' | '\t' => 2,
        // `\u{` + hex digits + `}`
        c if needs_escape(c) => {
            4 + ((32 - u32::from(c).leading_zeros()).div_ceil(4) as usize).max(1)
        }
        _ => 1,
    }
}

/// `text` in double quotes, escaped, at most [`MAX_QUOTED`] characters of
/// it (escapes counted as written) and `…` when cut:
/// `format!("unknown mode {}", quote(value))`. A backslash is written `\\`,
/// so an escape in the quote is always one the governor wrote.
pub fn quote(text: &str) -> Quoted<'_> {
    quote_at_most(text, MAX_QUOTED)
}

/// [`quote`] with another bound, for text that is longer by nature (a
/// window as its reason names it).
pub fn quote_at_most(text: &str, max: usize) -> Quoted<'_> {
    Quoted {
        text,
        max,
        marks: true,
    }
}

/// The [`Display`](fmt::Display) of [`quote`].
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a> {
    text: &'a str,
    max: usize,
    /// In quote marks, with backslashes doubled; without, for a part of a
    /// foreign message, whose backslashes are its own escapes.
    marks: bool,
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.marks {
            f.write_char('"')?;
        }
        let mut used = 0;
        for c in self.text.chars() {
            let doubled = self.marks && c == '\\';
            used += if doubled { 2 } else { width(c) };
            if used > self.max {
                f.write_char('…')?;
                break;
            }
            if doubled {
                f.write_str("\\\\")?;
            } else {
                rendered(c, f)?;
            }
        }
        if self.marks {
            f.write_char('"')?;
        }
        Ok(())
    }
}

/// `text` escaped, without quotes, at most `max` characters: when longer,
/// its start and its end with `…` between them, so the end of a message
/// (what was expected) survives the cut.
pub fn escape(text: &str, max: usize) -> String {
    let total: usize = text.chars().map(width).sum();
    let mut out = String::with_capacity(total.min(max) + 3);
    if total <= max {
        for c in text.chars() {
            let _ = rendered(c, &mut out);
        }
        return out;
    }
    let budget = max.saturating_sub(1);
    let head_budget = budget - budget / 3;
    let mut head = 0;
    let mut head_end = 0;
    for (i, c) in text.char_indices() {
        if head + width(c) > head_budget {
            break;
        }
        head += width(c);
        head_end = i + c.len_utf8();
        let _ = rendered(c, &mut out);
    }
    out.push('…');
    let mut tail = 0;
    let mut tail_start = text.len();
    for (i, c) in text[head_end..].char_indices().rev() {
        if head + tail + width(c) > budget {
            break;
        }
        tail += width(c);
        tail_start = head_end + i;
    }
    for c in text[tail_start..].chars() {
        let _ = rendered(c, &mut out);
    }
    out
}

/// A message from another library that may quote input (serde_json's
/// ``unknown variant `…` `` or `invalid type: string "…"`): each part
/// between backticks or double quotes cut to [`MAX_QUOTED`] characters,
/// everything escaped, and the whole at most [`MAX_FOREIGN`] characters.
pub fn foreign(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let delimiter = rest[open..].chars().next().unwrap_or('"');
        let (before, after) = rest.split_at(open);
        out.push_str(&escape(before, usize::MAX));
        let inner = &after[1..];
        let close = closing(inner, delimiter).unwrap_or(inner.len());
        let part = Quoted {
            text: &inner[..close],
            max: MAX_QUOTED,
            marks: false,
        };
        out.push(delimiter);
        let _ = write!(out, "{part}");
        if close < inner.len() {
            out.push(delimiter);
            rest = &inner[close + 1..];
        } else {
            rest = "";
        }
    }
    out.push_str(&escape(rest, usize::MAX));
    escape(&out, MAX_FOREIGN)
}

/// Where the part that starts after an opening `delimiter` ends: Debug
/// quoting escapes a double quote inside it as `\"`.
fn closing(inner: &str, delimiter: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            '\\' if delimiter == '"' && !escaped => escaped = true,
            c if c == delimiter && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests;
