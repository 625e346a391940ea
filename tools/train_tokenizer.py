#!/usr/bin/env python3
"""Trains Tandem's built-in byte-level BPE tokenizer (model/assets/tokenizer*.json).

Corpus (not committed; rebuilt from files every Debian machine with python3 has):
  1. /usr/share/common-licenses/*  (the licence texts of base-files; symlinks de-duplicated)
  2. the .py files of the Debian python3 standard library, /usr/lib/python3.X, excluding
     test/, tests/, idlelib/, site-packages/, dist-packages/ and the machine-specific
     _sysconfigdata*.py (PSF licence; the text only shapes the merges, none of it is stored)
Files are read in sorted path order and concatenated (one "\n" between files) until
--max-bytes (default 8 MB: 6 MB yields only ~27.5k merges with min_frequency 2) is reached,
so the corpus depends only on the Debian package versions (the committed artefacts were made
on Debian 12.11 with python3.11: 520 files, 7,773,655 bytes).

The tokenizer mirrors the Llama 3 / GPT-2 recipe:
  normalizer NFC; pre-tokenizer ByteLevel (GPT-2 regex, no prefix space); decoder ByteLevel;
  BPE with the 256 byte symbols as the alphabet and no <unk> (every byte string encodes);
  post-processor Sequence[ByteLevel(trim_offsets=False), TemplateProcessing] which prepends
  <|begin_of_text|> when add_special_tokens=True.
Special tokens take ids 0..4: <|begin_of_text|>, <|end_of_text|>, <|im_start|>, <|im_end|>,
<|pad|>. The chat template is ChatML and starts with {{ bos_token }}: transformers (and
Tandem's router) encode a rendered chat with add_special_tokens=False, so BOS appears exactly
once whichever path is used. eos_token is <|im_end|> (the end of an assistant turn).

Training is deterministic: re-running on the same corpus reproduces the files byte for byte
(checked by training twice with --check-determinism).

Usage: /work/venv/bin/python tools/train_tokenizer.py [--out model/assets] [--vocab-size 32000]
"""
import argparse
import glob
import hashlib
import json
import os
import sys
import tempfile

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
BOS, EOT, IM_START, IM_END, PAD = SPECIAL_TOKENS

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

EXCLUDED_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}


def debian_stdlib_dir():
    candidates = sorted(glob.glob("/usr/lib/python3.[0-9]*"))
    candidates = [c for c in candidates if os.path.isfile(os.path.join(c, "os.py"))]
    if not candidates:
        sys.exit("error: no Debian python3 standard library under /usr/lib/python3.X")
    # Highest minor version; sort numerically so 3.13 beats 3.9.
    return max(candidates, key=lambda p: int(p.rsplit(".", 1)[1]))


def corpus_files(stdlib_dir):
    files = []
    seen = set()
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        real = os.path.realpath(path)
        if os.path.isfile(real) and real not in seen:
            seen.add(real)
            files.append(real)
    py_files = []
    for root, dirs, names in os.walk(stdlib_dir):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
        for name in names:
            if name.endswith(".py") and not name.startswith("_sysconfigdata"):
                py_files.append(os.path.join(root, name))
    files.extend(sorted(py_files))
    return files


def build_corpus(stdlib_dir, max_bytes):
    parts = []
    total = 0
    used = 0
    for path in corpus_files(stdlib_dir):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        data_len = len(text.encode("utf-8")) + 1
        if total + data_len > max_bytes:
            break
        parts.append(text)
        total += data_len
        used += 1
    return "\n".join(parts), used


def make_tokenizer(corpus_path, vocab_size):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train([corpus_path], trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{BOS}:0 $A:0",
            pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
            special_tokens=[(BOS, bos_id)],
        ),
    ])
    return tok


def tokenizer_config(tok, model_max_length):
    added = {}
    for token in SPECIAL_TOKENS:
        added[str(tok.token_to_id(token))] = {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": BOS,
        "eos_token": IM_END,
        "pad_token": PAD,
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def train_to_text(corpus_path, vocab_size):
    tok = make_tokenizer(corpus_path, vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "tokenizer.json")
        tok.save(path, pretty=False)
        with open(path, "r", encoding="utf-8") as f:
            return tok, f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "model", "assets"))
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--fallback-vocab-size", type=int, default=8192)
    ap.add_argument("--max-bytes", type=int, default=8_000_000)
    ap.add_argument("--model-max-length", type=int, default=2048)
    ap.add_argument("--check-determinism", action="store_true", help="train twice and compare")
    args = ap.parse_args()

    stdlib_dir = debian_stdlib_dir()
    corpus, used = build_corpus(stdlib_dir, args.max_bytes)
    print(f"corpus: {used} files, {len(corpus.encode('utf-8'))} bytes "
          f"(common-licenses + {stdlib_dir}), sha256 "
          f"{hashlib.sha256(corpus.encode('utf-8')).hexdigest()[:16]}")

    with tempfile.TemporaryDirectory() as tmp:
        corpus_path = os.path.join(tmp, "corpus.txt")
        with open(corpus_path, "w", encoding="utf-8") as f:
            f.write(corpus)
        tok, text = train_to_text(corpus_path, args.vocab_size)
        if tok.get_vocab_size() != args.vocab_size:
            print(f"corpus supports only {tok.get_vocab_size()} tokens; "
                  f"falling back to {args.fallback_vocab_size}")
            tok, text = train_to_text(corpus_path, args.fallback_vocab_size)
            if tok.get_vocab_size() != args.fallback_vocab_size:
                sys.exit(f"error: even {args.fallback_vocab_size} tokens not reached")
        if args.check_determinism:
            _, again = train_to_text(corpus_path, tok.get_vocab_size())
            if again != text:
                sys.exit("error: training is not deterministic")
            print("determinism: two trainings gave identical tokenizer.json")

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    config = tokenizer_config(tok, args.model_max_length)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8",
              newline="\n") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}/tokenizer.json (vocab {tok.get_vocab_size()}) and tokenizer_config.json")
    print("special ids: " + ", ".join(f"{t}={tok.token_to_id(t)}" for t in SPECIAL_TOKENS))


if __name__ == "__main__":
    main()
