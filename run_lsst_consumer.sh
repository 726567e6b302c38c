#!/usr/bin/env bash
# run_lsst_consumer.sh: the nightly cron run of the LSST alert pipeline.
#
# The steps, their order, conditions and commands are declared once in alert_pipeline/steps.py
# (run_steps in the generated alert_pipeline/steps.sh); this script keeps the lock, the
# virtualenv, the logging and the checks of its own variables. One run at a time (flock);
# every step logged with a UTC timestamp; the exit status is the first failing step's. Run with
# --help for the steps, options, variables and exit codes.
set -euo pipefail

readonly MAX_RETENTION_DAYS=36500

SCRIPT_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
readonly SCRIPT_DIR
# Every exit code of every tool, one table (generated from alert_pipeline/exitcodes.py).
# shellcheck source=alert_pipeline/exitcodes.sh
source "$SCRIPT_DIR/alert_pipeline/exitcodes.sh"
# The steps in their order, their switches and help (generated from alert_pipeline/steps.py).
# shellcheck source=alert_pipeline/steps.sh
source "$SCRIPT_DIR/alert_pipeline/steps.sh"

usage() {
  cat <<EOF
Usage: run_lsst_consumer.sh [--dry-run] [--demo] [--help]

The nightly run of the LSST alert pipeline: the steps below, one run at a time. Works from
any directory and from cron: it runs in its own directory ($SCRIPT_DIR), so relative
paths resolve there.

$STEPS_HELP

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
  LSST_CONSUMER_CONNECT_TIMEOUT seconds to reach the broker before the consumer gives up (the consumer's
                                connect_timeout setting unless set)
  DATABASE_URL                  PostgreSQL of the Fink events; unset = skip the builder
  EVENT_STOREHOUSE              storehouse for the builder (default ./data/event_storehouse)
  GCN_CLIENT_ID, GCN_CLIENT_SECRET (or their _FILE variants), GCN_KAFKA_<KEY>, GCN_TOPICS
                                set: load new GW, neutrino, gamma-ray-burst and cosmic-ray
                                notices from GCN Kafka into the storehouse before the build
                                (step messengers-gcn)
  MESSENGER_FILES               a directory of dropped messenger files (sky maps, IceCube and
                                cosmic-ray lists, GCN notices, IGWN alerts; regular files or
                                links to them) loaded before the build (step messengers-files, run apart from
                                GCN: neither source's failure blocks the other; a file of which
                                nothing could be loaded is named in the log, and the step ends
                                with $EXIT_INPUT_UNUSED, as it does when the directory holds no file)
  TRANSIENT_TABLE, TRANSIENT_SOURCE   builder --table / --source (default: the builder's)
  FULL_BUILD_WEEKDAY            the UTC weekday of the full build (Monday ... Sunday or 1-7, default
                                Sunday; 'never'); the other days build only what the new rows touch
  TNS_FILE                      a Transient Name Server file (tns_public_objects.csv or .zip, or a
                                search export), or a directory of them (the files not applied yet
                                are applied, in date order), refining the transient slots after
                                the build
  RETENTION_DAYS                keep this many days of CSV, Parquet, FITS, quarantine and report files: a
                                whole number of days from 1 to $MAX_RETENTION_DAYS, read as decimal (default:
                                the consumer's retention_days setting)
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
# Unset: the consumer's retention_days setting (config file, LSST_CONSUMER_RETENTION_DAYS, its default).
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
for switch in "${STEP_SWITCHES[@]}"; do
  if [[ "${!switch:-1}" != 0 && "${!switch:-1}" != 1 ]]; then
    echo "run_lsst_consumer.sh: $switch must be 1 (run that step) or 0 (skip it), not '${!switch}'" >&2
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

# Retention is the consumer's (alert_pipeline/consumer/retention.py, the layout's RETAINED patterns):
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

# A step's failure is logged with its code's name and meaning; the run's status is the first one's.
fail_step() {
  local name="$1" code="$2" reason="${3:-}"
  log "step $name: failed with exit code $code ($(exit_code_meaning "$code"))${reason:+: $reason}"
  if [[ "$status" -eq 0 ]]; then status=$code; fi
}

run_step() {
  local name="$1" code=0
  shift
  log "step $name: starting"
  "$@" || code=$?
  if [[ "$code" -eq 0 ]]; then
    log "step $name: finished"
  else
    fail_step "$name" "$code"
  fi
}

# Arguments of the steps, made when the step is reached (steps.py names these as its "prepare").
storehouse="${EVENT_STOREHOUSE:-$SCRIPT_DIR/data/event_storehouse}"
messenger_files=()
build_args=()

# messengers-files: the regular files directly in MESSENGER_FILES and the links to regular files
# (-xtype f: a sky map linked in from where it was downloaded counts; the loader follows the
# links it is given and refuses FIFOs and devices), no dot files (such as a copy in progress),
# sorted; loading one again rewrites nothing.
list_messenger_files() {
  messenger_files=()
  if [[ -n "${MESSENGER_FILES:-}" && -d "$MESSENGER_FILES" ]]; then
    while IFS= read -r -d '' file; do
      messenger_files+=("$file")
    done < <(find -H "$MESSENGER_FILES" -mindepth 1 -maxdepth 1 -xtype f ! -name '.*' -print0 | sort -z)
  fi
}

# transient-builder: --full on FULL_BUILD_WEEKDAY (deleted or edited rows are seen only by a full
# build); --table, --source when set (unset: the builder's own defaults, build --help).
set_build_args() {
  build_args=()
  if [[ "$(date -u +%u)" == "$full_build_day" ]]; then
    build_args+=(--full)
  fi
  if [[ -n "${TRANSIENT_TABLE:-}" ]]; then build_args+=(--table "$TRANSIENT_TABLE"); fi
  if [[ -n "${TRANSIENT_SOURCE:-}" ]]; then build_args+=(--source "$TRANSIENT_SOURCE"); fi
}

run_steps
log "pipeline run finished with exit status $status"
exit "$status"
