"""Who may do what: one place for every transport (scopes as in DESIGN.md's security section).
Every refusal, and every use of admin power over another principal's agent or task, is
audited here."""

from __future__ import annotations

from functools import lru_cache
from typing import NoReturn

from agentplex import audit
from agentplex.core.globmatch import is_pattern, match_any
from agentplex.core.principal import Principal
from agentplex.core.validation import inbox_owner, is_inbox, is_system
from agentplex.errors import PermissionDenied


def _deny(principal: Principal, message: str) -> NoReturn:
    audit.record("permission.denied", principal, reason=message)
    raise PermissionDenied(message)


def _scoped(principal: Principal, action: str, channel: str) -> bool:
    """A scope `<action>:<glob>` matches `channel`. The hub's own channels (`_sys.tasks`
    carries every task's input and result) are reached only by globs that start with `_`,
    as a shell's `*` skips dotfiles: `subscribe:*` does not read them, `subscribe:_sys.*`
    does."""
    return principal.is_admin or match_any(
        _globs(principal.scopes, action, is_system(channel)), channel
    )


@lru_cache(maxsize=1024)
def _globs(scopes: frozenset[str], action: str, system: bool) -> tuple[str, ...]:
    """The globs of `<action>:` scopes that may reach a system channel, or any channel."""
    prefix = action + ":"
    return tuple(
        scope[len(prefix) :]
        for scope in sorted(scopes)
        if scope.startswith(prefix) and (not system or scope.startswith("_", len(prefix)))
    )


def check_publish(principal: Principal, channel: str) -> None:
    if is_system(channel) and not principal.is_admin:
        _deny(principal, f"channel {channel!r} is the hub's own (names starting with '_')")
    if not _scoped(principal, "publish", channel):
        _deny(principal, f"publishing to {channel!r} needs a publish:<glob> scope matching it")


def check_subscribe(principal: Principal, channel: str, agent_id: str) -> None:
    """Refuse what can be refused up front; `can_receive` filters what patterns reach later."""
    if not is_pattern(channel):
        if not can_receive(principal, agent_id, channel):
            if is_inbox(channel):
                _deny(
                    principal,
                    f"{channel!r} is the inbox of agent {inbox_owner(channel)!r}: only "
                    "that agent's session (or an admin) may read it",
                )
            _deny(principal, f"reading {channel!r} needs a subscribe:<glob> scope matching it")
    elif not principal.is_admin and not any(s.startswith("subscribe:") for s in principal.scopes):
        _deny(principal, f"subscribing to {channel!r} needs a subscribe:<glob> scope")


def can_receive(principal: Principal, agent_id: str, channel: str) -> bool:
    """Whether a session of `principal` (holding `agent_id`) may get envelopes of `channel`."""
    if is_inbox(channel):  # an inbox is its agent's alone, whatever the scopes
        return principal.is_admin or (bool(agent_id) and inbox_owner(channel) == agent_id)
    return _scoped(principal, "subscribe", channel)


def check_register(principal: Principal) -> None:
    if not principal.is_admin and "agent" not in principal.scopes:
        _deny(principal, "registering an agent needs the 'agent' scope")


def check_agent_id(principal: Principal, agent_id: str) -> None:
    """An `agent` token registers only as its own `sub`; anonymous callers and admins choose."""
    if principal.anonymous or principal.is_admin or agent_id == principal.id:
        return
    _deny(
        principal,
        f"a token with the 'agent' scope registers only as its own sub {principal.id!r}, "
        f"not as {agent_id!r}",
    )


def check_agent_owner(principal: Principal, owner: str, agent_id: str) -> None:
    if owner == principal.id:
        return
    if not principal.is_admin:
        _deny(principal, f"agent {agent_id!r} belongs to another principal")
    audit.record("admin.override", principal, agent=agent_id, owner=owner)


def check_scope(principal: Principal, scope: str) -> None:
    if not principal.is_admin and scope not in principal.scopes:
        _deny(principal, f"this needs the {scope!r} scope")


def check_task_owner(principal: Principal, submitter: str, task_id: str) -> None:
    if submitter == principal.id:
        return
    if not principal.is_admin:
        _deny(principal, f"task {task_id} was submitted by another principal")
    audit.record("admin.override", principal, task=task_id, owner=submitter)


def check_task_party(principal: Principal, submitter: str, agent_id: str, task_id: str) -> None:
    """Its submitter or the agent working it may hand a task off (an agent token's sub is
    its agent id); anyone else needs admin."""
    if principal.anonymous or principal.id in (submitter, agent_id):
        return
    if not principal.is_admin:
        _deny(principal, f"task {task_id} belongs to another principal and is not assigned to you")
    audit.record("admin.override", principal, task=task_id, owner=submitter)
