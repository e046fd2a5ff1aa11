//! What the recommender's persisted summaries (the seasonal history, a risk
//! calibration) share: versioned JSON read defensively, since a person can
//! edit the ledger object it lives in, and bins packed as little-endian
//! 16-bit words in base64.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::de::DeserializeOwned;

/// How a summary's own error type says why a text is refused.
pub(crate) trait Refusal: Sized {
    /// Larger than any summary this version writes.
    fn too_large(bytes: usize) -> Self;
    /// Not the JSON this version writes.
    fn malformed(why: String) -> Self;
    /// Another version's format.
    fn version(found: u32) -> Self;
    /// Values that cannot be right.
    fn inconsistent(why: String) -> Self;
}

/// Reads a summary of at most `max_bytes` whose version (`version_of`) is
/// `version`; the parser's message is quoted, never echoed raw.
pub(crate) fn read<T: DeserializeOwned, E: Refusal>(
    text: &str,
    max_bytes: usize,
    version: u32,
    version_of: impl Fn(&T) -> u32,
) -> Result<T, E> {
    if text.len() > max_bytes {
        return Err(E::too_large(text.len()));
    }
    if !text.trim_start().starts_with('{') {
        return Err(E::malformed("not a JSON object".to_owned()));
    }
    let summary: T = serde_json::from_str(text)
        .map_err(|e| E::malformed(crate::quoting::foreign(&e.to_string())))?;
    match version_of(&summary) {
        v if v == version => Ok(summary),
        v => Err(E::version(v)),
    }
}

/// `words` as little-endian bytes in base64.
pub(crate) fn pack(words: impl Iterator<Item = [u8; 2]>) -> String {
    STANDARD.encode(words.flatten().collect::<Vec<u8>>())
}

/// The words of [`pack`]'s text; `field` names it in a refusal.
pub(crate) fn unpack<E: Refusal>(text: &str, field: &str) -> Result<Vec<u16>, E> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| E::malformed(format!("{field}: {e}")))?;
    if bytes.len() % 2 != 0 {
        return Err(E::inconsistent(format!(
            "{field} has an odd number of bytes"
        )));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}
