# Generated from alert_pipeline/exitcodes.py (python -m alert_pipeline.exitcodes --shell): do not edit.
# shellcheck shell=bash disable=SC2034
readonly EXIT_OK=0
readonly EXIT_FAILURE=1
readonly EXIT_CONFIG=2
readonly EXIT_SERVICE=3
readonly EXIT_OUTPUT=4
readonly EXIT_DATABASE=5
readonly EXIT_RETENTION=6
readonly EXIT_SHRINK=7
readonly EXIT_NOTHING_WRITTEN=8
readonly EXIT_INPUT_UNUSED=9
readonly EXIT_USAGE=64
readonly EXIT_NO_PYTHON=69
readonly EXIT_CANT_CREATE=73
readonly EXIT_LOCKED=75
readonly EXIT_CODES_HELP='exit codes:
  0   success (also: nothing to do, or some input skipped or quarantined and logged)
  6   retention could not delete some of the old files (each is named in the log)
  9   some input was not used: a file (or notice source) of which nothing could be loaded; each is
      named in the log and the summary; the rest was loaded; passed on from the builder step that
      returned it (messengers, tns); the later steps still ran
  64  the wrapper'\''s own usage: a bad option or variable (RETENTION_DAYS, FULL_BUILD_WEEKDAY, a
      step'\''s switch: see --help), or an output directory retention must not touch (/ or empty)
  69  no usable Python (run scripts/setup_venv.sh)
  73  LOG_FILE or the lock file cannot be written
  75  another run holds the lock: this one did nothing
  else  the first failed step'\''s code (the consumer'\''s, the builder'\''s or the report'\''s, from the same table)'
# The name and meaning of a code, for the log line of a step that returned it.
exit_code_meaning() {
  case "$1" in
    0) echo 'EXIT_OK: success (also: nothing to do, or some input skipped or quarantined and logged)' ;;
    1) echo 'EXIT_FAILURE: unexpected error (a bug): the traceback is in the log' ;;
    2) echo 'EXIT_CONFIG: configuration or usage error: a bad option, setting, configuration file or input file; nothing was changed' ;;
    3) echo 'EXIT_SERVICE: a service failed: Kafka broker, schema registry or GCN Kafka unreachable, credentials refused, unknown topic; nothing of that batch was committed' ;;
    4) echo 'EXIT_OUTPUT: output not writable (permissions, disk full, a planted link): that batch was not committed, nothing was half-written' ;;
    5) echo 'EXIT_DATABASE: database unreachable, table missing or a database error' ;;
    6) echo 'EXIT_RETENTION: retention could not delete some of the old files (each is named in the log)' ;;
    7) echo 'EXIT_SHRINK: the build would remove more than half of the slots on disk (a mistyped --source or --table?): nothing was removed; --allow-shrink when the objects really are gone' ;;
    8) echo 'EXIT_NOTHING_WRITTEN: messages were read and every one was quarantined (the wrong topic, a broken producer?): the warning names the main reason' ;;
    9) echo 'EXIT_INPUT_UNUSED: some input was not used: a file (or notice source) of which nothing could be loaded; each is named in the log and the summary; the rest was loaded' ;;
    64) echo 'EXIT_USAGE: the wrapper'\''s own usage: a bad option or variable (RETENTION_DAYS, FULL_BUILD_WEEKDAY, a step'\''s switch: see --help), or an output directory retention must not touch (/ or empty)' ;;
    69) echo 'EXIT_NO_PYTHON: no usable Python (run scripts/setup_venv.sh)' ;;
    73) echo 'EXIT_CANT_CREATE: LOG_FILE or the lock file cannot be written' ;;
    75) echo 'EXIT_LOCKED: another run holds the lock: this one did nothing' ;;
    *) echo 'not in the exit code table' ;;
  esac
}
