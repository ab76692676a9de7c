"""The dashboard in a real browser (headless Chromium) against a real `speedflow serve`.

Checks: the page renders; the fleet view lists the cameras with the API's numbers and today's health; sorting and
filtering work; the camera chart shows the API's windows (exact values, gaps for empty windows,
the tooltip and the CSV link); a late event posted during the test appears in the chart within 5 s, and is
pushed by the camera's event stream within 1 s without any polling (the revision marked);
the ingest panel shows the server's counters; screenshots go to test-output/; no console errors.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

import fixture as fx
from conftest import ROOT

HEALTH_LABELS = {"live": "Live", "silent": "Silent", "lagging": "Lagging", "clock_skew": "Clock skew", "stuck": "Stuck"}
# A day's status and reasons as the page names them (the fleet's "Today" column and the health calendar).
DAY_LABELS = {"ok": "OK", "down": "Down", "insufficient": "Low volume", "stuck": "Stuck", "clock_skew": "Clock skew",
              "high_rejection": "High rejection", "backlog": "Backlog", "unknown_lane": "Unknown lane"}
CAMERA = fx.GAP_CAMERA  # has a gap, and plenty of windows to revise
LIVE_DEADLINE_S = 5.0


def parse_time(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def num(s: str | None):
    """A data-* attribute back to the API's value: '' is null, else the exact number."""
    if s is None or s == "":
        return None
    return float(s)


def fmt1(x: float) -> str:
    """One decimal the way the page's Number.toFixed(1) does it (ties away from zero on the exact binary value)."""
    return str(Decimal(x).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def wait(driver, cond, timeout=10.0, message=""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(cond, message)


def fetch(url: str):
    with urllib.request.urlopen(url, timeout=30) as res:
        return res.read().decode()


def dom_windows(driver) -> list[dict]:
    """Every window the chart drew, straight from the DOM (one script call: consistent snapshot)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#chart rect.hit')).map(r => ({
          start: r.dataset.start, end: r.dataset.end, count: r.dataset.count,
          avg: r.dataset.avgSpeed, hm: r.dataset.harmonicMeanSpeed,
          p15: r.dataset.p15Speed, p50: r.dataset.p50Speed, p85: r.dataset.p85Speed,
          late_count: r.dataset.lateCount, revised_at: r.dataset.revisedAt }));""")


def shot(driver, output_dir: Path, name: str, keep_focus: bool = False) -> Path:
    path = output_dir / f"{name}.png"
    if not keep_focus:
        driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
    assert driver.save_screenshot(str(path)), f"screenshot {path} failed"
    assert path.stat().st_size > 10_000, f"{path} looks empty"
    if os.environ.get("SPEEDFLOW_UPDATE_SCREENSHOTS") == "1" and name in ("fleet", "camera"):
        dest = ROOT / "docs" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / f"{name}.png")
    return path


# ---------------------------------------------------------------------------------------------- fleet

def test_page_renders(driver, server, fleet):
    driver.get(server + "/")
    wait(driver, lambda d: d.find_element(By.ID, "view-fleet").is_displayed(), message="fleet view not shown")
    assert "Speedflow" in driver.title
    # Assets came from the binary, not from anywhere else.
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server) for u in urls), urls
    wait(driver, lambda d: "Live" in d.find_element(By.ID, "status-text").text, message="status never went live")
    assert not driver.find_element(By.ID, "error-banner").is_displayed()


def fleet_rows(driver) -> dict[str, dict]:
    return {r["id"]: r for r in driver.execute_script("""
        return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => ({
          id: tr.dataset.id, health: tr.dataset.health, badge: tr.querySelector('.badge').textContent,
          events_last_hour: tr.dataset.eventsLastHour, current_avg_speed: tr.dataset.currentAvgSpeed,
          current_count: tr.dataset.currentCount, events_today: tr.dataset.eventsToday,
          today_status: tr.dataset.todayStatus, today_reasons: tr.dataset.todayReasons,
          today_tags: Array.from(tr.querySelectorAll('[data-col=today] .day-tag')).map(t => t.textContent),
          elh_text: tr.querySelector('[data-col=events_last_hour]').textContent,
          speed_text: tr.querySelector('[data-col=current_avg_speed]').textContent }));""")}


