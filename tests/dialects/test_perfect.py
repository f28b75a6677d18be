"""The Perfect dialect against a real server: the seed's request samples, replayed over HTTP.

Auth as the seed describes it (RSA-encrypt `client_id=...&timestamp=<ms>` with the client
secret, an X.509 public key in base64), then file -> PUT upload -> task -> poll -> download,
request_id replays, the catalog's pages, and errors in Perfect's envelope.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from PIL import Image
from skimage import data
from sqlalchemy import select

from pixelforge.store.tables import LedgerEntry
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

API = "/perfect/s2s/v1.0"


def photo(name: str = "astronaut", side: int = 256) -> Image.Image:
    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    return img.resize((side, side * img.height // img.width), Image.Resampling.LANCZOS)


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def id_token(
    client_secret: str, client_id: str, *, ts_ms: int | None = None, oaep: bool = False
) -> str:
    """What the seed asks of a client: RSA-encrypt the string with the X.509 client secret."""
    public = serialization.load_der_public_key(base64.b64decode(client_secret))
    assert isinstance(public, rsa.RSAPublicKey)
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    plain = f"client_id={client_id}&timestamp={ts}".encode()
    pad: padding.AsymmetricPadding = (
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        if oaep
        else padding.PKCS1v15()
    )
    return base64.b64encode(public.encrypt(plain, pad)).decode()


class PerfectClient:
    """A Perfect S2S client pointed at <server>/perfect, as a user would write one."""

    def __init__(self, srv: LiveServer, api_key: str) -> None:
        self.srv = srv
        self.api_key = api_key
        self.http = httpx.Client(base_url=srv.url, timeout=60)
        creds = self.http.get(
            "/perfect/client-credentials", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert creds.status_code == 200, creds.text
        self.client_id: str = creds.json()["client_id"]
        self.client_secret: str = creds.json()["client_secret"]
        self.token = ""

    def auth(self, **kw: Any) -> httpx.Response:
        body = {
            "client_id": self.client_id,
            "id_token": id_token(self.client_secret, self.client_id, **kw),
        }
        return self.http.post(f"{API}/client/auth", json=body)

    def login(self) -> None:
        r = self.auth()
        assert r.status_code == 200, r.text
        assert r.json()["status"] == 200
        self.token = r.json()["result"]["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def upload(self, slug: str, payload: bytes, content_type: str = "image/jpeg") -> str:
        r = self.http.post(
            f"{API}/file/{slug}",
            json={"files": [{"content_type": content_type, "file_name": "photo.jpg"}]},
        )
        assert r.status_code == 200, r.text
        f = r.json()["result"]["files"][0]
        (req,) = f["requests"]
        put = httpx.request(req["method"], req["url"], content=payload, headers=req["headers"])
        assert put.status_code == 200, put.text
        file_id: str = f["file_id"]
        return file_id

    def run(self, slug: str, payload: dict[str, Any], request_id: int | None = 0) -> httpx.Response:
        body: dict[str, Any] = {"payload": payload}
        if request_id is not None:
            body["request_id"] = request_id
        return self.http.post(f"{API}/task/{slug}", json=body)

    def status(self, slug: str, task_id: str) -> httpx.Response:
        return self.http.get(f"{API}/task/{slug}", params={"task_id": task_id})

    def poll(self, slug: str, task_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll at the server's polling_interval until the task is no longer running."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.status(slug, task_id)
            assert r.status_code == 200, r.text
            result: dict[str, Any] = r.json()["result"]
            if result["status"] != "running":
                return result
            assert time.monotonic() < deadline, f"task {task_id} still running"
            time.sleep(result["polling_interval"] / 1000)

    def credits(self) -> tuple[int, int]:
        me = httpx.get(
            f"{self.srv.url}/v1/me", headers={"Authorization": f"Bearer {self.api_key}"}
        ).json()
        return me["credits_available"], me["credits_held"]


def ledger(srv: LiveServer, job_id: str) -> list[str]:
    with srv.services.db.read() as s:
        q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)
        return sorted(s.scalars(q))


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["error_code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    return body


class Server(LiveServer):
    """A LiveServer that also closes the Perfect clients made for it."""

    def perfect(self, *, credits: int = 100) -> PerfectClient:
        _, key = self.account(credits=credits)
        client = PerfectClient(self, key)
        self.clients.append(client)
        return client

    def __enter__(self) -> Server:
        self.clients: list[PerfectClient] = []
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for c in self.clients:
            c.http.close()
        super().__exit__(*exc)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with Server(make_settings(tmp_path / "data")) as server:
        yield server


def test_auth_then_background_removal_end_to_end(srv: Server) -> None:
    pc = srv.perfect(credits=10)
    key = pc.api_key
    assert pc.client_id == key
    pc.login()

    # The key pair was generated once into the data directory, private to the server user.
    pem = srv.settings.data_dir / "perfect_rsa.pem"
    assert pem.stat().st_mode & 0o777 == 0o600

    # file/sod -> PUT to the signed URL -> task/sod with request_id 0 -> poll -> download.
    file_id = pc.upload("sod", jpeg_bytes(photo()))
    payload = {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0}]}
    r = pc.run("sod", payload)
    assert r.status_code == 200, r.text
    task_id = r.json()["result"]["task_id"]
    result = pc.poll("sod", task_id)
    assert result["status"] == "success", result
    assert 200 <= result["polling_interval"] <= 2000
    (action,) = result["results"]
    assert action["id"] == 0
    (out,) = action["data"]
    png = httpx.get(out["url"])  # signed: no auth header needed
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    cutout = Image.open(io.BytesIO(png.content))
    assert cutout.mode == "RGBA" and cutout.size == (256, 256)
    alpha = np.asarray(cutout)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # a person cut out of a background
    assert pc.credits() == (9, 0)

    # A retry with the same file and request_id is the same task: no re-run, no 2nd charge.
    again = pc.run("sod", payload)
    assert again.status_code == 200 and again.json()["result"]["task_id"] == task_id
    assert pc.credits() == (9, 0)
    assert ledger(srv, task_id) == ["capture", "hold"]

    # The result's dst_id feeds another task without re-uploading (here: as a new request).
    payload2 = {"file_sets": {"src_ids": [out["dst_id"]]}, "actions": [{"id": 0}]}
    r2 = pc.run("sod", payload2, request_id=1)
    assert r2.status_code == 200 and r2.json()["result"]["task_id"] != task_id
    assert pc.poll("sod", r2.json()["result"]["task_id"])["status"] == "success"
    assert pc.credits() == (8, 0)

    # Same request_id, same file, different request: refused, nothing run or held.
    other = {**payload, "output_ext": "webp"}
    assert_error(pc.run("sod", other), 400, "invalid_parameter")


def test_two_file_task_object_removal(srv: Server) -> None:
    """src_ids + mask_ids, action id echoed, jpg output as asked."""
    pc = srv.perfect(credits=5)
    pc.login()
    img = photo("coffee", 200)
    mask = np.zeros((img.height, img.width), dtype=np.uint8)
    mask[60:110, 80:130] = 255
    src = pc.upload("obj-removal", jpeg_bytes(img))
    mask_id = pc.upload("obj-removal", png_bytes(mask), content_type="image/png")
    payload = {
        "file_sets": {"src_ids": [src], "mask_ids": [mask_id]},
        "actions": [{"id": 3}],
        "output_ext": "jpg",
    }
    r = pc.run("obj-removal", payload, request_id=7)
    assert r.status_code == 200, r.text
    result = pc.poll("obj-removal", r.json()["result"]["task_id"])
    assert result["status"] == "success", result
    assert result["results"][0]["id"] == 3
    out = httpx.get(result["results"][0]["data"][0]["url"])
    assert out.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(out.content)).size == img.size


def test_auth_failures_in_perfect_shape(srv: Server) -> None:
    pc = srv.perfect()
    key = pc.api_key

    # OAEP is accepted too; PKCS#1 v1.5 is what Perfect's samples use.
    assert pc.auth(oaep=True).status_code == 200

    stale = int((time.time() - 3600) * 1000)
    body = assert_error(pc.auth(ts_ms=stale), 401, "InvalidIdToken")
    assert "timestamp" in body["error"]
    future = int((time.time() + 3600) * 1000)
    assert_error(pc.auth(ts_ms=future), 401, "InvalidIdToken")

    # A token made for another client_id, one not made with our key, one not base64.
    other = id_token(pc.client_secret, "pf_someone_else")
    r = pc.http.post(f"{API}/client/auth", json={"client_id": key, "id_token": other})
    assert_error(r, 401, "InvalidIdToken")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = stranger.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = id_token(base64.b64encode(der).decode(), key)
    r = pc.http.post(f"{API}/client/auth", json={"client_id": key, "id_token": forged})
    assert_error(r, 401, "InvalidIdToken")
    r = pc.http.post(f"{API}/client/auth", json={"client_id": key, "id_token": "%%%"})
    assert_error(r, 401, "InvalidIdToken")

    # A well-made token for a client_id that is no API key of ours.
    fake = "pf_00000000_" + "x" * 43
    r = pc.http.post(
        f"{API}/client/auth", json={"client_id": fake, "id_token": id_token(pc.client_secret, fake)}
    )
    assert_error(r, 401, "InvalidApiKey")
    assert_error(
        pc.http.post(f"{API}/client/auth", json={"client_id": key}), 400, "invalid_parameter"
    )

    # Bearer tokens on the task endpoints.
    assert_error(pc.http.get(f"{API}/task/style-group/text-to-image"), 401, "InvalidAccessToken")
    bad = {"Authorization": "Bearer not-a-token"}
    assert_error(
        pc.http.get(f"{API}/task/sod", params={"task_id": "job_x"}, headers=bad),
        401,
        "InvalidAccessToken",
    )
    pc.login()
    assert pc.http.get(f"{API}/task/style-group/text-to-image").status_code == 200


def test_style_groups_and_styles_pages(srv: Server) -> None:
    pc = srv.perfect()
    pc.login()

    def pages(path: str, **params: Any) -> list[list[dict[str, Any]]]:
        out, token = [], None
        while True:
            q = {**params, **({"starting_token": token} if token else {})}
            r = pc.http.get(f"{API}/{path}", params=q)
            assert r.status_code == 200, r.text
            result = r.json()["result"]
            items = result.get("groups", result.get("styles"))
            out.append(items)
            token = result["next_token"]
            if token is None:
                return out

    groups = pages("task/style-group/text-to-image", page_size=2)
    assert [len(p) for p in groups] == [2, 1]
    flat = [g for p in groups for g in p]
    assert all(g["title"] == g["info"]["title"] for g in flat)
    whole = pages("task/style-group/text-to-image")
    assert [g["id"] for g in whole[0]] == [g["id"] for g in flat]

    per_group = {
        g["id"]: pages("task/style/text-to-image", style_group_id=g["id"], page_size=3)
        for g in flat
    }
    counted = sum(len(p) for ps in per_group.values() for p in ps)
    everything = pages("task/style/text-to-image", page_size=20)
    assert counted == sum(len(p) for p in everything) > 3
    assert all(len(p) <= 3 for ps in per_group.values() for p in ps)
    first = per_group[flat[0]["id"]][0][0]
    assert set(first) == {"id", "title", "info", "thumb"}

    # Hairstyle groups are the catalog's groups of the change_hairstyle task.
    hair = pages("task/style-group/hair-style")[0]
    assert hair and not {g["id"] for g in hair} & {g["id"] for g in flat}

    assert_error(
        pc.http.get(f"{API}/task/style-group/text-to-image", params={"page_size": 21}),
        400,
        "invalid_parameter",
    )
    assert_error(
        pc.http.get(f"{API}/task/style-group/text-to-image", params={"starting_token": "x"}),
        400,
        "invalid_parameter",
    )
    for token in ("99999999999999999999999", str(2**63), "-5", "%ff"):  # no 500, Perfect's shape
        for path in ("task/style-group/text-to-image", "task/style/text-to-image"):
            r = pc.http.get(f"{API}/{path}", params={"starting_token": token})
            assert_error(r, 400, "invalid_parameter")
    # A group of another feature is not one of this feature's.
    r = pc.http.get(f"{API}/task/style/text-to-image", params={"style_group_id": hair[0]["id"]})
    assert_error(r, 400, "invalid_parameter")


def test_request_errors_in_perfect_shape(srv: Server) -> None:
    pc = srv.perfect(credits=1)
    pc.login()

    r = pc.http.post(
        f"{API}/file/sod", json={"files": [{"content_type": "image/gif", "file_name": "a.gif"}]}
    )
    assert_error(r, 400, "invalid_parameter")
    assert_error(pc.http.post(f"{API}/file/sod", json={"files": []}), 400, "invalid_parameter")

    # The signed upload URL: its signature is checked; bytes that are no image are refused.
    r = pc.http.post(
        f"{API}/file/sod", json={"files": [{"content_type": "image/png", "file_name": "a.png"}]}
    )
    url = r.json()["result"]["files"][0]["requests"][0]["url"]
    assert_error(httpx.put(url.replace("sig=", "sig=0"), content=b"x"), 403, "AccessDenied")
    assert_error(httpx.put(url, content=b"not an image at all"), 415, "error_decode_image")

    # Run task: missing or unknown files, wrong shapes.
    no_files = {"actions": [{"id": 0}]}
    assert_error(pc.run("sod", no_files), 400, "invalid_parameter")
    unknown = {"file_sets": {"src_ids": ["med_nope"]}, "actions": [{"id": 0}]}
    assert_error(pc.run("sod", unknown), 400, "invalid_parameter")
    two_actions = {"file_sets": {"src_ids": ["med_nope"]}, "actions": [{"id": 0}, {"id": 1}]}
    assert_error(pc.run("sod", two_actions), 400, "invalid_parameter")
    file_id = pc.upload("enhance", jpeg_bytes(photo(side=96)))
    bad_scale = {
        "file_sets": {"src_ids": [file_id]},
        "actions": [{"id": 0, "params": {"scale": 3}}],
    }
    assert_error(pc.run("enhance", bad_scale), 400, "invalid_parameter")
    bad_ext = {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0}], "output_ext": "gif"}
    assert_error(pc.run("enhance", bad_ext), 400, "invalid_parameter")
    no_style = {"actions": [{"id": 0, "params": {"prompt": "a red fox"}}]}
    assert_error(pc.run("text-to-image", no_style), 400, "invalid_parameter")

    # Credits: x4plus costs 2, the account has 1.
    pricey = {
        "file_sets": {"src_ids": [file_id]},
        "actions": [{"id": 0, "params": {"model": "realesrgan-x4plus"}}],
    }
    assert_error(pc.run("enhance", pricey), 400, "CreditInsufficiency")

    # Status: task ids that are not tasks of this feature (or of this account).
    assert_error(pc.status("sod", "nonsense"), 400, "InvalidTaskId")
    assert_error(pc.status("sod", "job_doesnotexist"), 400, "InvalidTaskId")
    ok = {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0}]}
    task_id = pc.run("enhance", ok).json()["result"]["task_id"]
    assert_error(pc.status("sod", task_id), 400, "InvalidTaskId")
    stranger = srv.perfect()
    stranger.login()
    assert_error(stranger.status("enhance", task_id), 400, "InvalidTaskId")
    assert pc.poll("enhance", task_id)["status"] == "success"

    # Features of the seed this server has no pipeline for, on every endpoint.
    for method, path in (
        ("POST", f"{API}/file/video-enhance"),
        ("POST", f"{API}/task/video-enhance"),
        ("GET", f"{API}/task/video-enhance?task_id={task_id}"),
    ):
        body = (
            {"files": [{"content_type": "image/png", "file_name": "a"}]}
            if "file" in path
            else {"payload": {"actions": [{"id": 0}]}}
        )
        r = pc.http.request(method, path, json=body if method == "POST" else None)
        assert_error(r, 400, "OperationNotSupport")
    assert_error(pc.http.get(f"{API}/nothing-here"), 404, "NotFound")


def test_enhance_scale_runs_an_upscale(srv: Server) -> None:
    pc = srv.perfect(credits=5)
    pc.login()
    file_id = pc.upload("enhance", jpeg_bytes(photo(side=64)))
    payload = {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0, "params": {"scale": 2}}]}
    result = pc.poll("enhance", pc.run("enhance", payload).json()["result"]["task_id"])
    assert result["status"] == "success", result
    out = httpx.get(result["results"][0]["data"][0]["url"])
    assert Image.open(io.BytesIO(out.content)).size == (128, 128)
