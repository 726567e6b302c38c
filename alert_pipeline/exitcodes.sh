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
  64  the wrapper'\''s own usage: a bad option or variable (RETENTION_DAYS, REPORT, CROSSMATCH,
      FULL_BUILD_WEEKDAY), or an output directory retention must not touch (/ or empty)
  69  no usable Python (run scripts/setup_venv.sh)
  73  LOG_FILE or the lock file cannot be written
  75  another run holds the lock: this one did nothing
  else  the first failed step'\''s code (the consumer'\''s, the builder'\''s or the report'\''s, from the same table)'