def test_fleet_lists_cameras_with_the_apis_numbers(driver, server, fleet, output_dir):
    driver.get(server + "/#/")
    wait(driver, lambda d: set(fleet.cameras) <= set(fleet_rows(d)), message="not every camera is listed")

    # The page polls every 2 s while "events in the last hour" and "current 5 minutes" move on with
    # the clock, so a snapshot can be one poll behind: every (camera, field) must agree with the API
    # read right next to it at least once within the deadline.
    pending = {(cam, f) for cam in fleet.cameras for f in ("health", "events_last_hour", "current", "events_today", "today")}
    last = {}
    deadline = time.monotonic() + 3 * LIVE_DEADLINE_S
    while pending and time.monotonic() < deadline:
        api = {c["kvfv_id"]: c for c in fx.get_json(server, "/kvfv")["cameras"]}
        rows = fleet_rows(driver)
        for cam, f in list(pending):
            a, r = api[cam], rows[cam]
            if f == "health":
                ok = r["health"] == a["health"] and r["badge"] == HEALTH_LABELS[a["health"]]
            elif f == "events_last_hour":
                ok = num(r["events_last_hour"]) == a["events_last_hour"] and r["elh_text"] == f"{a['events_last_hour']:,}"
            elif f == "current":
                ok = num(r["current_avg_speed"]) == a["current_avg_speed"] and num(r["current_count"]) == a["current_count"] \
                    and (a["current_avg_speed"] is None or fmt1(a["current_avg_speed"]) in r["speed_text"])
            elif f == "today":
                # Today's health: the status and every reason, each shown by name (OK when there is none).
                t = a["today"]
                ok = r["today_status"] == t["status"] and r["today_reasons"] == ",".join(t["reasons"]) \
                    and r["today_tags"] == [DAY_LABELS[x] for x in (t["reasons"] or [t["status"]])]
            else:
                ok = num(r["events_today"]) == a["events_today"]
            if ok:
                pending.discard((cam, f))
            else:
                last[(cam, f)] = (r, a)
        if pending:
            time.sleep(0.25)
    assert not pending, "fleet table differs from GET /kvfv: " + "; ".join(
        f"{k}: page {last[k][0]} api {last[k][1]}" for k in sorted(pending))
    # The fixture's shaped cameras give the table something to show besides "live".
    healths = {r["health"] for r in fleet_rows(driver).values()}
    assert len(healths) >= 2, healths
    todays = {r["today_status"] for r in fleet_rows(driver).values()}
    assert len(todays) >= 2, todays
    shot(driver, output_dir, "fleet")


