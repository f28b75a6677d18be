"""Error shapes, request validation, the OpenAPI document and job-list pagination."""

from __future__ import annotations

import base64
import json
import re
import time

import httpx
from fastapi.routing import APIRoute
from PIL import Image
from skimage import data
from sqlalchemy import func, select

from pixelforge.store.tables import Job, LedgerEntry
from tests.live import LiveServer, png_bytes


def photo_png(size: int = 32) -> bytes:
    img = Image.fromarray(data.chelsea()).resize((size, size), Image.Resampling.LANCZOS)
    return png_bytes(img)


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    """Checks the one error shape; returns the message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), body
    return message


def job_count(server: LiveServer, account_id: str) -> int:
    with server.services.db.read() as s:
        q = select(func.count()).select_from(Job).where(Job.account_id == account_id)
        return int(s.scalar(q) or 0)


# -- error shapes --------------------------------------------------------------------------


def test_unknown_route_and_wrong_method(server: LiveServer) -> None:
    _, key = server.account()
    with server.client(key) as c, server.client() as anon:
        assert_error(c.get("/v1/nope"), 404, "not_found")
        assert_error(anon.get("/v1/nope"), 404, "not_found")
        assert_error(c.post("/nothing/here", json={}), 404, "not_found")
        assert_error(c.get("/v1/jobs/job_x/nope"), 404, "not_found")
        for method, path in (("PUT", "/v1/jobs"), ("PATCH", "/v1/me"), ("POST", "/v1/me")):
            r = c.request(method, path, json={})
            assert r.status_code == 405, r.text
            assert set(r.json()) == {"error"} and r.json()["error"]["message"]
            assert r.json()["error"]["code"] in ("invalid_parameter", "method_not_allowed")


def test_405_lists_allowed_methods(server: LiveServer) -> None:
    _, key = server.account()
    with server.client(key) as c:
        r = c.put("/v1/jobs", json={})
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}


def test_job_body_validation_errors(server: LiveServer) -> None:
    account_id, key = server.account(credits=10)
    with server.client(key) as c:
        media = server.upload(c, photo_png())
        json_headers = {"Content-Type": "application/json"}

        assert_error(
            c.post("/v1/jobs", content=b'{"pipeline": "convert",', headers=json_headers),
            400,
            "invalid_parameter",
        )
        assert_error(
            c.post("/v1/jobs", content=b"\xff\xfe not json", headers=json_headers),
            400,
            "invalid_parameter",
        )
        assert_error(c.post("/v1/jobs", json=[1, 2]), 400, "invalid_parameter")
        assert_error(c.post("/v1/jobs"), 400, "invalid_parameter")

        msg = assert_error(
            c.post("/v1/jobs", json={"params": {"image": media["id"]}}), 400, "invalid_parameter"
        )
        assert msg.startswith("pipeline"), msg
        msg = assert_error(
            c.post("/v1/jobs", json={"pipeline": "convert", "params": "x"}),
            400,
            "invalid_parameter",
        )
        assert "params" in msg
        msg = assert_error(
            c.post("/v1/jobs", json={"pipeline": "upscale", "params": {"image": "x", "scale": 3}}),
            400,
            "invalid_parameter",
        )
        assert msg.startswith("params.scale"), msg
        msg = assert_error(
            c.post("/v1/jobs", json={"pipeline": "convert", "params": {}}),
            400,
            "invalid_parameter",
        )
        assert msg.startswith("params.image"), msg
        msg = assert_error(
            c.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": media["id"], "colour": "red"}},
            ),
            400,
            "invalid_parameter",
        )
        assert "params.colour" in msg, msg
        msg = assert_error(
            c.post(
                "/v1/jobs",
                content=json.dumps(
                    {"pipeline": "convert", "params": {"image": media["id"]}}
                ).replace("}}", ', "quality": NaN}}'),
                headers=json_headers,
            ),
            400,
            "invalid_parameter",
        )
        assert "params.quality" in msg, msg
        msg = assert_error(
            c.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": media["id"]}, "priority": 1000},
            ),
            400,
            "invalid_parameter",
        )
        assert msg.startswith("priority"), msg
        msg = assert_error(
            c.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": media["id"]}, "request_id": "a"},
                headers={"Idempotency-Key": "b"},
            ),
            400,
            "invalid_parameter",
        )
        assert "request_id" in msg and "Idempotency-Key" in msg

        msg = assert_error(
            c.post("/v1/jobs", json={"pipeline": "dream", "params": {}}), 400, "unknown_pipeline"
        )
        assert "dream" in msg and "convert" in msg and "upscale" in msg
        # Sent as a form instead of JSON: refused cleanly.
        r = c.post("/v1/jobs", data={"pipeline": "convert"})
        assert r.status_code in (400, 415), r.text
        assert "error" in r.json()

        # None of the refused requests created a job or touched the credits.
        assert c.get("/v1/jobs").json()["data"] == []
        me = c.get("/v1/me").json()
    assert job_count(server, account_id) == 0
    assert (me["credits_available"], me["credits_held"]) == (10, 0)


def test_insufficient_credits_creates_no_job(server: LiveServer) -> None:
    broke_id, broke_key = server.account(credits=0)
    one_id, one_key = server.account(credits=1)
    with server.client(broke_key) as c:
        media = server.upload(c, photo_png())
        msg = assert_error(
            c.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": media["id"]}}),
            402,
            "insufficient_credits",
        )
        assert "1" in msg and "0" in msg
        assert c.get("/v1/jobs").json()["data"] == []
    assert job_count(server, broke_id) == 0

    with server.client(one_key) as c:
        media = server.upload(c, photo_png())
        quality = {"image": media["id"], "model": "realesrgan-x4plus", "scale": 1}
        msg = assert_error(
            c.post(
                "/v1/jobs",
                json={"pipeline": "upscale", "params": quality, "request_id": "try-1"},
            ),
            402,
            "insufficient_credits",
        )
        assert "2" in msg
        assert job_count(server, one_id) == 0
        with server.services.db.read() as s:
            kinds = list(
                s.scalars(select(LedgerEntry.kind).where(LedgerEntry.account_id == one_id))
            )
        assert kinds == ["grant"]
        # A refused request does not burn its idempotency key: the cheaper job goes through.
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "convert", "params": {"image": media["id"]}, "request_id": "try-1"},
        )
        assert r.status_code == 202, r.text
        me = c.get("/v1/me").json()
        assert me["credits_available"] == 0
        # And the balance is now spent, so the next one is refused.
        assert_error(
            c.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": media["id"]}}),
            402,
            "insufficient_credits",
        )
    assert job_count(server, one_id) == 1


def test_list_query_errors(server: LiveServer) -> None:
    _, key = server.account()

    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    with server.client(key) as c:
        msg = assert_error(c.get("/v1/jobs", params={"status": "bogus"}), 400, "invalid_parameter")
        assert msg.startswith("status"), msg
        for cursor in ("bogus", "!!!", "é", b64("x"), b64([None, "job_x"]), b64([1, 2, 3]), "="):
            msg = assert_error(
                c.get("/v1/jobs", params={"cursor": cursor}), 400, "invalid_parameter"
            )
            assert msg.startswith("cursor"), (cursor, msg)
        for limit in (0, -1, 101, "ten"):
            msg = assert_error(c.get("/v1/jobs", params={"limit": limit}), 400, "invalid_parameter")
            assert msg.startswith("limit"), msg
        assert c.get("/v1/jobs", params={"status": "queued"}).status_code == 200


def test_other_errors_share_the_shape(server: LiveServer) -> None:
    _, key = server.account()
    with server.client() as anon:
        assert_error(anon.get("/v1/me"), 401, "unauthorized")
        assert_error(anon.get("/v1/jobs/job_x"), 401, "unauthorized")
    with server.client(key) as c:
        assert_error(c.get("/v1/jobs/job_x"), 404, "not_found")
        assert_error(c.get("/v1/admin/accounts"), 403, "forbidden")
        assert_error(c.post("/v1/keys", json={"name": "x" * 500}), 400, "invalid_parameter")
        r = c.post("/v1/auth/login", json={"email": "nobody@example.com"})
        assert assert_error(r, 400, "invalid_parameter").startswith("password")


# -- OpenAPI -------------------------------------------------------------------------------


def _http_routes(server: LiveServer) -> dict[str, set[str]]:
    """path -> methods of the app's documented HTTP routes, included routers flattened."""
    routes: dict[str, set[str]] = {}
    for route in server.app.routes:
        # FastAPI keeps included routers as nodes; their effective routes carry the prefix.
        contexts = getattr(route, "effective_route_contexts", None)
        for item in list(contexts()) if contexts else [route]:
            original = getattr(item, "original_route", item)
            if isinstance(original, APIRoute) and getattr(item, "include_in_schema", False):
                path, methods = item.path, item.methods  # type: ignore[attr-defined]
                routes.setdefault(path, set()).update(m.lower() for m in methods)
    return routes


