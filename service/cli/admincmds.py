"""Operator commands that read the settings rather than a hub: `agentplex config show` prints
the effective settings (secrets redacted) and `agentplex token issue` mints a bearer token
with the configured secret or key."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agentplex.cli.argtypes import seconds
from agentplex.config import ConfigError, Settings, effective, load_settings
from agentplex.security.tokens import TokenError, issue


def _settings_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", choices=["development", "staging", "production"])
    p.add_argument("--config", help="a settings file (TOML) layered over the defaults")


def _load(args: argparse.Namespace, command: str) -> Settings | None:
    try:
        return load_settings(args.env, args.config)
    except ConfigError as err:
        print(f"agentplex {command}: {err}", file=sys.stderr)
        return None


def add_parsers(commands: Any) -> None:
    config = commands.add_parser("config", help="the effective settings")
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = config_actions.add_parser("show", help="print the effective settings, secrets hidden")
    _settings_options(show)
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=config_show)

    token = commands.add_parser("token", help="bearer tokens for the hub's auth")
    token_actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    mint = token_actions.add_parser("issue", help="mint a token from the configured key")
    _settings_options(mint)
    mint.add_argument("--sub", required=True, help="the principal (an agent's id for 'agent')")
    mint.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="agent, publish:<glob>, subscribe:<glob>, task:submit, task:read or admin "
        "(repeat, or separate with commas or spaces)",
    )
    mint.add_argument("--ttl", type=seconds, help="lifetime in seconds (default auth.token_ttl)")
    mint.set_defaults(run=token_issue)


def config_show(args: argparse.Namespace) -> int:
    settings = _load(args, "config show")
    if settings is None:
        return 2
    shown = effective(settings)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    print(f"env = {shown.pop('env')!r}")
    for section, values in shown.items():
        print(f"\n[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                print(f"{key} = {{ {inner} }}")
            else:
                print(f"{key} = {json.dumps(value)}")
    return 0


def token_issue(args: argparse.Namespace) -> int:
    settings = _load(args, "token issue")
    if settings is None:
        return 2
    scopes = [s for given in args.scope for s in given.replace(",", " ").split()]
    try:
        print(issue(settings.auth, args.sub, scopes, args.ttl))
    except (TokenError, OSError) as err:
        print(f"agentplex token issue: {err}", file=sys.stderr)
        return 2
    return 0
