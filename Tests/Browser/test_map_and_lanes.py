"""The registry in the dashboard, in a real browser (headless Chromium) against a real `speedflow serve`.

Runs after test_dashboard.py (it adds cameras to the shared fixture server). Checks: the map draws exactly one
marker per registered camera with a position, where the documented projection puts it (computed here from
latitude and longitude, within 1 px), coloured by the current speed against the limit, live; names and roads
where ids appear; the camera view's per-lane chart and compliance table equal `GET /kvfv/{id}/avg-speed?…&by=lane`
asked here; the health calendar equals `GET /kvfv/{id}/health`; report links; no console errors (conftest).
"""
from __future__ import annotations

import base64
import math
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import fixture as fx
from conftest import ROOT

LIVE_DEADLINE_S = 5.0
LANE_CAMERA = fx.LIMIT_CHANGE_CAMERA  # registered, 3 lanes, its limit changed two hours ago
UNREGISTERED = "KV00112"
COMPLIANCE_FIELDS = ["count", "avg_speed", "flow_rate", "speed_limit", "checked_count", "over_limit", "over_limit_share",
                     "over_limit_10", "over_limit_10_share", "over_limit_20", "over_limit_20_share", "pace_from", "pace_to",
                     "pace_share"]
# Cameras of this test, registered with positions just outside the fixture's area; limit 60 (None: no limit).
MAP_CAMERAS = {
    "MAP-OK": ("Shchyolkovo bypass", "A-103", 55.9230, 38.0100, 60, [50.0, 55.0, 58.0]),
    "MAP-WARN": ("A-103 km 12", "A-103", 55.8950, 37.9000, 60, [64.0, 66.0, 68.0]),
    "MAP-OVER": ("A-103 km 6", "A-103", 55.8600, 37.7950, 60, [80.0, 85.0, 90.0]),
    "MAP-NOLIMIT": ("Ring road km 98", "MKAD", 55.7000, 37.5200, None, [100.0]),
    "MAP-QUIET": ("Ring road km 102", "MKAD", 55.6800, 37.5800, 60, []),  # registered, never sent an event
}


def wait(driver, cond, timeout=10.0, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(cond, message)


def num(s):
    if s is None or s == "":
        return None
    return float(s)


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code


def speed_class(speed, limit) -> str:
    """The documented colour rule."""
    if speed is None or limit is None:
        return "none"
    if speed <= limit:
        return "ok"
    return "warn" if speed <= limit + 10 else "over"


def place_name(reg: dict | None) -> str:
    """The page's name for a camera (README, Dashboard): the name, with road and km when the name lacks the road."""
    if not reg:
        return ""
    road = ""
    if reg.get("road"):
        km = reg.get("km")
        road = reg["road"] + (f" km {round(km * 1000) / 1000:g}" if km is not None else "")
    if reg.get("name"):
        return f"{reg['name']} ({road})" if road and reg["road"] not in reg["name"] else reg["name"]
    return road


def project(cameras: list[dict], w: float, h: float, margin: float) -> dict[str, tuple[float, float]]:
    """The map's projection as documented in app.js (mapProjection), computed independently."""
    mean = sum(c["latitude"] for c in cameras) / len(cameras)
    cos = math.cos(math.radians(mean))
    us = [c["longitude"] * cos for c in cameras]
    vs = [c["latitude"] for c in cameras]
    ks = []
    if max(us) > min(us):
        ks.append((w - 2 * margin) / (max(us) - min(us)))
    if max(vs) > min(vs):
        ks.append((h - 2 * margin) / (max(vs) - min(vs)))
    k = min(ks) if ks else 1000
    uc, vc = (min(us) + max(us)) / 2, (min(vs) + max(vs)) / 2
    return {c["kvfv_id"]: (w / 2 + k * (c["longitude"] * cos - uc), h / 2 - k * (c["latitude"] - vc)) for c in cameras}


def shot(driver, output_dir: Path, name: str, below: str | None = None) -> Path:
    """The viewport, or with `below` the whole page width from the top of that element to the page's end."""
    path = output_dir / f"{name}.png"
    if below:
        top, height, width = driver.execute_script("""
            const r = document.getElementById(arguments[0]).getBoundingClientRect();
            return [r.top + window.scrollY - 12, document.documentElement.scrollHeight - (r.top + window.scrollY - 12),
                    document.documentElement.clientWidth];""", below)
        png = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": width, "height": height, "scale": 1}})
        path.write_bytes(base64.b64decode(png["data"]))
    else:
        assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    if os.environ.get("SPEEDFLOW_UPDATE_SCREENSHOTS") == "1":
        dest = ROOT / "docs" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / f"{name}.png")
    return path


