#!/usr/bin/env bash
# Checks, through devicehub's API, what `scripts/run.sh` should show after a couple of minutes:
# every device of the scenario registered and online, with metrics and raw archive objects, at
# least one alert, and the inventory of the home network. Prints a line per device; exits
# non-zero when something is missing.
#   scripts/check-run.sh [scenario, default config/simulator/home.toml]
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

SCENARIO="${1:-config/simulator/home.toml}"
API="${DEVICEHUB_API:-http://127.0.0.1:8080}"
SIM="$CARGO_TARGET_DIR/release/devicehub-sim"
[ -x "$SIM" ] || SIM="$CARGO_TARGET_DIR/debug/devicehub-sim"
TOKEN=$(curl -fs -XPOST "$API/api/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"admin\",\"password\":\"${DEVICEHUB_ADMIN_PASSWORD:-dev-only-admin-password}\"}" |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["access_token"])') || die "cannot log in to $API"

"$SIM" devices --scenario "$SCENARIO" | python3 -c '
import json, sys, urllib.request
api, token = sys.argv[1], sys.argv[2]
def get(path):
    request = urllib.request.Request(api + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        return {"status": e.code}
failed = 0
print("{:32} {:10} {:8} {:>6} {:>7}".format("device", "registered", "status", "points", "objects"))
for line in sys.stdin:
    device = json.loads(line)["device_id"]
    record = get(f"/api/devices/{device}")
    # Registered by the simulator (its helper), not auto-registered by the collector.
    registered = record.get("device_id") == device and record.get("status") != "unregistered"
    status = get(f"/api/devices/{device}/status").get("connection_status", "-")
    points = get(f"/api/devices/{device}/metrics?start=-10m")
    objects = get(f"/api/devices/{device}/raw-data")
    points = len(points) if isinstance(points, list) else 0
    objects = len(objects) if isinstance(objects, list) else 0
    ok = registered and status == "online" and points > 0 and objects > 0
    failed += not ok
    mark = "" if ok else "  <- MISSING"
    print(f"{device:32} {str(registered):10} {status:8} {points:>6} {objects:>7}{mark}")
alerts = get("/api/alerts")
alerts = alerts if isinstance(alerts, list) else []
kinds = ", ".join(sorted({a["alert_type"] for a in alerts}))
print(f"alerts: {len(alerts)} ({kinds})")
if not alerts:
    failed += 1
# The home network: the inventory, and the camera (registered by devicehub from its device info).
hosts = get("/api/inventory")
hosts = hosts if isinstance(hosts, list) else []
known = sum(1 for h in hosts if h.get("known"))
present = sum(1 for h in hosts if h.get("present"))
polled = sum(1 for h in hosts if h.get("device_id"))
print(f"inventory: {len(hosts)} hosts, {known} known, {present} on Wi-Fi, {polled} with a registered device")
if not hosts:
    failed += 1
cameras = get("/api/devices?type=camera")
cameras = cameras if isinstance(cameras, list) else []
for camera in cameras:
    print("camera {}: {}".format(camera["device_id"], camera["connection_status"]))
# The analytics (gold is built every 5 minutes: empty during the first ones).
energy = get("/api/analytics/energy/daily?group_by=type")
energy = energy if isinstance(energy, list) else []
for row in energy:
    print("energy {} {:12} {:9.3f} kWh {:7.3f} ({})".format(row["date"], row["device_type"], row["energy_kwh"], row["cost"], row["method"]))
summary = get("/api/analytics/summary")
for day in summary if isinstance(summary, list) else []:
    print("summary {}: {:.3f} kWh, cost {:.3f}, {} active devices, average health {}".format(
        day["date"], day["total_kwh"], day["total_cost"], day["active_devices"], day["avg_health"]))
health = get("/api/analytics/health")
print(f"health: {len(health) if isinstance(health, list) else 0} devices")
# Prometheus (scripts/run.sh starts it): devicehub scraped, and the alert rules that fire.
try:
    with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22devicehub%22%7D", timeout=5) as r:
        up = json.load(r)["data"]["result"]
    with urllib.request.urlopen("http://127.0.0.1:9090/api/v1/alerts", timeout=5) as r:
        alerts = json.load(r)["data"]["alerts"]
    print("prometheus: devicehub up = {}, alerts: {}".format(
        [u["value"][1] for u in up], sorted({(a["labels"]["alertname"], a["state"]) for a in alerts}) or "none"))
except OSError as e:
    print(f"prometheus: not reachable ({e})")
sys.exit(1 if failed else 0)
' "$API" "$TOKEN"
