//! Which text format `/metrics` answers in. prometheus-client writes only
//! OpenMetrics, which Prometheus asks for, but `promtool check metrics`,
//! `curl` and older scrapers read the Prometheus text format 0.0.4, where a
//! counter family is named with its `_total` suffix and there is no
//! `# UNIT` or `# EOF`. [`to_prometheus_text`] rewrites the one into the
//! other; the samples themselves are the same in both.

/// The OpenMetrics content type.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format's content type.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics; anything else (no
/// header, `*/*`, `text/plain`) gets the Prometheus text format, as
/// client_golang answers.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    })
}

/// Rewrites an OpenMetrics exposition as Prometheus text format 0.0.4.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // HELP comes before TYPE, and only TYPE tells whether the family's
    // name changes, so HELP waits for it.
    let mut help: Option<&str> = None;
    let flush = |out: &mut String, help: &mut Option<&str>| {
        if let Some(h) = help.take() {
            out.push_str("# HELP ");
            out.push_str(h);
            out.push('\n');
        }
    };
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            flush(&mut out, &mut help);
            help = Some(rest);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, text)| text);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            flush(&mut out, &mut help);
            out.push_str(line);
            out.push('\n');
        }
    }
    flush(&mut out, &mut help);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_openmetrics_markers_go() {
        let om = "# HELP sg_reviews Reviews answered.\n# TYPE sg_reviews counter\n\
                  sg_reviews_total{endpoint=\"mutate\"} 3\n\
                  # HELP sg_wait_seconds Time.\n# TYPE sg_wait_seconds histogram\n# UNIT sg_wait_seconds seconds\n\
                  sg_wait_seconds_sum 0.5\nsg_wait_seconds_count 2\nsg_wait_seconds_bucket{le=\"+Inf\"} 2\n\
                  # HELP sg_build Build.\n# TYPE sg_build info\nsg_build_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP sg_reviews_total Reviews answered.\n# TYPE sg_reviews_total counter\n\
             sg_reviews_total{endpoint=\"mutate\"} 3\n\
             # HELP sg_wait_seconds Time.\n# TYPE sg_wait_seconds histogram\n\
             sg_wait_seconds_sum 0.5\nsg_wait_seconds_count 2\nsg_wait_seconds_bucket{le=\"+Inf\"} 2\n\
             # HELP sg_build_info Build.\n# TYPE sg_build_info gauge\nsg_build_info{version=\"1\"} 1\n"
        );
    }

    #[test]
    fn only_an_explicit_openmetrics_accept_gets_openmetrics() {
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text; q=0, text/plain"
        )));
    }
}
