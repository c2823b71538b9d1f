"""XML Schema value formatting and request-argument reading shared by the service handlers.

Request children are looked up by local name in any namespace: a device only needs the value,
and real firmwares are equally lenient about which prefix a client bound.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from lxml import etree

from .soap import invalid_args

_DURATION_RE = re.compile(
    r"^(?P<sign>-)?P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def xs_bool(value: bool) -> str:
    """xs:boolean lexical form."""
    return "true" if value else "false"


def xs_float(value: float) -> str:
    """xs:float without exponent noise: six decimals at most, trailing zeros dropped."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def xs_datetime(epoch_seconds: float) -> str:
    """xs:dateTime in UTC with a Z suffix, whole seconds (as cameras report)."""
    moment = datetime.fromtimestamp(int(epoch_seconds), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def xs_duration(seconds: float) -> str:
    """xs:duration such as ``PT5S`` or ``PT0.5S``."""
    return f"PT{xs_float(seconds)}S"


def parse_xs_duration(text: str) -> float:
    """Seconds in an xs:duration made of days/hours/minutes/seconds (years and months rejected)."""
    match = _DURATION_RE.match(text.strip())
    parts = {} if match is None else {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
    if match is None or not parts:
        raise invalid_args(f"unsupported duration {text!r}")
    seconds = (
        parts.get("days", 0.0) * 86400
        + parts.get("hours", 0.0) * 3600
        + parts.get("minutes", 0.0) * 60
        + parts.get("seconds", 0.0)
    )
    return -seconds if match.group("sign") else seconds


def parse_xs_bool(text: str) -> bool:
    """xs:boolean from its four lexical forms."""
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid_args(f"not a boolean: {text!r}")


def parse_xs_float(text: str, what: str) -> float:
    """A finite xs:float; anything else is the client's fault."""
    try:
        value = float(text)
    except ValueError:
        raise invalid_args(f"{what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise invalid_args(f"{what} must be finite")
    return value


def child(parent: etree._Element, name: str) -> etree._Element | None:
    """The first child element with the given local name, in any namespace."""
    found: etree._Element | None = parent.find(f"{{*}}{name}")
    return found


def children(parent: etree._Element, name: str) -> list[etree._Element]:
    """All child elements with the given local name, in any namespace."""
    return list(parent.findall(f"{{*}}{name}"))


def optional_text(parent: etree._Element, name: str) -> str | None:
    """Stripped text of a child element, or None when the element is absent."""
    element = child(parent, name)
    if element is None:
        return None
    return (element.text or "").strip()


def required_text(parent: etree._Element, name: str) -> str:
    """Stripped text of a mandatory child element; absent or empty is ``ter:InvalidArgs``."""
    text = optional_text(parent, name)
    if not text:
        raise invalid_args(f"missing argument {name}")
    return text


def optional_float(parent: etree._Element, name: str) -> float | None:
    """A float child element's value, or None when absent."""
    text = optional_text(parent, name)
    return None if text is None else parse_xs_float(text, name)


def float_attribute(element: etree._Element, name: str) -> float:
    """A mandatory float attribute (e.g. ``x`` of tt:Vector2D)."""
    text = element.get(name)
    if text is None:
        raise invalid_args(f"{etree.QName(element).localname} lacks attribute {name}")
    return parse_xs_float(text, f"{etree.QName(element).localname}@{name}")
