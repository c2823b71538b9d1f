"""Counters and gauges for ``GET /metrics``, in the Prometheus text exposition format (0.0.4).

The gateway needs a dozen series, not a client library: counters, gauges and one histogram with
labels, safe to update from the recorder's threads, rendered on demand. Values that live
elsewhere (device states, outbox depth, free disk) are not pushed: components register an async
*collector* that sets its gauges just before a scrape, so a scrape always shows the present.

What other components feed:

* :meth:`GatewayMetrics.observe_cloud_call` is the :class:`~gateway.iss.client.IssClient`
  observer: calls, latency and errors by action and code;
* :class:`RecorderCounters` is the recorder's hook: bytes written, gaps, dropped packets per
  channel (its threads call it); health checks read "bytes written recently" from it instead of
  probing a stream that is being recorded anyway;
* :meth:`GatewayMetrics.add_upstream_bytes` counts what leaves the site for the cloud, the
  source of DescribeGatewayMonitor's ``UpFlow``.
"""

from __future__ import annotations

import abc
import collections
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Final

from aiohttp import web

LabelValues = tuple[str, ...]
Collector = Callable[[], Awaitable[None]]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
CLOUD_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UPFLOW_WINDOW_SECONDS: Final = 60.0


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{name}="{_escape_label(value)}"' for name, value in zip(names, values, strict=True))
    return "{" + pairs + "}"


class _Metric(abc.ABC):
    """A named family of series keyed by label values; updates are thread-safe."""

    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    @abc.abstractmethod
    def samples(self) -> list[tuple[str, LabelValues, float, Sequence[str]]]:
        """``(suffix, label values, value, label names)`` of every series."""

    def render(self) -> list[str]:
        """The HELP, TYPE and sample lines of this family."""
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for suffix, values, value, names in self.samples():
            lines.append(f"{self.name}{suffix}{_label_text(names, values)} {_format_value(value)}")
        return lines


class Counter(_Metric):
    """A value that only goes up (per label set)."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (not negative) to the series of ``labels``."""
        if amount < 0:
            raise ValueError("a counter cannot go down")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The current value of one series (0 if never incremented)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[str, LabelValues, float, Sequence[str]]]:
        with self._lock:
            return [("", key, value, self.labels) for key, value in sorted(self._values.items())]


class Gauge(_Metric):
    """A value that is set; :meth:`replace` swaps the whole family (for collected gauges)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, **labels: str) -> None:
        """Set one series."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def replace(self, values: Mapping[LabelValues, float]) -> None:
        """Make ``values`` the whole family: series not listed disappear."""
        for key in values:
            if len(key) != len(self.labels):
                raise ValueError(f"{self.name} takes labels {self.labels}")
        with self._lock:
            self._values = {key: float(value) for key, value in values.items()}

    def value(self, **labels: str) -> float:
        """The current value of one series (0 if never set)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[tuple[str, LabelValues, float, Sequence[str]]]:
        with self._lock:
            return [("", key, value, self.labels) for key, value in sorted(self._values.items())]


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Iterable[float] = CLOUD_LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, list[float]] = {}  # bucket counts..., sum, count

    def observe(self, value: float, **labels: str) -> None:
        """Count one observation."""
        key = self._key(labels)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(self.buckets) + 2))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    series[index] += 1
            series[-2] += value
            series[-1] += 1

    def samples(self) -> list[tuple[str, LabelValues, float, Sequence[str]]]:
        rows: list[tuple[str, LabelValues, float, Sequence[str]]] = []
        bucket_names = (*self.labels, "le")
        with self._lock:
            for key, series in sorted(self._series.items()):
                for bound, count in zip(self.buckets, series, strict=False):
                    rows.append(("_bucket", (*key, _format_value(bound)), count, bucket_names))
                rows.append(("_bucket", (*key, "+Inf"), series[-1], bucket_names))
                rows.append(("_sum", key, series[-2], self.labels))
                rows.append(("_count", key, series[-1], self.labels))
        return rows


class MetricsRegistry:
    """The families one ``/metrics`` page shows, and the collectors run before each scrape."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Collector] = []

    def register(self, metric: _Metric) -> None:
        """Add a family; a name is registered once."""
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is already registered")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        """Register and return a counter."""
        metric = Counter(name, help_text, labels)
        self.register(metric)
        return metric

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        """Register and return a gauge."""
        metric = Gauge(name, help_text, labels)
        self.register(metric)
        return metric

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = (), buckets: Iterable[float] = CLOUD_LATENCY_BUCKETS) -> Histogram:
        """Register and return a histogram."""
        metric = Histogram(name, help_text, labels, buckets)
        self.register(metric)
        return metric

    def add_collector(self, collector: Collector) -> Callable[[], None]:
        """Run ``collector`` before every scrape; returns the function that removes it."""
        self._collectors.append(collector)
        return lambda: self._collectors.remove(collector) if collector in self._collectors else None

    async def render(self) -> str:
        """Refresh collected gauges, then the whole page."""
        for collector in list(self._collectors):
            await collector()
        lines: list[str] = []
        for name in sorted(self._metrics):
            lines.extend(self._metrics[name].render())
        return "\n".join(lines) + "\n"


class RateMeter:
    """Bytes counted over a sliding window, for a rate (UpFlow). Thread-safe."""

    def __init__(self, window: float = UPFLOW_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._entries: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Count ``count`` bytes now."""
        now = self._clock()
        with self._lock:
            self._entries.append((now, count))
            self._forget_before(now - self._window)

    def bits_per_second(self) -> float:
        """The mean rate over the window."""
        now = self._clock()
        with self._lock:
            self._forget_before(now - self._window)
            total = sum(count for _, count in self._entries)
        return total * 8 / self._window

    def _forget_before(self, horizon: float) -> None:
        while self._entries and self._entries[0][0] < horizon:
            self._entries.popleft()


