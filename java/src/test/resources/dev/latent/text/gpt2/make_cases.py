"""Recorded outputs of GPT-2's own tokenizer algorithm (encoder.py: the `regex` module's pattern, bytes_to_unicode,
bpe()) for Gpt2TokenizerTest. Run from this folder with `pip install regex`: python3 make_cases.py
Writes regex_cases.json ([text, pieces]), vocab.json + merges.txt (256 byte symbols and merges drawn at random from
a small corpus) and bpe_cases.json ([text, ids])."""
import json
import random

import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


B2U = bytes_to_unicode()
random.seed(1)
alphabet = list("aZ09 '\n\t\r.,!?-") + ["é", "日", "\u0301", "😀", "👍🏽", "\u00a0", "\u2028", "\u3000", "\x1c", "\x1f", "\x85", "\u200b",
                                        "\u180e", "\x0b", "\x0c", "٣", "Ⅻ", "½", "'s", "'S", "'ll", " ", " ", "\u2009", "\ufeff", "ß", "İ"]
cases = []
for _ in range(1000):
    s = "".join(random.choice(alphabet) for _ in range(random.randint(0, 14)))
    cases.append([s, PAT.findall(s)])
json.dump(cases, open("regex_cases.json", "w"), ensure_ascii=True)

corpus = "the theme there then hello world's café naïve 日本語 😀😀 ab ab abab 123 1234 \n\n  x"
vocab = [B2U[b] for b in range(256)]
merges = []
words = [[B2U[b] for b in p.encode()] for p in PAT.findall(corpus)]
for _ in range(150):
    pairs = [(w[i], w[i + 1]) for w in words for i in range(len(w) - 1)]
    if not pairs:
        break
    a, b = random.choice(pairs)
    if a + b in vocab:
        continue
    merges.append((a, b))
    vocab.append(a + b)
    nw = []
    for w in words:
        o, i = [], 0
        while i < len(w):
            if i < len(w) - 1 and w[i] == a and w[i + 1] == b:
                o.append(a + b)
                i += 2
            else:
                o.append(w[i])
                i += 1
        nw.append(o)
    words = nw
ranks = dict(zip(merges, range(len(merges))))
enc = {t: i for i, t in enumerate(vocab)}


def bpe(token):  # GPT-2's encoder.py bpe(), without its cache
    word = tuple(token)
    pairs = set(zip(word, word[1:]))
    if not pairs:
        return word
    while True:
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new_word, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
                new_word.extend(word[i:j])
                i = j
            except ValueError:
                new_word.extend(word[i:])
                break
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new_word.append(first + second)
                i += 2
            else:
                new_word.append(word[i])
                i += 1
        word = tuple(new_word)
        if len(word) == 1:
            break
        pairs = set(zip(word, word[1:]))
    return word


def encode(s):
    out = []
    for p in PAT.findall(s):
        out.extend(enc[x] for x in bpe("".join(B2U[b] for b in p.encode("utf-8"))))
    return out


json.dump({v: i for i, v in enumerate(vocab)}, open("vocab.json", "w", encoding="utf-8"), ensure_ascii=False)
open("merges.txt", "w", encoding="utf-8").write("#version: 0.2\n" + "\n".join(a + " " + b for a, b in merges) + "\n")
pieces = corpus.split(" ") + ["é", "日", "😀", " ", "\n", "'s"]
cases = []
for _ in range(1000):
    s = "".join(random.choice(pieces) + random.choice(["", " ", "  ", "\n"]) for _ in range(random.randint(0, 6)))
    cases.append([s, encode(s)])
json.dump(cases, open("bpe_cases.json", "w"), ensure_ascii=True)
print(len(merges), "merges")
