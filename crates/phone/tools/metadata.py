#!/usr/bin/env python3
"""Writes libphonenumber's numbering-plan metadata as `PhoneNumberMetadata.xml`.

The `phonenumber` crate reads libphonenumber's XML metadata (`Database::parse`), but its own
copy lags libphonenumber's releases, and no registry reachable from this project's machines
ships the XML file itself. The Python `phonenumbers` package (PyPI) ships the same metadata,
generated from that XML by libphonenumber's build, and follows its releases closely. This
script turns it back into the XML form the crate reads:

    python3 -m venv /tmp/pn && /tmp/pn/bin/pip install phonenumbers==9.0.43
    /tmp/pn/bin/python crates/phone/tools/metadata.py \
        > crates/phone/metadata/PhoneNumberMetadata.xml

What changes on the way: whitespace inside patterns is gone, `\\1` becomes `$1`, formatting
rules say `0$FG` instead of `$NP$FG` (the same rule once the crate substitutes the national
prefix), every descriptor carries its possible lengths (libphonenumber's build computes the ones
the XML leaves out) and `nationalPrefixForParsing` is spelt out where the XML left it to default
to `nationalPrefix`. Nothing else is derived or edited: patterns, prefixes and examples are
libphonenumber's. The output is deterministic for one `phonenumbers` version.

Licence: the metadata is libphonenumber's, Apache License 2.0 (see ../metadata/LICENSE).
"""

from __future__ import annotations

import argparse
import re
import sys

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

# The descriptors the crate's loader reads, in libphonenumber's XML order.
DESCRIPTORS = [
    ("generalDesc", "general_desc"),
    ("noInternationalDialling", "no_international_dialling"),
    ("fixedLine", "fixed_line"),
    ("mobile", "mobile"),
    ("pager", "pager"),
    ("tollFree", "toll_free"),
    ("premiumRate", "premium_rate"),
    ("sharedCost", "shared_cost"),
    ("personalNumber", "personal_number"),
    ("voip", "voip"),
    ("uan", "uan"),
    ("voicemail", "voicemail"),
]

LICENCE_HEADER = """<!-- Copyright (C) 2009 The Libphonenumber Authors

     Licensed under the Apache License, Version 2.0 (the "License");
     you may not use this file except in compliance with the License.
     You may obtain a copy of the License at
     http://www.apache.org/licenses/LICENSE-2.0

     Unless required by applicable law or agreed to in writing, software
     distributed under the License is distributed on an "AS IS" BASIS,
     WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
     See the License for the specific language governing permissions and
     limitations under the License.

     libphonenumber's numbering-plan metadata, written back into its XML form from the Python
     "phonenumbers" package by wa-pairing-phone's tools/metadata.py. Do not edit by hand:
     regenerate it (see that script). -->"""


def checked(value: str) -> str:
    """The crate's loader does not unescape XML entities: refuse anything that would need one."""
    if any(c in value for c in '&<>"'):
        raise SystemExit(f"value needs XML escaping, which the crate cannot read: {value!r}")
    return value


def backrefs(value: str) -> str:
    """`\\1` (Python) to `$1` (libphonenumber's XML); refuses `\\1` followed by a digit."""
    if re.search(r"\\\d\d", value):
        raise SystemExit(f"ambiguous group reference: {value!r}")
    return re.sub(r"\\(\d)", r"$\1", value)


def rule(value: str) -> str:
    """A formatting rule: the first group is `$FG` in the XML."""
    if re.search(r"\\[2-9]", value):
        raise SystemExit(f"formatting rule uses a group other than the first: {value!r}")
    return value.replace("\\1", "$FG")


def lengths(values) -> str:
    return ",".join(str(v) for v in sorted(set(values)))


def attrs(pairs) -> str:
    return "".join(f' {k}="{checked(v)}"' for k, v in pairs if v is not None)


