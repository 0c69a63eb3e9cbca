"""Hosts and worker maps: IPv4, IPv6 and DNS names accepted; anything else refused with a reason."""
from __future__ import annotations

import socket

import pytest

from agilab_panel.hosts import (is_local_host, is_loopback, is_wildcard, own_addresses, parse_host_port, slot_ids,
                                validate_host, validate_workers)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "192.168.1.21", "::1", "2001:db8::1", "fe80::1", "[2001:db8::1]", "localhost", "worker-1", "node.example.com", "example.com."],
)
def test_valid_hosts_are_accepted_unchanged(host):
    assert validate_host(host) == host


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("999.1.1.1", "not a valid IPv4"),
        ("1.2.3", "not a valid IPv4"),
        ("bad host", "not an IPv4/IPv6 address or a DNS name"),
        ("-x", "not an IPv4/IPv6 address or a DNS name"),
        ("x-", "not an IPv4/IPv6 address or a DNS name"),
        ("a..b", "not an IPv4/IPv6 address or a DNS name"),
        ("under_score", "not an IPv4/IPv6 address or a DNS name"),
        ("a" * 64, "not an IPv4/IPv6 address or a DNS name"),
        ("", "non-empty string"),
        ("   ", "non-empty string"),
        (" localhost", "surrounding spaces"),
        (None, "non-empty string"),
        (42, "non-empty string"),
    ],
)
def test_invalid_hosts_are_refused(host, message):
    with pytest.raises(ValueError, match=message):
        validate_host(host)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", None)),
        ("127.0.0.1:8786", ("127.0.0.1", 8786)),
        ("tcp://10.0.0.5:8786", ("10.0.0.5", 8786)),
        ("scheduler.example.com:1", ("scheduler.example.com", 1)),
        ("localhost:65535", ("localhost", 65535)),
        ("::1", ("::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("[::1]:8786", ("::1", 8786)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
    ],
)
def test_parse_host_port(value, expected):
    assert parse_host_port(value) == expected


def test_parse_host_port_default_port():
    assert parse_host_port("localhost", default_port=8786) == ("localhost", 8786)
    assert parse_host_port("localhost:9000", default_port=8786) == ("localhost", 9000)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("host:0", "port must be an integer 1..65535"),
        ("host:65536", "port must be an integer 1..65535"),
        ("host:ab", "port must be an integer 1..65535"),
        ("host:-1", "port must be an integer 1..65535"),
        ("host:\u0663\u0663", "port must be an integer 1..65535"),  # Arabic-Indic 33: a digit, not a port
        ("host:\u00b2", "port must be an integer 1..65535"),
        ("host:", "empty port"),
        ("[::1]:", "empty port"),
        ("[::1]:99999", "port must be an integer 1..65535"),
        ("[::1", "missing ']'"),
        ("[::1]8786", "expected ':port'"),
        ("999.1.1.1:80", "not a valid IPv4"),
        ("bad host:80", "not an IPv4/IPv6"),
        ("", "host\\[:port\\]"),
        (None, "host\\[:port\\]"),
    ],
)
def test_parse_host_port_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_host_port(value)


def test_validate_workers_accepts_mixed_hosts_and_returns_a_copy():
    workers = {"192.168.1.21": 1, "::1": 2, "[2001:db8::2]": 1, "gpu-node.local": 4}
    result = validate_workers(workers)
    assert result == workers
    assert result is not workers


@pytest.mark.parametrize("bad", [None, [("127.0.0.1", 1)], "127.0.0.1:2", 3])
def test_validate_workers_refuses_non_mappings(bad):
    with pytest.raises(ValueError, match="workers must be a mapping"):
        validate_workers(bad)


def test_validate_workers_refuses_an_empty_map():
    with pytest.raises(ValueError, match="at least one host"):
        validate_workers({})


@pytest.mark.parametrize("slots", [0, -1, True, False, "2", 1.5, None])
def test_validate_workers_refuses_bad_slot_counts(slots):
    with pytest.raises(ValueError, match=r"workers\['127.0.0.1'\] must be a positive int"):
        validate_workers({"127.0.0.1": slots})


@pytest.mark.parametrize("host", ["999.1.1.1", "bad host", "", "-x", 7])
def test_validate_workers_refuses_bad_hosts(host):
    with pytest.raises(ValueError):
        validate_workers({"127.0.0.1": 1, host: 1})


def test_slot_ids_follow_map_order():
    assert slot_ids({"b": 2, "a": 1}) == ["b-0", "b-1", "a-0"]
    assert slot_ids({"my-host": 1}) == ["my-host-0"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", socket.gethostname()])
def test_local_hosts(host):
    assert is_local_host(host)


@pytest.mark.parametrize("host", ["192.0.2.10", "2001:db8::1", "worker.example.invalid"])
def test_remote_hosts(host):
    assert not is_local_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses(host):
    assert is_loopback(host) and not is_wildcard(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "", None])
def test_every_interface_is_neither_loopback_nor_one_address(host):
    assert is_wildcard(host) and not is_loopback(host)


@pytest.mark.parametrize("host", ["192.0.2.10", "fd00::5", "localhost.example.com", socket.gethostname() + ".invalid"])
def test_other_addresses_are_not_loopback(host):
    assert not is_loopback(host) and not is_wildcard(host)


def test_every_interface_address_of_this_machine_is_local():
    import psutil

    addresses = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                 if a.family in (socket.AF_INET, socket.AF_INET6)}
    assert addresses <= own_addresses()
    assert all(is_local_host(a) for a in addresses)


def test_absurd_slot_counts_are_refused_with_the_limit_they_pass():
    from agilab_panel.hosts import MAX_SLOTS, MAX_SLOTS_PER_HOST

    with pytest.raises(ValueError, match=r"^workers\['10.0.0.1'\] = 1,000,000 worker slots: at most 1,024 per host$"):
        validate_workers({"10.0.0.1": 1_000_000})
    many = {f"10.0.{i // 256}.{i % 256}": MAX_SLOTS_PER_HOST for i in range(MAX_SLOTS // MAX_SLOTS_PER_HOST + 1)}
    with pytest.raises(ValueError, match=r"^workers: 100,352 worker slots over 98 hosts: at most 100,000 in all$"):
        validate_workers(many)
    assert sum(validate_workers({f"h{i}": 10 for i in range(MAX_SLOTS // 10)}).values()) == MAX_SLOTS
