#!/usr/bin/env bash
# Start the stack in the background, in order: the inference daemon, then one data source,
# then the dashboard. Each process gets a log file and a pid file in the run dir; the
# script waits for the daemon's /health and the dashboard's first HTTP answer (not fixed
# sleeps), prints the URLs and returns. deploy/stop_all.sh stops exactly these processes.
#   deploy/start_all_production.sh                    # SOURCE=generator: a simulated fleet
#   SOURCE=mongodb deploy/start_all_production.sh     # adapters/mongodb_adapter.py
#   SOURCE=elasticsearch deploy/start_all_production.sh
#
# Settings, from the environment, else from the env file, else these defaults:
#   SOURCE                  generator | mongodb | elasticsearch (default generator)
#   PYTHON                  default .venv/bin/python
#   TFT_ENV_FILE            env file with TFT_API_KEY (default .env); given a missing file or
#                           one without a key, generate_api_key.py writes one into it; every
#                           process started reads it (exported, made absolute)
#   TFT_RUN_DIR             logs and pid files (default state/run)
#   TFT_STATE_DIR           the daemon's state (default state)
#   TFT_ADAPTER_CONFIG      the adapter's config (default adapters/SOURCE_adapter_config.json)
#   TFT_ADAPTER_BACKFILL_HOURS  history an adapter reads on its first start (default 26:
#                           the daemon's 24 h window and a margin)
#   TFT_HOST, TFT_PORT      the daemon's address (default 127.0.0.1:8000)
#   TFT_DASHBOARD_HOST, TFT_DASHBOARD_PORT          the dashboard's (default 127.0.0.1:8501)
#   TFT_GENERATOR_CONTROL_PORT                      the generator's control API (default 8001)
#   TFT_START_TIMEOUT_S     seconds to wait for each HTTP answer (default 180)
# Relative paths are taken from the current folder.
set -euo pipefail

CALLER_DIR=$PWD
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# absolute PATH: PATH made absolute against the folder the script was started from.
absolute() {
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$CALLER_DIR" "$1" ;;
    esac
}

fail() {
    echo "start_all_production.sh: $*" >&2
    exit 1
}

# load_env_file FILE: export its NAME=value lines, except names the environment already
# sets (as the processes' own settings do: the environment wins over the file).
load_env_file() {
    local line name value
    while IFS= read -r line || [ -n "$line" ]; do
        [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
        name=${BASH_REMATCH[2]}
        value=${BASH_REMATCH[3]}
        if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
        [ -n "${!name+set}" ] || export "$name=$value"
    done <"$1"
}

# The env file: a key is generated into it when neither the environment nor it has one.
ENV_FILE=$(absolute "${TFT_ENV_FILE:-$ROOT/.env}")
PY=$(absolute "${PYTHON:-$ROOT/.venv/bin/python}")
[ -x "$PY" ] || fail "no python at $PY: run 'make install', or set PYTHON"
[ -n "${TFT_API_KEY:-}" ] || unset TFT_API_KEY
if [ -z "${TFT_API_KEY:-}" ]; then
    "$PY" "$ROOT/generate_api_key.py" --env-file "$ENV_FILE" --example "$ROOT/.env.example"
fi
if [ -f "$ENV_FILE" ]; then load_env_file "$ENV_FILE"; fi
# Every process reads this file too (env_settings.env_file), the adapters' key included.
export TFT_ENV_FILE=$ENV_FILE
[ -n "${TFT_API_KEY:-}" ] || fail "no TFT_API_KEY in the environment or in $ENV_FILE"

SOURCE=${SOURCE:-generator}
RUN_DIR=$(absolute "${TFT_RUN_DIR:-$ROOT/state/run}")
STATE_DIR=$(absolute "${TFT_STATE_DIR:-$ROOT/state}")
TIMEOUT=${TFT_START_TIMEOUT_S:-180}
DAEMON_PORT=${TFT_PORT:-8000}
DASHBOARD_PORT=${TFT_DASHBOARD_PORT:-8501}

# PROCESSES (pid file names and scripts) and runs PID SCRIPT.
# shellcheck source=deploy/processes.sh
source "$ROOT/deploy/processes.sh"

case "$SOURCE" in
    generator) SOURCE_SCRIPT=metrics_generator_daemon.py ;;
    mongodb | elasticsearch) SOURCE_SCRIPT=adapters/${SOURCE}_adapter.py ;;
    *) fail "SOURCE=$SOURCE: use generator, mongodb or elasticsearch" ;;
esac

# connect_host HOST: where to reach a server bound to HOST (0.0.0.0 means any: loopback).
connect_host() {
    case "$1" in
        "" | 0.0.0.0 | "::") echo 127.0.0.1 ;;
        *) echo "$1" ;;
    esac
}
DAEMON_URL=http://$(connect_host "${TFT_HOST:-127.0.0.1}"):$DAEMON_PORT
DASHBOARD_URL=http://$(connect_host "${TFT_DASHBOARD_HOST:-127.0.0.1}"):$DASHBOARD_PORT

