#!/usr/bin/env bash
# Stop what deploy/start_all_production.sh started: exactly the processes named in its pid
# files under the run dir, each only while it still runs the expected script (checked in
# /proc/PID/cmdline, so a reused pid is never killed). SIGTERM, then SIGKILL after the
# timeout; the dashboard and the sources first, the daemon last (it saves its state on
# SIGTERM). Removes those pid files; touches nothing else (logs stay).
#   deploy/stop_all.sh
# Settings (environment):
#   TFT_RUN_DIR          the run dir given to start_all_production.sh (default state/run)
#   TFT_STOP_TIMEOUT_S   seconds each process gets to exit after SIGTERM (default 60)
set -euo pipefail

CALLER_DIR=$PWD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case "${TFT_RUN_DIR:-}" in
    "") RUN_DIR=$ROOT/state/run ;;
    /*) RUN_DIR=$TFT_RUN_DIR ;;
    *) RUN_DIR=$CALLER_DIR/$TFT_RUN_DIR ;;
esac
TIMEOUT=${TFT_STOP_TIMEOUT_S:-60}

# Each pid file's name and the script its process runs, in stopping order.
PROCESSES=(
    dashboard:dash_app.py
    generator:metrics_generator_daemon.py
    mongodb:adapters/mongodb_adapter.py
    elasticsearch:adapters/elasticsearch_adapter.py
    daemon:tft_inference_daemon.py
)

# runs PID SCRIPT: true while process PID runs SCRIPT (an argument of its command line).
# A zombie has an empty command line: it counts as gone.
runs() {
    local arg
    [[ $1 =~ ^[0-9]+$ ]] || return 1
    while IFS= read -r -d '' arg; do
        if [[ $arg == "$2" || $arg == */"$2" ]]; then return 0; fi
    done 2>/dev/null <"/proc/$1/cmdline" || return 1
    return 1
}

# gone PID SCRIPT SECONDS: true once PID no longer runs SCRIPT, false after SECONDS.
gone() {
    local deadline=$((SECONDS + $3))
    while runs "$1" "$2"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# stop NAME SCRIPT: stop the process of RUN_DIR/NAME.pid if it runs SCRIPT; remove the file.
stop() {
    local pid_file=$RUN_DIR/$1.pid pid
    [ -f "$pid_file" ] || return 0
    pid=$(<"$pid_file")
    if runs "$pid" "$2"; then
        echo "stopping the $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! gone "$pid" "$2" "$TIMEOUT"; then
            echo "the $1 (pid $pid) did not exit within ${TIMEOUT}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            gone "$pid" "$2" 10 || echo "the $1 (pid $pid) survived SIGKILL" >&2
        fi
    else
        echo "the $1 is not running (pid file $pid_file): removing the pid file"
    fi
    rm -f "$pid_file"
}

for entry in "${PROCESSES[@]}"; do
    stop "${entry%%:*}" "${entry#*:}"
done
echo "stopped (run dir: $RUN_DIR)"
