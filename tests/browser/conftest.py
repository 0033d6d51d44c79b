"""Fixtures for the console's browser tests: a real devicehub (API and collector) on its own
database, InfluxDB database, MQTT topics and archive; real users; Debian's headless Chromium
driven by chromedriver over WebDriver; a real MQTT client that plays the devices.

Run by scripts/browser-test.sh (which installs Chromium, chromedriver and the Python packages);
DEVICEHUB_BIN names the devicehub binary to test."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "correct horse battery staple"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Devicehub:
    """A running devicehub and what it needs to be driven: its URL, users, MQTT topics."""

    def __init__(self):
        tag = secrets.token_hex(6)
        self.tag = tag
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scratch = tempfile.mkdtemp(prefix=f"devicehub-browser-{tag}-")
        self.iot = f"t{tag}/iot"
        self.env = dict(
            os.environ,
            DEVICEHUB__DATABASE__URL=f"postgres://postgres@127.0.0.1:5432/devicehub_test_browser_{tag}",
            DEVICEHUB__HTTP__BIND=f"127.0.0.1:{self.port}",
            DEVICEHUB__HTTP__WORKERS="2",
            DEVICEHUB__AUTH__JWT_SECRET=secrets.token_hex(32),
            DEVICEHUB__ROLES="api,collector",
            DEVICEHUB__MQTT__CLIENT_ID=f"devicehub-browser-{tag}",
            DEVICEHUB__MQTT__IOT_PREFIX=self.iot,
            DEVICEHUB__MQTT__QS_PREFIX=f"t{tag}/qs/v1",
            DEVICEHUB__MQTT__DEADLETTER_TOPIC=f"t{tag}/deadletter",
            DEVICEHUB__INFLUXDB__API="v1",
            DEVICEHUB__INFLUXDB__URL=os.environ.get("DEVICEHUB_TEST_INFLUXDB_URL", "http://127.0.0.1:8086"),
            DEVICEHUB__INFLUXDB__DATABASE=f"devicehub_test_browser_{tag}",
            DEVICEHUB__INFLUXDB__BATCH__TIMEOUT_MS="100",
            DEVICEHUB__ARCHIVE__DIR=os.path.join(self.scratch, "archive"),
            DEVICEHUB__ARCHIVE__BATCH__TIMEOUT_MS="500",
            DEVICEHUB__COLLECTOR__JOURNAL_DIR=os.path.join(self.scratch, "journal"),
            DEVICEHUB__ANALYTICS__WORK_DIR=os.path.join(self.scratch, "analytics"),
            DEVICEHUB__LOG__LEVEL="warn",
        )
        self.env.pop("RUST_LOG", None)
        self.bin = os.environ.get("DEVICEHUB_BIN", os.path.join(ROOT, "target/debug/devicehub"))
        self.log = open(os.path.join(self.scratch, "devicehub.log"), "w")
        self.process = subprocess.Popen([self.bin, "serve"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready()
        self.tokens = {}
        for user, role in [("ada", "admin"), ("otto", "operator"), ("vic", "viewer")]:
            subprocess.run([self.bin, "user", "add", "--username", user, "--role", role], cwd=ROOT,
                           env=self.env, input=PASSWORD + "\n", text=True, check=True,
                           stdout=subprocess.DEVNULL)
            self.tokens[user] = self.call("POST", "/api/auth/login",
                                          {"username": user, "password": PASSWORD})["access_token"]
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"browser-devices-{tag}")
        self.mqtt.connect("127.0.0.1", 1883)
        self.mqtt.loop_start()

    def wait_ready(self):
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"devicehub exited: see {self.log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise RuntimeError("devicehub did not get ready")

    def call(self, method, path, body=None, user=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if user:
            request.add_header("Authorization", f"Bearer {self.tokens[user]}")
        with urllib.request.urlopen(request, timeout=30) as r:
            text = r.read()
            return json.loads(text) if text else None

    def publish(self, device_id, kind, payload):
        info = self.mqtt.publish(f"{self.iot}/{device_id}/{kind}", json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=10)

    def analytics(self, day):
        subprocess.run([self.bin, "analytics", "run", "--from", day, "--to", day], cwd=ROOT,
                       env=self.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        self.mqtt.loop_stop()
        self.mqtt.disconnect()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def eventually(check, timeout=20, every=0.25, what="the condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(every)
    raise AssertionError(f"{what} did not hold within {timeout} s (last: {last!r})")


def seed_fleet(hub):
    """30 devices (27 sensors in two rooms, 3 plugs), a plug's seed 002 records for today with
    energy, and today's analytics."""
    for i in range(27):
        hub.call("POST", "/api/devices", {"device_id": f"sensor-{i:02}", "device_name": f"Sensor {i:02}",
                                          "device_type": "sensor",
                                          "location": "hall" if i % 2 else "attic"}, user="ada")
    for i in range(3):
        hub.call("POST", "/api/devices", {"device_id": f"plug-{i}", "device_name": f"Plug {i}",
                                          "device_type": "plug", "location": "kitchen"}, user="ada")
    now = datetime.now(timezone.utc)
    # 40 records a second apart, 25 Wh each: 1.000 kWh today.
    start = now - timedelta(seconds=45)
    for i in range(40):
        ts = start + timedelta(seconds=i)
        hub.publish("plug-0", "telemetry", {
            "device_id": "plug-0", "device_type": "plug", "user_id": "user_001",
            "timestamp": ts.isoformat(), "temperature": 21.5, "power_usage": 3000.0,
            "energy_consumption_wh": 25.0, "status": "online", "alert": "none", "location": "kitchen",
            "manufacturer": "TP-Link", "model": "HS110"})
    day = now.date().isoformat()

    def built():
        hub.analytics(day)
        rows = hub.call("GET", f"/api/analytics/summary?from={day}&to={day}", user="vic")
        return rows and abs(rows[0]["total_kwh"] - 1.0) < 1e-6 and rows
    return eventually(built, timeout=90, every=1, what="today's analytics")


@pytest.fixture(scope="session")
def hub():
    hub = Devicehub()
    hub.summary = seed_fleet(hub)
    yield hub
    hub.stop()


@pytest.fixture()
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    # --no-sandbox: the tests run as root in a container without user namespaces.
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--metrics-recording-only", "--no-default-browser-check"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