def test_fleet_sort_and_filter(driver, server, fleet):
    driver.get(server + "/#/")
    wait(driver, lambda d: len(fleet_rows(d)) >= len(fleet.cameras))
    header = driver.find_element(By.CSS_SELECTOR, "#fleet-head button[data-key=events_last_hour]")
    header.click()  # numbers sort descending first
    th = driver.find_element(By.CSS_SELECTOR, "#fleet-head th[data-key=events_last_hour]")
    wait(driver, lambda d: th.get_attribute("aria-sort") == "descending")
    order = driver.execute_script(
        "return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => +tr.dataset.eventsLastHour)")
    assert order == sorted(order, reverse=True), order
    header.click()
    wait(driver, lambda d: th.get_attribute("aria-sort") == "ascending")
    order = driver.execute_script(
        "return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => +tr.dataset.eventsLastHour)")
    assert order == sorted(order), order

    # Keyboard: "/" focuses the filter; typing narrows the table to ids with that prefix (asked of the server).
    driver.find_element(By.TAG_NAME, "body").send_keys("/")
    box = driver.switch_to.active_element
    assert box.get_attribute("id") == "fleet-filter"
    box.send_keys("KV00105")
    wait(driver, lambda d: list(fleet_rows(d)) == ["KV00105"], message="filter did not narrow to KV00105")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    wait(driver, lambda d: len(fleet_rows(d)) == len(fleet.cameras))
    # Restore the default order for the screenshot-taking tests that follow.
    driver.find_element(By.CSS_SELECTOR, "#fleet-head button[data-key=kvfv_id]").click()
    wait(driver, lambda d: list(fleet_rows(d))[:2] == fleet.cameras[:2])

    # Keyboard: arrow keys move between rows, Enter opens the camera.
    driver.find_element(By.CSS_SELECTOR, "#fleet-body .cam-link").send_keys(Keys.ARROW_DOWN)
    wait(driver, lambda d: d.switch_to.active_element.text == fleet.cameras[1], message="ArrowDown did not move focus")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait(driver, lambda d: d.find_element(By.ID, "view-camera").is_displayed()
         and d.find_element(By.ID, "chart").get_attribute("data-kvfv-id") == fleet.cameras[1],
         message="Enter did not open the camera view")


# ---------------------------------------------------------------------------------------------- camera

def open_camera(driver, server, cam=CAMERA):
    driver.get(f"{server}/#/camera/{cam}?p=6h&i=5m&tz=UTC")
    wait(driver, lambda d: d.find_element(By.ID, "chart").get_attribute("data-kvfv-id") == cam
         and len(d.find_elements(By.CSS_SELECTOR, "#chart rect.hit")) > 0, message="chart not drawn")


def api_windows(server, cam, frm, to, interval="5m"):
    q = urllib.parse.urlencode({"from": frm, "to": to, "interval": interval})
    return fx.get_json(server, f"/kvfv/{cam}/avg-speed?{q}")


def compare_windows(dom, api) -> list:
    """Per window (matched by start): the DOM's numbers must be the API's, exactly."""
    by_start = {w["start"]: w for w in api["windows"]}
    problems = []
    for w in dom:
        a = by_start.get(w["start"])
        if a is None:
            # The page may have slid one window ahead of our read at a 5-minute boundary.
            continue
        pairs = [("count", "count"), ("avg", "avg_speed"), ("hm", "harmonic_mean_speed"),
                 ("p15", "p15_speed"), ("p50", "p50_speed"), ("p85", "p85_speed")]
        for d_key, a_key in pairs:
            if num(w[d_key]) != a[a_key]:
                problems.append((w["start"], a_key, w[d_key], a[a_key]))
    return problems


