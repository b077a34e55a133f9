"""Cleaning hostile mail: time of `clean_email` on HTML of 1,000 to 100,000 block tags, and masking recall on
generated bank, card and CPR numbers written the ways customers write them.

1. time: `clean_email("Regning", "<p>" * n)` and `clean_email("Regning", "<div>x</div>" * n)` for n = 1,000, 10,000 and
   100,000 block tags (the best of a few runs), whether the HTML limits (`MAX_HTML_TAGS`, `MAX_HTML_CHARS`) cut the
   mail, and the HTML step alone without limits, so that both figures are known where the limits apply;
2. recall: IBANs of several countries (in one piece or in groups of four, upper or lower case), payment card numbers
   (Visa, Mastercard, Amex, Discover, Dankort; blank, dash, dot or no separator) and CPR numbers (every kind of dash,
   blanks, none) in Danish sentences; each counts as masked when no trace of it is left in the cleaned text, and as
   typed right when exactly its placeholder stands in its place. Decoys (wrong IBAN check digits, cards failing the
   Luhn check) must not get the IBAN or card placeholder.

    python bench/cleaning.py [--out bench/results/cleaning.json] [--seed 0] [--before-ref COMMIT]

--before-ref also scores the recall of `emailrouter/text.py` as it was at that commit (read with `git show`), so that
the file holds before and after.
"""

import argparse
import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
import types
from pathlib import Path

import lxml

from emailrouter.text import MAX_HTML_CHARS, MAX_HTML_TAGS, PLACEHOLDERS, clean_email, html_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve import cpu_description  # noqa: E402  (bench/serve.py)

SIZES = (1_000, 10_000, 100_000)
MARKUP = {"<p>": lambda n: "<p>" * n, "<div>x</div>": lambda n: "<div>x</div>" * n}


def best(fn, repeats: int) -> float:
    t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def time_html() -> list[dict]:
    rows = []
    for name, make in MARKUP.items():
        for n in SIZES:
            markup = make(n)
            repeats = 5 if n < 100_000 else 3
            capped = html_text(markup)
            seconds = best(lambda: clean_email("Regning", markup), repeats)
            row = {
                "markup": name,
                "block_tags": n,
                "chars": len(markup),
                "clean_email_s": seconds,
                "cut": capped.cut,
                "tags_read": capped.tags,
                "chars_read": capped.chars,
            }
            if capped.cut:  # the same markup read whole, without the limits
                row["html_text_uncapped_s"] = best(lambda: html_text(markup, max_tags=10**9, max_chars=10**9), repeats)
            rows.append(row)
    return rows


# -- generated bank, card and CPR numbers -----------------------------------------------------------------------------

IBAN_BBAN = {  # country: BBAN pattern (n digit, a capital letter, c letter or digit), lengths from the IBAN registry
    "DK": "n" * 14,
    "FO": "n" * 14,
    "GL": "n" * 14,
    "NO": "n" * 11,
    "SE": "n" * 20,
    "FI": "n" * 14,
    "DE": "n" * 18,
    "GB": "aaaa" + "n" * 14,
    "IE": "aaaa" + "n" * 14,
    "NL": "aaaa" + "n" * 10,
    "FR": "n" * 10 + "c" * 11 + "nn",
    "ES": "n" * 20,
    "IT": "a" + "n" * 10 + "c" * 12,
    "PL": "n" * 24,
    "CH": "n" * 5 + "c" * 12,
    "BE": "n" * 12,
    "LT": "n" * 16,
    "PT": "n" * 21,
    "IS": "n" * 22,
    "MT": "aaaa" + "n" * 5 + "c" * 18,
}
CARDS = [
    ("4", 16, (4, 4, 4, 4)),
    ("51", 16, (4, 4, 4, 4)),
    ("55", 16, (4, 4, 4, 4)),
    ("2221", 16, (4, 4, 4, 4)),
    ("34", 15, (4, 6, 5)),
    ("37", 15, (4, 6, 5)),
    ("6011", 16, (4, 4, 4, 4)),
    ("4571", 16, (4, 4, 4, 4)),
    ("5019", 16, (4, 4, 4, 4)),
    ("6759", 19, (4, 4, 4, 4, 3)),
    ("4", 13, (13,)),
]
DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212", " ", "\u00a0", ""]
SENTENCES = {
    "iban": [
        "Pengene kan overføres til {}.",
        "Min IBAN er {}, tak.",
        "Betal venligst tilbage til IBAN: {}",
        "Kontoen {} tilhører min mor, hun betaler fremover.",
        "Refusion til {} (Nordea).",
    ],
    "card": [
        "Mit kort {} er blevet trukket to gange.",
        "kortnummer: {}, udløb 12/27",
        "I har hævet 299 kr. på {} i går.",
        "Brug kortet {} til betalingen fremover.",
        "Kort nr. {}",
    ],
    "cpr": [
        "Mit cpr-nr. er {}.",
        "CPR {}",
        "cpr: {} (min søn)",
        "Abonnementet står på {}, som er min fars cpr.",
        "Her er mit personnummer {} som I bad om.",
    ],
}


