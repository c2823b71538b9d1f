"""/metrics: the text format parses, values add up, label values are escaped, recorder hooks are thread-safe."""

from __future__ import annotations

import threading

import pytest

from gateway.metrics import GatewayMetrics, MetricsRegistry, RateMeter
from tests.gateway.prometheus_text import parse_prometheus_text


async def test_the_page_parses_and_shows_every_family() -> None:
    metrics = GatewayMetrics()
    metrics.observe_cloud_call("ListGatewayDevices", "OK", 0.02, 120)
    metrics.observe_cloud_call("ListGatewayDevices", "OK", 3.0, 120)
    metrics.observe_cloud_call("AddUserDevice", "Transport", 10.5, 400)
    metrics.recorder.add_bytes('ch"1\\x\n', 1000)
    metrics.recorder.add_gap("ch2")
    metrics.recorder.add_dropped("ch2", 3)
    samples = parse_prometheus_text(await metrics.render())
    assert samples[("ivc_gateway_cloud_calls_total", (("action", "ListGatewayDevices"), ("code", "OK")))] == 2
    assert samples[("ivc_gateway_cloud_calls_total", (("action", "AddUserDevice"), ("code", "Transport")))] == 1
    buckets = {labels[1][1]: value for (name, labels), value in samples.items()
               if name == "ivc_gateway_cloud_call_duration_seconds_bucket" and labels[0] == ("action", "ListGatewayDevices")}
    assert buckets["0.025"] == 1 and buckets["5"] == 2 and buckets["+Inf"] == 2  # cumulative
    assert samples[("ivc_gateway_cloud_call_duration_seconds_sum", (("action", "ListGatewayDevices"),))] == pytest.approx(3.02)
    assert samples[("ivc_gateway_cloud_call_duration_seconds_count", (("action", "AddUserDevice"),))] == 1
    assert samples[("ivc_gateway_recorder_bytes_total", (("channel", 'ch\\"1\\\\x\\n'),))] == 1000
    assert samples[("ivc_gateway_recorder_gaps_total", (("channel", "ch2"),))] == 1
    assert samples[("ivc_gateway_recorder_dropped_packets_total", (("channel", "ch2"),))] == 3
    assert samples[("ivc_gateway_upstream_bytes_total", ())] == 640


async def test_collectors_refresh_gauges_before_each_scrape() -> None:
    registry = MetricsRegistry()
    depth = registry.gauge("queue_depth", "Items waiting.")
    seen = [5, 7]

    async def collect() -> None:
        depth.set(seen.pop(0))

    remove = registry.add_collector(collect)
    assert parse_prometheus_text(await registry.render())[("queue_depth", ())] == 5
    assert parse_prometheus_text(await registry.render())[("queue_depth", ())] == 7
    remove()
    assert parse_prometheus_text(await registry.render())[("queue_depth", ())] == 7


def test_wrong_labels_and_negative_counts_are_refused() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("things_total", "Things.", ("kind",))
    with pytest.raises(ValueError):
        counter.inc(kind="a", other="b")
    with pytest.raises(ValueError):
        counter.inc(-1, kind="a")
    with pytest.raises(ValueError):
        registry.counter("things_total", "Again.")


def test_recorder_threads_can_count_at_once() -> None:
    metrics = GatewayMetrics()

    def write() -> None:
        for _ in range(10_000):
            metrics.recorder.add_bytes("ch1", 1)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert metrics.recorder.bytes.value(channel="ch1") == 40_000
    assert metrics.recorder.last_write("ch1") is not None and metrics.recorder.last_write("ch2") is None


def test_upflow_is_the_rate_over_the_last_window() -> None:
    now = [100.0]
    meter = RateMeter(window=60.0, clock=lambda: now[0])
    meter.add(750_000)
    assert meter.bits_per_second() == pytest.approx(100_000)
    now[0] += 61
    assert meter.bits_per_second() == 0