def test_camera_chart_shows_the_apis_numbers(driver, server, fleet):
    open_camera(driver, server)
    chart = driver.find_element(By.ID, "chart")
    frm, to = chart.get_attribute("data-from"), chart.get_attribute("data-to")
    assert parse_time(to) - parse_time(frm) >= 6 * 3600
    api = api_windows(server, CAMERA, frm, to)
    dom = dom_windows(driver)
    assert len(dom) == len(api["windows"]) >= 72
    assert [w["start"] for w in dom] == [w["start"] for w in api["windows"]]
    problems = compare_windows(dom, api)
    assert not problems, f"chart differs from the API: {problems[:10]}"

    # Empty windows are gaps, not zeros: the average line breaks once per run of empty windows.
    counts = [w["count"] for w in api["windows"]]
    assert 0 in counts[6:-3], "the fixture's 30-minute hole should be an empty window"
    runs = sum(1 for i, c in enumerate(counts) if c > 0 and (i == 0 or counts[i - 1] == 0))
    avg_d = driver.find_element(By.CSS_SELECTOR, "#chart path.avg-line").get_attribute("d")
    assert avg_d.count("M") == runs, (avg_d.count("M"), runs)
    assert driver.find_element(By.CSS_SELECTOR, "#chart path.gap-fill").get_attribute("d")

    # The "latest window" card shows the API's last non-empty window.
    latest = [w for w in api["windows"] if w["count"] > 0][-1]
    card = driver.find_element(By.ID, "card-latest")
    wait(driver, lambda d: d.find_element(By.ID, "card-latest").get_attribute("data-start") is not None)
    if card.get_attribute("data-start") == latest["start"]:
        assert num(card.get_attribute("data-avg-speed")) == latest["avg_speed"]
        assert fmt1(latest["avg_speed"]) in card.find_element(By.CSS_SELECTOR, ".value").text

    # Hover shows that window's numbers.
    target = next(w for w in api["windows"][10:] if w["count"] > 0)
    rect = driver.find_element(By.CSS_SELECTOR, f"#chart rect.hit[data-start='{target['start']}']")
    ActionChains(driver).move_to_element(rect).perform()
    tip = driver.find_element(By.ID, "chart-tooltip")
    wait(driver, lambda d: tip.is_displayed() and tip.get_attribute("data-start") == target["start"],
         message="tooltip did not show the hovered window")
    text = tip.text
    assert f"{fmt1(target['avg_speed'])} km/h" in text, text
    assert f"{fmt1(target['harmonic_mean_speed'])} km/h" in text, text
    assert f"{target['p15_speed']} / {target['p50_speed']} / {target['p85_speed']}" in text, text
    assert str(target["count"]) in text, text

    # Keyboard: focus the chart, step with the arrow keys.
    chart.send_keys(Keys.HOME)
    wait(driver, lambda d: tip.get_attribute("data-start") == api["windows"][0]["start"])
    chart.send_keys(Keys.ARROW_RIGHT)
    wait(driver, lambda d: tip.get_attribute("data-start") == api["windows"][1]["start"])

    # The CSV link is exactly the shown query with format=csv, and it gives the same windows.
    href, shown_from, shown_to = driver.execute_script(
        "const c = document.getElementById('chart');"
        "return [document.getElementById('csv-link').href, c.dataset.from, c.dataset.to];")
    parsed = urllib.parse.urlparse(href)
    q = dict(urllib.parse.parse_qsl(parsed.query))
    assert parsed.path == f"/kvfv/{CAMERA}/avg-speed" and q["format"] == "csv" and q["interval"] == "5m", href
    assert parse_time(q["from"]) == parse_time(shown_from) and parse_time(q["to"]) == parse_time(shown_to), \
        (href, shown_from, shown_to)
    rows = list(csv.DictReader(io.StringIO(fetch(href))))
    api_csv = api_windows(server, CAMERA, q["from"], q["to"])
    assert len(rows) == len(api_csv["windows"])
    for row, w in zip(rows, api_csv["windows"]):
        assert int(row["count"]) == w["count"]
        if w["count"]:
            assert float(row["avg_speed"]) == pytest.approx(w["avg_speed"], rel=1e-12, abs=1e-9)


