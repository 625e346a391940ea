#!/usr/bin/env python3
"""Checks `tandem worker` (or, with --cluster, `tandem serve`) against the official `openai` Python client.

Starts `tandem worker` on 127.0.0.1 with a free port (making a tiny model first unless --model is
given), runs chat non-streaming, chat streaming with include_usage and completions streaming, prints
OK/FAIL per check, stops the worker, and exits non-zero if any check failed.

  /work/venv/bin/pip install openai
  /work/venv/bin/python tools/openai_client_check.py --tandem build/bin/tandem
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import openai


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base, proc, timeout_s=60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("worker did not become healthy in time")


def check_chat(client, model):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16, temperature=0)
    assert r.object == "chat.completion", r.object
    assert r.id.startswith("chatcmpl-"), r.id
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert isinstance(c.message.content, str) and c.message.content, c.message.content
    assert c.finish_reason in ("stop", "length"), c.finish_reason
    assert r.usage.completion_tokens <= 16 and r.usage.prompt_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    return f"{r.usage.prompt_tokens}+{r.usage.completion_tokens} tokens, finish={c.finish_reason}"


def check_chat_stream(client, model):
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=20, temperature=0,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant", chunks[0]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0] in ("stop", "length"), finish
    assert chunks[-1].choices == [] and chunks[-1].usage is not None, chunks[-1]
    assert all(ch.usage is None for ch in chunks[:-1])
    # The same request without streaming gives the same text (greedy).
    full = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=20, temperature=0)
    assert full.choices[0].message.content == text, (full.choices[0].message.content, text)
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    return f"{len(chunks)} chunks, {chunks[-1].usage.completion_tokens} tokens, text matches non-streaming"


def check_completion_stream(client, model):
    stream = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, temperature=0,
                                       stream=True, extra_body={"ignore_eos": True})
    chunks = list(stream)
    text = "".join(ch.choices[0].text for ch in chunks)
    assert chunks[-1].choices[0].finish_reason == "length", chunks[-1]
    full = client.completions.create(model=model, prompt="Once upon a time", max_tokens=12, temperature=0,
                                     extra_body={"ignore_eos": True})
    assert full.choices[0].text == text, (full.choices[0].text, text)
    assert full.usage.completion_tokens == 12
    return f"{len(chunks)} chunks, text matches non-streaming"


def check_errors(client, model):
    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
        raise AssertionError("wrong model accepted")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    try:
        client.completions.create(model=model, prompt="x", max_tokens=2, temperature=7)
        raise AssertionError("temperature 7 accepted")
    except openai.BadRequestError as e:
        assert e.body["param"] == "temperature", e.body
    return "404 model_not_found, 400 on temperature"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tandem", default="build/bin/tandem", help="the tandem executable")
    ap.add_argument("--model", help="model directory (default: a fresh `tandem make-model --preset tiny`)")
    ap.add_argument("--cluster", action="store_true",
                    help="check `tandem serve` (router + 1 prefill + 1 decode process) instead of `tandem worker`")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="tandem_openai_check_")
    model_dir = args.model
    if not model_dir:
        model_dir = os.path.join(tmp.name, "tiny")
        subprocess.run([args.tandem, "make-model", "--preset", "tiny", "--out", model_dir], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    port = free_port()
    log_path = os.path.join(tmp.name, "worker.log")
    log = open(log_path, "w")
    command = ["serve", "--num-prefill", "1", "--num-decode", "1"] if args.cluster else ["worker", "--threads", "2"]
    proc = subprocess.Popen([args.tandem] + command + ["--model", model_dir, "--host", "127.0.0.1", "--port", str(port),
                                                       "--served-model-name", "tiny-check", "--kv-cache-gib", "0.25"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    failed = 0
    try:
        wait_healthy(base, proc)
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", timeout=60, max_retries=0)
        for name, check in [("chat non-streaming", check_chat), ("chat streaming + include_usage", check_chat_stream),
                            ("completions streaming", check_completion_stream), ("errors", check_errors)]:
            try:
                print(f"OK   {name}: {check(client, 'tiny-check')}")
            except Exception as e:  # report every check, not just the first failure
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed"
        log.close()
        print(f"server stopped (exit {code}); openai {openai.__version__}")
        if failed or code != 0:
            print(open(log_path).read()[-3000:])
    sys.exit(1 if failed or code != 0 else 0)


if __name__ == "__main__":
    main()
