#!/usr/bin/env bash
# The web console's browser tests: Debian's Chromium and chromedriver (installed when missing),
# Selenium, pytest and paho-mqtt (PyPI, pinned) in devicehub's test venv, against a devicehub
# of its own (API and collector, a scratch database) on the local PostgreSQL, Mosquitto and
# InfluxDB. Chromium runs headless with --no-sandbox (root in a container); see conftest.py.
#   scripts/browser-test.sh [pytest arguments, e.g. -k overview]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
require_cargo
ensure_services

command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt_install chromium chromium-driver
VENV="$HOME/.cache/devicehub/venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
if ! "$VENV/bin/python" -c 'import selenium, pytest, paho.mqtt' 2>/dev/null; then
  log "installing selenium, pytest and paho-mqtt into $VENV"
  "$VENV/bin/pip" install -q selenium==4.38.0 pytest==8.4.2 paho-mqtt==2.1.0
fi

cargo build --locked --bin devicehub
export DEVICEHUB_BIN="${DEVICEHUB_BIN:-$CARGO_TARGET_DIR/debug/devicehub}"
log "browser tests ($(chromium --version 2>/dev/null | head -1))"
# Selenium must not download a driver: chromedriver is given (conftest.py), and this says so.
export SE_OFFLINE=true
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/browser "$@"
