#!/usr/bin/env python3
"""Strictly parses an OpenMetrics exposition with the official Python client's parser.

Usage: openmetrics_check.py FILE. Exits non-zero with the parser's complaint when the text
is not valid OpenMetrics 1.0 (missing # EOF, bad escapes, wrong suffixes, duplicate
families); prints a sample count per family otherwise.
"""
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as handle:
        text = handle.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises ValueError and friends
        print(f"invalid OpenMetrics: {error}", file=sys.stderr)
        return 1
    for family in families:
        print(f"{family.name} {family.type} {len(family.samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