def post_current_window(server: str, cams: dict[str, list[float]], tag: str) -> None:
    """Posts each camera's speeds into the current 5-minute window (leaving it at least 40 s to run)."""
    now = time.time()
    start = now // 300 * 300
    if start + 300 - now < 40:
        time.sleep(start + 300 - now + 1)
        now = time.time()
        start = now // 300 * 300
    if now - start < 2:
        time.sleep(2 - (now - start))
        now = time.time()
    events = []
    for cam, speeds in cams.items():
        for i, v in enumerate(speeds):
            t = start + (now - 1 - start) * (i + 1) / (len(speeds) + 1)
            events.append({"kvfv_id": cam, "timestamp": fx.rfc3339(t), "vehicle_speed": v, "lane": 1 + i % 2,
                           "event_id": f"{cam}-{tag}-{int(start)}-{i}"})
    if events:
        res = fx.post_events(server, events)
        assert res["accepted"] == len(events), res


@pytest.fixture(scope="module")
def map_cameras(server, fleet):
    for cam, (name, road, lat, lon, limit, _) in MAP_CAMERAS.items():
        e = {"name": name, "road": road, "latitude": lat, "longitude": lon, "lanes": 2, "time_zone": "UTC"}
        if limit is not None:
            e["speed_limits"] = [{"kmh": limit, "from": None}]
        fx.put_registry(server, cam, e)
    return list(MAP_CAMERAS)


def markers(driver) -> dict[str, dict]:
    return {m["id"]: m for m in driver.execute_script("""
        const svg = document.getElementById('map'), box = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
        return Array.from(svg.querySelectorAll('a.marker')).map(a => {
          const c = a.querySelector('circle'), r = c.getBoundingClientRect();
          return { id: a.dataset.kvfvId, cls: a.dataset.speedClass, speed: a.dataset.speed, limit: a.dataset.speedLimit,
                   cx: +c.getAttribute('cx'), cy: +c.getAttribute('cy'), fill: getComputedStyle(c).fill,
                   sx: (r.left + r.right) / 2 - box.left, sy: (r.top + r.bottom) / 2 - box.top,
                   scale: box.width / vb.width, label: a.getAttribute('aria-label') };
        });""")}


def css_colour(driver, var: str) -> str:
    """A CSS variable's colour as getComputedStyle writes it (rgb(…))."""
    return driver.execute_script("""
        const el = document.createElement('span'); el.style.color = `var(${arguments[0]})`; document.body.appendChild(el);
        const c = getComputedStyle(el).color; el.remove(); return c;""", var)


# ---------------------------------------------------------------------------------------------- map

