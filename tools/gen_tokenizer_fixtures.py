#!/usr/bin/env python3
"""Writes tests/data/tokenizers/<name>/expected.json: what the reference Hugging Face `tokenizers`
library produces for the corpus tests/data/tokenizers/corpus.json, so that the C++ tokenizer
(tokenizer/) can be checked byte for byte without Python.

For every tokenizer and corpus string: ids with and without add_special_tokens, and the decode of
the ids with skip_special_tokens false and true. Also: invalid UTF-8 inputs (as hex; the reference
sees bytes.decode("utf-8", "replace")), and decodes of random id sequences (fixed seed).

Usage:
  /work/venv/bin/python tools/gen_tokenizer_fixtures.py            # the default set below
  /work/venv/bin/python tools/gen_tokenizer_fixtures.py DIR [DIR...] [--name NAME]

Default set: /work/shared/data/tokenizers/{llama2,qwen3}, every folder of
tests/data/tokenizers/synthetic/, and model/assets/tokenizer.json as "tandem-bpe8k" when it exists.
A tokenizer's location is recorded relative to a root the C++ test knows:
"shared" (TANDEM_SHARED_DIR), "test_data" (TANDEM_TEST_DATA_DIR) or "repo" (the source tree).
"""
import argparse
import json
import os
import random

import tokenizers
from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATA = os.path.join(ROOT, "tests", "data")
SHARED = os.environ.get("TANDEM_SHARED_DIR", "/work/shared")
OUT_DIR = os.path.join(TEST_DATA, "tokenizers")


def locate(path):
    """(root name, path relative to it) for a tokenizer.json path."""
    path = os.path.abspath(path)
    for root_name, root in (("test_data", TEST_DATA), ("shared", SHARED), ("repo", ROOT)):
        root = os.path.abspath(root)
        if path.startswith(root + os.sep):
            return root_name, os.path.relpath(path, root)
    raise SystemExit(f"{path} is not under the shared dir, tests/data or the repository")


def random_id_sequences(tok, rng, count=40):
    limit = max(tok.get_vocab(with_added_tokens=True).values()) + 1
    specials = sorted(t.content for t in tok.get_added_tokens_decoder().values() if t.special)
    special_ids = [tok.token_to_id(s) for s in specials]
    seqs = []
    for i in range(count):
        n = rng.randint(1, 12)
        seq = [rng.randrange(limit) for _ in range(n)]
        if special_ids and i % 3 == 0:
            seq.insert(rng.randrange(len(seq) + 1), rng.choice(special_ids))
        if i % 10 == 0:
            seq.append(limit + 5)  # an id outside the vocab: the reference skips it
        seqs.append(seq)
    # Byte tokens that form partial and complete UTF-8 sequences, when the vocab has them.
    byte_ids = [tok.token_to_id("<0x%02X>" % b) for b in (0xE3, 0x81, 0x82, 0xF0, 0x9F, 0x98, 0x80)]
    if all(b is not None for b in byte_ids):
        e3, x81, x82, f0, x9f, x98, x80 = byte_ids
        seqs += [[e3, x81, x82], [e3, x81], [x81, x82], [f0, x9f, x98, x80, e3], [e3] * 3]
    return seqs


def build(name, path):
    tok = Tokenizer.from_file(path)
    with open(os.path.join(OUT_DIR, "corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    cases = []
    for text in corpus["strings"]:
        ids = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    invalid = []
    for h in corpus["invalid_utf8_hex"]:
        text = bytes.fromhex(h).decode("utf-8", errors="replace")
        invalid.append({"hex": h, "replaced": text, "ids": tok.encode(text, add_special_tokens=True).ids})
    rng = random.Random(20240601)
    decodes = []
    for seq in random_id_sequences(tok, rng):
        decodes.append({"ids": seq, "text": tok.decode(seq, skip_special_tokens=False),
                        "text_skip_special": tok.decode(seq, skip_special_tokens=True)})
    root, rel = locate(path)
    return {
        "name": name,
        "tokenizer_root": root,
        "tokenizer_path": rel,
        "reference": f"tokenizers {tokenizers.__version__}",
        "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases,
        "invalid_utf8": invalid,
        "decodes": decodes,
    }


def default_targets():
    targets = [("llama2", os.path.join(SHARED, "data/tokenizers/llama2/tokenizer.json")),
               ("qwen3", os.path.join(SHARED, "data/tokenizers/qwen3/tokenizer.json"))]
    synth = os.path.join(OUT_DIR, "synthetic")
    if os.path.isdir(synth):
        for d in sorted(os.listdir(synth)):
            p = os.path.join(synth, d, "tokenizer.json")
            if os.path.exists(p):
                targets.append((f"synthetic/{d}", p))
    assets = os.path.join(ROOT, "model", "assets", "tokenizer.json")
    if os.path.exists(assets):
        targets.append(("tandem-bpe8k", assets))
    return targets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", help="tokenizer folders (or tokenizer.json files)")
    ap.add_argument("--name", action="append", help="fixture name for each DIR (default: folder name)")
    args = ap.parse_args()
    if args.dirs:
        names = args.name or []
        targets = []
        for i, d in enumerate(args.dirs):
            path = d if d.endswith(".json") else os.path.join(d, "tokenizer.json")
            default = os.path.basename(os.path.dirname(os.path.abspath(path)))
            targets.append((names[i] if i < len(names) else default, path))
    else:
        targets = default_targets()
    for name, path in targets:
        data = build(name, path)
        out = os.path.join(OUT_DIR, name, "expected.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="ascii") as f:
            json.dump(data, f, ensure_ascii=True, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: {len(data['cases'])} strings, {len(data['decodes'])} decodes -> {os.path.relpath(out, ROOT)}")


if __name__ == "__main__":
    main()
