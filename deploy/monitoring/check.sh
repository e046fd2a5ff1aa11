#!/usr/bin/env bash
# Checks the alert rules with promtool: cuts the plain rule file out of
# prometheusrule.yaml (everything under `spec:`), then `promtool check
# rules` and `promtool test rules alerts.test.yaml` (one case per alert).
#
#   deploy/monitoring/check.sh [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
sed -n '/^spec:$/,$p' "$here/prometheusrule.yaml" | tail -n +2 | sed 's/^  //' >"$work/alerts.rules.yaml"
cp "$here/alerts.test.yaml" "$work/alerts.test.yaml"
# Every alert has a test case: a rule added without one fails here.
alerts=$(grep -oE '^ +- alert: [A-Za-z]+' "$work/alerts.rules.yaml" | awk '{print $3}' | sort -u)
tested=$(grep -oE 'alertname: [A-Za-z]+' "$work/alerts.test.yaml" | awk '{print $2}' | sort -u)
if [[ $alerts != "$tested" ]]; then
  echo "check.sh: alerts without a test case:" >&2
  comm -23 <(echo "$alerts") <(echo "$tested") >&2
  exit 1
fi
promtool check rules "$work/alerts.rules.yaml"
(cd "$work" && promtool test rules alerts.test.yaml)