def test_map_shows_every_registered_camera_at_its_position(driver, server, fleet, map_cameras, output_dir):
    post_current_window(server, {c: v[5] for c, v in MAP_CAMERAS.items()}, "map")
    registry = fx.get_json(server, "/registry")["cameras"]
    placed = [c for c in registry if c.get("latitude") is not None]
    assert len(placed) >= 4 + len(MAP_CAMERAS)
    assert any(c.get("latitude") is None for c in registry), "the fixture keeps one camera without a position"

    driver.get(server + "/#/map")
    wait(driver, lambda d: set(markers(d)) == {c["kvfv_id"] for c in placed}, timeout=10,
         message="the map does not show exactly the registered cameras with a position")
    svg = driver.find_element(By.ID, "map")
    vb = [float(v) for v in driver.execute_script("return arguments[0].getAttribute('viewBox')", svg).split()]
    margin = float(svg.get_attribute("data-margin"))
    expected = project(placed, vb[2], vb[3], margin)
    shown = markers(driver)
    assert len(shown) == len(placed)
    for cam, (x, y) in expected.items():
        m = shown[cam]
        assert abs(m["cx"] - x) <= 1 and abs(m["cy"] - y) <= 1, (cam, (m["cx"], m["cy"]), (x, y))
        # And on the screen: the drawn circle's centre, in CSS px from the map's corner.
        assert abs(m["sx"] - x * m["scale"]) <= 1 and abs(m["sy"] - y * m["scale"]) <= 1, (cam, m, (x, y))
        reg = next(c for c in placed if c["kvfv_id"] == cam)
        assert place_name(reg) in m["label"], (cam, m["label"])
    # The registered camera without a position is named under the map, not drawn.
    unplaced = driver.find_element(By.ID, "map-unplaced").text
    assert "KV00111" in unplaced and "M-7 km 26 eastbound" in unplaced, unplaced

    # Colours: the rule on the API's current speed and the limit in force, read next to the page (the current
    # window moves with the clock, so each camera must agree at least once within the deadline).
    colours = {k: css_colour(driver, f"--s-{k}") for k in ("ok", "warn", "over", "none")}
    pending, last = {c["kvfv_id"] for c in placed}, {}
    deadline = time.monotonic() + 3 * LIVE_DEADLINE_S
    while pending and time.monotonic() < deadline:
        rows = {r["kvfv_id"]: r for r in fx.get_json(server, "/kvfv?limit=1000")["cameras"]}
        limits = {c["kvfv_id"]: c.get("speed_limit") for c in fx.get_json(server, "/registry")["cameras"]}
        shown = markers(driver)
        for cam in list(pending):
            speed = rows[cam]["current_avg_speed"] if cam in rows else None
            want = speed_class(speed, limits[cam])
            m = shown[cam]
            if m["cls"] == want and m["fill"] == colours[want] and num(m["speed"]) == speed and num(m["limit"]) == limits[cam]:
                pending.discard(cam)
            else:
                last[cam] = (m, speed, limits[cam], want)
        if pending:
            time.sleep(0.25)
    assert not pending, "map colours differ from the rule on GET /kvfv: " + "; ".join(f"{c}: {last[c]}" for c in sorted(pending))
    shown = markers(driver)
    assert [shown[c]["cls"] for c in MAP_CAMERAS] == ["ok", "warn", "over", "none", "none"], \
        {c: shown[c]["cls"] for c in MAP_CAMERAS}
    legend = {e.get_attribute("data-speed-class"): e.text for e in driver.find_elements(By.CSS_SELECTOR, "#map-legend .key-speed")}
    assert set(legend) == {"ok", "warn", "over", "none"}, legend

    # Hover: the tooltip names the camera and its figures.
    ActionChains(driver).move_to_element(driver.find_element(By.CSS_SELECTOR, "#map a.marker[data-kvfv-id='MAP-OVER'] circle")).perform()
    tip = driver.find_element(By.ID, "map-tooltip")
    wait(driver, lambda d: tip.is_displayed() and tip.get_attribute("data-kvfv-id") == "MAP-OVER")
    assert "A-103 km 6" in tip.text and "85.0 km/h" in tip.text and "60 km/h" in tip.text, tip.text
    shot(driver, output_dir, "map")

    # Live: faster vehicles at MAP-OK turn its marker red, pushed by the fleet stream.
    wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.mapStream") == "up", timeout=15,
         message="the map's stream did not come up")
    post_current_window(server, {"MAP-OK": [120.0] * 6}, "faster")
    posted = time.monotonic()
    wait(driver, lambda d: markers(d)["MAP-OK"]["cls"] == "over", timeout=LIVE_DEADLINE_S,
         message="MAP-OK did not turn red after faster vehicles")
    print(f"map marker recoloured {time.monotonic() - posted:.2f}s after the POST")

    # Click: the camera view, titled with the camera's name and id.
    driver.find_element(By.CSS_SELECTOR, "#map a.marker[data-kvfv-id='MAP-OVER'] circle").click()
    wait(driver, lambda d: d.find_element(By.ID, "view-camera").is_displayed()
         and d.find_element(By.ID, "camera-title").text == "A-103 km 6 · MAP-OVER", message="marker did not open the camera")
    assert driver.title.startswith("A-103 km 6 · MAP-OVER")


