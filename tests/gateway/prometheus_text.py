"""A strict little parser of the Prometheus text exposition format (0.0.4), for tests of /metrics."""

from __future__ import annotations

import re

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_prometheus_text(page: str) -> Samples:
    """Parse the text exposition format strictly enough to catch malformed output.

    Every family has ``# HELP`` and ``# TYPE`` before its samples; every sample line is
    ``name{label="value",...} value``; histogram families end in ``_bucket``/``_sum``/``_count``.
    """
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    sample_re = re.compile(rf"^({name_re})(?:\{{(.*)\}})? (\S+)$")
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: Samples = {}
    assert page.endswith("\n")
    for line in page.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped") and name in helped
            types[name] = kind
            continue
        match = sample_re.match(line)
        assert match, f"not a sample line: {line!r}"
        name, label_text, value = match.groups()
        family = next((f for f in (name, re.sub(r"_(bucket|sum|count)$", "", name)) if f in types), None)
        assert family is not None, f"sample {name} before its # TYPE"
        labels: list[tuple[str, str]] = []
        if label_text:
            consumed = 0
            for label in label_re.finditer(label_text):
                assert label.start() == consumed, f"malformed labels: {label_text!r}"
                labels.append((label.group(1), label.group(2)))
                consumed = label.end()
            assert consumed == len(label_text), f"malformed labels: {label_text!r}"
        samples[(name, tuple(labels))] = float(value)
    return samples
