#!/usr/bin/env bash
# run_lsst_consumer.sh: the nightly cron run of the LSST alert pipeline.
#
#   consumer (Kafka -> CSV + FITS) -> messengers (GCN; dropped files: two steps) -> transient builder
#   (when DATABASE_URL is set) -> crossmatch -> retention -> report
#
# One run at a time (flock); every step logged with a UTC timestamp; the exit status is the
# first failing step's. Run with --help for the options, variables and exit codes.
set -euo pipefail

readonly MAX_RETENTION_DAYS=36500

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
readonly SCRIPT_DIR
# Every exit code of every tool, one table (generated from alert_pipeline/exitcodes.py).
# shellcheck source=alert_pipeline/exitcodes.sh
source "$SCRIPT_DIR/alert_pipeline/exitcodes.sh"

usage() {
  cat <<EOF
Usage: run_lsst_consumer.sh [--dry-run] [--demo] [--help]

Runs the LSST alert consumer, then loads messenger events (GCN notices, dropped files;
when configured), then the kind builder (transient and minor_body slots, when
DATABASE_URL is set), then the multi-messenger cross-match, then deletes outputs older
than RETENTION_DAYS, then makes
the nightly HTML report (lsst_alert_report.py). Works from
any directory and from cron: it runs in its own directory ($SCRIPT_DIR), so relative
paths resolve there.

Options:
  --dry-run   run nothing; list the files retention would delete
  --demo      the whole pipeline on an embedded default: a local Kafka broker with a night
              of sample alerts and an embedded PostgreSQL with sample Fink data (sets up
              .venv first when needed); outputs go to ./demo_output
  --help      this text

Environment (all optional):
  PYTHON                        interpreter (default: $SCRIPT_DIR/.venv/bin/python)
  LSST_CONSUMER_CONFIG          consumer TOML file; LSST_CONSUMER_BOOTSTRAP_SERVERS,
  LSST_CONSUMER_TOPIC, LSST_CONSUMER_GROUP_ID, LSST_CONSUMER_IDLE_TIMEOUT,
  LSST_CONSUMER_KAFKA_<KEY>     ... are passed to the consumer unchanged
  LSST_CONSUMER_OUTPUT_DIR      output directory (default: the consumer's output_dir); retention works here
  LSST_CONSUMER_CONNECT_TIMEOUT seconds to reach the broker before the consumer gives up (default 30)
  DATABASE_URL                  PostgreSQL of the Fink events; unset = skip the builder
  EVENT_STOREHOUSE              storehouse for the builder (default ./data/event_storehouse)
  GCN_CLIENT_ID, GCN_CLIENT_SECRET (or their _FILE variants), GCN_KAFKA_<KEY>, GCN_TOPICS
                                set: load new GW, neutrino and cosmic-ray notices from GCN Kafka
                                into the storehouse before the build (step messengers-gcn)
  MESSENGER_FILES               a directory of dropped messenger files (sky maps, IceCube and
                                cosmic-ray lists, IGWN alerts) loaded before the build (step
                                messengers-files, run apart from GCN: neither source's failure
                                blocks the other; a file of which nothing could be loaded is
                                named in the log and the step ends with $EXIT_INPUT_UNUSED)
  TRANSIENT_TABLE, TRANSIENT_SOURCE   builder --table / --source (default: the builder's)
  FULL_BUILD_WEEKDAY            the UTC weekday of the full build (Monday ... Sunday or 1-7, default
                                Sunday; 'never'); the other days build only what the new rows touch
  TNS_FILE                      a Transient Name Server file (tns_public_objects.csv or .zip, or a
                                search export), or a directory of them (the files not applied yet
                                are applied, in date order), refining the transient slots after
                                the build
  CROSSMATCH                    1 (default) match the transients with the gw, neutrino and uhecr
                                events after the build; 0 skip that step
  REPORT                        1 (default) make the nightly report; 0 skip that step
  RETENTION_DAYS                keep this many days of CSV, Parquet, FITS, quarantine and report files: a
                                whole number of days from 1 to $MAX_RETENTION_DAYS, read as decimal (default:
                                the consumer's retention_days setting, 30 unless configured)
  LSST_LOCK_FILE                lock file (default <output dir>/state/run_lsst_consumer.lock)
  LOG_FILE                      append all output here instead of stdout/stderr

Exit status: 0 when every step succeeded, else the first failed step's code. Every tool
shares one table of codes (README, "Exit codes"):
$EXIT_CODES_HELP
EOF
}

log() { printf '%s run_lsst_consumer: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

dry_run=false
demo=false
for argument in "$@"; do
  case "$argument" in
    --help|-h) usage; exit 0 ;;
    --dry-run) dry_run=true ;;
    --demo) demo=true ;;
    *) echo "run_lsst_consumer.sh: unknown option '$argument' (see --help)" >&2; exit "$EXIT_USAGE" ;;
  esac
