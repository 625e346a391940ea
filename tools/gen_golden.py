#!/usr/bin/env python3
"""Generates the golden reference fixtures under tests/data/golden/ with Hugging Face transformers.

Three tiny checkpoints, each exercising a different corner of the Llama family:
  llama3_gqa   LlamaForCausalLM, GQA 4:1 (8 heads, 2 kv heads), head_dim 16 != hidden/heads,
               rope_type llama3 (factor 8, original context 32: one frequency unchanged, one
               smoothly interpolated, six divided by 8), untied, BF16, two shards + index.
  qwen2_bias   Qwen2ForCausalLM, q/k/v biases, tied embeddings, rope_theta 1e6, GQA 3:1
               (hidden 48, 3 heads of 16, 1 kv head), F32, one file.
  mistral_mha  MistralForCausalLM, multi-head (kv heads = heads = 2), head_dim 32, no rope
               scaling, sliding_window null, F16, one file.
All have vocab 512 and 2 layers, and stay under ~0.5 MB with their logits.

For each: weights are drawn from a seeded torch.Generator with larger-than-default scales (logits
std ~6, so greedy decoding has clear top-1/top-2 gaps), cast to the stored dtype, saved with
save_pretrained, and then *reloaded from disk* in float32 with eager attention, so the reference
is exactly the stored weights computed in float32. Each prompt is drawn from a seeded
generator, retrying (next seed) until every greedy step's top-1/top-2 logit gap is at least
MIN_GAP, so that no near-tie can make a correct implementation disagree with the reference,
and the continuation has at least MIN_DISTINCT distinct tokens (a continuation stuck on one
token would hide decode-path bugs).
golden.json records the prompts, the
per-position logits files, a 32-token greedy continuation and its per-step top-2 gaps
(see tests/data/golden/README.md).

Deterministic: one CPU thread, deterministic algorithms, fixed seeds; re-running reproduces
every file bit for bit with the same torch/transformers versions (recorded in golden.json).
Run with --check to regenerate into a temporary directory and compare with the committed files.

Usage: /work/venv/bin/python tools/gen_golden.py [--out tests/data/golden] [--check]
"""
import argparse
import filecmp
import json
import math
import os
import platform
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import torch
import transformers
from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

VOCAB = 512
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
PROMPT_LENGTHS = [1, 5, 17, 40]  # crosses the 16-token KV block boundaries
NEW_TOKENS = 32
LOGIT_GAIN = 6.0  # lm_head std * sqrt(hidden): the std of the logits
MIN_GAP = 0.1  # smallest accepted greedy top-1/top-2 logit gap
MIN_DISTINCT = 8  # fewest distinct tokens accepted in a greedy continuation (no fixed point)
TOP_K = 5  # per greedy step, the top-k ids and logits are recorded
MAX_PROMPT_TRIES = 1000


def specs():
    common = dict(vocab_size=VOCAB, rms_norm_eps=1e-5, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
                  pad_token_id=PAD_ID, attention_dropout=0.0)
    return [
        dict(name="llama3_gqa", seed=1001, dtype=torch.bfloat16, shard_size="200KB",
             cls=LlamaForCausalLM,
             config=LlamaConfig(
                 hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=8, num_key_value_heads=2, head_dim=16,
                 max_position_embeddings=256, tie_word_embeddings=False,
                 rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                                      low_freq_factor=1.0, high_freq_factor=4.0,
                                      original_max_position_embeddings=32),
                 **common)),
        # Tied embeddings make a random model repeat its input token (e_t . e_t dominates the
        # logits); a final norm with random signs and stronger residual branches break that.
        dict(name="qwen2_bias", seed=2002, dtype=torch.float32, shard_size=None,
             cls=Qwen2ForCausalLM, residual_gain=2.0, signed_final_norm=True,
             config=Qwen2Config(
                 hidden_size=48, intermediate_size=144, num_hidden_layers=2,
                 num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=512,
                 tie_word_embeddings=True, use_sliding_window=False, sliding_window=None,
                 rope_parameters=dict(rope_type="default", rope_theta=1000000.0),
                 **common)),
        dict(name="mistral_mha", seed=3003, dtype=torch.float16, shard_size=None,
             cls=MistralForCausalLM,
             config=MistralConfig(
                 hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                 num_attention_heads=2, num_key_value_heads=2, head_dim=32,
                 max_position_embeddings=512, tie_word_embeddings=False, sliding_window=None,
                 rope_parameters=dict(rope_type="default", rope_theta=10000.0),
                 **common)),
    ]


