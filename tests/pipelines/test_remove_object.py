"""Tests for pixelforge/pipelines/remove_object.py on the real server with a real photo."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.pipelines.effects_server import EffectsServer, effects_server, photo, rgb


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("remove_object")) as server:
        yield server


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_a_pasted_square_leaves_no_trace(srv: EffectsServer, method: str) -> None:
    s = srv.session(credits=10)
    clean = photo("chelsea")  # 451x300, the cat's fur and the blurred room
    dirty = np.asarray(clean).copy()
    box = (slice(120, 150), slice(60, 90))  # 30x30 px on the fur of the cat's cheek
    dirty[box] = (250, 250, 255)
    mask = np.zeros(dirty.shape[:2], np.uint8)
    mask[box] = 255

    job = s.run(
        "remove_object",
        {
            "image": s.upload(dirty),
            "mask": s.upload(Image.fromarray(mask).convert("RGB")),
            "method": method,
            "output_format": "png",
        },
    )
    out = rgb(s.image(job))
    assert out.shape == dirty.shape

    truth = rgb(clean)
    before = np.abs(dirty[box].astype(float) - truth[box]).mean()
    after = np.abs(out[box] - truth[box]).mean()
    assert before > 100
    assert after < 0.15 * before, (before, after)
    # Far from the mask (beyond the dilation and feathering) nothing changed.
    far = np.ones(mask.shape, bool)
    far[100:170, 40:110] = False
    assert np.array_equal(out[far], np.asarray(dirty, dtype=float)[far])
    assert job["result"]["method"] == method
    assert s.credits() == (9, 0)


def test_mask_mismatch_and_empty_mask_fail_clearly(srv: EffectsServer) -> None:
    s = srv.session(credits=10)
    image = s.upload(photo("chelsea"))
    small = s.upload(Image.new("RGB", (100, 100), "white"))
    job = s.run("remove_object", {"image": image, "mask": small})
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_parameter"
    assert "mask: must be 451x300" in job["error"]["message"]

    black = s.upload(Image.new("RGB", (451, 300), "black"))
    job = s.run("remove_object", {"image": image, "mask": black})
    assert job["status"] == "failed" and "nothing to remove" in job["error"]["message"]
    assert s.credits() == (10, 0)