def test_late_event_appears_in_the_chart_within_5s(driver, server, fleet, output_dir):
    open_camera(driver, server)
    dom = dom_windows(driver)
    # A window about two hours back: long shown, and revised now by an event that arrives late.
    now = time.time()
    target = min((w for w in dom if w["count"] not in ("", "0")),
                 key=lambda w: abs(parse_time(w["start"]) - (now - 2 * 3600)))
    start = parse_time(target["start"])
    before = api_windows(server, CAMERA, target["start"], target["end"])["windows"][0]
    assert before["count"] == int(target["count"])

    late = {"kvfv_id": CAMERA, "timestamp": fx.rfc3339(start + 123.456), "vehicle_speed": 143.7,
            "plate_number": "E777KX199", "event_id": f"{CAMERA}-late-{int(now * 1000)}", "lane": 1}
    res = fx.post_events(server, [late])
    posted = time.monotonic()
    assert res["accepted"] == 1, res
    after = api_windows(server, CAMERA, target["start"], target["end"])["windows"][0]
    assert after["count"] == before["count"] + 1, (before, after)  # read-your-writes
    assert after["max_speed"] >= 143.7

    sel = f"#chart rect.hit[data-start='{target['start']}']"

    def revised(d):
        # One script call: the chart redraws every poll, so an element found in one call may be gone in the next.
        shown = next((w for w in dom_windows(d) if w["start"] == target["start"]), None)
        return shown is not None and shown["count"] == str(after["count"]) and num(shown["avg"]) == after["avg_speed"]

    deadline = posted + LIVE_DEADLINE_S
    while not revised(driver):
        assert time.monotonic() < deadline, \
            f"late event not shown within {LIVE_DEADLINE_S}s: window {target['start']} still {dom_windows(driver)}"
        time.sleep(0.1)
    elapsed = time.monotonic() - posted
    print(f"late event visible in the chart {elapsed:.2f}s after its POST was acknowledged")

    # Camera screenshot, with the revised window's tooltip open.
    def tooltip_shows_revision(d):
        # Hover afresh on every try: a redraw between finding the window and hovering it makes the element stale.
        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, sel)).perform()
        tip = d.find_element(By.ID, "chart-tooltip")
        return tip.is_displayed() and f"{fmt1(after['avg_speed'])} km/h" in tip.text
    wait(driver, tooltip_shows_revision, message="the revised window's tooltip")
    shot(driver, output_dir, "camera")


