#!/usr/bin/env python3
"""Writes small synthetic tokenizer.json files under tests/data/tokenizers/synthetic/.

Each one exercises pipeline parts the real tokenizers do not: Split behaviors and invert, Digits,
Metaspace prepend schemes, Lowercase, NFKC/NFKD, Strip, added-token options (lstrip, rstrip,
single_word, normalized), unk fusing, ignore_merges, subword prefix / word suffix.
The models are trained with the reference `tokenizers` on tests/data/tokenizers/corpus.json, so
the files are valid for it by construction; the expected ids come from gen_tokenizer_fixtures.py.

Usage: /work/venv/bin/python tools/make_synthetic_tokenizers.py
"""
import copy
import json
import os

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "tokenizers")
OUT = os.path.join(DATA, "synthetic")

# Extra training text so that merges cover the words the corpus tests.
EXTRA = ["hello world hello world the quick brown fox", "dogs and cats", "foo bar baz"] * 5


def corpus():
    with open(os.path.join(DATA, "corpus.json"), encoding="utf-8") as f:
        return json.load(f)["strings"] + EXTRA


def train(pre, vocab_size, **trainer_kw):
    tok = Tokenizer(models.BPE(unk_token="[UNK]", **{k: v for k, v in trainer_kw.items()
                                                    if k in ("continuing_subword_prefix", "end_of_word_suffix")}))
    tok.pre_tokenizer = pre
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"], show_progress=False,
                                  **trainer_kw)
    tok.train_from_iterator(corpus(), trainer)
    return json.loads(tok.to_str())


def with_byte_fallback(model):
    """Adds <0x00>..<0xFF> after the trained vocab and turns byte_fallback on."""
    vocab = model["vocab"]
    next_id = max(vocab.values()) + 1
    for b in range(256):
        name = "<0x%02X>" % b
        if name not in vocab:
            vocab[name] = next_id
            next_id += 1
    model["byte_fallback"] = True
    return model


def added(id_, content, special=False, lstrip=False, rstrip=False, single_word=False, normalized=None):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": (not special) if normalized is None else normalized,
            "special": special}


def document(model, normalizer, pre_tokenizer, decoder, added_tokens=(), post_processor=None):
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": list(added_tokens), "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer, "post_processor": post_processor, "decoder": decoder,
            "model": model}


def next_id(model, k=0):
    return max(model["vocab"].values()) + 1 + k


def main():
    os.makedirs(OUT, exist_ok=True)
    docs = {}

    # 1. Split behaviors, Digits, NFKC + Lowercase, byte fallback, added-token options.
    base = train(pre_tokenizers.Whitespace(), 600)["model"]
    m = with_byte_fallback(copy.deepcopy(base))
    m["fuse_unk"] = True
    n = next_id(m)
    docs["split_lowercase"] = document(
        m,
        {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"\s+"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": r"[,;.]"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Digits", "individual_digits": False},
        ]},
        {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        [added(n, "[CLS]", special=True), added(n + 1, "[SEP]", special=True),
         added(n + 2, "<mask>", lstrip=True, rstrip=True, single_word=True),
         added(n + 3, "hello world"), added(n + 4, "<s>", special=True, normalized=False)],
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [n], "tokens": ["[CLS]"]},
                            "[SEP]": {"id": "[SEP]", "ids": [n + 1], "tokens": ["[SEP]"]}}})

    # 2. Inverted / contiguous splits, individual digits, WhitespaceSplit, NFKD, no unk fusing.
    m = copy.deepcopy(base)
    m["fuse_unk"] = False
    docs["split_invert"] = document(
        m,
        {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Strip", "strip_left": True, "strip_right": False}]},
        {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"Regex": r"[A-Za-z]+"}, "behavior": "Contiguous", "invert": True},
            {"type": "Split", "pattern": {"Regex": r"\p{P}"}, "behavior": "Isolated", "invert": False},
            {"type": "Digits", "individual_digits": True},
        ]},
        None,
        [added(next_id(m), "<|end|>", special=True, rstrip=True), added(next_id(m, 1), "ing", single_word=True)])

    # 3-5. Metaspace with each prepend scheme.
    meta = train(pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True), 600)["model"]
    for name, scheme, split, normalizer in [
            ("metaspace_first", "first", True,
             {"type": "Sequence", "normalizers": [{"type": "Strip", "strip_left": False, "strip_right": True},
                                                   {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]}),
            ("metaspace_never", "never", False, {"type": "NFC"}),
            ("metaspace_always", "always", True, {"type": "NFKC"})]:
        m = with_byte_fallback(copy.deepcopy(meta))
        m["fuse_unk"] = True
        docs[name] = document(
            m, normalizer,
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split},
            {"type": "Sequence", "decoders": [{"type": "ByteFallback"},
                                              {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}]},
            [added(next_id(m), "<sep>", special=True), added(next_id(m, 1), "<eot>", rstrip=True, normalized=False),
             added(next_id(m, 2), "<s>", special=True, lstrip=True, normalized=False)])

    # 6. GPT-2 style byte level with add_prefix_space and ignore_merges.
    bl = train(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), 800,
               initial_alphabet=pre_tokenizers.ByteLevel.alphabet())["model"]
    bl["ignore_merges"] = True
    bl["unk_token"] = None
    docs["bytelevel_prefix"] = document(
        bl, None,
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        [added(next_id(bl), "<|endoftext|>", special=True), added(next_id(bl, 1), "<|im_start|>", special=True),
         added(next_id(bl, 2), " custom", lstrip=False, rstrip=False)],
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})

    # 7. Subword prefix and end-of-word suffix, BPEDecoder, Lowercase + StripAccents.
    sw = train(pre_tokenizers.Whitespace(), 700, continuing_subword_prefix="##", end_of_word_suffix="</w>")["model"]
    docs["subword_suffix"] = document(
        sw,
        {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
        {"type": "Whitespace"},
        {"type": "BPEDecoder", "suffix": "</w>"},
        [added(next_id(sw), "[PAD]", special=True)])

    for name, doc in docs.items():
        text = json.dumps(doc, ensure_ascii=False, indent=1)
        Tokenizer.from_str(text)  # the reference must accept it
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        with open(os.path.join(OUT, name, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print("wrote", os.path.join(OUT, name, "tokenizer.json"), len(text), "bytes")


if __name__ == "__main__":
    main()