class RecorderCounters:
    """The recorder's hook: per-channel bytes, gaps and dropped packets (called from its threads).

    ``channel`` is the channel's id as the recordings index keys it (``ChannelRecord.channel_id``).
    :meth:`last_write` is what health checks read: a channel whose recorder wrote bytes recently
    is streaming, whatever an RTSP probe would say.
    """

    def __init__(self, registry: MetricsRegistry, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.bytes = registry.counter("ivc_gateway_recorder_bytes_total", "Bytes the recorder wrote, per channel.", ("channel",))
        self.gaps = registry.counter("ivc_gateway_recorder_gaps_total", "Recording gaps (stream lost, restarted), per channel.", ("channel",))
        self.dropped = registry.counter(
            "ivc_gateway_recorder_dropped_packets_total", "Packets the recorder dropped (bad timestamps, corrupt), per channel.", ("channel",)
        )
        self._last_write: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_bytes(self, channel: str, count: int) -> None:
        """The recorder wrote ``count`` bytes of ``channel``."""
        self.bytes.inc(count, channel=channel)
        if count > 0:
            with self._lock:
                self._last_write[channel] = self._clock()

    def add_gap(self, channel: str) -> None:
        """Recording of ``channel`` was interrupted."""
        self.gaps.inc(channel=channel)

    def add_dropped(self, channel: str, count: int = 1) -> None:
        """The recorder dropped ``count`` packets of ``channel``."""
        self.dropped.inc(count, channel=channel)

    def last_write(self, channel: str) -> float | None:
        """When (monotonic seconds) bytes of ``channel`` were last written, if ever."""
        with self._lock:
            return self._last_write.get(channel)


class GatewayMetrics:
    """Every series of one gateway; lives on the daemon for its lifetime."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = MetricsRegistry()
        self.cloud_calls = self.registry.counter(
            "ivc_gateway_cloud_calls_total", "Cloud API calls by action and outcome code (OK, an iss code, Transport).", ("action", "code")
        )
        self.cloud_call_seconds = self.registry.histogram(
            "ivc_gateway_cloud_call_duration_seconds", "Cloud API call latency, per action.", ("action",)
        )
        self.upstream_bytes = self.registry.counter("ivc_gateway_upstream_bytes_total", "Bytes sent from the site to the cloud.")
        self.recorder = RecorderCounters(self.registry, clock)
        self._upflow = RateMeter(clock=clock)

    def observe_cloud_call(self, action: str, code: str, seconds: float, request_bytes: int) -> None:
        """The :class:`IssClient` observer: one finished attempt of ``action``."""
        self.cloud_calls.inc(action=action, code=code)
        self.cloud_call_seconds.observe(seconds, action=action)
        self.add_upstream_bytes(request_bytes)

    def add_upstream_bytes(self, count: int) -> None:
        """Count bytes sent to the cloud (API bodies, relay frames, media uploads)."""
        if count > 0:
            self.upstream_bytes.inc(count)
            self._upflow.add(count)

    def upflow_kbps(self) -> int:
        """Upstream traffic over the last minute, in kbit/s (DescribeGatewayMonitor ``UpFlow``)."""
        return round(self._upflow.bits_per_second() / 1000)

    async def render(self) -> str:
        """The ``/metrics`` page."""
        return await self.registry.render()


METRICS_KEY: Final = web.AppKey("metrics", GatewayMetrics)


def add_metrics_route(app: web.Application, metrics: GatewayMetrics) -> None:
    """Serve ``GET /metrics`` on the local API."""
    app[METRICS_KEY] = metrics
    app.router.add_get("/metrics", _serve_metrics)


async def _serve_metrics(request: web.Request) -> web.Response:
    text = await request.app[METRICS_KEY].render()
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})
