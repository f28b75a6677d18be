"""Photo-effect pipelines: median seconds per 1024 px photo, and upscale's tile rate vs bare ncnn.

Each pipeline's `run()` is called in this process with a small in-memory RunContext (media in
a dict; outputs really encoded with the server's `encode_image`, then dropped), on skimage's
photos scaled to the chosen side (astronaut for people and faces, coffee as a reference or
background, a grey astronaut for colorize). One warm-up run loads the models (MediaPipe
graphs, ncnn nets), then the median of N runs is reported, so the figures are what a warm
worker spends on a job, without HTTP and queue (bench/serving_overhead.py measures those).

The upscale section runs the same Real-ESRGAN ncnn model on the same tiles twice: through
`UpscalePipeline.run` and through a bare loop (ncnn.Net with the pipeline's options, one
extractor per padded tile), interleaved, same thread count, and prints tiles/s of both and
their ratio. The machine is shared and noisy: compare ratios, not absolute seconds.

    .venv/bin/python bench/effects.py --quick   # < 60 s: fewer runs, smaller upscale input
    .venv/bin/python bench/effects.py           # a few minutes
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel
from skimage import data

from pixelforge.models.base import UPSCALE
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines import realesrgan
from pixelforge.pipelines.background import (
    BlurBackgroundPipeline,
    RemoveBackgroundPipeline,
    ReplaceBackgroundPipeline,
)
from pixelforge.pipelines.colorize import ColorizePipeline
from pixelforge.pipelines.correct_color import CorrectColorPipeline, RelightPipeline
from pixelforge.pipelines.enhance import EnhancePipeline
from pixelforge.pipelines.remove_object import RemoveObjectPipeline
from pixelforge.pipelines.stylize import FILTERS, StylizePipeline
from pixelforge.pipelines.upscale import UpscaleParams, UpscalePipeline
from pixelforge.safety.images import encode_image

STARTED = time.monotonic()


@dataclass
class BenchContext:
    """The RunContext protocol, in memory: progress counts tiles, outputs are encoded."""

    threads: int
    models: ModelManager  # the bundled models (MediaPipe, ncnn), loaded once per process
    seed: int = 1
    device: str = "cpu"
    media: dict[str, Image.Image] = field(default_factory=dict)
    steps: int = 0
    catalog: Any = None
    encode: bool = True  # False: outputs are dropped unencoded (isolates the encoder's cost)

    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        self.steps = step

    def cancelled(self) -> bool:
        return False

    def load_image(self, ref: str) -> Image.Image:
        return self.media[ref].copy()

    def save_image(self, img: Image.Image, *, format: str = "png", quality: int = 95) -> str:
        if self.encode:
            encode_image(img, fmt=format, quality=quality)
        return "med_out"

    def save_video(self, path: Path, *, content_type: str = "video/mp4") -> str:
        raise NotImplementedError


def square(name: str, side: int) -> Image.Image:
    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    crop = min(img.size)
    left, top = (img.width - crop) // 2, (img.height - crop) // 2
    img = img.crop((left, top, left + crop, top + crop))
    return img.resize((side, side), Image.Resampling.LANCZOS)


def cases(side: int) -> list[tuple[str, Any, dict[str, Any]]]:
    """(label, pipeline, params) for every effect; media ids refer to BenchContext.media."""
    out: list[tuple[str, Any, dict[str, Any]]] = [
        ("remove_background (png out)", RemoveBackgroundPipeline(), {"image": "person"}),
        ("remove_background (webp out)", RemoveBackgroundPipeline(),
         {"image": "person", "output_format": "webp"}),
        ("blur_background", BlurBackgroundPipeline(), {"image": "person"}),
        ("replace_background (photo)", ReplaceBackgroundPipeline(),
         {"image": "person", "background_image": "scene"}),
        ("remove_object (telea)", RemoveObjectPipeline(), {"image": "person", "mask": "mask"}),
        ("colorize (reference)", ColorizePipeline(), {"image": "grey", "reference": "scene"}),
        ("colorize (8 hints)", ColorizePipeline(), {"image": "grey", "hints": [
            {"x": side * (i + 1) // 9, "y": side // 2, "color": "#a05030"} for i in range(8)]}),
        ("correct_color", CorrectColorPipeline(), {"image": "person"}),
        ("relight", RelightPipeline(), {"image": "person"}),
    ]  # fmt: skip
    for name in FILTERS:
        out.append((f"stylize {name}", StylizePipeline(), {"image": "person", "filter": name}))
    out.append(("enhance (animevideov3)", EnhancePipeline(), {"image": "person"}))
    return out


def media(side: int) -> dict[str, Image.Image]:
    mask = Image.new("RGB", (side, side), "black")
    box = side // 16
    mask.paste((255, 255, 255), (side // 2 - box, side // 8, side // 2 + box, side // 8 + 2 * box))
    return {
        "person": square("astronaut", side),
        "scene": square("coffee", side),
        "grey": square("astronaut", side).convert("L").convert("RGB"),
        "mask": mask,
    }


def timed(pipeline: Any, params: BaseModel, ctx: BenchContext) -> float:
    start = time.perf_counter()
    pipeline.run(params, ctx)
    return time.perf_counter() - start


def bench_effects(
    side: int, runs: int, threads: int, models: ModelManager
) -> list[tuple[str, float, float]]:
    ctx = BenchContext(threads=threads, models=models, media=media(side))
    rows = []
    for label, pipeline, raw in cases(side):
        params = pipeline.Params.model_validate(raw)
        timed(pipeline, params, ctx)  # warm-up: graphs and nets load here
        samples = [timed(pipeline, params, ctx) for _ in range(runs)]
        rows.append((label, statistics.median(samples), min(samples)))
        log(f"{label}: {statistics.median(samples):.3f} s")
    return rows


def direct_tiles(net: Any, img: Image.Image, *, scale: int, tile: int) -> int:
    """The same tiles as upscale's loop, straight through ncnn; returns the tile count."""
    import ncnn

    pixels = np.asarray(img, dtype=np.uint8)
    h, w = pixels.shape[:2]
    pad = realesrgan.TILE_PAD
    count = 0
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            py0, px0 = max(y0 - pad, 0), max(x0 - pad, 0)
            py1, px1 = min(y0 + tile + pad, h), min(x0 + tile + pad, w)
            patch = pixels[py0:py1, px0:px1].transpose(2, 0, 1).astype(np.float32) / 255.0
            patch = np.ascontiguousarray(patch)
            extractor = net.create_extractor()
            extractor.input("data", ncnn.Mat(patch))
            ret, mat = extractor.extract("output")
            assert ret == 0 and np.array(mat).shape[0] == 3
            count += 1
    return count


