#!/usr/bin/env python3
"""Single-thread encode throughput of the reference Hugging Face `tokenizers`, on exactly the text
and chunks bench/tokenizer_bench.cc uses (fixture corpus joined with "\\n", repeated to --mb MB,
cut into chunks of whole lines of at least 4096 bytes; or --input files). Each chunk is encoded
with Tokenizer.encode(chunk, add_special_tokens=True) in a Python loop (no encode_batch), with
RAYON_NUM_THREADS=1. One warm-up pass, best of --repeat.

Usage: /work/venv/bin/python tools/bench_tokenizers_ref.py [--mb 4] [--input F ...]
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", action="append",
                    help="NAME=PATH/tokenizer.json (default: llama2, qwen3, tandem-bpe8k)")
    ap.add_argument("--input", action="append", help="text files instead of the repeated corpus")
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    specs = args.tokenizer or [
        "llama2=/work/shared/data/tokenizers/llama2/tokenizer.json",
        "qwen3=/work/shared/data/tokenizers/qwen3/tokenizer.json",
        "tandem-bpe8k=" + os.path.join(ROOT, "model/assets/tokenizer.json")]
    if args.input:
        text = "".join(open(f, encoding="utf-8", errors="replace").read() for f in args.input)
    else:
        with open(os.path.join(ROOT, "tests/data/tokenizers/corpus.json"), encoding="utf-8") as f:
            once = "".join(s + "\n" for s in json.load(f)["strings"])
        # Same stopping rule as the C++ bench: UTF-8 bytes >= mb * 1e6.
        once_bytes = len(once.encode("utf-8"))
        n = 0
        while n * once_bytes < args.mb * 1e6:
            n += 1
        text = once * n
    # Python's splitlines splits on more than "\n"; split the bytes on b"\n" only, as C++ does.
    data = text.encode("utf-8")
    chunks, cur = [], bytearray()
    start = 0
    while start < len(data):
        nl = data.find(b"\n", start)
        end = len(data) if nl < 0 else nl + 1
        cur += data[start:end]
        start = end
        if len(cur) >= 4096:
            chunks.append(bytes(cur).decode("utf-8"))
            cur = bytearray()
    if cur:
        chunks.append(bytes(cur).decode("utf-8"))
    print(f"text: {len(data) / 1e6:.2f} MB in {len(chunks)} chunks; tokenizers {tokenizers.__version__}")
    print(f"{'tokenizer':<14} {'MB/s':>10} {'tokens/s':>12} {'tokens':>10}")
    for spec in specs:
        name, path = spec.split("=", 1)
        if not os.path.exists(path):
            print(f"{name:<14} skipped: {path} not found")
            continue
        tok = Tokenizer.from_file(path)
        tokens = sum(len(tok.encode(c, add_special_tokens=True).ids) for c in chunks)  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for c in chunks:
                tok.encode(c, add_special_tokens=True)
            best = min(best, time.perf_counter() - t0)
        print(f"{name:<14} {len(data) / 1e6 / best:>10.2f} {tokens / best:>12.0f} {tokens:>10}")


if __name__ == "__main__":
    main()
