#!/usr/bin/env python3
"""Writes the chat-template fixtures under tests/data/chat_templates/ from the reference.

The reference is transformers' tokenizer.apply_chat_template(..., tokenize=False): the Qwen3
tokenizer directory is loaded offline with AutoTokenizer, and every other template is rendered
through that same tokenizer with chat_template=<text>, so the jinja environment, the message
normalisation and the special-token variables are exactly transformers'. The variables each
render saw ({**tokenizer.special_tokens_map, **kwargs}) are stored as "extra" next to the
expected text, so the C++ test passes the same inputs.

Also writes jinja_cases.json: small templates rendered with transformers' compiled jinja
environment, for the semantics (whitespace control, Python printing, filters, errors) that
chat templates depend on.

Usage: /work/venv/bin/python tools/gen_chat_template_fixtures.py [--shared /work/shared]
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jinja2  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "chat_templates"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}}},
    },
}

SPECIAL = "Quotes ' and \" and back\\slash, tabs\tand\nnewlines\n\n  indented; unicode: héllo wörld 日本語 🚀; " \
          "template-ish {{ not_a_var }} {% if %} and <|im_start|> tokens"

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    "multi_turn": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "  Why did the chicken cross the road?  "},
        {"role": "user", "content": "Why?"},
    ],
    "special_chars": [
        {"role": "system", "content": SPECIAL},
        {"role": "user", "content": SPECIAL},
        {"role": "assistant", "content": "Réponse: «ça va» — 😀\r\nwith CRLF and trailing spaces   "},
        {"role": "user", "content": "\n\nleading newlines and trailing\n\n"},
    ],
    "empty_content": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": " "}],
    "not_alternating": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
    "tool_calls": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris and Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call12345", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
            {"id": "call67890", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Zürich\"}"}},
        ]},
        {"role": "tool", "tool_call_id": "call12345", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        {"role": "tool", "tool_call_id": "call67890", "content": "14 degrees, \"rain\""},
        {"role": "assistant", "content": "Paris: 21°C and clear. Zürich: 14°C with rain."},
        {"role": "user", "content": "Thanks! Now search for umbrellas."},
    ],
    "single_tool_call": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "abcdefghi", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
        ]},
        {"role": "tool", "tool_call_id": "abcdefghi", "content": "-3 and snow"},
    ],
    # content null is dropped by apply_chat_template, so templates see it as undefined.
    "tool_call_null_content": [
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "zyxwvutsr", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
        ]},
        {"role": "tool", "tool_call_id": "zyxwvutsr", "content": "sunny"},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 17 prime?"},
        {"role": "assistant", "content": "Yes, 17 is prime.", "reasoning_content": "\nCheck divisors 2, 3: none.\n"},
        {"role": "user", "content": "And 21?"},
        {"role": "assistant", "content": "<think>\n21 = 3 * 7\n</think>\n\nNo, 21 = 3 × 7."},
        {"role": "user", "content": "And 23?"},
    ],
    "reasoning_last": [
        {"role": "user", "content": "Think first."},
        {"role": "assistant", "content": "Done.", "reasoning": "Thinking under the 'reasoning' key."},
    ],
    "multimodal": [
        {"role": "system", "content": [{"type": "text", "text": "System as parts."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  Describe this image.  "}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "Part one"}, {"type": "text", "text": "part two"}]},
    ],
    "named": [
        {"role": "user", "content": "Hi, I'm Bob?", "name": "bob"},
        {"role": "assistant", "content": "Hello Bob."},
        {"role": "user", "content": "Hello again, what's 'abc'?"},
    ],
}

# (template, conversations, options): options add tools / extra kwargs to some renders.
TEMPLATES = {
    "chatml": ["single_user", "system_user", "multi_turn", "special_chars", "empty_content", "not_alternating"],
    "llama2": ["single_user", "system_user", "multi_turn", "special_chars", "empty_content", "not_alternating"],
    "llama3": ["single_user", "system_user", "multi_turn", "special_chars", "single_tool_call", "tool_calls"],
    "mistral": ["single_user", "system_user", "multi_turn", "special_chars", "not_alternating", "single_tool_call",
                "tool_calls"],
    "gemma": ["single_user", "system_user", "multi_turn", "special_chars", "multimodal", "not_alternating"],
    "zephyr": ["single_user", "system_user", "multi_turn", "special_chars", "empty_content"],
    "deepseek": ["single_user", "system_user", "multi_turn", "special_chars", "tool_calls", "tool_call_null_content",
                 "reasoning"],
    "features": ["single_user", "multi_turn", "special_chars", "multimodal", "named", "tool_calls"],
    "qwen3": ["single_user", "system_user", "multi_turn", "special_chars", "tool_calls", "single_tool_call",
              "tool_call_null_content",
              "reasoning", "reasoning_last", "named"],
    "tandem_builtin": ["single_user", "system_user", "multi_turn", "special_chars", "empty_content"],
}
WITH_TOOLS = {"llama3", "mistral", "qwen3", "deepseek"}
TOKENS = {
    "chatml": {}, "qwen3": {}, "tandem_builtin": {},
    "llama2": {"bos_token": "<s>", "eos_token": "</s>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "gemma": {"bos_token": "<bos>", "eos_token": "<eos>"},
    "zephyr": {"bos_token": "<s>", "eos_token": "</s>"},
    "deepseek": {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>"},
    "features": {"bos_token": "<s>", "eos_token": "</s>"},
}


def render(tok, template, messages, tools, add_gen, kwargs):
    extra = {**tok.special_tokens_map, **kwargs}
    case = {"messages": messages, "tools": tools, "add_generation_prompt": add_gen, "extra": extra}
    try:
        case["expected"] = tok.apply_chat_template(messages, tools=tools, chat_template=template,
                                                   add_generation_prompt=add_gen, tokenize=False, **kwargs)
    except jinja2.TemplateError as e:
        case["error"] = str(e)
        case["error_type"] = type(e).__name__
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        case["error"] = str(e)
        case["error_type"] = type(e).__name__
    return case


def template_cases(tok, name, template):
    cases = []
    for conv_name in TEMPLATES[name]:
        conv = CONVERSATIONS[conv_name]
        variants = [(None, False, {}), (None, True, {})]
        if name in WITH_TOOLS and conv_name in ("tool_calls", "single_tool_call", "system_user",
                                                         "tool_call_null_content"):
            variants.append(([WEATHER_TOOL, SEARCH_TOOL], True, {}))
        if name == "qwen3" and conv_name in ("reasoning", "single_user"):
            variants.append((None, True, {"enable_thinking": False}))
            variants.append((None, True, {"enable_thinking": True}))
        for tools, add_gen, kwargs in variants:
            case = render(tok, template, conv, tools, add_gen, {**TOKENS[name], **kwargs})
            case["name"] = f"{conv_name}{'_tools' if tools else ''}{'_gen' if add_gen else ''}" + \
                "".join(f"_{k}_{v}" for k, v in kwargs.items())
            cases.append(case)
    return cases


# Small templates for jinja semantics: (template, variables[, "unsupported"]). Errors are recorded
# as such. "unsupported" marks what the reference renders but the subset refuses on purpose
# (printing bound methods, identity tests on numbers, rarely used str methods): the C++ side
# must fail with a clear error there, never render something else.
JINJA_CASES = [
    ("  {% if true %}\n  yes\n  {% endif %}\nend", {}),
    ("a  {%- if true %} b {% endif -%}  \n c", {}),
    ("{{- '  x  ' -}}", {}),
    ("line\n    {# comment #}\nnext", {}),
    ("x {#- c -#} y", {}),
    ("  {{ 'var' }}\n  {% set a = 1 %}\nz", {}),
    ("{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n", {}),
    ("{% for i in [1,2] %}{{ i }}{%+ if true %}!{% endif %}\n{% endfor %}", {}),
    ("  {%+ if true %}kept{% endif %}", {}),
    ("{% raw %}\n  {{ x }} {%- y -%}\n{% endraw %}tail", {}),
    ("a\r\nb\rc\n", {}),
    ("a {% if true %}b{% endif %}|{{ 'x' }}   {% if true %}y{% endif %}", {}),
    ("{% if true %}\n \t {% if true %}z{% endif %}\n{% endif %}end", {}),
    ("\u3000{% if true %}x{% endif %}\n\u00a0 {# c #}\n  {{- 'v' }}  \n", {}),
    ("{% for m in xs -%}\n  {{ m }}\n{%- endfor %}\n{{ '' -}}\n\n   after", {"xs": [1, 2]}),
    ("{{ x | indent }}", {}),
    ("{{ x | trim }}|{{ x | upper }}|{{ x | list }}|{{ x | join(',') }}|{{ x | first }}|{{ x | sort }}|{{ x | items | list }}", {}),
    ("{{ x + 1 }}", {}),
    ("{{ x[0] }}", {}),
    ("{{ x() }}", {}),
    ("{{ 'a' }}\n\n", {}),
    ("{{ x }}|{{ x.y is defined }}|{{ d.missing }}|{{ d['k'] }}", {"d": {"k": "v"}}),
    ("{{ x.y }}", {}),
    ("{{ d.a.b }}", {"d": {}}),
    ("{{ 1 + 'a' }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ [1, 2, 3][::-1] }} {{ 'abcdef'[1:-1:2] }} {{ [1, 2, 3][5:] }} {{ 'x'[9] }}", {}),
    ("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("{{ 1 < 'a' }}", {}),
    ("{{ 0 or '' or 'last' }} {{ 1 and 'b' }} {{ none or [] }} {{ not [] }}", {}),
    ("{{ 123456789012 * 1000 }} {{ 2.5e10 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 100.0 }} {{ -0.0 }} {{ 1/3 }}", {}),
    ("{{ f }} {{ f * 2 }} {{ i // 2 }} {{ i / 2 }}", {"f": 0.1, "i": 7}),
    ("{{ [1, 'two', none, true, 1.5, {'k': [1]}] }} {{ {'a': 'it\\'s'} }} {{ ('t',) }} {{ 'a\\nb' }}", {}),
    ("{{ ['q\"uote', \"it's\", 'both \\' \"', 'back\\\\slash', 'tab\\t', 'é✓🚀', '\\x07'] }}", {}),
    ("{{ d.items() }} {{ d.keys() | list }} {{ d.values() | list }} {{ d | list }}", {"d": {"b": 1, "a": 2}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"z": 1, "y": [1, 2], "x": None}}),
    ("{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", {"d": {"p": 1}}),
    ("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}", {}),
    ("{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1, 2, 3] if x > 1 %}{{ loop.index }}/{{ loop.length }}{% endfor %}", {}),
    ("{% for x in 'ab' %}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{% endfor %}", {}),
    ("{% for x in xs %}{% for y in xs %}{{ loop.index }}{% endfor %}:{{ loop.index }} {% endfor %}", {"xs": [1, 2]}),
    ("{% set x = 5 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, items=[]) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}),
    ("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, %}{{ t }}", {}),
    ("{% set s %}\n  block {{ 1 + 1 }}\n{% endset %}[{{ s }}]{% set u | upper %}up{% endset %}{{ u }}", {}),
    ("{% macro m(a, b='dflt', c=none) %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 2) }} {{ m(1, c=3) }} {{ m() }}", {}),
    ("{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", {}),
    ("{% macro m() %}{{ g }}{% endmacro %}{% set g = 'late' %}{{ m() }}", {}),
    ("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}", {}),
    ("{{ raise_exception('Custom failure: ' ~ 42) }}", {}),
    ("{% if x is not defined %}{{ raise_exception('x is required') }}{% endif %}", {}),
    ("{{ 'abc' | tojson }} {{ none | tojson }} {{ [1, 2.0, true] | tojson }} {{ {'b': {}, 'a': []} | tojson(indent=2) }}", {}),
    ("{{ d | tojson(indent=4) }}", {"d": {"k": [1, {"n": None}], "s": "tab\there \u2028 \x01"}}),
    ("{{ d | tojson(separators=(',', ':')) }} {{ d | tojson(indent='\\t') }}", {"d": {"k": [1, 2]}}),
    ("{{ undefined_var | tojson }}", {}),
    ("{{ x | default('dflt') }} {{ '' | default('e', true) }} {{ none | d('n') }} {{ 0 | default(5) }}", {}),
    ("{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ [] | first }} {{ 'xyz' | first }} {{ 'xyz' | last }}", {}),
    ("{{ ['a', 'B', 'a', 'b'] | unique | list }} {{ [3, 1, 2] | reverse | list }} {{ 'abc' | reverse }}", {}),
    ("{{ xs | selectattr('on') | map(attribute='n') | join(',') }} {{ xs | rejectattr('on') | map(attribute='n') | list }}",
     {"xs": [{"n": 1, "on": True}, {"n": 2, "on": False}, {"n": 3}]}),
    ("{{ xs | selectattr('n', 'gt', 1) | list | length }} {{ xs | map(attribute='m', default='-') | join }} {{ [1, 2, 3, 4] | select('odd') | list }}",
     {"xs": [{"n": 1}, {"n": 2}, {"n": 3}]}),
    ("{{ ['a', 'b'] | map('upper') | join('+') }} {{ [' x ', 'y '] | map('trim') | list }}", {}),
    ("{% if xs | selectattr('n', 'equalto', 99) %}generator-truthy{% endif %}", {"xs": [{"n": 1}]}),
    ("{{ xs | selectattr('n') | length }}", {"xs": [{"n": 1}]}),
    ("{{ 'Hello World' | lower }} {{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ 'x' | upper }}", {}),
    ("{{ '  a  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'a\\nb\\n' | indent }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}", {}),
    ("{{ 'a-b-c'.split('-') }} {{ 'a-b-c'.split('-', 1) }} {{ 'a-b-c'.rsplit('-', 1) }} {{ '  a \\t b\\n'.split() }}", {}),
    ("{{ '  x\\n'.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nx'.lstrip('\\n') }}|{{ 'ab'.startswith(('x', 'a')) }}", {}),
    ("{{ 'Hello'.upper() }} {{ 'Hello'.lower() }} {{ 'hello there'.title() }} {{ 'a,b'.replace(',', ';') }} {{ 'abcb'.find('b') }} {{ 'abcb'.count('b') }}", {}),
    ("{{ ', '.join(['a', 'b']) }} {{ 'abc'.endswith('c') }} {{ 'x'.removeprefix('x') }}|{{ 'a1'.isalnum() }}", {}),
    ("{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 'dflt') }} {{ d['items'] }}", {"d": {"a": 1, "items": "key wins"}}),
    ("{{ d.items }}", {"d": {"items": 1}}, "unsupported"),
    ("{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ x in [none] }}", {}),
    ("{{ 1 in 'abc' }}", {}),
    ("{{ x is defined }} {{ none is none }} {{ 1 is number }} {{ true is boolean }} {{ 1.5 is float }} {{ 1 is integer }} {{ [] is sequence }} {{ {} is mapping }} {{ 'x' is iterable }} {{ 3 is odd }} {{ 'abc' is lower }}", {}),
    ("{{ 1 is sameas 1 }}", {}, "unsupported"),
    ("{{ x is string }}{{ x is iterable }}{{ x is sequence }}{{ false is false }}{{ 0 is false }}", {}),
    ("{{ 'a' ~ 1 ~ none ~ true ~ [1] }} {{ 'x' * 2 }} {{ 2 * 'y' }} {{ [0] * 2 }} {{ (1, 2) + (3,) }}", {}),
    ("{{ -3 // 2 }} {{ -3 % 2 }} {{ 3 % -2 }} {{ -3.5 // 2 }} {{ -3.5 % 2 }} {{ 2 ** -1 }} {{ 2 ** 0.5 }} {{ -2 ** 2 }}", {}),
    ("{{ 'a' if false }}|{{ 'b' if true else 'c' }}|{{ 'd' if none else 'e' if 0 else 'f' }}", {}),
    ("{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(3, 0, -1) | list }}", {}),
    ("{{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", {}),
    ("{% set ns = namespace() %}{% set ns._private = 1 %}", {}),
    ("{{ 'abc' | length }} {{ 'héllo' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }} {{ x | length }}", {}),
    ("{{ '42' | int }} {{ '0x1A' | int(base=16) }} {{ 4.9 | int }} {{ 'nope' | int(7) }} {{ true | int }} {{ '1e3' | float }}", {}),
    ("{{ [3, 1, 2] | sort(reverse=true) }} {{ xs | sort(attribute='n') | map(attribute='n') | list }} {{ ['b', 'A'] | sort(case_sensitive=true) }}",
     {"xs": [{"n": 2}, {"n": 1}]}),
    ("{{ [1, 5, 3] | min }} {{ ['b', 'C', 'a'] | max }} {{ [0.5, 1] | sum }} {{ xs | sum(attribute='n') }}", {"xs": [{"n": 2}, {"n": 1}]}),
    ("{{ m.content }}", {"m": {"content": [{"type": "text", "text": "parts"}]}}),
    ("{{ messages[0]['content'][0]['text'] }} {{ messages.0.role }}", {"messages": [{"role": "u", "content": [{"text": "t"}]}]}),
    ("{% with a = 1 %}{% set b = 2 %}{{ a + b }}{% endwith %}{{ b }}", {}),
    ("{% filter trim %}   spaced   {% endfilter %}|", {}),
    ("{% for i in range(5) %}{% if i is odd %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("{{ 'safe' | safe }} {{ ('<b>' | safe) + '<i>' }} {{ '<i>' + ('<b>' | safe) }} {{ ('<b>' | safe) ~ '<i>' }}", {}),
    ("{{ x.strip() }}", {}),
    ("{{ 'x'.nosuchmethod }}|{{ (1).foo is defined }}", {}),
    ("{{ (1).real is defined }}", {}, "unsupported"),
    ("{{ 'abc'.zfill(5) }}", {}, "unsupported"),
    ("{{ xs.append(1) }}", {"xs": []}),
    ("{{ 'a' | nosuchfilter }}", {}),
    ("{{ 1 is nosuchtest }}", {}),
    ("{% include 'other.jinja' %}", {}),
    ("{% extends 'base' %}", {}),
    ("{% for x in xs %}no end", {}),
    ("{% if true %}unclosed", {}),
    ("{{ 'unclosed var ", {}),
    ("{% if true %}{% endfor %}", {}),
    ("{{ 1 + }}", {}),
    ("text\n\n  {{ a b }}", {}),
    ("{# never closed", {}),
    ("{{ (1, 2 }}", {}),
    ("{% endif %}", {}),
    ("{% break %}", {}),
    ("{% set 1 = 2 %}", {}),
]


def jinja_cases():
    out = []
    for template, variables, *flags in JINJA_CASES:
        case = {"template": template, "vars": variables}
        if "unsupported" in flags:
            case["unsupported"] = True
        try:
            case["expected"] = _compile_jinja_template(template).render(**variables)
        except jinja2.TemplateSyntaxError as e:
            case["error"], case["error_type"], case["error_line"] = e.message, type(e).__name__, e.lineno
        except Exception as e:  # noqa: BLE001 - every failure of the reference is a fixture
            case["error"], case["error_type"] = str(e), type(e).__name__
        out.append(case)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("TANDEM_SHARED_DIR", "/work/shared"))
    args = ap.parse_args()
    qwen_dir = Path(args.shared) / "data" / "tokenizers" / "qwen3"
    tok = AutoTokenizer.from_pretrained(str(qwen_dir))
    OUT.mkdir(parents=True, exist_ok=True)

    for name in TEMPLATES:
        doc = {"name": name,
               "generator": "tools/gen_chat_template_fixtures.py (transformers apply_chat_template, tokenize=False)"}
        if name == "qwen3":
            template = tok.chat_template
            doc["template_path"] = "data/tokenizers/qwen3/tokenizer_config.json"  # under TANDEM_SHARED_DIR
        elif name == "tandem_builtin":
            cfg = ROOT / "model" / "assets" / "tokenizer_config.json"
            if not cfg.exists():
                print("skipping tandem_builtin: model/assets/tokenizer_config.json is absent", file=sys.stderr)
                continue
            template = json.loads(cfg.read_text())["chat_template"]
            doc["template"] = template
            doc["template_source"] = "model/assets/tokenizer_config.json"
        else:
            template = (OUT / "templates" / f"{name}.jinja").read_text()
            doc["template"] = template
            doc["template_source"] = f"tests/data/chat_templates/templates/{name}.jinja"
        doc["cases"] = template_cases(tok, name, template)
        (OUT / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
        n_err = sum("error" in c for c in doc["cases"])
        print(f"{name}: {len(doc['cases'])} cases ({n_err} reference errors)")

    cases = jinja_cases()
    (OUT / "jinja_cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n")
    print(f"jinja_cases: {len(cases)} cases ({sum('error' in c for c in cases)} errors)")


if __name__ == "__main__":
    main()