def bench_upscale(
    side: int, tile: int, pairs: int, threads: int, models: ModelManager
) -> dict[str, float]:
    img = square("astronaut", side)
    ctx = BenchContext(threads=threads, models=models, media={"img": img})
    params = UpscaleParams(image="img", scale=2, tile=tile)
    stem, native = realesrgan.MODEL_FILES[("realesr-animevideov3", 2)]
    pipeline = UpscalePipeline()
    pipeline.run(params, ctx)  # warm-up
    tiles = ctx.steps
    quiet = BenchContext(threads=threads, models=models, media={"img": img}, encode=False)
    via, unencoded, bare = [], [], []
    for _ in range(pairs):  # interleaved, so drifting machine load hits all alike
        via.append(timed(pipeline, params, ctx))
        unencoded.append(timed(pipeline, params, quiet))
        with models.load(stem, task=UPSCALE) as net:  # the pipeline's own net, same options
            start = time.perf_counter()
            assert direct_tiles(net, img, scale=native, tile=tile) == tiles
            bare.append(time.perf_counter() - start)
    rates = {
        "tiles": tiles,
        "pipeline": tiles / statistics.median(via),
        "unencoded": tiles / statistics.median(unencoded),
        "direct": tiles / statistics.median(bare),
    }
    log(f"upscale: {rates['pipeline']:.2f} tiles/s via the pipeline, {rates['direct']:.2f} bare")
    return rates


def log(what: str) -> None:
    print(f"{time.monotonic() - STARTED:6.1f} s  {what}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="< 60 s: 1 run each, 256 px upscale")
    parser.add_argument("--side", type=int, default=1024, help="photo side in pixels")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per pipeline")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 5)
    up_side, up_tile, pairs = (256, 64, 2) if args.quick else (512, 128, 5)

    with tempfile.TemporaryDirectory() as models_dir:
        models = ModelManager(Path(models_dir), device="cpu", threads=args.threads)
        rows = bench_effects(args.side, runs, args.threads, models)
        up = bench_upscale(up_side, up_tile, pairs, args.threads, models)

    print(f"\nper pipeline, {args.side}x{args.side} photo, warm, median of {runs} run(s):\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'pipeline':<{width}}  {'median s':>9}  {'min s':>7}  {'MP/s':>6}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 6}")
    megapixels = args.side * args.side / 1e6
    for label, median, fastest in rows:
        print(f"{label:<{width}}  {median:9.3f}  {fastest:7.3f}  {megapixels / median:6.2f}")
    print(
        f"\nupscale x2 realesr-animevideov3, {up_side} px in {up_tile} px tiles "
        f"({up['tiles']:.0f} tiles), median of {pairs} interleaved pairs:\n"
    )
    print(f"{'path':<30}  {'tiles/s':>8}  {'ratio':>6}")
    print(f"{'-' * 30}  {'-' * 8}  {'-' * 6}")
    print(f"{'bare ncnn loop':<30}  {up['direct']:8.2f}  {1.0:6.3f}")
    ratio = up["pipeline"] / up["direct"]
    print(f"{'UpscalePipeline.run':<30}  {up['pipeline']:8.2f}  {ratio:6.3f}")
    ratio = up["unencoded"] / up["direct"]
    print(f"{'UpscalePipeline.run, no encode':<30}  {up['unencoded']:8.2f}  {ratio:6.3f}")
    mode = "quick" if args.quick else "full"
    print(f"\n({mode} mode, {time.monotonic() - STARTED:.0f} s, {args.threads} threads, "
          f"{os.cpu_count()} CPUs)")  # fmt: skip


if __name__ == "__main__":
    main()
