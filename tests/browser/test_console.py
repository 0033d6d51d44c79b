"""The web console in headless Chromium, against a real devicehub: what a person sees and does."""

import json
import time
from datetime import datetime, timezone

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD, eventually


def wait(browser, timeout=15):
    # The console re-renders its panels on every refresh: an element found a moment ago may be
    # replaced before its text is read. That is a retry, not a failure.
    return WebDriverWait(browser, timeout, ignored_exceptions=[StaleElementReferenceException])


def log_in(browser, hub, user, password=PASSWORD):
    browser.get(hub.url + "/")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "login-user"))).send_keys(user)
    browser.find_element(By.ID, "login-password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()


def logged_in(browser, hub, user):
    log_in(browser, hub, user)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "who-name"), user))


def text(browser, css):
    return browser.find_element(By.CSS_SELECTOR, css).text


def test_a_wrong_password_shows_an_error_and_no_console(browser, hub):
    log_in(browser, hub, "otto", "not the password")
    error = wait(browser).until(EC.visibility_of_element_located((By.ID, "login-error")))
    assert "Wrong user name or password" in error.text
    assert not browser.find_element(By.ID, "nav").is_displayed()


def test_the_overview_shows_todays_kpis_and_the_fleet(browser, hub):
    logged_in(browser, hub, "vic")
    day = hub.summary[0]
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#kpi-energy .value"), "1.00"))
    assert text(browser, "#kpi-cost .value") == f"{day['total_cost']:.2f}" == "0.12"
    assert text(browser, "#kpi-active .value") == str(day["active_devices"])
    assert text(browser, "#kpi-health .value") == f"{day['avg_health']:.2f}"
    stats = hub.call("GET", "/api/stats", user="vic")
    assert text(browser, "#kpi-online .value") == str(stats["online_devices"])
    assert text(browser, "#kpi-offline .value") == str(stats["total_devices"] - stats["online_devices"])
    for severity in ["critical", "error", "warning", "info"]:
        assert browser.find_element(By.ID, f"kpi-alerts-{severity}").is_displayed()
    # The ingest rate needs two samples, five seconds apart.
    wait(browser, 15).until(lambda b: "msg/s" in text(b, "#kpi-ingest .value"))
    # The access token is kept in memory only.
    assert browser.execute_script("return window.localStorage.length + window.sessionStorage.length") == 0
    assert "devicehub_refresh" not in browser.execute_script("return document.cookie")


def test_the_devices_table_pages_and_filters(browser, hub):
    logged_in(browser, hub, "vic")
    browser.get(hub.url + "/#/devices")
    total = len(hub.call("GET", "/api/devices?limit=1000", user="vic"))
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "devices-range"), f"1–25 of {total}"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#devices-body tbody tr")) == 25
    browser.find_element(By.LINK_TEXT, "Next →").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "devices-range"), f"26–{total} of {total}"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#devices-body tbody tr")) == total - 25
    type_box = browser.find_element(By.ID, "f-type")
    type_box.clear()
    type_box.send_keys("plug", Keys.ENTER)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "devices-range"), "1–3 of 3"))
    ids = sorted(e.text for e in browser.find_elements(By.CSS_SELECTOR, "#devices-body tbody tr td:first-child"))
    assert ids == ["plug-0", "plug-1", "plug-2"]
    browser.get(hub.url + "/#/devices?type=sensor&location=hall")
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "devices-range"), "1–13 of 13"))


def test_a_device_chart_gains_points_live_and_status_changes_live(browser, hub):
    device = "sensor-03"
    now = datetime.now(timezone.utc)
    hub.publish(device, "telemetry", {"device_id": device, "timestamp": now.isoformat(), "temperature": 20.0})
    eventually(lambda: hub.call("GET", f"/api/devices/{device}/metrics?start=-1h", user="vic"),
               what="the first reading in InfluxDB")
    logged_in(browser, hub, "vic")
    browser.get(f"{hub.url}/#/devices/{device}")
    chart = wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, '.chart[data-metric="temperature"]')))
    before = int(chart.get_attribute("data-points"))
    loaded = browser.execute_script("return performance.timeOrigin")
    wait(browser).until(EC.text_to_be_present_in_element_attribute((By.CSS_SELECTOR, ".live"), "class", "on"))
    for i in range(3):
        hub.publish(device, "telemetry", {"device_id": device, "timestamp": datetime.now(timezone.utc).isoformat(),
                                          "temperature": 21.0 + i})
        time.sleep(0.2)
    wait(browser, 10).until(lambda b: int(chart.get_attribute("data-points")) >= before + 3)
    assert browser.execute_script("return performance.timeOrigin") == loaded, "no reload"
    hub.publish(device, "status", {"v": 2, "device_id": device, "status": "offline", "ts": now.isoformat()})
    wait(browser, 10).until(EC.text_to_be_present_in_element((By.ID, "device-connection"), "offline"))