done

cd "$SCRIPT_DIR"

# RETENTION_DAYS as a decimal whole number of days (010 is ten, not octal eight), in range,
# checked before any step runs: a bad value must never delete files early or skip silently.
# Unset: the consumer's retention_days setting (config file, LSST_CONSUMER_RETENTION_DAYS, 30).
retention_args=(--retention)
if [[ -n "${RETENTION_DAYS+set}" ]]; then
  retention_text="$RETENTION_DAYS"
  if ! [[ "$retention_text" =~ ^[0-9]{1,12}$ ]] || ((10#$retention_text < 1 || 10#$retention_text > MAX_RETENTION_DAYS)); then
    echo "run_lsst_consumer.sh: RETENTION_DAYS must be a whole number of days from 1 to $MAX_RETENTION_DAYS," \
      "not '$retention_text'" >&2
    exit "$EXIT_USAGE"
  fi
  retention_args+=(--retention-days "$((10#$retention_text))")
fi
report="${REPORT:-1}"
crossmatch="${CROSSMATCH:-1}"
# The weekly full build (deleted or edited rows are seen only by a full build): ISO day 1-7.
full_day_text="${FULL_BUILD_WEEKDAY:-Sunday}"
case "${full_day_text,,}" in
  1|mon|monday) full_build_day=1 ;;
  2|tue|tuesday) full_build_day=2 ;;
  3|wed|wednesday) full_build_day=3 ;;
  4|thu|thursday) full_build_day=4 ;;
  5|fri|friday) full_build_day=5 ;;
  6|sat|saturday) full_build_day=6 ;;
  7|sun|sunday) full_build_day=7 ;;
  never) full_build_day=0 ;;
  *)
    echo "run_lsst_consumer.sh: FULL_BUILD_WEEKDAY must be a day (Monday ... Sunday, or 1-7) or 'never'," \
      "not '$full_day_text'" >&2
    exit "$EXIT_USAGE"
    ;;
esac
for switch in "REPORT=$report" "CROSSMATCH=$crossmatch"; do
  if [[ "${switch#*=}" != 0 && "${switch#*=}" != 1 ]]; then
    echo "run_lsst_consumer.sh: ${switch%%=*} must be 1 (run that step) or 0 (skip it), not '${switch#*=}'" >&2
    exit "$EXIT_USAGE"
  fi
done

if [[ "$demo" == true ]]; then
  if [[ -z "${PYTHON:-}" ]]; then
    "$SCRIPT_DIR/scripts/setup_venv.sh"
  fi
  exec "${PYTHON:-$SCRIPT_DIR/.venv/bin/python}" -m devtools.demo
fi

PYTHON="${PYTHON:-$SCRIPT_DIR/.venv/bin/python}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "run_lsst_consumer.sh: no usable Python 3.11+ at '$PYTHON': run scripts/setup_venv.sh or set PYTHON" >&2
  exit "$EXIT_NO_PYTHON"
fi

if [[ -n "${LOG_FILE:-}" ]]; then
  if ! (: >>"$LOG_FILE") 2>/dev/null; then
    echo "run_lsst_consumer.sh: cannot write LOG_FILE '$LOG_FILE': check the directory and permissions" >&2
    exit "$EXIT_CANT_CREATE"
  fi
  exec >>"$LOG_FILE" 2>&1
fi

output_dir="$("$PYTHON" lsst_alert_consumer.py --show-output-dir)" || exit $?
if [[ -z "$output_dir" || "$(readlink -f -- "$output_dir" 2>/dev/null || echo "$output_dir")" == "/" ]]; then
  log "the output directory is '$output_dir': refusing to run retention on / or an empty path;" \
    "set LSST_CONSUMER_OUTPUT_DIR to the pipeline's own directory"
  exit "$EXIT_USAGE"
fi

# Retention is the consumer's (alert_pipeline/retention.py, the layout's RETAINED patterns):
# regular files older than the retention days, inside the output's own directories (which
# may be links), never through a link inside them.
# Its log lines join the wrapper's own, on stdout.
retention() {
  "$PYTHON" lsst_alert_consumer.py "${retention_args[@]}" "$@" 2>&1
}

if [[ "$dry_run" == true ]]; then
  retention --dry-run
  exit $?
fi

