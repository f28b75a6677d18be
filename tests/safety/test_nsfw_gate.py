"""The NSFW gate through the server: block_explicit per job and per account, never charged."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes


def test_block_explicit_fails_the_job_uncharged(tmp_path: Path) -> None:
    # No explicit picture belongs in a test suite, so this operator widens the blocking
    # labels to one NudeNet finds on the astronaut photo (a face): the path is the same.
    settings = make_settings(tmp_path, nsfw_block_labels=["FACE_FEMALE"])
    with LiveServer(settings) as srv:
        account_id, key = srv.account(credits=5)
        photo = Image.fromarray(data.astronaut()).resize((256, 256))
        with srv.client(key) as c:
            media = srv.upload(c, png_bytes(photo))
            body = {"pipeline": "convert", "params": {"image": media["id"]}}
            ok = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=60"}).json()
            assert ok["status"] == "succeeded" and ok["block_explicit"] is False

            blocked = c.post(
                "/v1/jobs", json={**body, "block_explicit": True}, headers={"Prefer": "wait=60"}
            ).json()
            assert blocked["status"] == "failed", blocked
            assert blocked["error"]["code"] == "error_nsfw_content_detected"
            assert "FACE_FEMALE" in blocked["error"]["message"] and blocked["outputs"] == []
            # The gate looks at inputs too: the photo itself was refused before any work.
            assert blocked["error"]["message"].startswith("an input image was blocked")

            # The account default applies when the request says nothing.
            srv.services.accounts.update(account_id, block_explicit=True)
            by_default = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=60"}).json()
            assert by_default["status"] == "failed" and by_default["block_explicit"] is True
            allowed = c.post(
                "/v1/jobs", json={**body, "block_explicit": False}, headers={"Prefer": "wait=60"}
            ).json()
            assert allowed["status"] == "succeeded"
            me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (3, 0)  # two successes


def test_ordinary_photo_is_not_explicit() -> None:
    from pixelforge.safety.nsfw import NsfwDetector
    from tests.bundled import bundled_models

    detector = NsfwDetector(bundled_models())
    explicit, labels = detector.is_explicit(Image.fromarray(data.astronaut()))
    assert (explicit, labels) == (False, [])
