"""A deterministic fleet fixture for the dashboard test: a few cameras, six hours of traffic.

Event times are in the past (the last 6 hours), speeds are realistic (normal around each camera's
free-flow speed, with a congestion dip on one camera), every event has a unique event_id. A few cameras
are shaped to show the health states: one stops reporting 40 minutes ago (lagging once its backlog
arrives now), one repeats the same speed (stuck), one sends an event from the future (clock skew).
One camera has a 30-minute hole, which the chart must draw as a gap.

Eleven of the twelve cameras are registered (name, road, km, position, limit, 3 lanes, Europe/Moscow) along three
roads near Moscow; one of them has no position, one a limit that changed two hours ago; KV00112 stays unregistered.
"""
from __future__ import annotations

import json
import math
import random
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone

HOURS = 6
CAMERA_COUNT = 12
GAP_CAMERA = "KV00101"  # 30 minutes without vehicles, 4 h ago
LAGGING_CAMERA = "KV00107"  # newest event 40 min old
STUCK_CAMERA = "KV00110"  # the last 25 speeds identical
SKEW_CAMERA = "KV00111"  # one event an hour in the future
CONGESTED_CAMERA = "KV00103"  # speeds drop to ~30 km/h for an hour


def rfc3339(t: float) -> str:
    """RFC 3339 UTC with milliseconds, as cameras send it."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


# kvfv_id: (name, road, direction, km, latitude, longitude, limit) — None: not set.
REGISTRY = {
    "KV00101": ("M-11 km 21 northbound", "M-11", "N", 21.4, 55.9021, 37.3915, 90),
    "KV00102": ("M-11 km 27 northbound", "M-11", "N", 27.0, 55.9402, 37.3170, 90),
    "KV00103": ("M-11 Durykino junction", "M-11", "N", 33.8, 55.9871, 37.2398, 110),  # 90 for the last two hours
    "KV00104": ("M-11 km 41 northbound", "M-11", "N", 41.2, 56.0402, 37.1450, 110),
    "KV00105": ("A-107 km 42 northbound", "A-107", "N", 42.3, 55.7512, 37.9184, 70),
    "KV00106": ("A-107 km 48 northbound", "A-107", "N", 48.0, 55.7990, 37.9801, 70),
    "KV00107": ("Fryazino bridge", "A-107", "N", 55.5, 55.8605, 38.0253, 90),
    "KV00108": ("A-107 km 61 northbound", "A-107", "N", 61.0, 55.9051, 37.9802, 90),
    "KV00109": ("Balashikha entry", "M-7", "E", 12.0, 55.7601, 37.8201, 60),
    "KV00110": ("M-7 km 19 eastbound", "M-7", "E", 19.5, 55.7802, 37.9299, 60),
    "KV00111": ("M-7 km 26 eastbound", "M-7", "E", 26.0, None, None, 90),  # registered without a position
}
LIMIT_CHANGE_CAMERA = "KV00103"


def put_registry(base_url: str, kvfv_id: str, entry: dict, timeout: float = 30) -> dict:
    """PUT /kvfv/{id}/registry (the fixture server runs without auth, so no admin token is needed)."""
    req = urllib.request.Request(
        base_url + f"/kvfv/{kvfv_id}/registry", data=json.dumps(entry).encode(), method="PUT",
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


def registry_entry(name, road, direction, km, lat, lon, limit, limits=None) -> dict:
    e = {"name": name, "road": road, "direction": direction, "km": km, "lanes": 3, "time_zone": "Europe/Moscow",
         "expected_daily_volume": 5000, "speed_limits": limits or [{"kmh": limit, "from": None}]}
    if lat is not None:
        e["latitude"], e["longitude"] = lat, lon
    return e


def register(base_url: str, now: float) -> None:
    # A limit change two hours ago, on a 5-minute boundary as the registry requires.
    change = int((now - 2 * 3600) // 300 * 300)
    for cam, (name, road, direction, km, lat, lon, limit) in REGISTRY.items():
        limits = [{"kmh": limit, "from": None}, {"kmh": 90, "from": rfc3339(change).replace(".000Z", "Z")}] \
            if cam == LIMIT_CHANGE_CAMERA else None
        put_registry(base_url, cam, registry_entry(name, road, direction, km, lat, lon, limit, limits))


def post_events(base_url: str, events: list[dict], timeout: float = 30) -> dict:
    req = urllib.request.Request(
        base_url + "/events",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


def get_json(base_url: str, path: str, timeout: float = 30):
    req = urllib.request.Request(base_url + path, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


@dataclass
class Fixture:
    cameras: list[str]
    accepted: int = 0
    duplicates: int = 0
    rejected: list = field(default_factory=list)
    start: float = 0.0
    end: float = 0.0


def generate(now: float, seed: int = 20250405) -> tuple[list[dict], list[dict]]:
    """Returns (events in event-time order, extra events that must be rejected)."""
    rng = random.Random(seed)
    start = now - HOURS * 3600 + 60
    cameras = [f"KV{101 + i:05d}" for i in range(CAMERA_COUNT)]
    events: list[dict] = []
    for ci, cam in enumerate(cameras):
        free_flow = rng.uniform(62, 108)
        per_5min = rng.uniform(8, 26)
        end = now - 3
        if cam == LAGGING_CAMERA:
            end = now - 40 * 60
        t = start + rng.uniform(0, 20)
        seq = 0
        while t < end:
            hour_phase = (t - start) / 3600
            # Traffic swells and ebbs over the hours; flow and speed move a little against each other.
            swell = 1 + 0.35 * math.sin(hour_phase * 1.3 + ci)
            rate = per_5min * swell / 300.0
            t += rng.expovariate(rate)
            if t >= end:
                break
            if cam == GAP_CAMERA and now - 4 * 3600 <= t < now - 3.5 * 3600:
                continue
            mean = free_flow * (1.04 - 0.08 * swell)
            if cam == CONGESTED_CAMERA and now - 3 * 3600 <= t < now - 2 * 3600:
                mean = 31.0
            speed = min(250.0, max(5.0, rng.gauss(mean, mean * 0.12)))
            seq += 1
            events.append({
                "kvfv_id": cam,
                "timestamp": rfc3339(t),
                "vehicle_speed": round(speed, 1),
                "plate_number": f"{rng.choice('ABEKMHOPCTYX')}{rng.randint(100, 999)}"
                                f"{rng.choice('ABEKMHOPCTYX')}{rng.choice('ABEKMHOPCTYX')}{rng.randint(10, 199)}",
                "event_id": f"{cam}-fx-{seq:06d}",
                "lane": rng.randint(1, 3),
            })
    # A stuck sensor: its newest 25 readings all say 60.0 km/h.
    stuck = [e for e in events if e["kvfv_id"] == STUCK_CAMERA]
    for e in stuck[-25:]:
        e["vehicle_speed"] = 60.0
    events.sort(key=lambda e: e["timestamp"])
    bad = [
        {"kvfv_id": SKEW_CAMERA, "timestamp": rfc3339(now + 3600), "vehicle_speed": 77.0,
         "plate_number": "X001XX77", "event_id": f"{SKEW_CAMERA}-fx-future-1", "lane": 1},
        {"kvfv_id": "KV00104", "timestamp": rfc3339(now - 600), "vehicle_speed": 420.0,
         "plate_number": "X002XX77", "event_id": "KV00104-fx-radar-glitch", "lane": 2},
    ]
    return events, bad


def load(base_url: str, now: float | None = None, batch: int = 1000) -> Fixture:
    now = time.time() if now is None else now
    events, bad = generate(now)
    fx = Fixture(cameras=sorted({e["kvfv_id"] for e in events}), start=now - HOURS * 3600, end=now)
    register(base_url, now)
    for i in range(0, len(events), batch):
        r = post_events(base_url, events[i:i + batch])
        fx.accepted += r["accepted"]
        fx.duplicates += r["duplicates"]
        fx.rejected += r["rejected"]
    # A camera that did not hear the answer resends its last batch: all duplicates, never counted twice.
    r = post_events(base_url, events[-200:])
    fx.duplicates += r["duplicates"]
    r = post_events(base_url, bad)
    fx.rejected += r["rejected"]
    fx.accepted += r["accepted"]
    assert fx.accepted == len(events), (fx.accepted, len(events), fx.rejected[:5])
    assert fx.duplicates == 200, fx.duplicates
    reasons = sorted(x["reason"] for x in fx.rejected)
    assert len(reasons) == 2 and "in_future" in reasons, fx.rejected
    return fx
