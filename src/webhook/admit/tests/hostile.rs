//! Hostile annotations, explained safely: whatever a policy annotation
//! holds, what the governor says about it (the refusal `kubectl` prints,
//! the Event, the log line) names every error up to a bound, with its key
//! and position, quotes at most 80 characters of the input, and escapes
//! anything that could hide or reorder text in a terminal.

use serde_json::{Value, json};

use super::{
    said::{Said, said},
    *,
};

/// Characters a terminal acts on or hides: C0 controls, DEL, C1 controls
/// (CSI, OSC), every bidi control, zero-width characters, the BOM.
const HOSTILE: &[char] = &[
    '\u{0}', '\u{7}', '\u{8}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9b}', '\u{9d}', '\u{202a}',
    '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
    '\u{200e}', '\u{200f}', '\u{61c}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{2060}', '\u{feff}',
];

/// A bad value for each annotation that quotes what it refuses, with `h`
/// inside the refused token.
fn bad_values(h: &str) -> Vec<(&'static str, String)> {
    vec![
        (keys::MODE, format!("strict{h}")),
        (keys::MIN_REPLICAS, format!("{h}3")),
        (keys::MAX_REPLICAS, format!("2{h}0")),
        (
            keys::WINDOWS,
            format!("Mon-Fri 08:00-20:00 Europe/Berlin{h} min=1"),
        ),
        (keys::SCALE_UP, format!("4 pods/60{h}s")),
        (keys::SCALE_DOWN, format!("select=Max{h}")),
        (keys::SUSPEND_UNTIL, format!("2026-11-23T12:00:00Z{h}")),
        (
            keys::RECOMMEND,
            json!({ "source": format!("prom{h}") }).to_string(),
        ),
        (
            keys::RECOMMENDATION,
            json!({
                "replicas": 12, "reason": "r", "kind": "floor",
                "computedAt": format!("2026-11-23T09:58:00Z{h}"),
                "expiresAt": "2026-11-23T10:05:00Z",
            })
            .to_string(),
        ),
    ]
}

