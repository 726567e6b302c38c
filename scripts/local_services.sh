#!/usr/bin/env bash
# Local services for trying the pipeline on your own alerts, without writing code:
#   scripts/local_services.sh start            embedded Kafka broker + PostgreSQL, in the background
#   scripts/local_services.sh produce FILE...  publish alert files (.frames, .avro, one message per file)
#   scripts/local_services.sh env              print the variables that point the tools at them
#   scripts/local_services.sh stop             stop both
# State lives in LOCAL_SERVICES_DIR (default ./local_services): services.env, the log, sample
# inputs (night.frames, fink_latests.json), PostgreSQL's data; the broker's topics are in memory only.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${LOCAL_SERVICES_DIR:-$repo/local_services}"
python="$repo/.venv/bin/python"
pid_file="$state/services.pid"
env_file="$state/services.env"

running() {
  [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

case "${1:-}" in
  start)
    "$repo/scripts/setup_venv.sh"
    mkdir -p "$state"
    if running; then
      echo "already running (pid $(cat "$pid_file")):"
    else
      rm -f "$env_file"
      (cd "$repo" && exec nohup "$python" -m devtools.services run "$state") \
        >"$state/services.log" 2>&1 </dev/null &
      echo "$!" >"$pid_file"
      for _ in $(seq 1 600); do
        [[ -f "$env_file" ]] && break
        if ! running; then
          echo "the local services did not start; see $state/services.log" >&2
          tail -n 20 "$state/services.log" >&2 || true
          exit 1
        fi
        sleep 0.1
      done
      [[ -f "$env_file" ]] || { echo "the local services did not come up within 60 s; see $state/services.log" >&2; exit 1; }
      echo "started (pid $(cat "$pid_file")):"
    fi
    cat "$env_file"
    echo "use them: set -a; . '$env_file'; set +a   (then run the consumer, the builder or ./run_lsst_consumer.sh)"
    ;;
  produce)
    shift
    [[ $# -gt 0 ]] || { echo "usage: $0 produce FILE..." >&2; exit 64; }
    running && [[ -f "$env_file" ]] || { echo "not running: $0 start first" >&2; exit 1; }
    (cd "$repo" && exec "$python" -m devtools.services produce "$state" "$@")
    ;;
  env)
    running && [[ -f "$env_file" ]] || { echo "not running: $0 start first" >&2; exit 1; }
    cat "$env_file"
    ;;
  stop)
    if running; then
      pid="$(cat "$pid_file")"
      kill "$pid"
      for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      echo "stopped"
    else
      echo "not running"
    fi
    rm -f "$pid_file" "$env_file"
    ;;
  -h|--help|help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 64
    ;;
esac
