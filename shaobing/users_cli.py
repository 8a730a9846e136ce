"""``shaobing users``: manage accounts from the command line.

Wiring (in ``shaobing/cli.py``)::

    from shaobing import users_cli

    users = users_cli.add_parser(sub, parents=[config_parent])  # config_parent: --config
    users.set_defaults(func=cmd_users)

    def cmd_users(args):
        sessions = ...  # a sessionmaker on the configured database (tables migrated)
        return users_cli.run(args, sessions)

``parents`` are given to every subcommand (so ``shaobing users add --config C ...``
works); ``run`` opens its own sessions, commits each command in one transaction
(with its audit record, actor ``cli``) and returns the exit code: 0 done, 1 no such
user, 2 invalid input. Passwords and API keys are printed once, to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from accounts.domain import ROLES, county_wide_problem
from accounts.passwords import generate_password
from accounts.service import (
    AccountError,
    NotFoundError,
    audit,
    create_api_key,
    create_user,
    find_api_key,
    get_user,
    list_users,
    update_user,
    validate_username,
)
from core.area import LEVELS, Area

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
CLI_ACTOR = "cli"


def add_parser(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    """Register ``users`` and its subcommands; returns the ``users`` parser."""
    users = subparsers.add_parser("users", help="user accounts and API keys")
    sub = users.add_subparsers(dest="users_command", required=True)
    common = {"parents": list(parents)}

    add = sub.add_parser("add", help="add a user", **common)
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--area", help="scope: 示例县/城关镇[/village[/grid]]")
    add.add_argument("--county-wide", action="store_true",
                     help="no --area: confirms that the user sees the whole county")
    add.add_argument("--department", help="department id (required for role department)")
    add.add_argument("--display-name", default="")
    add.add_argument("--password-env", metavar="VAR", help=_PASSWORD_HELP)

    sub.add_parser("list", help="list users", **common)

    key = sub.add_parser("api-key", help="create an API key (printed once)", **common)
    key.add_argument("username")
    key.add_argument("--name", required=True, help="what the key is for")

    passwd = sub.add_parser("passwd", help="set a user's password", **common)
    passwd.add_argument("username")
    passwd.add_argument("--password-env", metavar="VAR", help=_PASSWORD_HELP)
    return users


_PASSWORD_HELP = (
    "read the password from this environment variable; without it: prompt on a "
    "terminal, else generate one and print it once"
)


def run(args: argparse.Namespace, sessions: sessionmaker[Session]) -> int:
    """Run the parsed ``users`` subcommand against the database of ``sessions``."""
    commands = {"add": _add, "list": _list, "api-key": _api_key, "passwd": _passwd}
    out: list[str] = []
    try:
        with sessions.begin() as session:
            code = commands[args.users_command](args, session, out)
    except NotFoundError as exc:
        print(f"users: {exc.args[0]}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (AccountError, _InputError) as exc:
        print(f"users: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Printed after the commit: a password or key shown must be one that was stored.
    for line in out:
        print(line)
    return code


class _InputError(Exception):
    """A problem with the command's input (area syntax, password entry)."""


def parse_area(text: str | None) -> Area:
    """``示例县/城关镇/村/网格`` (county first, 1-4 parts) as an :class:`Area`."""
    if not text:
        return Area()
    parts = text.split("/")
    if len(parts) > len(LEVELS) or not all(p.strip() for p in parts):
        raise _InputError(f"--area {text!r}: 1-4 non-empty parts, county/township/village/grid")
    try:
        return Area(**{level: part.strip() for level, part in zip(LEVELS, parts, strict=False)})
    except ValueError as exc:
        raise _InputError(f"--area {text!r}: {exc}") from None


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password and whether it was generated (then it must be shown)."""
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            raise _InputError(f"environment variable {args.password_env} is not set or empty")
        return value, False
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("password again: "):
            raise _InputError("the passwords differ")
        return first, False
    return generate_password(16), True


def _add(args: argparse.Namespace, session: Session, out: list[str]) -> int:
    validate_username(args.username)  # before asking for a password
    area = parse_area(args.area)
    password, generated = _password(args)
    user = create_user(
        session, args.username, args.role, password=password, area=area,
        department_id=args.department, display_name=args.display_name,
    )  # fmt: skip
    problem = county_wide_problem(args.role, area, args.county_wide)
    if problem:  # after the user's own checks; the transaction is rolled back
        raise _InputError(problem.replace("county_wide: true", "--county-wide"))
    audit(session, CLI_ACTOR, "user_create", user.username,
          f"role={user.role} area={area.label()} department={user.department_id}")  # fmt: skip
    out.append(f"added {user.username} ({user.role}, {area.label()})")
    if generated:
        out.append(f"password (shown once): {password}")
    return 0


def _list(args: argparse.Namespace, session: Session, out: list[str]) -> int:
    for user in list_users(session):
        state = "disabled" if user.disabled else "enabled"
        fields = [user.username, user.role, user.area().label(), user.department_id or "-",
                  user.display_name or "-", state]  # fmt: skip
        out.append("\t".join(fields))
    return 0


def _api_key(args: argparse.Namespace, session: Session, out: list[str]) -> int:
    key = create_api_key(session, args.username, args.name)
    record = find_api_key(session, key)
    assert record is not None  # just inserted in this transaction
    audit(session, CLI_ACTOR, "api_key_create", args.username,
          f"id={record.id} name={args.name} prefix={record.prefix}")  # fmt: skip
    out.append(f"API key {record.id} for {args.username} (shown once): {key}")
    return 0


def _passwd(args: argparse.Namespace, session: Session, out: list[str]) -> int:
    get_user(session, args.username)  # before asking for a password
    password, generated = _password(args)
    update_user(session, args.username, password=password)
    audit(session, CLI_ACTOR, "user_update", args.username, "password changed")
    out.append(f"password of {args.username} set; its login sessions are ended")
    if generated:
        out.append(f"password (shown once): {password}")
    return 0