def test_names_where_ids_appear(driver, server, fleet):
    regs = {c["kvfv_id"]: c for c in fx.get_json(server, "/registry")["cameras"]}
    driver.get(server + "/#/")
    driver.execute_script("arguments[0].value = 'KV001'; arguments[0].dispatchEvent(new Event('input'));",
                          driver.find_element(By.ID, "fleet-filter"))
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#fleet-body tr[data-id]")) == len(fleet.cameras))
    rows = driver.execute_script("""
        return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => ({
          id: tr.dataset.id, cell: tr.querySelector('.cam-cell').textContent, limit: tr.dataset.speedLimit }));""")
    for r in rows:
        reg = regs.get(r["id"])
        assert r["cell"] == (f"{place_name(reg)} · {r['id']}" if reg else r["id"]), r
        assert num(r["limit"]) == (reg.get("speed_limit") if reg else None), r
    # The camera picker offers names: typing part of a name suggests the camera.
    driver.get(server + f"/#/camera/{LANE_CAMERA}?p=6h&i=5m&tz=UTC")
    box = driver.find_element(By.ID, "camera-id")
    driver.execute_script("arguments[0].value = 'Durykino'; arguments[0].dispatchEvent(new Event('input'));", box)
    wait(driver, lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('#camera-list option')).map(o => [o.value, o.label])")
         == [[LANE_CAMERA, "M-11 Durykino junction"]], message="the picker does not find the camera by its name")
    driver.execute_script(f"arguments[0].value = '{LANE_CAMERA}';", box)
    # An unregistered camera: its id, and a note instead of the place.
    driver.get(server + f"/#/camera/{UNREGISTERED}?p=6h&i=5m&tz=UTC")
    wait(driver, lambda d: d.find_element(By.ID, "camera-title").text == UNREGISTERED
         and "Not in the camera registry" in d.find_element(By.ID, "camera-place").text)
    wait(driver, lambda d: d.find_element(By.ID, "compliance-table").get_attribute("data-start")
         and d.find_elements(By.CSS_SELECTOR, "#compliance-table tr[data-lane]"),
         message="the compliance table of an unregistered camera")
    limits = driver.execute_script(
        "return Array.from(document.querySelectorAll('#compliance-table tr[data-lane]')).map(tr => tr.dataset.speedLimit)")
    assert limits and all(v == "" for v in limits), limits


# ---------------------------------------------------------------------------------------------- camera view

def dom_compliance(driver) -> list[dict]:
    return driver.execute_script("""
        const t = document.getElementById('compliance-table');
        return Array.from(t.querySelectorAll('tr[data-lane]')).map(tr => Object.fromEntries([['start', t.dataset.start]].concat(
          Array.from(tr.attributes).filter(a => a.name.startsWith('data-')).map(a => [a.name.slice(5), a.value]))));""")


def attr(k: str) -> str:
    """An API field's data-* attribute name on the compliance rows (without data-)."""
    return k.replace("_", "-")


def period_figures(ws: list[dict]) -> dict:
    """The period row, from the API's windows: sums, the count-weighted mean, vehicles per hour of the period."""
    f = {k: None for k in COMPLIANCE_FIELDS}
    count = sum(w["count"] for w in ws)
    f["count"] = count
    f["avg_speed"] = sum(w["avg_speed"] * w["count"] for w in ws if w["count"]) / count if count else None
    hours = (fx_time(ws[-1]["end"]) - fx_time(ws[0]["start"])) / 3600
    f["flow_rate"] = count / hours
    checked = [w["checked_count"] for w in ws if w["checked_count"] is not None]
    f["checked_count"] = sum(checked) if checked else None
    limits = {w["speed_limit"] for w in ws if w["checked_count"] and w["speed_limit"] is not None}
    f["speed_limit"] = limits.pop() if len(limits) == 1 else ("varies" if limits else None)
    for k in ("over_limit", "over_limit_10", "over_limit_20"):
        vals = [w[k] for w in ws if w["checked_count"] is not None and w[k] is not None]
        f[k] = sum(vals) if vals else None
        f[k + "_share"] = f[k] / f["checked_count"] if f[k] is not None and f["checked_count"] else None
    return f