def iban(rng: random.Random, country: str, valid: bool = True) -> str:
    chars = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    bban = "".join(rng.choice(chars[k]) for k in IBAN_BBAN[country])
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    if not valid:
        check = (check - 2 + rng.randint(1, 96)) % 97 + 2  # other check digits (02-98), never the right ones
    return f"{country}{check:02d}{bban}"


def luhn_digit(body: str) -> str:
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def card(rng: random.Random, prefix: str, length: int, valid: bool = True) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    last = luhn_digit(body)
    return body + (last if valid else str((int(last) + rng.randint(1, 9)) % 10))


def cpr(rng: random.Random) -> str:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    return f"{day:02d}{month:02d}{rng.randint(0, 99):02d}", f"{rng.randint(0, 9999):04d}"


def variants(seed: int) -> list[dict]:
    "A few hundred of each kind in Danish sentences: {kind, form, value as typed, sentence, want: placeholder or None}."
    rng, out = random.Random(seed), []
    for country in IBAN_BBAN:
        for form in ("compact", "groups", "compact lower", "groups lower"):
            for valid in (True, True, True, False):
                code = iban(rng, country, valid)
                typed = " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if "groups" in form else code
                typed = typed.lower() if "lower" in form else typed
                out.append(
                    dict(
                        kind="iban" if valid else "iban decoy",
                        form=form,
                        value=typed,
                        sentence=rng.choice(SENTENCES["iban"]).format(typed),
                        want=PLACEHOLDERS["iban"] if valid else None,
                    )
                )
    for prefix, length, groups in CARDS:
        for sep in (" ", "-", ".", ""):
            if len(groups) == 1 and sep:
                continue
            for valid in (True, True, True, False):
                number = card(rng, prefix, length, valid)
                cuts = [sum(groups[:i]) for i in range(len(groups) + 1)]
                typed = sep.join(number[a:b] for a, b in zip(cuts, cuts[1:]))
                out.append(
                    dict(
                        kind="card" if valid else "card decoy",
                        form=f"sep {sep!r}",
                        value=typed,
                        sentence=rng.choice(SENTENCES["card"]).format(typed),
                        want=PLACEHOLDERS["card"] if valid else None,
                    )
                )
    for dash in DASHES:
        for _ in range(25):
            date, tail = cpr(rng)
            typed = date + dash + tail
            out.append(
                dict(
                    kind="cpr",
                    form=f"U+{ord(dash):04X}" if dash else "none",
                    value=typed,
                    sentence=rng.choice(SENTENCES["cpr"]).format(typed),
                    want=PLACEHOLDERS["cpr"],
                )
            )
    return out


