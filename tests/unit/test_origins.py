"""The Origin decision: listed origins, the hub's own pages, "*", requests without an Origin,
and the setting's entries checked once, at parse time."""

from __future__ import annotations

import pytest

from agentplex.core.origins import Origins, parse_origin, refusal

HOST = "127.0.0.1:8765"


def allows(setting: str, origin: str | None, host: str | None = HOST, tls: bool = False) -> bool:
    return Origins.parse(setting, tls=tls).allows(origin, host)


@pytest.mark.parametrize("setting", ["", "https://app.example.com", "*"])
def test_a_request_without_origin_is_not_a_browser_and_passes(setting: str) -> None:
    assert allows(setting, None)
    assert allows(setting, None, host=None)


def test_an_empty_list_allows_only_the_hubs_own_pages() -> None:
    assert allows("", "http://127.0.0.1:8765")
    assert not allows("", "http://127.0.0.1:9999")
    assert not allows("", "http://localhost:8765")  # another host name is another origin
    assert not allows("", "https://127.0.0.1:8765")  # the port serves http, not https
    assert not allows("", "https://evil.example")


def test_same_origin_follows_tls_on_the_port() -> None:
    assert allows("", "https://127.0.0.1:8765", tls=True)
    assert not allows("", "http://127.0.0.1:8765", tls=True)


def test_same_origin_compares_normalised_hosts_and_default_ports() -> None:
    assert allows("", "http://HUB.example.com", host="hub.example.com:80")
    assert allows("", "https://hub.example.com:443", host="Hub.Example.com", tls=True)
    assert allows("", "http://[::1]:8765", host="[::1]:8765")
    assert not allows("", "http://hub.example.com", host="hub.example.com:8765")


def test_without_a_usable_host_only_listed_origins_pass() -> None:
    assert not allows("", "http://127.0.0.1:8765", host=None)
    assert not allows("", "http://127.0.0.1:8765", host="127.0.0.1:8765, evil.example")
    assert allows("http://127.0.0.1:8765", "http://127.0.0.1:8765", host=None)


def test_listed_origins_pass_and_others_do_not() -> None:
    setting = " https://app.example.com , http://localhost:3000,"
    assert allows(setting, "https://app.example.com")
    assert allows(setting, "https://APP.example.com:443")
    assert allows(setting, "http://localhost:3000")
    assert not allows(setting, "http://app.example.com")
    assert not allows(setting, "https://app.example.com:8443")
    assert not allows(setting, "https://app.example.com.evil.example")
    assert not allows(setting, "http://localhost:3001")


@pytest.mark.parametrize(
    "origin", ["null", "", "https://app.example.com/", "https://a.example, https://app.example.com"]
)
def test_what_is_not_one_origin_is_refused(origin: str) -> None:
    assert not allows("https://app.example.com", origin)


@pytest.mark.parametrize("setting", ["*", "https://app.example.com, *"])
def test_a_star_allows_any_origin(setting: str) -> None:
    for origin in ("https://evil.example", "null", "chrome-extension://abc"):
        assert allows(setting, origin)


@pytest.mark.parametrize(
    "entry", ["app.example.com", "https://app.example.com/", "https://app.example.com/path", "*.x"]
)
def test_an_entry_that_is_no_origin_fails_at_parse_naming_the_setting(entry: str) -> None:
    with pytest.raises(ValueError, match=r"server\.allowed_origins") as failed:
        Origins.parse(f"https://ok.example, {entry}", tls=False)
    assert repr(entry) in str(failed.value)


def test_origins_are_normalised() -> None:
    assert parse_origin("HTTPS://Example.COM") == ("https", "example.com", 443)
    assert parse_origin("http://example.com:8080") == ("http", "example.com", 8080)
    assert parse_origin("app://bundle") == ("app", "bundle", None)
    assert parse_origin("null") is None


def test_the_refusal_names_the_origin_and_the_setting() -> None:
    reason = refusal("https://evil.example")
    assert "https://evil.example" in reason and "server.allowed_origins" in reason
    assert "\n" not in reason
