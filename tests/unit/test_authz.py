"""Authorization: scopes with globs, hub-owned channels, inbox isolation."""

from __future__ import annotations

import grpc
import pytest

from agentplex.core import authz
from agentplex.core.principal import ANONYMOUS, Principal
from agentplex.errors import PermissionDenied


def who(*scopes: str, pid: str = "alice") -> Principal:
    return Principal(id=pid, scopes=frozenset(scopes))


ADMIN = who("admin", pid="root")


def denied(fn: object, *fragments: str) -> None:
    assert callable(fn)
    with pytest.raises(PermissionDenied) as err:
        fn()
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    for fragment in fragments:
        assert fragment in err.value.message


def test_admin_flag() -> None:
    assert ADMIN.is_admin
    assert not who("publish:*").is_admin
    assert not ANONYMOUS.is_admin and ANONYMOUS.anonymous


@pytest.mark.parametrize(
    ("scopes", "channel", "allowed"),
    [
        (("publish:*",), "jobs", True),
        (("publish:jobs.*",), "jobs.build", True),
        (("publish:jobs.*",), "jobs", False),
        (("publish:jobs.*",), "news.today", False),
        (("publish:jobs.?",), "jobs.a", True),
        (("publish:jobs.[ab]",), "jobs.c", False),
        (("publish:jobs",), "jobs", True),
        (("subscribe:*",), "jobs", False),  # the wrong action
        (("publish",), "jobs", False),
        ((), "jobs", False),
        (("task:submit", "publish:a*"), "abc", True),
    ],
)
def test_publish_scopes(scopes: tuple[str, ...], channel: str, allowed: bool) -> None:
    principal = who(*scopes)
    if allowed:
        authz.check_publish(principal, channel)
    else:
        denied(lambda: authz.check_publish(principal, channel), channel, "publish:<glob>")


def test_system_channels_are_the_hubs_own() -> None:
    denied(lambda: authz.check_publish(who("publish:*"), "_sys.agents"), "_sys.agents", "'_'")
    denied(lambda: authz.check_publish(ANONYMOUS, "_dlq.tasks"), "_dlq.tasks")
    authz.check_publish(ADMIN, "_sys.agents")
    authz.check_publish(ANONYMOUS, "jobs")


def test_subscribe_to_names() -> None:
    authz.check_subscribe(who("subscribe:jobs.*"), "jobs.x", "bot")
    denied(
        lambda: authz.check_subscribe(who("subscribe:jobs.*"), "news", "bot"),
        "news",
        "subscribe:<glob>",
    )
    denied(lambda: authz.check_subscribe(who("publish:*"), "news", "bot"), "subscribe:<glob>")
    authz.check_subscribe(ADMIN, "anything", "")


def test_inbox_is_private_to_its_agent() -> None:
    reader = who("subscribe:*")
    authz.check_subscribe(reader, "agent.bot", "bot")
    denied(
        lambda: authz.check_subscribe(reader, "agent.bot", "other"), "agent.bot", "'bot'", "inbox"
    )
    denied(lambda: authz.check_subscribe(reader, "agent.bot", ""), "inbox")
    authz.check_subscribe(ADMIN, "agent.bot", "other")


def test_patterns_need_some_subscribe_scope() -> None:
    authz.check_subscribe(who("subscribe:jobs.*"), "news.*", "bot")  # filtered per channel later
    authz.check_subscribe(ADMIN, "*", "")
    denied(
        lambda: authz.check_subscribe(who("publish:*"), "jobs.*", "bot"),
        "jobs.*",
        "subscribe:<glob>",
    )
    denied(lambda: authz.check_subscribe(who(), "*", "bot"), "subscribe:<glob>")


@pytest.mark.parametrize(
    ("principal", "agent_id", "channel", "expected"),
    [
        (who("subscribe:*"), "bot", "jobs", True),
        (who("subscribe:jobs.*"), "bot", "jobs.a", True),
        (who("subscribe:jobs.*"), "bot", "news.a", False),
        (who("subscribe:*"), "bot", "agent.bot", True),
        (who("subscribe:*"), "bot", "agent.other", False),  # a pattern like agent.* is filtered
        (who("subscribe:agent.*"), "bot", "agent.other", False),
        (who("agent"), "bot", "agent.bot", True),  # its own inbox needs no subscribe scope
        (ADMIN, "bot", "agent.other", True),
        (ADMIN, "", "_sys.agents", True),
        # The hub's own channels need a glob that starts with "_" (as `*` skips dotfiles).
        (who("subscribe:*"), "bot", "_sys.agents", False),
        (who("subscribe:*"), "", "_sys.tasks", False),
        (who("subscribe:_sys.*"), "", "_sys.tasks", True),
        (who("subscribe:_*"), "", "_dlq.tasks", True),
        (who("subscribe:_sys.agents"), "", "_sys.tasks", False),
        (ANONYMOUS, "", "_sys.tasks", True),
    ],
)
def test_can_receive(principal: Principal, agent_id: str, channel: str, expected: bool) -> None:
    assert authz.can_receive(principal, agent_id, channel) is expected


def test_register_needs_agent_scope() -> None:
    authz.check_register(who("agent"))
    authz.check_register(ADMIN)
    authz.check_register(ANONYMOUS)
    denied(lambda: authz.check_register(who("publish:*")), "'agent' scope")


def test_agent_owner() -> None:
    authz.check_agent_owner(who(pid="alice"), "alice", "bot")
    authz.check_agent_owner(ADMIN, "alice", "bot")
    denied(lambda: authz.check_agent_owner(who(pid="mallory"), "alice", "bot"), "'bot'")