lock_file="${LSST_LOCK_FILE:-$output_dir/state/run_lsst_consumer.lock}"
if ! { [[ -n "${LSST_LOCK_FILE:-}" ]] || mkdir -p "$output_dir/state" 2>/dev/null; } || ! (: >>"$lock_file") 2>/dev/null; then
  log "cannot create the lock file '$lock_file': check LSST_LOCK_FILE, the output directory and permissions"
  exit "$EXIT_CANT_CREATE"
fi
exec 9>>"$lock_file"
if ! flock --nonblock 9; then
  log "another run holds $lock_file; not starting a second one (exit $EXIT_LOCKED)"
  exit "$EXIT_LOCKED"
fi

log "pipeline run starting in $SCRIPT_DIR (output $output_dir)"
status=0

run_step() {
  local name="$1" code=0
  shift
  log "step $name: starting"
  "$@" || code=$?
  if [[ "$code" -eq 0 ]]; then
    log "step $name: finished"
  else
    log "step $name: failed with exit code $code ($(exit_code_meaning "$code"))"
    [[ "$status" -eq 0 ]] && status=$code
  fi
}

run_step consumer "$PYTHON" lsst_alert_consumer.py
storehouse="${EVENT_STOREHOUSE:-$SCRIPT_DIR/data/event_storehouse}"
# The dropped files, then GCN (as before: a notice read later revises a file's row), in two steps:
# a bad file never keeps the notices out, nor the reverse.
messenger_files=()
if [[ -n "${MESSENGER_FILES:-}" && -d "$MESSENGER_FILES" ]]; then
  # Regular files directly in the directory (no dot files); loading one again rewrites nothing.
  while IFS= read -r -d '' file; do
    messenger_files+=("$file")
  done < <(find -H "$MESSENGER_FILES" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -print0 | sort -z)
fi
if [[ ${#messenger_files[@]} -gt 0 ]]; then
  run_step messengers-files "$PYTHON" transient_kind_builder.py load-messengers --storehouse "$storehouse" \
    "${messenger_files[@]}"
elif [[ -n "${MESSENGER_FILES:-}" && ! -d "$MESSENGER_FILES" ]]; then
  # A source given and not used: said with the exit code, not only in the log.
  log "step messengers-files: failed with exit code $EXIT_INPUT_UNUSED: MESSENGER_FILES '$MESSENGER_FILES'" \
    "is not a directory; nothing of it was loaded"
  [[ "$status" -eq 0 ]] && status=$EXIT_INPUT_UNUSED
else
  log "step messengers-files: skipped (MESSENGER_FILES is not set or holds no file)"
fi
if [[ -n "${GCN_CLIENT_ID:-}${GCN_CLIENT_ID_FILE:-}${GCN_KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
  run_step messengers-gcn "$PYTHON" transient_kind_builder.py load-messengers --storehouse "$storehouse" --gcn
else
  log "step messengers-gcn: skipped (none of GCN_CLIENT_ID, GCN_CLIENT_ID_FILE, GCN_KAFKA_BOOTSTRAP_SERVERS is set)"
fi
build_args=()
if [[ "$(date -u +%u)" == "$full_build_day" ]]; then
  build_args+=(--full)
fi
# Unset: the builder's own defaults (transient_kind_builder.py build --help).
[[ -n "${TRANSIENT_TABLE:-}" ]] && build_args+=(--table "$TRANSIENT_TABLE")
[[ -n "${TRANSIENT_SOURCE:-}" ]] && build_args+=(--source "$TRANSIENT_SOURCE")
if [[ -n "${DATABASE_URL:-}" ]]; then
  run_step transient-builder "$PYTHON" transient_kind_builder.py build "${build_args[@]}" \
    --storehouse "$storehouse"
else
  log "step transient-builder: skipped (DATABASE_URL is not set)"
fi
if [[ -n "${TNS_FILE:-}" ]]; then
  run_step tns "$PYTHON" transient_kind_builder.py tns --storehouse "$storehouse" "$TNS_FILE"
else
  log "step tns: skipped (TNS_FILE is not set)"
fi
if [[ "$crossmatch" == 1 && -f "$storehouse/transient/index.json" ]]; then
  run_step crossmatch "$PYTHON" transient_kind_builder.py crossmatch --storehouse "$storehouse"
else
  log "step crossmatch: skipped (CROSSMATCH=0 or no transient slots in $storehouse)"
fi
run_step retention retention
# After retention, so that a day whose CSV retention just removed gets no fresh report.
if [[ "$report" == 1 ]]; then
  run_step report "$PYTHON" lsst_alert_report.py --output-dir "$output_dir"
else
  log "step report: skipped (REPORT=0)"
fi

log "pipeline run finished with exit status $status"
exit "$status"
