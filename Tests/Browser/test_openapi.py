"""The OpenAPI document matches the real responses: every answer of a real `speedflow serve` (loaded with the
dashboard fixture) is validated against the schema openapi.yaml declares for that path, method and status."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from openapi_schema_validator import OAS30Validator, validate

ROOT = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((ROOT / "Sources/SpeedflowServer/Resources/openapi.yaml").read_text())


def request(base: str, path: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def conforms(template: str, method: str, status: int, content_type: str, body: bytes) -> None:
    responses = SPEC["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} answered {status}, which the document does not declare"
    content = responses[str(status)]["content"]
    media = content_type.split(";")[0].strip()
    assert media in content, f"{method} {template} {status}: {media} not declared ({list(content)})"
    if media == "application/json":
        schema = dict(content[media]["schema"], components=SPEC["components"])
        validate(json.loads(body), schema, cls=OAS30Validator)


def test_served_document_is_the_file(server):
    status, media, body = request(server, "/openapi.yaml")
    assert status == 200 and media.startswith("application/yaml")
    assert yaml.safe_load(body) == SPEC


def test_every_answer_matches_its_schema(server, fleet):
    cam = fleet.cameras[0]
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    day = int(now // 86400) * 86400
    cases = [
        ("/kvfv/{id}/avg-speed", "GET", f"/kvfv/{cam}/avg-speed?from={iso(now - 6 * 3600)}&to={iso(now)}&interval=5m", None, {}),
        ("/kvfv/{id}/avg-speed", "GET", f"/kvfv/{cam}/avg-speed?from={iso(day - 2 * 86400)}&to={iso(day + 86400)}&interval=24h&tz=Europe/Moscow", None, {}),
        ("/kvfv/{id}/avg-speed", "GET", f"/kvfv/{cam}/avg-speed?from={iso(now - 3600)}&to={iso(now)}&interval=1h&format=csv", None, {}),
        ("/kvfv/{id}/avg-speed", "GET", f"/kvfv/{cam}/avg-speed?from={iso(now)}&to={iso(now - 60)}", None, {}),
        ("/kvfv/{id}/avg-speed", "GET", f"/kvfv/NOBODY/avg-speed?from={iso(now - 60)}&to={iso(now)}", None, {}),
        # The live streams' refusals (a 200 is an endless event stream: test_dashboard and the Swift tests read those).
        ("/kvfv/{id}/avg-speed/stream", "GET", f"/kvfv/NOBODY/avg-speed/stream?from={iso(now - 60)}", None, {}),
        ("/kvfv/{id}/avg-speed/stream", "GET", f"/kvfv/{cam}/avg-speed/stream?from={iso(now - 60)}&interval=7m", None, {}),
        ("/kvfv/{id}/avg-speed/stream", "GET", f"/kvfv/{cam}/avg-speed/stream?from={iso(now + 3600)}", None, {}),
        ("/kvfv/stream", "GET", "/kvfv/stream?limit=0", None, {}),
        ("/kvfv", "GET", "/kvfv", None, {}),
        ("/kvfv", "GET", f"/kvfv?limit=2&prefix=KV&after={cam}", None, {}),
        ("/kvfv", "GET", "/kvfv?health=live&limit=1000", None, {}),
        ("/kvfv", "GET", "/kvfv?limit=0", None, {}),
        ("/kvfv", "GET", "/kvfv?health=asleep", None, {}),
        ("/stats", "GET", "/stats", None, {}),
        ("/health", "GET", "/health", None, {}),
        ("/events", "POST", "/events", json.dumps([
            {"kvfv_id": cam, "timestamp": iso(now - 30), "vehicle_speed": 77.7, "event_id": f"openapi-{now}"},
            {"kvfv_id": cam, "timestamp": iso(now + 3600), "vehicle_speed": 50},
            7,
        ]).encode(), {"Content-Type": "application/json"}),
        ("/events", "POST", "/events", b"[{", {"Content-Type": "application/json"}),
        ("/events", "POST", "/events", b"x", {"Content-Encoding": "br"}),
        # Browser safety: a cross-site write and a browser's text/plain body.
        ("/events", "POST", "/events", b"{}", {"Origin": "https://evil.example", "Content-Type": "application/json"}),
        ("/events", "POST", "/events", b"{}", {"Origin": server, "Content-Type": "text/plain"}),
        ("/session", "GET", "/session", None, {}),
        ("/session", "POST", "/session", b"{}", {"Content-Type": "application/json"}),
    ]
    for template, method, path, body, headers in cases:
        status, media, payload = request(server, path, method, body, headers)
        conforms(template, method, status, media, payload)
