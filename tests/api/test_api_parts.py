"""The local API's building blocks on their own: replay memory, Host policy, snapshot links."""

from __future__ import annotations

import pytest

from gateway.api import HostPolicy, ReplayCache, SnapshotLinks, authority


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_signature_is_refused_for_the_whole_window_then_forgotten() -> None:
    cache = ReplayCache(window=600)
    assert cache.first_use("a", 1000.0)
    assert not cache.first_use("a", 1000.5)
    assert not cache.first_use("a", 1600.0)
    assert cache.first_use("b", 1600.0)
    assert cache.first_use("a", 1600.5), "forgotten once older than the window"
    assert len(cache) == 2


def test_the_replay_memory_is_bounded() -> None:
    cache = ReplayCache(window=600, capacity=3)
    for name in "abcd":
        assert cache.first_use(name, 1000.0)
    assert len(cache) == 3
    assert cache.first_use("a", 1000.0), "the oldest was forgotten early"
    assert not cache.first_use("d", 1000.0)


@pytest.mark.parametrize(
    ("listen", "public_url", "accepted", "refused"),
    [
        ("127.0.0.1", "", ["127.0.0.1:8640", "LOCALHOST:8640", "[::1]:8640"], ["127.0.0.1:8641", "10.0.0.5:8640", "127.0.0.1"]),
        ("10.0.0.5", "", ["10.0.0.5:8640"], ["127.0.0.1:8640", "10.0.0.6:8640"]),
        ("0.0.0.0", "", ["10.0.0.5:8640", "gw.site.lan:8640", "127.0.0.1:8640"], ["10.0.0.5:80", "iss.tencentcloudapi.com"]),
        ("10.0.0.5", "https://gw.example.com", ["gw.example.com", "10.0.0.5:8640"], ["gw.example.com:8640"]),
        ("10.0.0.5", "http://gw.example.com:9000/base", ["gw.example.com:9000"], ["gw.example.com"]),
        ("::1", "", ["[::1]:8640", "127.0.0.1:8640"], ["::1:8640"]),
    ],
)
def test_host_policy(listen: str, public_url: str, accepted: list[str], refused: list[str]) -> None:
    policy = HostPolicy(listen, 8640, public_url)
    assert [host for host in accepted if not policy.accepts(host)] == []
    assert [host for host in refused if policy.accepts(host)] == []
    assert policy.accepts(policy.canonical)


def test_authority_brackets_ipv6() -> None:
    assert authority("::1", 80) == "[::1]:80" and authority("10.0.0.1", 80) == "10.0.0.1:80"


def test_links_are_valid_until_they_expire_and_only_for_their_path() -> None:
    clock = Clock()
    links = SnapshotLinks.for_secret("api-secret", lifetime=3600, clock=clock)
    path = SnapshotLinks.path("2f6b1b9e-0000-4000-8000-00000000dead", "20250101T000000000Z_abc_01.jpg")
    query = links.query(path)
    assert links.valid(path, query["expires"], query["signature"])
    assert not links.valid(path.replace("_01", "_02"), query["expires"], query["signature"])
    assert not links.valid(path, str(int(query["expires"]) + 1), query["signature"])
    assert not links.valid(path, query["expires"], query["signature"][:-1] + "0")
    assert not links.valid(path, "soon", query["signature"])
    clock.now += 3600
    assert links.valid(path, query["expires"], query["signature"])
    clock.now += 1
    assert not links.valid(path, query["expires"], query["signature"])


def test_links_are_keyed_by_the_api_secret() -> None:
    clock = Clock()
    path = "/snapshots/c/f.jpg"
    query = SnapshotLinks.for_secret("one", 60, clock).query(path)
    assert SnapshotLinks.for_secret("one", 60, clock).valid(path, query["expires"], query["signature"])
    assert not SnapshotLinks.for_secret("two", 60, clock).valid(path, query["expires"], query["signature"])
    # Without a secret the key is random per process: links do not survive a restart.
    assert not SnapshotLinks.for_secret("", 60, clock).valid(
        path, *SnapshotLinks.for_secret("", 60, clock).query(path).values()
    )
