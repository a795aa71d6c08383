#!/usr/bin/env bash
# Fails if the dashboard, the alert rules or their tests use a metric or label name that Sluice
# does not export, e.g. a typo such as sluice_consumer_redeliverd_bytes_total, which PromQL
# would silently treat as a series that never exists.
#
# Every token that starts with sluice_, messaging_, network_, kafka_ or otel_ must be one of
# the names below (metric names, histogram series, and label names).
#
# Usage: deploy/check-names.sh [FILE...]   (default: the dashboard, rules and their tests)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

documented=(
  # metrics
  sluice_client_requests_total
  sluice_client_bytes_total
  sluice_topic_bytes_total
  sluice_request_duration_seconds_bucket
  sluice_request_duration_seconds_sum
  sluice_request_duration_seconds_count
  sluice_connections_open
  sluice_connections_opened_total
  sluice_connections_closed_total
  sluice_consumer_fetched_bytes_total
  sluice_consumer_redelivered_bytes_total
  sluice_consumer_fetch_position
  sluice_consumer_committed_offset
  sluice_partition_end_offset
  sluice_findings_active
  sluice_findings_raised_total
  sluice_client_info
  sluice_tap_parse_errors_total
  sluice_tap_opaque_connections_total
  sluice_throttle_decisions_total
  sluice_throttle_held_bytes_total
  sluice_throttle_held_time_seconds_total
  sluice_throttle_connections
  sluice_throttle_reload_failures_total
  sluice_throttle_hints_total
  sluice_telemetry_series_overflow_total
  sluice_proxy_tls_handshake_failures_total
  sluice_telemetry_spans_dropped_total
  # labels
  messaging_system
  messaging_client_id
  messaging_consumer_group_name
  messaging_destination_name
  messaging_destination_partition_id
  network_peer_address
  network_io_direction
  kafka_api_name
  kafka_api_version
  sluice_flow
  sluice_finding_kind
  sluice_finding_severity
  sluice_client_software_name
  sluice_client_software_version
  sluice_policy
  sluice_mode
  sluice_throttle_hint
  sluice_instrument
  sluice_broker
  sluice_tls_failure
  otel_metric_overflow
)

if [[ $# -eq 0 ]]; then
  set -- grafana/sluice-dashboard.json grafana/sluice-dashboard.test.yml prometheus/sluice-alerts.yml \
    prometheus/sluice-alerts.test.yml
fi

status=0
used="$(grep -ohE '(^|[^A-Za-z0-9_:])(sluice|messaging|network|kafka|otel)_[A-Za-z0-9_]+' "$@" \
        | sed -E 's/^[^A-Za-z]//' | sort -u)"
[[ -n "$used" ]] || { echo "check-names: no Sluice names found in $*" >&2; exit 1; }
while read -r name; do
  ok=0
  for d in "${documented[@]}"; do
    if [[ "$name" == "$d" ]]; then ok=1; break; fi
  done
  if [[ $ok == 0 ]]; then
    echo "check-names: unknown metric or label name: $name" >&2
    grep -nwH -- "$name" "$@" | head -n 3 | sed 's/^/  /' >&2
    status=1
  fi
done <<<"$used"

if [[ $status == 0 ]]; then
  echo "check-names: $(wc -l <<<"$used") names used in $# files, all documented"
fi
exit $status