# Refuse to start over a running stack; forget pid files of processes that are gone.
for entry in "${PROCESSES[@]}"; do
    pid_file=$RUN_DIR/${entry%%:*}.pid
    [ -f "$pid_file" ] || continue
    pid=$(<"$pid_file")
    if runs "$pid" "${entry#*:}"; then
        fail "already running: ${entry#*:} (pid $pid, $pid_file); stop it with deploy/stop_all.sh"
    fi
    rm -f "$pid_file"
done
mkdir -p "$RUN_DIR" "$STATE_DIR"

# start NAME SCRIPT ARGS...: run SCRIPT in the background from the repo root, output to
# RUN_DIR/NAME.log, its pid in RUN_DIR/NAME.pid.
start() {
    local name=$1
    shift
    (cd "$ROOT" && exec nohup "$PY" "$@" >>"$RUN_DIR/$name.log" 2>&1 </dev/null) &
    echo $! >"$RUN_DIR/$name.pid"
    echo "started the $name (pid $!, log $RUN_DIR/$name.log)"
}

# answers URL [any]: true once URL answers 2xx (with "any": any HTTP status at all).
answers() {
    "$PY" - "$1" "${2:-ok}" 2>/dev/null <<'PYTHON'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError:
    sys.exit(0 if sys.argv[2] == "any" else 1)
except OSError:
    sys.exit(1)
PYTHON
}

# wait_for NAME SCRIPT URL [any]: until URL answers; fail (stopping what this script
# started) if the process exits or TIMEOUT passes.
wait_for() {
    local name=$1 script=$2 url=$3 mode=${4:-ok} deadline=$((SECONDS + TIMEOUT))
    local log=$RUN_DIR/$name.log
    until answers "$url" "$mode"; do
        if ! runs "$(<"$RUN_DIR/$name.pid")" "$script"; then
            give_up "the $name exited before answering on $url; see $log"
        fi
        if ((SECONDS >= deadline)); then
            give_up "the $name did not answer on $url within ${TIMEOUT}s; see $log"
        fi
        sleep 1
    done
}

give_up() {
    echo "start_all_production.sh: $*" >&2
    TFT_RUN_DIR=$RUN_DIR "$ROOT/deploy/stop_all.sh" >&2 || true
    exit 1
}

# 1. The inference daemon, first: every other process talks to it.
echo "[1/3] inference daemon on $DAEMON_URL"
if [ "$SOURCE" = generator ] && [ -z "${TFT_SERVER_CORES_FILE:-}" ]; then
    # Core counts of the simulated fleet, for the load-per-core risk (as make demo does).
    (cd "$ROOT" && "$PY" metrics_generator_daemon.py --write-cores "$STATE_DIR/fleet_cores.json")
    export TFT_SERVER_CORES_FILE=$STATE_DIR/fleet_cores.json
fi
start daemon tft_inference_daemon.py --port "$DAEMON_PORT" --state-dir "$STATE_DIR"
wait_for daemon tft_inference_daemon.py "$DAEMON_URL/health"

# 2. The data source.
echo "[2/3] source: $SOURCE"
if [ "$SOURCE" = generator ]; then
    start "$SOURCE" "$SOURCE_SCRIPT" --daemon-url "$DAEMON_URL"
else
    CONFIG=$(absolute "${TFT_ADAPTER_CONFIG:-$ROOT/adapters/${SOURCE}_adapter_config.json}")
    [ -f "$CONFIG" ] || give_up "no adapter config at $CONFIG (set TFT_ADAPTER_CONFIG)"
    # On its first start (no state file yet) the adapter reads this much history, so the
    # daemon warms up at once; later starts resume from the state file.
    start "$SOURCE" "$SOURCE_SCRIPT" --daemon --config "$CONFIG" \
        --state-file "$STATE_DIR/${SOURCE}_adapter_state.json" \
        --backfill-hours "${TFT_ADAPTER_BACKFILL_HOURS:-26}"
fi

# 3. The dashboard.
echo "[3/3] dashboard on $DASHBOARD_URL"
start dashboard dash_app.py --daemon-url "$DAEMON_URL" --port "$DASHBOARD_PORT"
wait_for dashboard dash_app.py "$DASHBOARD_URL/" any
runs "$(<"$RUN_DIR/$SOURCE.pid")" "$SOURCE_SCRIPT" ||
    give_up "the $SOURCE exited; see $RUN_DIR/$SOURCE.log"

cat <<TEXT

Stack running (source: $SOURCE).
  Inference daemon: $DAEMON_URL  (health: $DAEMON_URL/health)
  Dashboard:        $DASHBOARD_URL
  Logs and pids:    $RUN_DIR
  Predictions:      curl -s -H "X-API-Key: \$KEY" $DAEMON_URL/predict | head -c 600
                    (KEY: TFT_API_KEY in $ENV_FILE)
Stop: TFT_RUN_DIR=$RUN_DIR deploy/stop_all.sh
TEXT
