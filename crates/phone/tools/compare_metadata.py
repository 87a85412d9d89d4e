#!/usr/bin/env python3
"""Compares two libphonenumber `PhoneNumberMetadata.xml` files field by field.

Checks `tools/metadata.py` against libphonenumber's own XML: write the XML with the
`phonenumbers` version that the `phonenumber` crate bundles, then compare it with the crate's
copy (found once `cargo fetch` has run):

    /tmp/pn33/bin/pip install phonenumbers==9.0.33
    /tmp/pn33/bin/python crates/phone/tools/metadata.py > /tmp/generated.xml
    python3 crates/phone/tools/compare_metadata.py \
        ~/.cargo/registry/src/*/phonenumber-0.3.10+9.0.33/assets/PhoneNumberMetadata.xml \
        /tmp/generated.xml

Spelling is normalised first (whitespace in patterns, `$NP` in formatting rules, defaults
that libphonenumber's build fills in); possible lengths are compared where the first file
states them. Prints each difference and exits 1 when there is any.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

IGNORED = {"references", "areaCodeOptional", "availableFormats"}
SHORT_NUMBER_ONLY = {"shortCode", "standardRate", "carrierSpecific", "smsServices", "emergency"}


def ws(s):
    return None if s is None else re.sub(r"\s+", "", s)


def lengths(s):
    if s is None:
        return None
    out = set()
    for part in s.split(","):
        part = part.strip()
        if part.startswith("["):
            lo, hi = part[1:-1].split("-")
            out |= set(range(int(lo), int(hi) + 1))
        elif part:
            out.add(int(part))
    return tuple(sorted(out))


def load(path):
    out = {}
    for t in ET.parse(path).getroot().iter("territory"):
        attrs = {k: ws(v) for k, v in t.attrib.items()}
        np = attrs.get("nationalPrefix")
        if "nationalPrefixForParsing" not in attrs and np:
            attrs["nationalPrefixForParsing"] = np
        default_rule = attrs.pop("nationalPrefixFormattingRule", None)
        default_optional = attrs.pop("nationalPrefixOptionalWhenFormatting", None)
        default_carrier = attrs.pop("carrierCodeFormattingRule", None)
        for flag in ("mainCountryForCode", "mobileNumberPortableRegion"):
            if attrs.get(flag) == "false":
                del attrs[flag]
        descs = {}
        for child in t:
            if child.tag in IGNORED:
                continue
            pattern, example, pl = (
                child.find("nationalNumberPattern"),
                child.find("exampleNumber"),
                child.find("possibleLengths"),
            )
            descs[child.tag] = (
                ws(pattern.text) if pattern is not None else None,
                example.text if example is not None else None,
                lengths(pl.get("national")) if pl is not None else None,
                lengths(pl.get("localOnly")) if pl is not None else None,
            )
        formats = []
        available = t.find("availableFormats")
        for f in available.findall("numberFormat") if available is not None else []:
            rule = f.get("nationalPrefixFormattingRule", default_rule)
            carrier = f.get("carrierCodeFormattingRule", default_carrier)
            intl = f.find("intlFormat")
            formats.append(
                (
                    ws(f.get("pattern")),
                    f.find("format").text,
                    intl.text if intl is not None else None,
                    rule.replace("$NP", np or "") if rule is not None else None,
                    carrier.replace("$NP", np or "") if carrier is not None else None,
                    f.get("nationalPrefixOptionalWhenFormatting", default_optional) == "true",
                    tuple(ws(l.text) for l in f.findall("leadingDigits")),
                )
            )
        # With no intlFormat anywhere, international formats are the national ones.
        if any(f[2] is not None for f in formats):
            formats = [f[:2] + (f[2] if f[2] is not None else f[1],) + f[3:] for f in formats]
        else:
            formats = [f[:2] + (None,) + f[3:] for f in formats]
        out[(t.get("id"), t.get("countryCode"))] = (attrs, descs, formats)
    return out


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    first, second = load(sys.argv[1]), load(sys.argv[2])
    diffs = [f"territory only in one file: {k}" for k in sorted(set(first) ^ set(second))]
    for key in sorted(set(first) & set(second)):
        (a_attrs, a_descs, a_formats), (b_attrs, b_descs, b_formats) = first[key], second[key]
        if a_attrs != b_attrs:
            diffs.append(f"{key} attributes: {a_attrs} / {b_attrs}")
        for tag in sorted(set(a_descs) | set(b_descs)):
            a, b = a_descs.get(tag), b_descs.get(tag)
            if a is None or b is None:
                if tag not in SHORT_NUMBER_ONLY:
                    diffs.append(f"{key} {tag}: only in one file")
                continue
            same_lengths = a[2] is None or a[2] == b[2]
            same_local = a[3] is None or a[3] == b[3]
            if a[0] != b[0] or a[1] != b[1] or not same_lengths or not same_local:
                diffs.append(f"{key} {tag}: {a} / {b}")
        if a_formats != b_formats:
            diffs.append(f"{key} formats differ ({len(a_formats)} / {len(b_formats)})")
    for d in diffs:
        print(d)
    print(f"{len(first)} territories compared, {len(diffs)} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