def init_weights(model, seed, residual_gain=1.0, signed_final_norm=False):
    """Scales chosen so that activations stay O(1) and logits have std ~6."""
    g = torch.Generator().manual_seed(seed)
    tied = model.config.tie_word_embeddings
    hidden = model.config.hidden_size
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                w = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
                if signed_final_norm and name == "model.norm.weight":
                    w = w * (2 * torch.randint(0, 2, p.shape, generator=g) - 1)
                p.copy_(w)
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name == "model.embed_tokens.weight":
                # Tied: this is also the lm_head, so it sets the logit scale.
                std = LOGIT_GAIN / math.sqrt(hidden) if tied else 1.0
                p.copy_(std * torch.randn(p.shape, generator=g))
            elif name == "lm_head.weight":
                p.copy_(LOGIT_GAIN / math.sqrt(hidden) * torch.randn(p.shape, generator=g))
            else:
                gain = residual_gain if ("o_proj" in name or "down_proj" in name) else 1.0
                p.copy_(gain * torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))


def draw_prompt(seed, length):
    g = torch.Generator().manual_seed(seed)
    # Ids >= 3 so no prompt contains PAD/BOS/EOS.
    return torch.randint(3, VOCAB, (length,), generator=g).tolist()


def manual_greedy(model, prompt):
    """Greedy decoding by full recomputation, so each step's logits are unmasked (no EOS
    suppression) and the gap is that of the plain forward pass."""
    ids = list(prompt)
    tokens, gaps, top_ids, top_logits = [], [], [], []
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, TOP_K)
        tok = int(top.indices[0])
        tokens.append(tok)
        gaps.append(float(top.values[0] - top.values[1]))
        top_ids.append([int(i) for i in top.indices])
        top_logits.append([float(v) for v in top.values])
        ids.append(tok)
    return tokens, gaps, top_ids, top_logits