def fx_time(s: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def compare_compliance(dom: list[dict], api: dict) -> list:
    start = dom[0]["start"]
    problems = []
    groups = {"all": api["windows"], **{str(g["lane"]): g["windows"] for g in api["lanes"]}}
    assert [r["lane"] for r in dom if r["scope"] == "window"] == list(groups), ([r["lane"] for r in dom], list(groups))
    for r in dom:
        ws = groups[r["lane"]]
        if r["scope"] == "window":
            want = next(w for w in ws if w["start"] == start)
            for k in COMPLIANCE_FIELDS:
                if num(r[attr(k)]) != want[k]:
                    problems.append((r["scope"], r["lane"], start, k, r[attr(k)], want[k]))
        else:
            want = period_figures(ws)
            for k in COMPLIANCE_FIELDS:
                got, exp = r[attr(k)], want[k]
                if exp == "varies":
                    ok = got == "varies"
                elif exp is None or isinstance(exp, int):
                    ok = num(got) == exp
                else:
                    ok = got != "" and math.isclose(float(got), exp, rel_tol=1e-12, abs_tol=1e-12)
                if not ok:
                    problems.append((r["scope"], r["lane"], k, got, exp))
    return problems


def open_lanes(driver, server, cam=LANE_CAMERA):
    driver.get(f"{server}/#/camera/{cam}?p=6h&i=5m&tz=UTC")
    wait(driver, lambda d: d.find_element(By.ID, "chart").get_attribute("data-kvfv-id") == cam
         and d.find_element(By.ID, "compliance-table").get_attribute("data-start")
         and d.find_elements(By.CSS_SELECTOR, "#lane-chart .lane-pt"), message="lane chart and compliance not drawn")


def lanes_answer(server, driver, cam=LANE_CAMERA):
    chart = driver.find_element(By.ID, "lane-chart")
    q = urllib.parse.urlencode({"from": chart.get_attribute("data-from"), "to": chart.get_attribute("data-to"),
                                "interval": "5m", "by": "lane"})
    return fx.get_json(server, f"/kvfv/{cam}/avg-speed?{q}")


def test_camera_lanes_and_compliance_equal_the_api(driver, server, fleet, output_dir):
    reg = fx.get_json(server, f"/kvfv/{LANE_CAMERA}/registry")
    open_lanes(driver, server)
    assert driver.find_element(By.ID, "camera-title").text == f"{reg['name']} · {LANE_CAMERA}"
    place = driver.find_element(By.ID, "camera-place").text
    assert "Road M-11" in place and "km 33.8" in place and "limit 90 km/h" in place and "3 lanes" in place, place

    api = lanes_answer(server, driver)
    assert [g["lane"] for g in api["lanes"]] == [1, 2, 3, 0]
    # The per-lane chart: every lane's non-empty windows, exactly the API's numbers.
    pts = driver.execute_script("""
        return Array.from(document.querySelectorAll('#lane-chart .lane-pt')).map(c => [+c.dataset.lane, c.dataset.start,
          +c.dataset.count, c.dataset.avgSpeed]);""")
    want = [[g["lane"], w["start"], w["count"], w["avg_speed"]] for g in api["lanes"] for w in g["windows"] if w["count"] > 0]
    assert [[p[0], p[1], p[2], float(p[3])] for p in pts] == want
    assert len({p[0] for p in pts}) == 3, "the fixture's vehicles use three lanes"
    # The limit changed within the period: the lane chart draws it, the period row says "varies".
    assert {w["speed_limit"] for w in api["windows"]} >= {110, 90}
    assert driver.find_element(By.CSS_SELECTOR, "#lane-chart path.limit-line").get_attribute("d").count("M") >= 2

    # The compliance table (latest window with vehicles, and the period) equals the API's answer.
    dom = dom_compliance(driver)
    latest = [w for w in api["windows"] if w["count"] > 0][-1]
    if dom[0]["start"] != latest["start"]:  # a 5-minute boundary passed between the page's read and ours
        api = lanes_answer(server, driver)
    problems = compare_compliance(dom, api)
    assert not problems, f"compliance differs from the API: {problems[:10]}"
    assert any(w["over_limit"] for w in api["windows"] if w["over_limit"] is not None), "some vehicles over the limit"

    # Hovering a window of the lane chart selects it: the table shows that window, equal to the API.
    target = next(w for w in api["windows"][12:] if w["count"] > 0 and w["checked_count"])
    ActionChains(driver).move_to_element(driver.find_element(
        By.CSS_SELECTOR, f"#lane-chart rect.hit[data-start='{target['start']}']")).perform()
    wait(driver, lambda d: d.find_element(By.ID, "compliance-table").get_attribute("data-start") == target["start"])
    problems = compare_compliance(dom_compliance(driver), api)
    assert not problems, f"compliance of the hovered window differs from the API: {problems[:10]}"
    text = driver.find_element(By.CSS_SELECTOR, "#compliance-table tr[data-scope=window][data-lane=all]").text
    assert f"{target['over_limit_share'] * 100:.1f} %" in text and f"{target['speed_limit']} km/h" in text, text

    # Report links: the hovered window's day (in the camera's time zone) and its month, as CSV.
    day = driver.execute_script(
        "return new Intl.DateTimeFormat('en-CA', {timeZone: 'Europe/Moscow', year: 'numeric', month: '2-digit', day: '2-digit'})"
        ".format(new Date(arguments[0]))", target["start"])
    daily = driver.find_element(By.ID, "report-daily").get_attribute("href")
    monthly = driver.find_element(By.ID, "report-monthly").get_attribute("href")
    assert daily == f"{server}/reports/daily?date={day}&format=csv", daily
    assert monthly == f"{server}/reports/monthly?month={day[:7]}&format=csv", monthly
    lanes_csv = driver.find_element(By.ID, "lanes-csv").get_attribute("href")
    assert "by=lane" in lanes_csv and "format=csv" in lanes_csv and status_of(lanes_csv) == 200

    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#health-table, #health-error"), timeout=15)
    shot(driver, output_dir, "camera-lanes", below="lanes-panel")
    if status_of(daily) == 404:
        pytest.skip("GET /reports/daily is not on this server yet: links checked, not followed")  # before main has it
    assert status_of(daily) == 200 and status_of(monthly) == 200


def test_health_calendar_matches_the_api(driver, server, fleet):
    open_lanes(driver, server)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#health-table, #health-error"), timeout=15,
         message="the health calendar did not load")
    if driver.find_elements(By.ID, "health-error"):
        driver.get_log("browser")  # the 404 of the missing endpoint is expected here, not a page error
        pytest.skip("GET /kvfv/{id}/health is not on this server yet: " + driver.find_element(By.ID, "health-error").text)
    cells = driver.execute_script("""
        return Array.from(document.querySelectorAll('#health-table a.hc-cell')).map(a => ({date: a.dataset.date,
          status: a.dataset.status, reasons: a.dataset.reasons, count: a.dataset.count, partial: a.dataset.partial,
          href: a.getAttribute('href'), label: a.getAttribute('aria-label')}));""")
    assert len(cells) == 35, len(cells)
    api = fx.get_json(server, f"/kvfv/{LANE_CAMERA}/health?" + urllib.parse.urlencode(
        {"from": cells[0]["date"], "to": fx_day_after(cells[-1]["date"]), "tz": "Europe/Moscow"}))
    assert [c["date"] for c in cells] == [d["date"] for d in api["days"]]
    for c, d in zip(cells, api["days"]):
        assert c["status"] == d["status"] and c["reasons"] == ",".join(d["reasons"]) and int(c["count"]) == d["count"] \
            and c["partial"] == ("true" if d["partial"] else "false"), (c, d)
        assert c["href"] == f"/reports/daily?date={d['date']}&format=csv"
    assert api["days"][-1]["partial"] and api["days"][-1]["count"] > 0, api["days"][-1]


def fx_day_after(date: str) -> str:
    from datetime import date as d, timedelta
    return (d.fromisoformat(date) + timedelta(days=1)).isoformat()