def score(rows: list[dict], clean=clean_email) -> dict:
    "Per kind, shares: gone (as typed), masked (no trace), typed right, with its own placeholder, with [IBAN]/[CARD]."
    by_kind: dict = {}
    for r in rows:
        cleaned = clean("", r["sentence"])
        s = by_kind.setdefault(
            r["kind"],
            {"n": 0, "gone": 0, "masked": 0, "typed_right": 0, "own_placeholder": 0, "bank_or_card_placeholder": 0},
        )
        s["n"] += 1
        if r["want"]:
            expected = clean("", r["sentence"].replace(r["value"], r["want"]))
            # a trace: the number as typed, or four of its letters and digits in a row that the sentence does not hold
            chars = "".join(c for c in r["value"] if c.isalnum())
            left, want = cleaned.replace(" ", ""), expected.replace(" ", "")
            traces = [w for w in (chars[i : i + 4] for i in range(len(chars) - 3)) if w in left and w not in want]
            s["gone"] += r["value"] not in cleaned  # as score_cleaning counts recall: the number as typed is gone
            s["masked"] += r["value"] not in cleaned and not traces
            s["typed_right"] += cleaned == expected
        s["own_placeholder"] += PLACEHOLDERS[r["kind"].split()[0]] in cleaned
        s["bank_or_card_placeholder"] += PLACEHOLDERS["iban"] in cleaned or PLACEHOLDERS["card"] in cleaned
    for kind, s in by_kind.items():
        for k in list(s)[1:]:
            s[k] = round(s[k] / s["n"], 4)
        if "decoy" in kind:  # nothing to mask: what counts is which placeholders it got
            for k in ("gone", "masked", "typed_right"):
                del s[k]
    return by_kind


def text_module_at(ref: str) -> types.ModuleType:
    "emailrouter.text as it was at commit `ref`."
    source = subprocess.run(
        ["git", "show", f"{ref}:emailrouter/text.py"], cwd=HERE.parent, capture_output=True, text=True, check=True
    ).stdout
    module = sys.modules["emailrouter_text_before"] = types.ModuleType("emailrouter_text_before")  # for dataclasses
    exec(compile(source, f"{ref}:emailrouter/text.py", "exec"), module.__dict__)
    return module


def print_recall(title: str, by_kind: dict):
    print(
        f"\n{title}\n{'kind':12s} {'n':>5s} {'gone':>8s} {'masked':>8s} {'typed right':>12s} "
        f"{'own placeholder':>16s} {'[IBAN]/[CARD]':>14s}"
    )
    for kind, s in by_kind.items():
        share = lambda k, w: f"{s[k]:>{w}.2%}" if k in s else f"{'-':>{w}s}"
        print(
            f"{kind:12s} {s['n']:>5d} {share('gone', 8)} {share('masked', 8)} {share('typed_right', 12)} "
            f"{share('own_placeholder', 16)} {share('bank_or_card_placeholder', 14)}"
        )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(HERE / "results" / "cleaning.json"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--before-ref", help="also score emailrouter/text.py as it was at this commit")
    a = p.parse_args(argv)
    logging.getLogger("emailrouter.text").setLevel(logging.ERROR)  # the cut mails are counted below, not logged
    result = {
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "lxml": lxml.__version__,
        "limits": {"MAX_HTML_TAGS": MAX_HTML_TAGS, "MAX_HTML_CHARS": MAX_HTML_CHARS},
    }
    result["html"] = time_html()
    print(f"{result['cpu']}, {result['cores']} cores (load {result['load_average_1min']})")
    print(
        f"{'markup':14s} {'block tags':>10s} {'KB':>6s} {'clean_email':>12s} {'cut':>5s} {'tags read':>9s} "
        f"{'no limits':>10s}"
    )
    for r in result["html"]:
        free = f"{r['html_text_uncapped_s'] * 1e3:8.1f}ms" if "html_text_uncapped_s" in r else ""
        print(
            f"{r['markup']:14s} {r['block_tags']:>10,} {r['chars'] / 1000:6.0f} {r['clean_email_s'] * 1e3:10.1f}ms "
            f"{'yes' if r['cut'] else 'no':>5s} {r['tags_read']:>9,} {free:>10s}"
        )
    rows = variants(a.seed)
    result["recall"] = {"seed": a.seed, "by_kind": score(rows)}
    print_recall("masking, generated bank, card and CPR numbers in Danish sentences", result["recall"]["by_kind"])
    if a.before_ref:
        before = text_module_at(a.before_ref)
        result["recall_before"] = {"commit": a.before_ref, "by_kind": score(rows, clean=before.clean_email)}
        print_recall(f"the same with emailrouter/text.py at {a.before_ref}", result["recall_before"]["by_kind"])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {a.out}")


if __name__ == "__main__":
    main()