def build(spec, out_dir):
    name = spec["name"]
    model_dir = os.path.join(out_dir, name)
    if os.path.exists(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)

    torch.manual_seed(spec["seed"])
    config = spec["config"]
    config._attn_implementation = "eager"
    model = spec["cls"](config).to(torch.float32).eval()
    init_weights(model, spec["seed"], spec.get("residual_gain", 1.0),
                 spec.get("signed_final_norm", False))
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, do_sample=False)
    model = model.to(spec["dtype"])
    kwargs = {}
    if spec["shard_size"]:
        kwargs["max_shard_size"] = spec["shard_size"]
    model.save_pretrained(model_dir, **kwargs)
    del model

    # The reference: the saved (rounded) weights, computed in float32.
    model = spec["cls"].from_pretrained(model_dir, dtype=torch.float32,
                                        attn_implementation="eager").eval()
    entries = []
    for i, length in enumerate(PROMPT_LENGTHS):
        for attempt in range(MAX_PROMPT_TRIES):
            prompt_seed = spec["seed"] * 1000 + i * 100000 + attempt
            prompt = draw_prompt(prompt_seed, length)
            tokens, gaps, top_ids, top_logits = manual_greedy(model, prompt)
            if min(gaps) >= MIN_GAP and EOS_ID not in tokens and len(set(tokens)) >= MIN_DISTINCT:
                break
        else:
            sys.exit(f"{name}: no prompt of length {length} with greedy gaps >= {MIN_GAP} "
                     f"and >= {MIN_DISTINCT} distinct tokens")
        with torch.no_grad():
            logits = model(torch.tensor([prompt])).logits[0].to(torch.float32).contiguous()
        assert logits.shape == (len(prompt), VOCAB)
        fname = f"logits_{i}.bin"
        logits.numpy().astype("<f4").tofile(os.path.join(model_dir, fname))

        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), do_sample=False,
                                 max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
        generated = out[0, len(prompt):].tolist()
        if generated != tokens:
            sys.exit(f"{name}: prompt {i}: generate() {generated} != recomputed greedy {tokens}")
        last = logits[-1]
        top = torch.topk(last, 2).values
        entries.append({
            "prompt_seed": prompt_seed,
            "token_ids": prompt,
            "logits_file": fname,
            "logits_shape": [len(prompt), VOCAB],
            "logits_dtype": "float32",
            "logits_abs_max": float(logits.abs().max()),
            "greedy": {
                "max_new_tokens": NEW_TOKENS,
                "token_ids": tokens,
                "top2_gap": gaps,
                f"top{TOP_K}_ids": top_ids,
                f"top{TOP_K}_logits": top_logits,
                "min_top2_gap": min(gaps),
            },
            "last_position_top2_gap": float(top[0] - top[1]),
        })

    cfg = model.config
    golden = {
        "name": name,
        "architecture": type(model).__name__,
        "stored_dtype": str(spec["dtype"]).replace("torch.", ""),
        "compute_dtype": "float32",
        "attn_implementation": "eager",
        "vocab_size": VOCAB,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
        "tie_word_embeddings": cfg.tie_word_embeddings,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "seed": spec["seed"],
        "min_greedy_top2_gap": MIN_GAP,
        "min_greedy_distinct_tokens": MIN_DISTINCT,
        "prompts": entries,
        "generator": {
            "script": "tools/gen_golden.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    with open(os.path.join(model_dir, "golden.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(to_json(golden) + "\n")

    files = sorted(os.listdir(model_dir))
    total = sum(os.path.getsize(os.path.join(model_dir, f)) for f in files)
    gaps = [e["greedy"]["min_top2_gap"] for e in entries]
    print(f"{name}: {len(files)} files, {total} bytes; min greedy top-2 gap per prompt "
          + ", ".join(f"{g:.3f}" for g in gaps))


def to_json(v, indent=0):
    """JSON with one key per line but lists of scalars (and of such lists) kept on one line,
    so that the fixture is readable and small."""
    pad = "  " * (indent + 1)
    if isinstance(v, dict):
        items = [f"{pad}{json.dumps(k)}: {to_json(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(v, list) and any(isinstance(x, dict) for x in v):
        items = [pad + to_json(x, indent + 1) for x in v]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(v, separators=(", ", ": "))


def compare_dirs(a, b):
    """True when every model folder of `a` has exactly the same files, byte for byte, in `b`."""
    same = True
    for name in sorted(os.listdir(a)):
        fa = set(os.listdir(os.path.join(a, name)))
        fb = set(os.listdir(os.path.join(b, name))) if os.path.isdir(os.path.join(b, name)) else set()
        for f in sorted(fa ^ fb):
            print(f"only in one of them: {name}/{f}")
            same = False
        for f in sorted(fa & fb):
            if not filecmp.cmp(os.path.join(a, name, f), os.path.join(b, name, f), shallow=False):
                print(f"differs: {name}/{f}")
                same = False
    return same


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "data", "golden"))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with --out")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            for spec in specs():
                build(spec, tmp)
            ok = compare_dirs(tmp, args.out)
            print("reproduced bit-exactly" if ok else "NOT reproduced")
            sys.exit(0 if ok else 1)
    os.makedirs(args.out, exist_ok=True)
    for spec in specs():
        build(spec, args.out)


if __name__ == "__main__":
    main()
