#!/usr/bin/env bash
# Run the stack on this machine, in order: the inference daemon (port 8000), then the
# metrics generator daemon feeding it a simulated fleet (control API on port 8001), and
# the dashboard (port 8501).
# Ctrl+C stops all three; the daemon saves its buffers to state/ and restarts warm.
#   SERVERS=20 SCENARIO=healthy SPEED=1 deploy/run_stack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SERVERS=${SERVERS:-20}
SPEED=${SPEED:-1}
# Above speed 1 the simulated timestamps run ahead of the wall clock, and the daemon
# refuses timestamps more than TFT_MAX_CLOCK_SKEW_S ahead: 0 turns that check off.
if awk -v s="$SPEED" 'BEGIN { exit !(s + 0 > 1) }'; then
    export TFT_MAX_CLOCK_SKEW_S=0
fi

"$PY" generate_api_key.py  # writes TFT_API_KEY to .env once (mode 600)
mkdir -p state
"$PY" metrics_generator_daemon.py --write-cores state/fleet_cores.json --servers "$SERVERS"

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait || true; }
trap stop EXIT INT TERM

TFT_SERVER_CORES_FILE=state/fleet_cores.json "$PY" tft_inference_daemon.py --port 8000 &
pids+=($!)
for _ in $(seq 120); do
    "$PY" -c "import httpx; httpx.get('http://127.0.0.1:8000/health').raise_for_status()" \
        2>/dev/null && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "the inference daemon did not start" >&2; exit 1; }
    sleep 1
done

"$PY" metrics_generator_daemon.py --servers "$SERVERS" --scenario "${SCENARIO:-healthy}" \
    --speed "$SPEED" &
pids+=($!)

"$PY" dash_app.py --daemon-url http://127.0.0.1:8000 --port 8501 &
pids+=($!)

cat <<'TEXT'

Stack running. Dashboard: http://localhost:8501
In another terminal:
  KEY=$(grep ^TFT_API_KEY= .env | cut -d= -f2)
  curl -s http://127.0.0.1:8000/health
  curl -s -H "X-API-Key: $KEY" http://127.0.0.1:8000/predict | head -c 600
  curl -s -H "X-API-Key: $KEY" http://127.0.0.1:8000/alerts
  curl -s -X POST -H "X-API-Key: $KEY" http://127.0.0.1:8001/scenario -d '{"scenario": "cascade"}'
Ctrl+C stops the stack.
TEXT
wait -n