def descriptor(out: list[str], tag: str, desc) -> None:
    if desc is None or desc.national_number_pattern is None:
        return
    out.append(f"      <{tag}>")
    if desc.possible_length:
        pl = [("national", lengths(desc.possible_length))]
        if desc.possible_length_local_only:
            pl.append(("localOnly", lengths(desc.possible_length_local_only)))
        out.append(f"        <possibleLengths{attrs(pl)}/>")
    if desc.example_number is not None:
        out.append(f"        <exampleNumber>{checked(desc.example_number)}</exampleNumber>")
    pattern = checked(desc.national_number_pattern)
    out.append(f"        <nationalNumberPattern>{pattern}</nationalNumberPattern>")
    out.append(f"      </{tag}>")


def same_shape(national, intl) -> bool:
    return national.pattern == intl.pattern and list(national.leading_digits_pattern) == list(
        intl.leading_digits_pattern
    )


def formats(out: list[str], meta) -> None:
    national = list(meta.number_format)
    intl = list(meta.intl_number_format)
    if not national:
        return
    out.append("      <availableFormats>")
    # An empty intl list means "same as national" (libphonenumber's build drops it when no
    # format had an intlFormat). Otherwise it holds, in order, the international version of
    # each national format that has one: walk both lists together, writing NA for the gaps.
    j = 0
    for f in national:
        a = [("pattern", f.pattern)]
        if f.national_prefix_formatting_rule is not None:
            a.append(("nationalPrefixFormattingRule", rule(f.national_prefix_formatting_rule)))
        if f.national_prefix_optional_when_formatting:
            a.append(("nationalPrefixOptionalWhenFormatting", "true"))
        if f.domestic_carrier_code_formatting_rule is not None:
            a.append(("carrierCodeFormattingRule", rule(f.domestic_carrier_code_formatting_rule)))
        out.append(f"        <numberFormat{attrs(a)}>")
        for ld in f.leading_digits_pattern:
            out.append(f"          <leadingDigits>{checked(ld)}</leadingDigits>")
        out.append(f"          <format>{checked(backrefs(f.format))}</format>")
        if intl:
            if j < len(intl) and same_shape(f, intl[j]):
                out.append(f"          <intlFormat>{checked(backrefs(intl[j].format))}</intlFormat>")
                j += 1
            else:
                out.append("          <intlFormat>NA</intlFormat>")
        out.append("        </numberFormat>")
    if intl and j != len(intl):
        raise SystemExit(f"{meta.id}: international formats do not follow the national ones")
    out.append("      </availableFormats>")


def territory(out: list[str], meta) -> None:
    a = [
        ("id", meta.id),
        ("countryCode", str(meta.country_code)),
        ("mainCountryForCode", "true" if meta.main_country_for_code else None),
        ("leadingDigits", meta.leading_digits),
        ("internationalPrefix", meta.international_prefix),
        ("preferredInternationalPrefix", meta.preferred_international_prefix),
        ("nationalPrefix", meta.national_prefix),
        ("preferredExtnPrefix", meta.preferred_extn_prefix),
        ("nationalPrefixForParsing", meta.national_prefix_for_parsing),
        (
            "nationalPrefixTransformRule",
            backrefs(meta.national_prefix_transform_rule)
            if meta.national_prefix_transform_rule is not None
            else None,
        ),
        ("mobileNumberPortableRegion", "true" if meta.mobile_number_portable_region else None),
    ]
    out.append(f"    <territory{attrs(a)}>")
    formats(out, meta)
    for tag, field in DESCRIPTORS:
        descriptor(out, tag, getattr(meta, field))
    out.append("    </territory>")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--expect-version",
        help="fail unless the installed phonenumbers package has this version",
    )
    args = parser.parse_args()
    version = phonenumbers.__version__
    if args.expect_version and version != args.expect_version:
        raise SystemExit(f"phonenumbers {version} installed, {args.expect_version} expected")

    # No XML declaration: the crate's loader refuses one.
    out = [LICENCE_HEADER]
    # A marker the crate reads to report the metadata's version; keep it on one line.
    out.append(f"<!-- libphonenumber-metadata-version: {version} -->")
    out.append("<phoneNumberMetadata>")
    out.append("  <territories>")
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        territory(out, PhoneMetadata.metadata_for_region(region))
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        territory(out, PhoneMetadata.metadata_for_nongeo_region(code))
    out.append("  </territories>")
    out.append("</phoneNumberMetadata>")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