def test_openapi_document(server: LiveServer) -> None:
    with server.client() as anon:
        r = anon.get("/openapi.json")
        docs = anon.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    spec = json.loads(r.content)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "PixelForge"

    routes = _http_routes(server)
    assert sum(len(m) for m in routes.values()) >= 20, routes
    assert {"/v1/jobs", "/v1/media", "/v1/me", "/v1/auth/login", "/healthz"} <= set(routes)
    assert set(spec["paths"]) == set(routes)
    for path, methods in routes.items():
        documented = {m for m in spec["paths"][path] if m != "parameters"}
        assert documented == methods - {"head", "options"}, path
        for method in documented:
            op = spec["paths"][path][method]
            assert op.get("summary", "").strip(), (method, path)
            assert op.get("operationId"), (method, path)

    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"

    upload = spec["paths"]["/v1/media"]["post"]
    content = upload["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(content)
    assert content["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert {"base64", "url"} <= set(content["application/json"]["schema"]["properties"])

    submit = spec["paths"]["/v1/jobs"]["post"]
    assert "requestBody" in submit and "202" in submit["responses"]

    # Every $ref points at a schema that exists.
    schemas = spec.get("components", {}).get("schemas", {})
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref

    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "swagger" in docs.text.lower() and "/openapi.json" in docs.text


def test_openapi_documents_every_error_in_its_shape(server: LiveServer) -> None:
    with server.client() as anon:
        spec = anon.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # validation errors are 400s, not FastAPI's 422
    shapes = {
        "/aiart/": "AiArtError",
        "/aliveai/": "AliveAIError",
        "/eventstation/": "EventstationError",
        "/v1/images/": "OpenAIErrorOut",
        "/v1/chat/": "OpenAIErrorOut",
        "/v1/completions": "OpenAIErrorOut",
        "/perfect/": "PerfectErrorOut",
    }

    def codes(path: str, method: str) -> set[str]:
        return set(spec["paths"][path][method]["responses"])

    for path, item in spec["paths"].items():
        shape = next((m for p, m in shapes.items() if path.startswith(p)), "ErrorOut")
        for method, op in item.items():
            errors = {c: r for c, r in op["responses"].items() if int(c) >= 400}
            assert {"400", "429"} <= set(errors), (method, path)
            for code, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/{shape}", (method, path, code)
            if "422" in errors:  # only the idempotency-key mismatch
                names = {p["name"].lower() for p in op.get("parameters", ())}
                assert any("idempotency" in n for n in names), (method, path)
            if "{" in path:
                assert "404" in errors, (method, path)
            if "requestBody" in op:
                assert {"413", "415"} <= set(errors), (method, path)

    assert {"401", "403", "404"} <= codes("/v1/jobs/{job_id}", "get")
    assert {"401", "402", "403", "413", "415", "422"} <= codes("/v1/jobs", "post")
    assert "401" not in codes("/healthz", "get")
    assert "401" in codes("/v1/auth/login", "post")
    assert "409" in codes("/v1/admin/lora-templates", "put")
    assert {"404", "501", "503"} <= codes("/aliveai/prompts", "post")
    assert {"403", "409", "410"} <= codes("/perfect/upload/{file_id}", "put")
    assert schemas["AliveAIError"]["required"] == ["status", "errorType", "code", "message"]


# -- pagination ----------------------------------------------------------------------------


def test_job_list_pagination(server: LiveServer) -> None:
    _, key = server.account(credits=10)
    _, other_key = server.account(credits=10)
    with server.client(key) as c:
        media = server.upload(c, photo_png(16))
        created = []
        for i in range(5):
            r = c.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": media["id"], "quality": 50 + i}},
            )
            assert r.status_code == 202, r.text
            created.append(r.json()["id"])
            time.sleep(0.002)
    with server.client(other_key) as o:
        other_media = server.upload(o, photo_png(16))
        r = o.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": other_media["id"]}})
        assert r.status_code == 202
        other_job = r.json()["id"]
    with server.client(key) as c:
        for job_id in created:
            server.wait_job(c, job_id)

        seen: list[str] = []
        pages = 0
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            r = c.get("/v1/jobs", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["object"] == "list" and len(page["data"]) <= 2
            seen += [j["id"] for j in page["data"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert pages < 10
        assert seen == list(reversed(created))
        assert pages == 3

        whole = c.get("/v1/jobs", params={"limit": 100}).json()
        assert [j["id"] for j in whole["data"]] == seen and whole["next_cursor"] is None
        # An exact fit leaves no dangling cursor to an empty page.
        exact = c.get("/v1/jobs", params={"limit": 5}).json()
        assert len(exact["data"]) == 5 and exact["next_cursor"] is None

        done = c.get("/v1/jobs", params={"status": "succeeded", "limit": 3}).json()
        assert [j["id"] for j in done["data"]] == seen[:3]
        rest = c.get(
            "/v1/jobs", params={"status": "succeeded", "limit": 3, "cursor": done["next_cursor"]}
        ).json()
        assert [j["id"] for j in rest["data"]] == seen[3:]
        assert c.get("/v1/jobs", params={"status": "failed"}).json()["data"] == []
    assert other_job not in json.dumps(whole)


def test_every_operation_carries_an_example(server: LiveServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def has_example(node: object, seen: frozenset[str] = frozenset()) -> bool:
        text = json.dumps(node)
        if '"example' in text:
            return True
        refs = set(re.findall(r"#/components/schemas/([\w.-]+)", text)) - seen
        return any(has_example(schemas[r], seen | refs) for r in refs)

    missing = [
        f"{method.upper()} {path}"
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if not has_example([op.get("requestBody"), op.get("parameters"), op.get("responses")])
    ]
    assert missing == []
