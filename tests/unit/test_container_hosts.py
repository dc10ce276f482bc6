"""The generated /etc/hostname, /etc/hosts and /etc/resolv.conf (runtime/hosts.py)."""

from __future__ import annotations

from pathlib import Path

from cellbox.runtime.hosts import DEFAULT_NAMESERVERS, etc_files, filter_resolv_conf, hosts_file


def test_loopback_nameservers_are_dropped_like_docker() -> None:
    text = (
        "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
        "nameserver ::1\nnameserver fe80::1%eth0\noptions edns0\n"
    )
    out, kept = filter_resolv_conf(text)
    assert kept
    assert "127.0.0.53" not in out and "::1\n" not in out
    assert "nameserver 10.0.0.2" in out and "nameserver fe80::1%eth0" in out
    assert "search example.org" in out and "options edns0" in out


def test_only_loopback_nameservers_fall_back_to_public_ones() -> None:
    out, kept = filter_resolv_conf("nameserver 127.0.0.1\n")
    assert not kept
    assert [line.split()[1] for line in out.splitlines() if line.startswith("nameserver")] == \
        list(DEFAULT_NAMESERVERS)


def test_hosts_maps_the_hostname_to_the_container_address() -> None:
    text = hosts_file("abc123", "10.89.0.5")
    assert "127.0.0.1\tlocalhost" in text
    assert text.endswith("10.89.0.5\tabc123\n")
    assert hosts_file("abc123", None).endswith("127.0.1.1\tabc123\n")


def test_etc_files_from_a_host_etc(tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\nnameserver 192.0.2.1\n")
    (tmp_path / "hosts").write_text("127.0.0.1 localhost myhost\n")
    files = etc_files("c0ffee", "bridge", "10.89.0.7", host_etc=tmp_path)
    assert files["/etc/hostname"] == "c0ffee\n"
    assert "10.89.0.7\tc0ffee" in files["/etc/hosts"]
    assert files["/etc/resolv.conf"] == "nameserver 192.0.2.1\n"
    host = etc_files("c0ffee", "host", host_etc=tmp_path)
    assert host["/etc/hosts"] == "127.0.0.1 localhost myhost\n"
    assert "127.0.0.1" in host["/etc/resolv.conf"]  # same netns: the host's stub works


def test_a_host_without_resolv_conf_still_gives_resolvers(tmp_path: Path) -> None:
    files = etc_files("c0ffee", "none", host_etc=tmp_path)
    assert "nameserver 8.8.8.8" in files["/etc/resolv.conf"]



def test_loopback_is_told_as_ipaddress_tells_it() -> None:
    # The dotted-quad fast path (no ipaddress import) must agree with ipaddress itself,
    # odd spellings included.
    import ipaddress

    from cellbox.runtime.hosts import _is_loopback

    samples = ["127.0.0.1", "127.255.255.254", "126.0.0.1", "128.0.0.1", "0.0.0.0",
               "127.0.0.01", "0127.0.0.1", "127.0.0.256", "127.0.0", "127.0.0.1.1", "127..0.1",
               "\uff11\uff12\uff17.0.0.1", "127.0.0.+1", " 127.0.0.1", "127.0.0.1%lo", "::1",
               "0:0:0:0:0:0:0:1", "::1%lo", "::ffff:127.0.0.1", "fe80::1", "10.0.0.2", "",
               "localhost", "1.2.3.4", "255.255.255.255", "1000.0.0.1"]
    for text in samples:
        try:
            expected = ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
        except ValueError:
            expected = False
        assert _is_loopback(text) == expected, text
