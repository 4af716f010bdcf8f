#!/usr/bin/env bash
# Install the TFT services as systemd units. Run as root; safe to run again (idempotent).
#   sudo deploy/systemd/install.sh             # install
#   deploy/systemd/install.sh --dry-run        # print what it would do, change nothing
#
# It creates the system user and group tft, the state folder (/var/lib/tft, owned by tft),
# the config folder (/etc/tft) with the env file /etc/tft/.env (TFT_API_KEY generated once,
# mode 600) and copies of the adapter configs when they are absent; it renders the unit
# templates of this folder into /etc/systemd/system and reloads systemd. It enables and
# starts nothing: it prints the systemctl commands for that.
#
# Settings (environment):
#   INSTALL_DIR  the checkout the services run from (default: this one; /opt/tft-monitoring
#                is a good place; not under /home or /root, which the units hide)
#   PYTHON       its interpreter (default INSTALL_DIR/.venv/bin/python, from `make install`);
#                it and the Python it links to must not be under /home or /root either
#   STATE_DIR    default /var/lib/tft      CONFIG_DIR  default /etc/tft
#   SERVICE_USER     default tft (SERVICE_GROUP: the same)
#   UNIT_DIR     default /etc/systemd/system
#   SYSTEMCTL    default systemctl (the tests set it to `true`)
set -euo pipefail

DRY_RUN=0
case "${1:-}" in
    --dry-run) DRY_RUN=1 ;;
    "") ;;
    *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
INSTALL_DIR=${INSTALL_DIR:-$(cd "$HERE/../.." && pwd)}
PYTHON=${PYTHON:-$INSTALL_DIR/.venv/bin/python}
STATE_DIR=${STATE_DIR:-/var/lib/tft}
CONFIG_DIR=${CONFIG_DIR:-/etc/tft}
SERVICE_USER=${SERVICE_USER:-tft}
SERVICE_GROUP=${SERVICE_GROUP:-$SERVICE_USER}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
SYSTEMCTL=${SYSTEMCTL:-systemctl}

# run CMD...: print the command; run it unless --dry-run.
run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

fail() { echo "install.sh: $*" >&2; exit 1; }

# Checks first, so that a failed install changes nothing.
[ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || fail "run as root (or with --dry-run)"
[ -x "$PYTHON" ] || fail "no python at $PYTHON: run 'make install' in $INSTALL_DIR, or set PYTHON"
[ -f "$INSTALL_DIR/tft_inference_daemon.py" ] || fail "$INSTALL_DIR is not a TFT checkout"
# ProtectHome=yes hides /home, /root and /run/user from the services. Paths are checked
# where they really are: a venv's python is a link to the Python that made it, and its
# standard library stays there (pyenv and uv keep theirs under /root or /home).
hidden() { case "$1/" in /home/* | /root/* | /run/user/*) return 0 ;; esac; return 1; }
REAL_DIR=$(realpath "$INSTALL_DIR")
if hidden "$REAL_DIR"; then
    fail "$INSTALL_DIR (really $REAL_DIR) is hidden from the services (ProtectHome=yes): install under /opt"
fi
REAL_PYTHON=$(realpath "$PYTHON")
BASE_PREFIX=$(realpath "$("$PYTHON" -c 'import sys; print(sys.base_prefix)')")
if hidden "$REAL_PYTHON" || hidden "$BASE_PREFIX"; then
    fail "$PYTHON is really $REAL_PYTHON (standard library in $BASE_PREFIX), which the \
services cannot see (ProtectHome=yes): make the venv with a system Python, e.g. \
'rm -rf $INSTALL_DIR/.venv && make -C $INSTALL_DIR install PYTHON=/usr/bin/python3' \
(on Debian and Ubuntu: apt-get install python3-venv)"
fi

# 1. The system user and group the services run as (home: the state folder, no login).
if ! getent group "$SERVICE_GROUP" >/dev/null; then
    run groupadd --system "$SERVICE_GROUP"
fi
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    run useradd --system --gid "$SERVICE_GROUP" --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$SERVICE_USER"
fi

# 2. Folders: state writable by the services only; config readable by their group.
run install -d -m 750 -o "$SERVICE_USER" -g "$SERVICE_GROUP" "$STATE_DIR" "$STATE_DIR/daemon"
run install -d -m 750 -o root -g "$SERVICE_GROUP" "$CONFIG_DIR"

# 3. The env file (systemd reads it as root, so mode 600 root is enough). Keeps a key.
run "$PYTHON" "$INSTALL_DIR/generate_api_key.py" --env-file "$CONFIG_DIR/.env" \
    --example "$INSTALL_DIR/.env.example"

# 4. Adapter configs: copied once, then yours to edit (they may hold database passwords).
for name in mongodb_adapter_config.json elasticsearch_adapter_config.json; do
    if [ -f "$CONFIG_DIR/$name" ]; then
        echo "  $CONFIG_DIR/$name exists: kept"
    elif [ -f "$INSTALL_DIR/adapters/$name" ]; then
        run install -m 640 -o root -g "$SERVICE_GROUP" "$INSTALL_DIR/adapters/$name" "$CONFIG_DIR/$name"
    else
        echo "  no $INSTALL_DIR/adapters/$name: write $CONFIG_DIR/$name before starting that adapter"
    fi
done

# 5. The units, rendered with these paths, then systemd told about them.
run "$PYTHON" "$HERE/render_units.py" --out "$UNIT_DIR" --install-dir "$INSTALL_DIR" \
    --python "$PYTHON" --state-dir "$STATE_DIR" --config-dir "$CONFIG_DIR" \
    --user "$SERVICE_USER" --group "$SERVICE_GROUP"
if [ -d /run/systemd/system ] || [ "$SYSTEMCTL" != systemctl ]; then
    run "$SYSTEMCTL" daemon-reload
else
    echo "  systemd is not running here: run 'systemctl daemon-reload' where it is"
fi

if [ "$DRY_RUN" = 1 ]; then echo; echo "Dry run: nothing was changed."; fi
cat <<TEXT

Then enable and start the daemon, one source and the dashboard:
  systemctl enable --now tft-inference-daemon
  systemctl enable --now tft-mongodb-adapter        # or tft-elasticsearch-adapter
  systemctl enable --now tft-dashboard
Development only, instead of an adapter:
  systemctl enable --now tft-metrics-generator
Settings: $CONFIG_DIR/.env (see .env.example). Logs: journalctl -u tft-inference-daemon -f
TEXT