def test_an_alert_raised_over_mqtt_appears_and_is_acknowledged_from_the_page(browser, hub):
    device = "sensor-05"
    logged_in(browser, hub, "otto")
    browser.get(hub.url + "/#/alerts")
    wait(browser).until(EC.text_to_be_present_in_element_attribute((By.CSS_SELECTOR, ".live"), "class", "on"))
    # Messages 1 and 5: the collector raises a sequence_gap alert for the three missing.
    for seq in (1, 5):
        hub.publish(device, "telemetry", {"v": 2, "device_id": device, "ts": datetime.now(timezone.utc).isoformat(),
                                          "seq": seq, "msg_type": "telemetry",
                                          "measurements": [{"ts": datetime.now(timezone.utc).isoformat(),
                                                            "type": "temperature", "val": 20.5, "unit": "C"}]})
    row = wait(browser, 15).until(EC.presence_of_element_located(
        (By.XPATH, f"//tbody/tr[td/a[text()='{device}'] and td[text()='sequence_gap']]")))
    alert_id = int(row.get_attribute("data-alert"))
    row.find_element(By.CSS_SELECTOR, "button.ack-button").click()
    wait(browser).until(lambda b: "acknowledged" in b.find_element(By.CSS_SELECTOR, f'tr[data-alert="{alert_id}"]').text)
    alerts = hub.call("GET", f"/api/devices/{device}/alerts", user="vic")
    acked = next(a for a in alerts if a["id"] == alert_id)
    assert acked["acknowledged"] is True and acked["acknowledged_by"] == "otto"


def test_a_viewer_sees_no_actions_and_an_operator_s_actions_succeed(browser, hub):
    device = "plug-1"
    hub.call("POST", f"/api/devices/{device}/alerts",
             {"alert_type": "overheat", "severity": "warning", "message": "hot"}, user="otto")
    logged_in(browser, hub, "vic")
    browser.get(f"{hub.url}/#/devices/{device}")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#device-alerts tbody tr")))
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#device-configs p, #device-configs table")))
    for css in ["#command-form", "#config-form", "#relays", "button.ack-button", "#device-configs button"]:
        assert browser.find_elements(By.CSS_SELECTOR, css) == [], f"a viewer sees {css}"
    browser.find_element(By.ID, "logout").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "login-user")))

    logged_in(browser, hub, "otto")
    browser.get(f"{hub.url}/#/devices/{device}")
    wait(browser).until(EC.presence_of_element_located((By.ID, "command-form")))
    # Plugs are no Shelly: no relay switches; the command form sends.
    browser.find_element(By.ID, "cmd").send_keys("request_status")
    browser.find_element(By.CSS_SELECTOR, "#command-form button[type=submit]").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "command-result"), "Sent request_status"))
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//div[@id='device-commands']//td[text()='request_status']")))
    commands = hub.call("GET", f"/api/devices/{device}/commands", user="vic")
    assert commands[0]["cmd"] == "request_status" and commands[0]["requested_by"] == "otto"
    browser.find_element(By.ID, "cfg-key").send_keys("send_interval_s")
    browser.find_element(By.ID, "cfg-value").send_keys("30", Keys.ENTER)
    wait(browser).until(EC.presence_of_element_located((By.XPATH, "//div[@id='device-configs']//td[text()='send_interval_s']")))
    configs = hub.call("GET", f"/api/devices/{device}/configs", user="vic")
    assert {c["key"]: c["value"] for c in configs} == {"send_interval_s": 30}
    button = browser.find_element(By.CSS_SELECTOR, "#device-alerts button.ack-button")
    button.click()
    wait(browser).until(lambda b: "acknowledged" in text(b, "#device-alerts"))

    # A Shelly's relays have switches.
    hub.call("POST", "/api/devices", {"device_id": "shellyplus1pm-a8032ab1c2d3", "device_name": "Boiler relay",
                                      "device_type": "shelly", "metadata": {"channels": 1}}, user="ada")
    browser.get(f"{hub.url}/#/devices/shellyplus1pm-a8032ab1c2d3")
    relays = wait(browser).until(EC.presence_of_element_located((By.ID, "relays")))
    buttons = [b.text for b in relays.find_elements(By.TAG_NAME, "button")]
    assert buttons == ["Channel 0 on", "Channel 0 off"], buttons
    relays.find_element(By.XPATH, ".//button[text()='Channel 0 off']").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "command-result"), "Sent switch_set"))
    sent = hub.call("GET", "/api/devices/shellyplus1pm-a8032ab1c2d3/commands", user="vic")
    assert sent[0]["cmd"] == "switch_set" and sent[0]["params"] == {"channel": 0, "on": False}