fn annotations(pairs: &[(&str, String)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect()
}

/// A CREATE of a governed Deployment with `annotations`, at `/validate`.
fn create(annotations: Value) -> Said {
    let b = body(
        "CREATE",
        None,
        deployment(5, annotations, true),
        None,
        false,
    );
    said(Endpoint::Validate, &b, Cache::new(), now())
}

/// Each hostile character, inside a bad token of every annotation that
/// quotes one: refused with every error named, the character written
/// `\u{…}` in the response, the Event and the log line, never raw.
#[test]
fn control_bidi_and_invisible_characters_are_escaped_everywhere() {
    for &h in HOSTILE {
        let values = bad_values(&h.to_string());
        let s = create(annotations(&values));
        assert_eq!(s.response.status.as_ref().map(|s| s.code), Some(422));
        s.assert_safe(4000);
        let message = s.message();
        assert!(message.starts_with("scale-governor: invalid policy: 9 errors: "));
        for (key, _) in &values {
            assert!(
                message.contains(&format!("{key}: at \"")),
                "{key}: {message}"
            );
        }
        assert_in_each_error(message, h);
        let escaped = format!("\\u{{{:x}}}", u32::from(h));
        let notice = &s.report.as_ref().unwrap().notices[0].message;
        assert!(notice.contains(&escaped), "{notice}");
        s.assert_reports(&notice[..notice.find(&escaped).unwrap() + escaped.len()]);
    }
}

/// Each error of `message` (`…: N errors: <error>; <error>`) shows `h`
/// escaped: as the governor writes it, `\u{202e}`, or where the token is
/// JSON text that escapes it itself, as JSON does (`\u0007`, `\b`), its
/// backslash doubled.
fn assert_in_each_error(message: &str, h: char) {
    let escaped = format!("\\u{{{:x}}}", u32::from(h));
    // serde_json's escape (`\b`, `\u0000`), as quoted: backslash doubled.
    let in_json = serde_json::to_string(&h.to_string())
        .unwrap()
        .trim_matches('"')
        .replace('\\', "\\\\");
    let errors: Vec<&str> = message.split("; scale-governor.io/").collect();
    assert_eq!(errors.len(), 9, "{message}");
    for error in errors {
        assert!(
            error.contains(&escaped) || (in_json.starts_with('\\') && error.contains(&in_json)),
            "{h:?} is not shown escaped in: {error}"
        );
    }
}

/// An unknown key (the mutating webhook sees keys before the apiserver
/// validates them) and a `state` the loop cannot read are warnings; each
/// hostile character in them is escaped too.
#[test]
fn hostile_characters_in_warnings_are_escaped() {
    for &h in HOSTILE {
        let key = format!("{}mode{h}", crate::policy::PREFIX);
        let state = json!({ "v": format!("{h}") }).to_string();
        let object = json!({ key.as_str(): "off", keys::STATE: state, keys::MAX_REPLICAS: "20" });
        let b = body(
            "UPDATE",
            None,
            deployment(5, object.clone(), true),
            Some(deployment(5, json!({ keys::MAX_REPLICAS: "20" }), true)),
            false,
        );
        let m = said(Endpoint::Mutate, &b, Cache::new(), now());
        m.assert_safe(1000);
        let escaped = format!("\\u{{{:x}}}", u32::from(h));
        let warnings = m.response.warnings.join("\n");
        assert!(
            warnings.contains(&format!(
                "unknown annotation \"scale-governor.io/mode{escaped}\""
            )),
            "{warnings}"
        );
        assert!(
            warnings.contains("the state annotation does not parse"),
            "{warnings}"
        );
        let v = said(Endpoint::Validate, &b, Cache::new(), now());
        v.assert_safe(1500);
        v.assert_reports(&format!(
            "unknown annotation \"scale-governor.io/mode{escaped}\""
        ));
    }
}

/// A 200 KB token in every annotation that quotes one, of one-, two-,
/// three- and four-byte characters: at most 80 characters of it are
/// quoted, cut on a character boundary and marked with `…`, in the
/// response, the Event and the log line.
#[test]
fn a_long_token_is_quoted_short_in_every_annotation() {
    for unit in ["x", "é", "€", "😀"] {
        let long = unit.repeat(200_000 / unit.len());
        for (key, value) in bad_values(&long) {
            let s = create(annotations(&[(key, value)]));
            s.assert_safe(1100);
            let message = s.message();
            assert!(message.contains(&format!("{key}: at \"")), "{message}");
            let quoted = format!("{}…", unit.repeat(40));
            assert!(message.contains(&quoted), "{key}: {message}");
            assert!(
                !message.contains(&unit.repeat(81)),
                "{key}: more than 80 characters quoted: {message}"
            );
            s.assert_reports(&message["scale-governor: invalid policy: ".len()..]);
        }
    }
    // Unknown keys and the state annotation are warnings: bounded too.
    let long = "😀".repeat(50_000);
    let key = format!("{}{long}", crate::policy::PREFIX);
    let state = json!({ "v": long }).to_string();
    let object = json!({ key.as_str(): "x", keys::STATE: state, keys::MAX_REPLICAS: "20" });
    let s = create(object);
    s.assert_safe(1200);
    s.assert_reports(&format!(
        "unknown annotation \"scale-governor.io/{}…\"",
        "😀".repeat(62)
    ));
}

/// Twelve errors in nine annotations, three of them in one value: the
/// response names ten, each with its key, and counts the rest; the Event
/// and the log line name as many whole errors as fit in a note and count
/// the rest.
#[test]
fn many_errors_are_each_named_with_their_key_up_to_a_bound() {
    let values = [
        (keys::MODE, "strict"),
        (keys::MIN_REPLICAS, "two"),
        (keys::MAX_REPLICAS, "-3"),
        (
            keys::WINDOWS,
            "Mon-Fry 08:00-20:00 min=1\nMon-Fri 8:00-20:00 min=1\nMon-Fri 08:00-20:00 Europe/Berln min=1",
        ),
        (keys::SCALE_UP, "4 widgets/60s, 50%/60x"),
        (keys::SCALE_DOWN, "select=Maximum"),
        (keys::SUSPEND_UNTIL, "tomorrow"),
        (keys::RECOMMEND, r#"{"trend":"fast"}"#),
        (keys::RECOMMENDATION, "{not json"),
    ];
    let s = create(values.iter().map(|(k, v)| (*k, json!(v))).collect());
    s.assert_safe(4000);
    let message = s.message();
    assert!(
        message.starts_with(
            "scale-governor: invalid policy: 12 errors: scale-governor.io/max-replicas: at \"-3\" (column 1): "
        ),
        "{message}"
    );
    assert!(message.ends_with("; and 2 more"), "{message}");
    for (key, _) in values {
        assert!(
            message.contains(&format!("{key}: at \"")),
            "{key}: {message}"
        );
    }
    for token in ["\"Fry\" (line 1, column 5)", "\"widgets\"", "\"60x\""] {
        assert!(message.contains(token), "{token}: {message}");
    }
    let notice = &s.report.as_ref().unwrap().notices[0].message;
    assert!(notice.len() <= 1000, "{} bytes", notice.len());
    let named = notice.matches(": at \"").count();
    assert!(named >= 3, "{notice}");
    assert!(
        notice.ends_with(&format!("; and {} more", 12 - named)),
        "{notice}"
    );
    s.assert_reports(notice);
}

/// A position in a value of many lines is a line and a column in it.
#[test]
fn a_position_in_a_long_multi_line_value_is_a_line_and_a_column() {
    let mut windows = "Mon-Fri 08:00-20:00 Europe/Berlin min=10\n".repeat(5000);
    windows.push_str("Sat 08:00-20:00 Europe/Berln min=1\n");
    let s = create(json!({ keys::WINDOWS: windows }));
    let error = "scale-governor.io/windows: at \"Europe/Berln\" (line 5001, column 17): unknown time zone \"Europe/Berln\", expected an IANA name like Europe/Berlin";
    assert_eq!(
        s.message(),
        format!("scale-governor: invalid policy: {error}")
    );
    s.assert_reports(error);
    s.assert_safe(600);
}

/// An already broken policy that an update keeps is allowed with a
/// warning: bounded and escaped the same way.
#[test]
fn a_kept_broken_policy_is_warned_about_as_safely() {
    let bad = annotations(&bad_values("\u{202e}"));
    let b = body(
        "UPDATE",
        None,
        deployment(5, bad.clone(), true),
        Some(deployment(5, bad, true)),
        false,
    );
    let s = said(Endpoint::Validate, &b, Cache::new(), now());
    assert!(s.response.allowed);
    s.assert_safe(4000);
    let warning = &s.response.warnings[0];
    assert!(
        warning.starts_with("scale-governor: policy is invalid and not enforced: 9 errors: "),
        "{warning}"
    );
    assert_in_each_error(warning, '\u{202e}');
    let notice = &s.report.as_ref().unwrap().notices[0].message;
    s.assert_reports(notice);
}

/// A username (from an OIDC claim or a certificate's CN) holding each
/// hostile character: the Event and the log line of a clamp, and the
/// notice of a loosening edit, show it escaped.
#[test]
fn a_hostile_username_is_escaped_in_events_and_logs() {
    for &h in HOSTILE {
        let as_user = |b: Vec<u8>| {
            let mut review: Value = serde_json::from_slice(&b).unwrap();
            review["request"]["userInfo"]["username"] = json!(format!("mallory{h}"));
            serde_json::to_vec(&review).unwrap()
        };
        let escaped = format!("mallory\\u{{{:x}}}", u32::from(h));
        let scale = as_user(body(
            "UPDATE",
            Some("scale"),
            super::scale(100),
            Some(super::scale(5)),
            false,
        ));
        let clamped = said(
            Endpoint::Mutate,
            &scale,
            cache_with(&[(keys::MAX_REPLICAS, "20")], 5),
            now(),
        );
        clamped.assert_safe(1000);
        let asked = format!("{escaped} asked 100 replicas");
        assert!(clamped.notes().contains(&asked), "{}", clamped.notes());
        assert!(clamped.logs.contains(&escaped), "{}", clamped.logs);

        let loosen = as_user(body(
            "UPDATE",
            None,
            deployment(5, json!({ keys::MAX_REPLICAS: "50" }), true),
            Some(deployment(5, json!({ keys::MAX_REPLICAS: "20" }), true)),
            false,
        ));
        let loosened = said(Endpoint::Validate, &loosen, Cache::new(), now());
        loosened.assert_safe(1000);
        loosened.assert_reports(&format!("{escaped} loosened the policy"));
    }
}
