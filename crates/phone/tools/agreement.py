#!/usr/bin/env python3
"""Writes the agreement fixture: phone numbers as people type them, with libphonenumber's verdict.

Each line of `tests/fixtures/agreement.tsv` is `region <TAB> kind <TAB> input <TAB> verdict`:
the region the number is typed in, what the generator did (`national_trunk`, `idd_00`, ...), the
text, and what Google's libphonenumber (through the Python `phonenumbers` package) makes of it:
the E.164 number when `parse(input, region)` succeeds and `is_valid_number` holds, `invalid`
otherwise. `tests/agreement.rs` runs this crate's parser over the file and reports how often the
two agree.

Reproduce (the seed is fixed, so the same package version writes the same file):

    python3 -m venv /tmp/pn && /tmp/pn/bin/pip install phonenumbers==9.0.43
    /tmp/pn/bin/python crates/phone/tools/agreement.py \
        > crates/phone/tests/fixtures/agreement.tsv

Use the `phonenumbers` version whose metadata the crate ships (`metadata_version()`); the test
refuses a fixture made with another.
"""

from __future__ import annotations

import argparse
import random
import re
import sys

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

SEED = 20261201

# Where people type numbers: the default region and the neighbours it most often calls, a mix
# of international prefixes (00, 011, 0011, 010, 00[89], 0[0-3]\d, 810, 00 + carrier) and
# trunk prefixes (0, 1, 8, none, carrier codes).
REGIONS = [
    "ID", "MY", "SG", "AU", "JP", "US", "CA", "GB", "DE", "FR",
    "BR", "IN", "MX", "AR", "CO", "RU", "IL", "KR", "NG", "PH",
]  # fmt: skip

# Numbers of these regions are also typed from every region above, internationally.
FOREIGN = ["ID", "MY", "SG", "GB", "US", "AU", "IN", "DE", "NL", "SA", "AE", "HK", "CN", "BR"]

PER_REGION = 150
TYPES = [PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE]
SEPARATORS = [" ", " ", "-", ".", "", "/"]
LETTERS = "ABCDEFGHJKLMNPRSTUVWXY"
WIDE = {str(d): chr(0xFF10 + d) for d in range(10)}


def verdict(text: str, region: str) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def idd_candidates(region: str) -> list[str]:
    """Strings that fully match the region's international prefix pattern."""
    meta = PhoneMetadata.metadata_for_region(region)
    pattern = meta.international_prefix
    found = []
    if meta.preferred_international_prefix and "~" not in meta.preferred_international_prefix:
        found.append(meta.preferred_international_prefix)
    for length in range(2, 5):
        for n in range(10**length):
            candidate = str(n).zfill(length)
            if re.fullmatch(pattern, candidate) and candidate not in found:
                found.append(candidate)
            if len(found) >= 6:
                return found
    return found


def random_number(rng: random.Random, region: str):
    """A number of the region: an example with some of its last digits changed, so most are
    valid but some fall outside the plan."""
    numtype = rng.choice(TYPES)
    example = phonenumbers.example_number_for_type(region, numtype)
    if example is None:
        example = phonenumbers.example_number(region)
    nsn = phonenumbers.national_significant_number(example)
    keep = max(2, len(nsn) - rng.randint(3, 6))
    nsn = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
    return example.country_code, nsn


def group(rng: random.Random, digits: str) -> str:
    """Splits digits into groups of 2-4 joined by one separator, as people do."""
    sep = rng.choice(SEPARATORS)
    parts, i = [], 0
    while i < len(digits):
        step = rng.randint(2, 4)
        parts.append(digits[i : i + step])
        i += step
    return sep.join(parts)


def formatted(number, style) -> str:
    return phonenumbers.format_number(number, style)


def typed(rng: random.Random, region: str, cc: int, nsn: str, idds: list[str]):
    """Yields (kind, text) pairs: one number of country `cc` as people in `region` type it."""
    meta = PhoneMetadata.metadata_for_region(region)
    home = meta.country_code == cc
    number = phonenumbers.PhoneNumber(country_code=cc, national_number=int(nsn))
    if nsn.startswith("0"):
        number.italian_leading_zero = True
        zeros = len(nsn) - len(nsn.lstrip("0"))
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    trunk = meta.national_prefix or ""

    yield "e164", f"+{cc}{nsn}"
    yield "international", formatted(number, PhoneNumberFormat.INTERNATIONAL)
    yield "plus_grouped", f"+{cc} {group(rng, nsn)}"
    yield "no_plus", f"{cc}{group(rng, nsn)}"
    yield "double_plus", f"++{cc} {group(rng, nsn)}"
    yield "idd_00", f"00{cc} {group(rng, nsn)}"
    yield "idd_011", f"011 {cc} {group(rng, nsn)}"
    if idds:
        yield "idd_region", f"{rng.choice(idds)} {cc} {group(rng, nsn)}"
    yield "trunk_marker", f"+{cc} (0){group(rng, nsn)}"
    if home:
        yield "national", formatted(number, PhoneNumberFormat.NATIONAL)
        yield "national_bare", group(rng, nsn)
        if trunk:
            yield "national_trunk", trunk + group(rng, nsn)
            yield "national_parens", f"({trunk}{nsn[:3]}) {group(rng, nsn[3:])}"
    # Slips.
    cut = rng.randint(1, 3)
    yield "too_short", f"+{cc} {group(rng, nsn[:-cut])}"
    yield "too_long", f"+{cc} {group(rng, nsn + str(rng.randint(0, 99)))}"
    yield "one_more_digit", (trunk if home else f"+{cc} ") + nsn + str(rng.randint(0, 9))
    i = rng.randrange(len(nsn))
    yield "letter", f"+{cc} {nsn[:i]}{rng.choice(LETTERS)}{nsn[i + 1 :]}"
    yield "extension", f"+{cc} {group(rng, nsn)} ext. {rng.randint(1, 999)}"
    yield "full_width", "".join(WIDE.get(c, c) for c in f"+{cc} {group(rng, nsn)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect-version", help="fail unless phonenumbers has this version")
    parser.add_argument("--seed", type=int, default=SEED, help="for a wider run than the fixture")
    parser.add_argument("--per-region", type=int, default=PER_REGION, help="lines per region")
    parser.add_argument(
        "--all-regions", action="store_true", help="type numbers in every region, not only ours"
    )
    args = parser.parse_args()
    version = phonenumbers.__version__
    if args.expect_version and version != args.expect_version:
        raise SystemExit(f"phonenumbers {version} installed, {args.expect_version} expected")

    rng = random.Random(args.seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS) if args.all_regions else REGIONS
    out = [
        "# Phone numbers as people type them, with libphonenumber's verdict (E.164 or invalid).",
        "# Written by crates/phone/tools/agreement.py; do not edit by hand.",
        f"# phonenumbers-version: {version}",
        f"# seed: {args.seed}",
        "# region\tkind\tinput\tlibphonenumber",
    ]
    seen = set()
    for region in regions:
        idds = idd_candidates(region)
        lines = []
        while len(lines) < args.per_region:
            origin = region if rng.random() < 0.6 else rng.choice(FOREIGN)
            cc, nsn = random_number(rng, origin)
            options = list(typed(rng, region, cc, nsn, idds))
            # A few ways of typing each number, so many numbers fit in the budget.
            for kind, text in rng.sample(options, k=min(4, len(options))):
                text = text.strip()
                if (region, text) in seen or "\t" in text:
                    continue
                seen.add((region, text))
                lines.append(f"{region}\t{kind}\t{text}\t{verdict(text, region)}")
        out.extend(lines[: args.per_region])
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
