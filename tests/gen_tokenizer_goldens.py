#!/usr/bin/env python3
"""Goldens and tables for the CLIP tokenizer (tokenizer/).

Reference: OpenAI CLIP's clip/simple_tokenizer.py (commit d05afc43), re-implemented below from
its behaviour: ftfy.fix_text, html.unescape twice, strip, `\\s+` -> ' ' (the `regex` module),
str.lower(), the pre-tokenizer regex with IGNORECASE, byte-level BPE by merge rank. Unlike the
goldens in ../shared/data/clip (made with ftfy stubbed), these use the real ftfy.

Needs: Python 3.11, `pip install ftfy regex` (ftfy 6.3.1 and regex 2026.5.9 made the committed
files). The vocabulary is read from $ENGINE_DATA_DIR/clip (default ../shared/data/clip).

  python3 tests/gen_tokenizer_goldens.py                  # writes tests/golden/tokenizer_ftfy.jsonl
                                                          # and tokenizer_random.jsonl
  python3 tests/gen_tokenizer_goldens.py --check-shared   # this re-implementation, ftfy stubbed,
                                                          # must reproduce tokenizer_goldens.jsonl
  python3 tests/gen_tokenizer_goldens.py --entities       # writes tokenizer/tok_entities.c
  python3 tests/gen_tokenizer_goldens.py --random N SEED  # N random lines to stdout (for parity
                                                          # runs against the C code; not committed)

Each golden line: {"text": ..., "clean": <text after cleaning, before the pre-tokenizer>,
"ids": [49406, ..., 49407]} (no truncation, no padding).
"""
import gzip
import html
import html.entities
import json
import os
import random
import sys

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.environ.get("ENGINE_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")
VOCAB_GZ = os.path.join(DATA, "clip", "bpe_simple_vocab_16e6.txt.gz")
N_MERGES = 49152 - 256 - 2

PRETOKENIZE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
SPACES = regex.compile(r"\s+")


