//! The policy parser never panics: arbitrary strings, and strings shaped like
//! the grammar, either parse or fail with an error that names the annotation
//! and points inside the value.

use proptest::prelude::*;
use scale_governor_core::{
    engine::{Bounds, Ledger, Request, decide},
    policy::{MAX_REPORTED_ERRORS, Policy, keys},
    quoting::needs_escape,
};

fn check(key: &str, value: &str) -> Result<(), TestCaseError> {
    match Policy::from_annotations([(key, value)]) {
        Ok(policy) => {
            // Whatever parses must also decide without panicking.
            let now = "2026-03-29T01:30:00Z".parse().unwrap();
            let request = Request {
                current: 3,
                requested: 300,
                actor: "fuzz",
            };
            let d = decide(&policy, &Ledger::new(), request, now);
            if !policy.is_paused(now) {
                // The result lies within the bounds active at `now`, and a
                // request already within them passes unless a rate rule
                // for its direction applies.
                let bounds = Bounds::at(&policy, now, &mut Vec::new());
                let (lower, upper) = (bounds.lower(), bounds.upper());
                prop_assert!(
                    (lower..=upper).contains(&d.governed),
                    "governed {} outside {}..{}",
                    d.governed,
                    lower,
                    upper
                );
                if policy.scale_up.is_none() && (lower..=upper).contains(&300) {
                    prop_assert_eq!(d.governed, 300);
                }
            }
        }
        Err(errors) => {
            for err in errors.iter() {
                prop_assert_eq!(&err.annotation, key);
                let line = value.split('\n').nth(err.line - 1);
                prop_assert!(line.is_some(), "line {} of {:?}", err.line, value);
                let width = line.unwrap_or_default().chars().count();
                prop_assert!(err.column >= 1 && err.column <= width + 1);
            }
            let text = errors.to_string();
            prop_assert!(text.starts_with(key) || errors.total() > 1, "{}", text);
            // Bounded and escaped, whatever the value holds.
            prop_assert!(!text.chars().any(needs_escape), "{:?}", text);
            prop_assert!(text.chars().count() <= MAX_REPORTED_ERRORS * 1000 + 100);
        }
    }
    Ok(())
}

fn any_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(keys::ALL.to_vec())
}

/// `default` cases, unless `PROPTEST_CASES` asks for another number (`make
/// props`); the seed comes from `PROPTEST_RNG_SEED` when set (`make check`).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(key in any_key(), value in any::<String>()) {
        check(key, &value)?;
    }

    #[test]
    fn window_shaped_strings_never_panic(
        value in "((Mon|tue|Fry|Sun|\\*)(-(Fri|sat|Xyz))?(,Sat)? [0-9]{1,2}:[0-9]{1,3}-[0-9]{2}:[0-9]{2}( Europe/Berlin| America/New_York| Mars/Base)?( min=[0-9]{1,11})?( max=-?[0-9]{1,3})?[;\n ]{0,2}){1,3}"
    ) {
        check(keys::WINDOWS, &value)?;
    }

    #[test]
    fn absolute_window_shaped_strings_never_panic(
        value in "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?)?(/[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2})?)? (UTC )?(min|max)=[0-9]{1,3}"
    ) {
        check(keys::WINDOWS, &value)?;
    }

    #[test]
    fn rule_shaped_strings_never_panic(
        value in "(([0-9]{1,12} ?(pods|pod|%|x)/[0-9]{0,12}[smhd]?|select=(Max|Min|Disabled|max|Other)|stabilization=[0-9]{0,6}[smh]?)(, ?|,,)?){1,4}"
    ) {
        check(keys::SCALE_UP, &value)?;
        check(keys::SCALE_DOWN, &value)?;
    }

    #[test]
    fn json_rule_shaped_strings_never_panic(
        kind in "(Pods|Percent|Other)", v in any::<i32>(), p in any::<i32>(), s in any::<i32>(),
    ) {
        let value = format!(r#"{{"policies":[{{"type":"{kind}","value":{v},"periodSeconds":{p}}}],"stabilizationWindowSeconds":{s}}}"#);
        check(keys::SCALE_DOWN, &value)?;
    }
}
