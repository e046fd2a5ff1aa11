use proptest::prelude::*;

use super::*;

/// Every character a message must never carry raw.
fn hostile() -> Vec<char> {
    let mut chars: Vec<char> = (0u32..0x20)
        .chain([0x7f])
        .chain(0x80..0xa0)
        .filter_map(char::from_u32)
        .collect();
    chars.extend([
        // Bidi embeddings, overrides, isolates and marks.
        '\u{202a}',
        '\u{202b}',
        '\u{202c}',
        '\u{202d}',
        '\u{202e}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{200e}',
        '\u{200f}',
        '\u{61c}',
        // Zero-width and invisible.
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{2060}',
        '\u{feff}',
        '\u{ad}',
        '\u{180e}',
        '\u{e0041}',
        '\u{fe0f}',
        '\u{3164}', // Separators and unusual spaces.
        '\u{2028}',
        '\u{2029}',
        '\u{a0}',
        '\u{3000}',
    ]);
    chars
}

/// Reads back what [`quote`] wrote between its quotes.
fn unescape(quoted: &str) -> String {
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('u') => {
                let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            other => panic!("unknown escape {other:?} in {quoted}"),
        }
    }
    out
}

#[test]
fn plain_text_is_quoted_as_it_is() {
    assert_eq!(quote("Fry").to_string(), "\"Fry\"");
    assert_eq!(quote("Zürich 東京").to_string(), "\"Zürich 東京\"");
    assert_eq!(quote("").to_string(), "\"\"");
}

#[test]
fn every_hostile_character_is_escaped() {
    for c in hostile() {
        let text = format!("a{c}b");
        let quoted = quote(&text).to_string();
        assert!(!quoted.contains(c), "{c:?} raw in {quoted}");
        assert!(quoted.is_ascii(), "{c:?}: {quoted}");
        assert_eq!(unescape(&quoted[1..quoted.len() - 1]), text);
    }
    assert_eq!(
        quote("Europe/Berlin\u{202e}nilreB").to_string(),
        "\"Europe/Berlin\\u{202e}nilreB\""
    );
    assert_eq!(quote("a\nb\tc\u{0}").to_string(), "\"a\\nb\\tc\\u{0}\"");
    // Typed as text, an escape is not taken for one.
    assert_eq!(quote("\\u{202e}").to_string(), "\"\\\\u{202e}\"");
    assert_eq!(escape("x\u{1b}[2Jy", 80), "x\\u{1b}[2Jy");
}

#[test]
fn a_long_token_is_cut_with_an_ellipsis() {
    let long = "A".repeat(200_000);
    let quoted = quote(&long).to_string();
    assert_eq!(quoted, format!("\"{}…\"", "A".repeat(MAX_QUOTED)));
    // Exactly the bound is not cut; one more is.
    let fits = "B".repeat(MAX_QUOTED);
    assert_eq!(quote(&fits).to_string(), format!("\"{fits}\""));
    assert!(quote(&format!("{fits}B")).to_string().ends_with("B…\""));
}

#[test]
fn multibyte_text_is_cut_on_a_character_boundary() {
    for unit in ["é", "東", "🦀", "e\u{301}"] {
        let long = unit.repeat(100);
        let quoted = quote(&long).to_string();
        let inner = quoted.trim_matches('"').trim_end_matches('…');
        assert_eq!(inner.chars().count(), MAX_QUOTED, "{unit}");
        assert!(long.starts_with(inner), "{unit}");
    }
    // An escape is never split: the one that would cross the bound is left out.
    let text = format!("{}\u{202e}", "x".repeat(MAX_QUOTED - 3));
    assert_eq!(
        quote(&text).to_string(),
        format!("\"{}…\"", "x".repeat(MAX_QUOTED - 3))
    );
}

#[test]
fn escape_keeps_the_start_and_the_end() {
    let text = format!(
        "invalid type: string \"{}\", expected f64",
        "A".repeat(5000)
    );
    let cut = escape(&text, 100);
    assert_eq!(cut.chars().count(), 100);
    assert!(cut.starts_with("invalid type: string \"AAA"), "{cut}");
    assert!(cut.ends_with("AAA\", expected f64"), "{cut}");
    assert_eq!(cut.matches('…').count(), 1);
}

#[test]
fn a_foreign_message_has_its_quoted_parts_cut() {
    let long = "x".repeat(10_000);
    let message = format!(
        "unknown variant `{long}\u{202e}`, expected one of `none`, `velocity`, `acceleration`, `seasonal`"
    );
    let out = foreign(&message);
    assert_eq!(
        out,
        format!(
            "unknown variant `{}…`, expected one of `none`, `velocity`, `acceleration`, `seasonal`",
            "x".repeat(MAX_QUOTED)
        )
    );
    let debug = format!("invalid type: string {:?}, expected f64", "a\"b\u{202e}");
    assert_eq!(
        foreign(&debug),
        "invalid type: string \"a\\\"b\\u{202e}\", expected f64"
    );
    // An unclosed quote is cut too.
    let open = format!("unknown field `{long}");
    assert!(foreign(&open).chars().count() < 100, "{}", foreign(&open));
    // Words between quotes, with spaces, are bounded as a whole.
    let words = format!("unknown variant `{}`", "a ".repeat(10_000));
    assert!(foreign(&words).chars().count() <= 120);
}

fn is_safe(text: &str) -> bool {
    !text.chars().any(needs_escape)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn quoted_text_is_bounded_escaped_and_a_faithful_prefix(text in any::<String>()) {
        let quoted = quote(&text).to_string();
        prop_assert!(quoted.chars().count() <= MAX_QUOTED + 3, "{}", quoted);
        prop_assert!(is_safe(&quoted), "{:?}", quoted);
        prop_assert!(quoted.starts_with('"') && quoted.ends_with('"'));
        let inner = &quoted[1..quoted.len() - 1];
        let widths = text.chars().map(|c| if c == '\\' { 2 } else { width(c) });
        let cut = widths.sum::<usize>() > MAX_QUOTED;
        let inner = if cut { inner.strip_suffix('…').unwrap() } else { inner };
        let back = unescape(inner);
        if cut {
            prop_assert!(text.starts_with(&back) && back.len() < text.len());
        } else {
            prop_assert_eq!(back, text);
        }
    }

    #[test]
    fn hostile_strings_are_always_escaped(
        parts in prop::collection::vec(
            prop_oneof![
                prop::sample::select(hostile()).prop_map(String::from),
                "[a-zA-Z0-9 /:=-]{0,20}",
                "[é東🦀]{0,5}",
            ],
            0..200,
        )
    ) {
        let text = parts.concat();
        let quoted = quote(&text).to_string();
        prop_assert!(is_safe(&quoted) && quoted.chars().count() <= MAX_QUOTED + 3, "{:?}", quoted);
        let escaped = escape(&text, 120);
        prop_assert!(is_safe(&escaped) && escaped.chars().count() <= 120, "{:?}", escaped);
        let foreign = foreign(&format!("unknown field `{text}`, invalid type: string \"{text}\""));
        prop_assert!(is_safe(&foreign) && foreign.chars().count() <= MAX_FOREIGN, "{:?}", foreign);
        // Escaped text is plain: doing it again changes nothing.
        prop_assert_eq!(escape(&escaped, 120), escaped.clone());
    }
}
