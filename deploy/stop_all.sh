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

# PROCESSES (pid file names and scripts, in starting order) and runs PID SCRIPT.
# shellcheck source=deploy/processes.sh
source "$ROOT/deploy/processes.sh"

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

for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do # the daemon, started first, stops last
    entry=${PROCESSES[i]}
    stop "${entry%%:*}" "${entry#*:}"
done
echo "stopped (run dir: $RUN_DIR)"