def byte_symbols():
    """Byte -> printable character, in the reference's order (printable Latin-1 bytes keep their
    own character, the others get 256, 257, ... in byte order)."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    order = sorted(keep)
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    order += [b for b in range(256) if b not in keep]
    return table, order


class Reference:
    def __init__(self, fix_text):
        self.fix_text = fix_text
        self.sym, order = byte_symbols()
        with gzip.open(VOCAB_GZ, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        tokens = [self.sym[b] for b in order]
        tokens += [t + "</w>" for t in tokens]
        tokens += ["".join(m) for m in merges]
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.rank = {m: i for i, m in enumerate(merges)}

    def clean(self, text):
        text = html.unescape(html.unescape(self.fix_text(text))).strip()
        return SPACES.sub(" ", text).strip().lower()

    def bpe(self, piece):
        if piece in ("<|startoftext|>", "<|endoftext|>"):
            return [piece]
        word = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.rank.get(p, float("inf")))
            if best not in self.rank:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, text):
        clean = self.clean(text)
        ids = []
        for piece in PRETOKENIZE.findall(clean):
            mapped = "".join(self.sym[b] for b in piece.encode("utf-8"))
            ids += [self.ids[t] for t in self.bpe(mapped)]
        return clean, [self.ids["<|startoftext|>"]] + ids + [self.ids["<|endoftext|>"]]


# Inputs for the ftfy fixes the tokenizer implements (tok.h step 1), plus the cleaning steps
# around them. Each must be changed by ftfy in the same way with and without its mojibake repair
# (fix_encoding), which the tokenizer does not do; main() checks that.
FTFY_INPUTS = [
    # NFC
    "cafe\u0301 cre\u0300me bru\u0302le\u0301e",
    "A\u030angstro\u0308m and n\u0303o",
    "\u1100\u1161\u11a8 hangul jamo",
    "e\u0301\u0301 double accent, o\u0323\u0302 reordered marks",
    "\u212b angstrom sign and \u2126 ohm sign",
    # curly quotes
    "it\u2019s a dog\u2019s life",
    "\u2018single\u2019 and \u201cdouble\u201d quotes",
    "\u201ahigh-low\u2018 \u201elow-high\u201c \u201breversed\u201f",
    "don\u02bct and won\u2019t, we\u2019re, you\u2019ve, I\u2019m, she\u2019ll, he\u2019d",
    "\u201cA PHOTO\u201d OF \u2018THE\u2019 MOON",
    # Latin ligatures
    "\ufb01ne \ufb02ower \ufb00 \ufb03 \ufb04 \ufb05 \ufb06",
    "the \ufb01rst o\ufb03ce in the \ufb02at",
    "\u0132ssel \u0133s \u01c4 \u01c5 \u01c6 \u01c7 \u01c8 \u01c9 \u01ca \u01cb \u01cc \u01f1 \u01f2 \u01f3",
    "\u0149 afrikaans",
    # full-width and half-width forms
    "\uff21\uff22\uff23 \uff11\uff12\uff13 \uff01\uff1f",
    "\uff48\uff45\uff4c\uff4c\uff4f\u3000\uff57\uff4f\uff52\uff4c\uff44",
    "\uff08\uff4d\uff41\uff53\uff54\uff45\uff52\uff50\uff49\uff45\uff43\uff45\uff1a\uff11\uff0e\uff12\uff09",
    "\uff76\uff9e\uff9d\uff80\uff9e\uff91 halfwidth katakana",
    "\uffe5100 \uffe6 \uffe1 \uffe0 \uffe2 \uffe8 \uffe9 \uffed",
    "\uffa1\uffa4 halfwidth hangul",
    "\u3000\u3000ideographic\u3000spaces\u3000",
    "\uff29\uff53\uff54\uff41\uff4e\uff42\uff55\uff4c",
    "\uff07\uff53 full-width apostrophe",
    # control characters (C0 removed except whitespace, C1 read as Windows-1252)
    "a\x02b\x01c\x07d\x08e",  # (NUL is tested in C: JSON strings here cannot carry it)
    "bell\x07 and escape\x1b and delete\x7f",
    "vertical\x0btab and form\x0cfeed",
    "separators\x1c\x1d\x1e\x1f inside",
    "\x1b[31mred text\x1b[0m and \x1b[1;4mbold\x1b[m",
    "zero\ufeffwidth no-break space (BOM)",
    "\u206adeprecated\u206f format \ufff9anno\ufffbtation \ufffc object",
    "\x80 euro sign from C1",
    "\x93quoted\x94 with C1 quotes and \x96 dash",
    "ellipsis\x85 and \x99 trademark",
    "\x81\x8d\x8f\x90\x9d unassigned C1",
    # line breaks
    "line\u2028separator and paragraph\u2029separator",
    "old mac\rline endings\r\r",
    # HTML entities as ftfy and then html.unescape see them
    "it&rsquo;s &ldquo;quoted&rdquo; &mdash; fine",
    "P&EACUTE;REZ &NTILDE; &eacute;",
    "&amp;amp;amp; triple escaped",
    "&amp;amp;amp;amp;lt;b&amp;amp;amp;amp;gt; four levels",
    "&#xFF21;&#65313; &#8220;num&#8221; &#x2019;",
    "&#128; &#x93;c1 refs&#x94;",
    "&#0; &#1; &#x110000; &#xD800; &#65534; invalid refs",
    "&#59; semicolon ref",
    "<b>bold</b> &amp;amp;amp; keeps one level",
    "line one &amp;amp;amp;\nline <two> &amp;amp;amp;\nline three &amp;amp;amp;",
    "&notin; &not &notit; &copy2024 &amp",
    "&fflig; &FFLIG; &szlig; &SZLIG; &nbsp;&NBSP;",
    "&LT;&GT;&AMP;&QUOT; &Lt; &lt &gt",
    "&#x1F600; &#128512; emoji refs",
    # case and final sigma
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u03a3\u039f\u03a6\u039f\u03a3",
    "\u03a3 \u0391\u03a3 \u0391\u03a3\u0391 \u0391\u03a3' \u0391'\u03a3",
    "\u0130STANBUL \u0130 \u0131 I",
    "DZ \u01c5 \u1e9e stra\u00dfe",
    # long words (over 64 bytes: the tokenizer's O(n log n) BPE path)
    "".join(random.Random(7).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(300)),
    "".join(random.Random(8).choice("ethaoinsr") for _ in range(500)) + " word",
    "".join(random.Random(9).choice("!?#*.-") for _ in range(200)),
    "a" * 129 + " " + "ab" * 80 + " " + "\u00e9" * 70,
    # combinations
    "\uff23\uff21\uff26\uff25\u0301 \u201c\ufb01n\u201d\u3000\u2014\u3000done",
    "  \u3000 \u2028 leading and trailing \u00a0\u3000 ",
    "(masterpiece:1.2), \u201cbest quality\u201d, \ufb01ne details, \uff14\uff4b",
]


# The committed random set (tests/golden/tokenizer_random.jsonl).
RANDOM_LINES, RANDOM_SEED = 150, 20261124


def no_encoding_fix(text):
    import ftfy

    return ftfy.fix_text(text, fix_encoding=False)


def real_ftfy(text):
    import ftfy

    return ftfy.fix_text(text)


def write_goldens(path):
    ref = Reference(real_ftfy)
    lines = []
    for text in FTFY_INPUTS:
        if real_ftfy(text) != no_encoding_fix(text):
            sys.exit(f"input changed by ftfy's fix_encoding, which the tokenizer does not do: {text!r}")
        clean, ids = ref.encode(text)
        lines.append(json.dumps({"text": text, "clean": clean, "ids": ids}, ensure_ascii=False))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} lines to {path}")


def check_shared():
    ref = Reference(lambda t: t)
    path = os.path.join(DATA, "clip", "tokenizer_goldens.jsonl")
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            _, ids = ref.encode(d["text"])
            if ids != d["ids"]:
                sys.exit(f"mismatch on {d['text']!r}: {ids} != {d['ids']}")
            n += 1
    print(f"{n}/{n} shared goldens reproduced with ftfy stubbed")


def random_lines(n, seed, out=sys.stdout):
    """Random texts over characters that exercise every cleaning step, for parity runs."""
    rng = random.Random(seed)
    pool = (
        list("abcdeSTUVXYZ   '.,:;!?-()[]<>|/&#;0123456789")
        + ["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&eacute;", "&EACUTE;", "&#39;", "&#x41;",
           "&#128;", "&#0;", "&not", "&notin;", "&amp", "&rsquo;", "&#x2019;", "&ampx;"]
        + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "<|startoftext|>",
           "<|endoftext|>", "\u017f", "'\u017f"]
        + list("\t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f\u3000")
        + list("\x01\x02\x1b\x7f\x80\x81\x93\x94\x96\ufeff\u206a\ufff9\ufffc")
        + list("\u0301\u0300\u0308\u0323\u0345\u0307\u034f\u200d\u200c\u00ad")
        + list("\u00e9\u00c9\u00df\u1e9e\u0130\u0131\u03a3\u03c3\u03c2\u0391\u03b1\u00aa\u00ba")
        + list("\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u02bc\u2014\u2026")
        + list("\ufb00\ufb01\ufb05\u0132\u0149\u01c5")
        + list("\uff21\uff41\uff11\uff01\uff08\uff1a\uff09\uff3b\uff3d\uff76\uff9e\uffe3\uffe5\uffe8")
        + list("\u00bd\u00b2\u2167\u2460\u0663\u4e00\u732b\ud55c\u3042\u0928\u094d")
        + ["\U0001f600", "\U0001f44d\U0001f3fd", "\u2764\ufe0f", "\U0001f1ef\U0001f1f5",
           "\U0001d7ce", "\U0001f130"]
        + ["\x1b[31m", "\x1b[0m", "\x1b[1;4m"]
    )
    ref = Reference(real_ftfy)
    made = 0
    while made < n:
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 24)))
        if real_ftfy(text) != no_encoding_fix(text):
            continue  # mojibake repair: not done by the tokenizer (documented)
        clean, ids = ref.encode(text)
        print(json.dumps({"text": text, "clean": clean, "ids": ids}, ensure_ascii=False), file=out)
        made += 1


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_entities(path):
    """tokenizer/tok_entities.c: Python's html.entities.html5 (WHATWG's named character
    references) and ftfy's all-caps additions, both sorted by name for binary search."""
    html5 = html.entities.html5
    upper = {}
    for name, value in html5.items():
        # ftfy also decodes the all-caps spelling of a lower-case name, when that spelling
        # is not itself decoded by html.unescape.
        if name.endswith(";") and name == name.lower():
            caps = name.upper()
            if html.unescape("&" + caps) == "&" + caps:
                upper[caps] = value.upper()

    def table(entries):
        rows = []
        for name in sorted(entries, key=lambda s: s.encode("ascii")):
            cps = [ord(c) for c in entries[name]]
            if not 1 <= len(cps) <= 3:
                sys.exit(f"entity {name} has {len(cps)} code points")
            cps += [0] * (3 - len(cps))
            rows.append("    {%s, {0x%X, 0x%X, 0x%X}}," % (c_string(name), *cps))
        return rows

    h = table(html5)
    u = table(upper)
    try:
        from ftfy.chardata import HTML_ENTITIES

        mine = {"&" + k: v for k, v in html5.items() if k.endswith(";")}
        mine.update({"&" + k: v for k, v in upper.items()})
        if mine != HTML_ENTITIES:
            sys.exit("the entity tables do not match ftfy's HTML_ENTITIES")
    except ImportError:
        print("ftfy not installed: the all-caps table was not checked against it", file=sys.stderr)
    text = f"""/* tok_entities.c: HTML named character references, generated by
 * `python3 tests/gen_tokenizer_goldens.py --entities` (do not edit). tok_html5_entities is
 * Python's html.entities.html5 ({len(h)} names from the WHATWG HTML5 list, with and without
 * ';'); tok_ftfy_upper_entities ({len(u)}) are the all-caps spellings ftfy also decodes. */
#include <string.h>

#include "tok_impl.h"

const tok_entity tok_html5_entities[] = {{
{chr(10).join(h)}
}};
const size_t tok_html5_entity_count = sizeof tok_html5_entities / sizeof tok_html5_entities[0];

const tok_entity tok_ftfy_upper_entities[] = {{
{chr(10).join(u)}
}};
const size_t tok_ftfy_upper_entity_count =
    sizeof tok_ftfy_upper_entities / sizeof tok_ftfy_upper_entities[0];

const tok_entity *tok_entity_find(const tok_entity *table, size_t n, const char *name, size_t len) {{
    size_t lo = 0, hi = n;
    while (lo < hi) {{
        const size_t mid = lo + (hi - lo) / 2;
        const char *m = table[mid].name;
        int c = strncmp(m, name, len);
        if (c == 0 && m[len] != '\\0') c = 1;
        if (c == 0) return &table[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }}
    return NULL;
}}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {len(h)} + {len(u)} entities to {path}")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--entities"]:
        write_entities(os.path.join(ROOT, "tokenizer", "tok_entities.c"))
    elif args[:1] == ["--check-shared"]:
        check_shared()
    elif args[:1] == ["--random"]:
        random_lines(int(args[1]), int(args[2]))
    elif not args:
        write_goldens(os.path.join(HERE, "golden", "tokenizer_ftfy.jsonl"))
        path = os.path.join(HERE, "golden", "tokenizer_random.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            random_lines(RANDOM_LINES, RANDOM_SEED, f)
        print(f"wrote {RANDOM_LINES} lines to {path}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