def resource_requests(driver, part: str) -> list[str]:
    """URLs of the page's requests (Resource Timing) containing `part`, since the last clear."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes(arguments[0]));", part)


def test_late_event_is_pushed_to_the_chart_within_1s_without_polling(driver, server, fleet, output_dir):
    open_camera(driver, server)
    wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.cameraStream") == "up",
         timeout=15, message="the camera stream did not come up")
    driver.execute_script("performance.setResourceTimingBufferSize(100000); performance.clearResourceTimings();")
    dom = dom_windows(driver)
    now = time.time()
    target = min((w for w in dom if w["count"] not in ("", "0")),
                 key=lambda w: abs(parse_time(w["start"]) - (now - 3 * 3600)))
    count = int(target["count"])
    late_before = int(target["late_count"] or 0)
    late = {"kvfv_id": CAMERA, "timestamp": fx.rfc3339(parse_time(target["start"]) + 61.5), "vehicle_speed": 99.9,
            "plate_number": "P111PP77", "event_id": f"{CAMERA}-pushed-{int(now * 1000)}", "lane": 2}
    assert fx.post_events(server, [late])["accepted"] == 1
    posted = time.monotonic()

    def revised(d):
        shown = next((w for w in dom_windows(d) if w["start"] == target["start"]), None)
        return shown is not None and shown["count"] == str(count + 1)

    while not revised(driver):
        assert time.monotonic() < posted + 1.0, f"the late event was not pushed within 1 s: {target['start']}"
        time.sleep(0.02)
    print(f"late event pushed to the chart {time.monotonic() - posted:.2f}s after its POST was acknowledged")
    # The revision is marked: on the window, and in the line under the chart ("revised 14:03, +1 late").
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"#chart rect.hit[data-start='{target['start']}']")
         .get_attribute("data-revised") == "true", message="the revised window is not marked")
    # The window's late count is the server's (the fixture's hours-old events were late too): one more than before.
    note = driver.find_element(By.ID, "camera-revisions")
    wait(driver, lambda d: f"+{late_before + 1} late" in note.text, message=f"no revision note: {note.text!r}")
    shown = next(w for w in dom_windows(driver) if w["start"] == target["start"])
    assert int(shown["late_count"]) == late_before + 1 and shown["revised_at"], shown

    # Two more polling periods pass (the status shows each poll's time): the stream, not polling, fed the chart.
    seen = set()

    def ticks(d):
        seen.add(d.find_element(By.ID, "status-text").text)
        return len(seen) >= 3
    wait(driver, ticks, timeout=15, message="the page stopped ticking")
    # The per-lane panel asks `by=lane` again only after a pushed change (at most every 5 s): the one late event is
    # one such change, a 5-minute boundary passing may be another; never a request per poll.
    avg = resource_requests(driver, "/avg-speed?")
    assert [u for u in avg if "by=lane" not in u] == [], "the chart polled while its stream was up"
    assert len(avg) <= 2, f"the lane panel polled while the stream was up: {avg}"
    assert resource_requests(driver, "/kvfv?") == [], "the camera row polled while its stream was up"


# ---------------------------------------------------------------------------------------------- ingest

def test_ingest_panel_shows_the_servers_counters(driver, server, fleet, output_dir):
    driver.get(server + "/#/ingest")
    wait(driver, lambda d: d.find_element(By.ID, "view-ingest").is_displayed())

    def agrees(d):
        stats = fx.get_json(server, "/stats")
        acc = d.find_elements(By.CSS_SELECTOR, "#ingest-accepted .sub")
        return bool(acc) and acc[0].text.startswith(f"{stats['accepted_total']:,} total") and stats

    stats = wait(driver, agrees, timeout=LIVE_DEADLINE_S, message="accepted total differs from GET /stats")
    assert stats["duplicates_total"] >= fleet.duplicates
    reasons = {e.get_attribute("data-reason"): int(e.get_attribute("data-count"))
               for e in driver.find_elements(By.CSS_SELECTOR, "#reject-reasons .bar-row")}
    assert reasons == stats["rejected_by_reason"], (reasons, stats["rejected_by_reason"])
    assert "in_future" in reasons
    rows = driver.find_elements(By.CSS_SELECTOR, "#lateness-table tbody tr")
    assert len(rows) == len(stats["lateness"])
    shown = [int(r.find_elements(By.TAG_NAME, "td")[1].text.replace(",", "")) for r in rows]
    assert shown == [b["count"] for b in stats["lateness"]], (shown, stats["lateness"])
    assert sum(shown) > 0
    shot(driver, output_dir, "ingest")


# ---------------------------------------------------------------------------------------------- paging (last:
# it adds cameras to the shared fixture server)

def api_walk(server, query=""):
    """Every camera GET /kvfv lists for `query`, following `next`."""
    ids, after = [], None
    while True:
        page = fx.get_json(server, "/kvfv?limit=1000" + query + (f"&after={after}" if after else ""))
        ids += [c["kvfv_id"] for c in page["cameras"]]
        after = page["next"]
        if not after:
            return ids


def shown_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => tr.dataset.id)")


def test_fleet_larger_than_a_page(driver, server, fleet):
    """250 more cameras than fit a page: Next / Previous walk the whole fleet in id order, each camera once; a
    prefix and a health filter are answered by the server."""
    now = time.time()
    extra = [f"KW{i:05d}" for i in range(250)]
    res = fx.post_events(server, [{"kvfv_id": c, "timestamp": fx.rfc3339(now - 30), "vehicle_speed": 70.0 + i % 40,
                                   "event_id": f"{c}-paging"} for i, c in enumerate(extra)])
    assert res["accepted"] == len(extra), res
    truth = api_walk(server)
    assert len(truth) > 200 and truth == sorted(truth)

    driver.get(server + "/#/")
    # Default order (by id) so the page reads like the API's.
    wait(driver, lambda d: len(shown_ids(d)) > 0)
    if driver.find_element(By.CSS_SELECTOR, "#fleet-head th[data-key=kvfv_id]").get_attribute("aria-sort") != "ascending":
        driver.find_element(By.CSS_SELECTOR, "#fleet-head button[data-key=kvfv_id]").click()
    wait(driver, lambda d: shown_ids(d) == truth[:100], message="first page is not the first 100 ids")
    assert f"of {len(truth):,}" in driver.find_element(By.ID, "fleet-count").text

    seen = list(shown_ids(driver))
    nxt = driver.find_element(By.ID, "fleet-next")
    while nxt.is_enabled():
        before = shown_ids(driver)
        nxt.click()
        wait(driver, lambda d: shown_ids(d) and shown_ids(d) != before, message="Next did not turn the page")
        seen += shown_ids(driver)
    assert seen == truth, "pages did not walk the fleet in order, each camera once"

    driver.find_element(By.ID, "fleet-prev").click()
    wait(driver, lambda d: shown_ids(d) == truth[-(len(truth) % 100 or 100) - 100:-(len(truth) % 100 or 100)],
         message="Previous did not go back one page")
    driver.find_element(By.ID, "fleet-first").click()
    wait(driver, lambda d: shown_ids(d) == truth[:100], message="First did not go back to the first page")

    box = driver.find_element(By.ID, "fleet-filter")
    box.send_keys("KW001")
    wait(driver, lambda d: shown_ids(d) == [f"KW{i:05d}" for i in range(100, 200)], message="prefix filter")
    assert not driver.find_element(By.ID, "fleet-next").is_enabled()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    wait(driver, lambda d: shown_ids(d) == truth[:100])

    driver.find_element(By.CSS_SELECTOR, "#health-filters .chip[data-health=live]").click()
    live = api_walk(server, "&health=live")
    wait(driver, lambda d: shown_ids(d) == live[:100], message="health filter")
    assert all(h == "live" for h in driver.execute_script(
        "return Array.from(document.querySelectorAll('#fleet-body tr[data-id]')).map(tr => tr.dataset.health)"))
    driver.find_element(By.CSS_SELECTOR, "#health-filters .chip[data-health=live]").click()


def test_backlog_and_gaps_are_shown_per_camera(driver, server, fleet, output_dir):
    """A camera that numbers its passes and reports more than it delivered: the fleet row and the camera view
    show its backlog and its gaps, with the API's numbers."""
    now = time.time()
    cam = "SEQ-DASH"
    passes = [{"kvfv_id": cam, "timestamp": fx.rfc3339(now - 600 + i * 10), "vehicle_speed": 70 + i, "seq": 500 + i}
              for i in range(20) if i not in (7, 8, 9)]
    assert fx.post_events(server, passes)["accepted"] == 17
    req = urllib.request.Request(
        server + f"/kvfv/{cam}/status", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"seq": 530, "timestamp": fx.rfc3339(now - 5)}).encode())
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 200
    row = next(c for c in fx.get_json(server, f"/kvfv?prefix={cam}")["cameras"] if c["kvfv_id"] == cam)
    assert row["backlog"]["events"] == 11 and row["missing"] == 3, row

    driver.get(server + "/#/")
    driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));",
                          driver.find_element(By.ID, "fleet-filter"), cam)
    cell = lambda d: d.execute_script(
        "const c = document.querySelector(`#fleet-body tr[data-id='SEQ-DASH'] [data-col=backlog]`); return c && c.textContent;")
    wait(driver, lambda d: (cell(d) or "").startswith("11"), message=f"backlog cell shows {cell(driver)!r}")
    assert "+3 gaps" in cell(driver)
    open_camera(driver, server, cam)
    wait(driver, lambda d: d.execute_script(
        "const b = document.querySelector('#camera-health [data-backlog]'); return b && b.dataset.backlog;") == "11",
        message="the camera view shows the backlog")
    assert "3 missing in gaps" in driver.find_element(By.ID, "camera-health").text
    shot(driver, output_dir, "backlog")