def test_every_page_fits_a_phone_without_horizontal_scroll(browser, hub):
    # A phone's viewport (Chromium's windows are at least 500 px wide, so it is emulated).
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
    logged_in(browser, hub, "otto")
    assert browser.execute_script("return window.innerWidth") == 375
    for page, ready in [("#/", "#kpi-ingest"), ("#/devices", "#devices-range"),
                        ("#/devices/plug-0", "#device-raw"), ("#/alerts", "#alerts-body table"),
                        ("#/inventory", "#inventory-body p"), ("#/energy", "#energy-body table")]:
        browser.get(f"{hub.url}/{page}")
        wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, ready)))
        time.sleep(0.3)
        width = browser.execute_script("""return [document.documentElement.scrollWidth,
            document.documentElement.clientWidth,
            [...document.querySelectorAll('body *')]
              .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
              .map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)]""")
        assert width[0] <= width[1], f"{page} scrolls sideways: {width}"


def test_the_console_is_keyboard_reachable(browser, hub):
    logged_in(browser, hub, "vic")
    wait(browser).until(EC.presence_of_element_located((By.ID, "kpi-energy")))
    body = browser.find_element(By.TAG_NAME, "body")
    reached = []
    for _ in range(12):
        body.send_keys(Keys.TAB)
        reached.append(browser.execute_script("return document.activeElement.textContent.trim()"))
    for name in ["Overview", "Devices", "Alerts", "Network", "Energy", "Log out"]:
        assert name in reached, f"{name} is not reached by Tab: {reached}"


def test_the_energy_page_shows_todays_energy_by_device(browser, hub):
    logged_in(browser, hub, "vic")
    browser.get(hub.url + "/#/energy")
    row = wait(browser).until(EC.presence_of_element_located(
        (By.XPATH, "//div[@id='energy-body']//tr[td[text()='plug-0']]")))
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[2:5] == ["1.000", "0.12", "interval"], cells
    assert browser.find_elements(By.CSS_SELECTOR, "#energy-chart canvas")


def test_an_admin_s_system_page_lists_roles_and_tasks_and_runs_the_checks(browser, hub):
    logged_in(browser, hub, "vic")
    assert not browser.find_element(By.ID, "nav-system").is_displayed(), "a viewer sees System"
    browser.find_element(By.ID, "logout").click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "login-user")))

    logged_in(browser, hub, "ada")
    browser.find_element(By.ID, "nav-system").click()
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#system-info table")))
    info = hub.call("GET", "/api/system", user="ada")
    shown = text(browser, "#system-info")
    for role in info["roles"]:
        assert role in shown, (role, shown)
    tasks = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#system-info tbody td:first-child")]
    assert tasks == [t["name"] for t in info["tasks"]] and "api" in tasks, tasks
    browser.find_element(By.ID, "run-checks").click()
    row = wait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-check="database"]')))
    assert "ok" in row.text and "migrations applied" in row.text, row.text
    report = hub.call("GET", "/api/system/checks", user="ada")
    shown = [tr.get_attribute("data-check") for tr in browser.find_elements(By.CSS_SELECTOR, "#system-checks tbody tr")]
    assert shown == [c["name"] for c in report["checks"]], (shown, report)


def test_docs_list_every_route_and_load_nothing_from_elsewhere(browser, hub):
    browser.get(hub.url + "/docs")
    wait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    spec = hub.call("GET", "/api-docs/openapi.json")
    expected = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    shown = set()
    for block in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary"):
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.strip()
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path")
        shown.add((method, path))
    assert shown == expected
    assert browser.find_elements(By.CSS_SELECTOR, "button.authorize"), "Authorize for a bearer token"
    requested = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.add(message["params"]["request"]["url"])
    outside = [u for u in requested if not u.startswith(hub.url) and not u.startswith(("data:", "blob:"))]
    assert outside == [], outside
    assert any(u.endswith("/api-docs/openapi.json") for u in requested)
