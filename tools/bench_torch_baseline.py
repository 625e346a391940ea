#!/usr/bin/env python3
"""Peer baseline for bench/gpu/cuda_kernels_bench: torch SDPA at the same attention shapes, and a
Llama-3.2-1B-shaped model with random weights through transformers generate (batch 1/16/64).

Offline tool (needs a CUDA GPU, torch and transformers; never used by CI or the C++ tests):
    python tools/bench_torch_baseline.py [--quick] [--json out.json]

Decode is timed as SDPA of one query row per sequence over a dense (not paged) KV of the same
size, so its effective GB/s counts the same K/V bytes as the CUDA bench; prefill is causal SDPA
over one prompt. Both print the fraction of the same ceilings (device copy GB/s, bf16 matmul
TFLOP/s) measured in this run.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def median_ms(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def ceilings():
    n = 1 << 30  # 2 GiB of bf16
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), reps=10)
    copy_gbps = 2 * src.numel() * 2 / (ms * 1e-3) / 1e9
    del src, dst
    m = 8192
    a = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(m, m, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b, reps=10)
    gemm_tflops = 2 * m**3 / (ms * 1e-3) / 1e12
    return copy_gbps, gemm_tflops


def sdpa(q, k, v, causal):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)


def check(out, q, k, v, causal):
    # Reference in fp32 on a slice of heads, as the C++ bench validates before timing.
    ref = sdpa(q[:, :8].float(), k[:, :2].float(), v[:, :2].float(), causal)
    err = (out[:, :8].float() - ref).norm() / ref.norm()
    assert err.item() <= 1e-2, f"SDPA disagrees with its fp32 reference: {err.item()}"
    return err.item()


def bench_attention(quick, copy_gbps, gemm_tflops, records):
    batches = [1, 64] if quick else [1, 16, 64, 256]
    ctxs = [512, 8192] if quick else [512, 2048, 8192, 32768]
    print(f"\n{'decode':8} {'batch':>6} {'ctx':>6} {'ms':>10} {'GB/s':>10} {'of copy':>9}")
    for batch in batches:
        for ctx in ctxs:
            kv_bytes = 2 * batch * ctx * KV_HEADS * HEAD_DIM * 2
            if kv_bytes > 24e9:
                continue
            q = torch.randn(batch, HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(batch, KV_HEADS, ctx, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            err = check(sdpa(q, k, v, False), q, k, v, False)
            ms = median_ms(lambda: sdpa(q, k, v, False))
            gbps = kv_bytes / (ms * 1e-3) / 1e9
            records.append(dict(kind="torch_decode", batch=batch, ctx=ctx, ms=ms, rate=gbps,
                                fraction_of_ceiling=gbps / copy_gbps, rel_err=err))
            print(f"{'':8} {batch:6d} {ctx:6d} {ms:10.4f} {gbps:10.0f} {100 * gbps / copy_gbps:8.1f}%")
            del q, k, v
    print(f"\n{'prefill':8} {'batch':>6} {'len':>6} {'ms':>10} {'TFLOP/s':>10} {'of GEMM':>9}")
    for n in ([2048] if quick else [2048, 4096, 8192, 16384]):
        q = torch.randn(1, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
        v = torch.randn_like(k)
        err = check(sdpa(q, k, v, True), q, k, v, True)
        ms = median_ms(lambda: sdpa(q, k, v, True), reps=10)
        tflops = 4 * n * n / 2 * HEADS * HEAD_DIM / (ms * 1e-3) / 1e12
        records.append(dict(kind="torch_prefill", batch=1, ctx=n, ms=ms, rate=tflops,
                            fraction_of_ceiling=tflops / gemm_tflops, rel_err=err))
        print(f"{'':8} {1:6d} {n:6d} {ms:10.3f} {tflops:10.1f} {100 * tflops / gemm_tflops:8.1f}%")


def bench_generate(quick, records):
    from transformers import LlamaConfig, LlamaForCausalLM

    # Llama-3.2-1B's shape; random weights (the numbers measure the engine, not the model).
    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                      num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                      head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16).eval()
    prompt_len, new_tokens = 128, 32 if quick else 128
    print(f"\n{'generate':8} {'batch':>6} {'prompt':>6} {'new':>5} {'s':>8} {'tok/s':>10}")
    for batch in ([1, 16] if quick else [1, 16, 64]):
        ids = torch.randint(0, cfg.vocab_size, (batch, prompt_len), device="cuda")
        mask = torch.ones_like(ids)
        kwargs = dict(attention_mask=mask, pad_token_id=0, do_sample=False)
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kwargs)  # warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
            torch.cuda.synchronize()
            secs = time.perf_counter() - t0
        tok_s = batch * new_tokens / secs
        records.append(dict(kind="torch_generate", batch=batch, ctx=prompt_len, ms=secs * 1e3,
                            rate=tok_s, fraction_of_ceiling=None, rel_err=None))
        print(f"{'':8} {batch:6d} {prompt_len:6d} {new_tokens:5d} {secs:8.2f} {tok_s:10.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--skip-generate", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    copy_gbps, gemm_tflops = ceilings()
    print(f"device {torch.cuda.get_device_name()}\nceilings: copy {copy_gbps:.0f} GB/s, "
          f"bf16 GEMM {gemm_tflops:.0f} TFLOP/s")
    records = [dict(kind="copy_ceiling", rate=copy_gbps), dict(kind="gemm_ceiling", rate=gemm_tflops)]
    bench_attention(args.quick, copy_gbps, gemm_tflops, records)
    if not args.skip_generate:
        bench_generate(args.quick, records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                           results=records), f, indent=1)


if __name__ == "__main__":
    main()
