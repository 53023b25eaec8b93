"""Manage who may sign in to the app: `seller users add | list | disable | enable | set-password`.

Passwords are read from standard input (`--password-stdin`, one line) or asked for at the
terminal without echo; never taken from the command line, where the shell history and `ps`
would show them. Accounts live in the feedback database (SELLER_DB_URL / SELLER_DB_PATH).
"""
from __future__ import annotations

import argparse
import getpass
import sys

from seller import settings
from seller.feedback.accounts import ROLES


def add_parser(sub) -> None:
    users = sub.add_parser("users", help="accounts that may sign in to the app")
    commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", help="a SQLAlchemy URL (default: SELLER_DB_URL, else SELLER_DB_PATH, "
                                 "else ~/.local/share/seller/feedback.db)")
    add = commands.add_parser("add", help="add an account", parents=[db])
    add.add_argument("--username", required=True, help="letters, digits, . _ - @ (stored lower case)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--boutique", action="append", default=[],
                     help="a home boutique whose clients the account sees (repeat for several)")
    add.add_argument("--display-name", help="shown in the app (default: the username)")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    secret.add_argument("--no-password", action="store_true",
                        help="no local password: the account signs in only through OIDC (st.login)")
    add.add_argument("--data", help="store dir whose clients' boutiques are checked (default: SELLER_DATA "
                                    "or the sample)")
    commands.add_parser("list", help="list the accounts (never their hashes)", parents=[db])
    for name, text in (("disable", "stop an account from signing in"), ("enable", "let it sign in again"),
                       ("set-password", "set a new password")):
        p = commands.add_parser(name, help=text, parents=[db])
        p.add_argument("--username", required=True)
        if name == "set-password":
            p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line  # the line break ends it, spaces stay
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ; nothing changed")
    return first


def known_boutiques(data: str | None) -> set[str]:
    from seller.data import dataset
    folder = data or settings.data_dir()
    clients = (dataset.load_dataset(folder) if folder else dataset.load_sample()).clients
    return set(clients["home_boutique"].dropna())


def run(args: argparse.Namespace) -> int:
    from seller.feedback.store import FeedbackStore, FeedbackStoreError
    from seller.feedback.users import AccountDirectory, AccountError

    actor = f"cli:{getpass.getuser()}"
    try:
        directory = AccountDirectory(FeedbackStore(args.db))
        if args.users_command == "add":
            password = None if args.no_password else read_password(args.password_stdin)
            account = directory.add(args.username, args.role, args.boutique, password=password,
                                    display_name=args.display_name, known_boutiques=known_boutiques(args.data),
                                    actor=actor)
            print(f"added {account.username} ({account.role}; {', '.join(account.boutiques) or 'all boutiques'})")
        elif args.users_command == "list":
            print(f"{'username':<24} {'role':<10} {'status':<9} {'last sign-in':<20} boutiques")
            for a in directory.list():
                status = "disabled" if a.disabled else ("demo" if a.sample_only else "active")
                last = a.last_sign_in_at.strftime("%Y-%m-%d %H:%M UTC") if a.last_sign_in_at else "never"
                print(f"{a.username:<24} {a.role:<10} {status:<9} {last:<20} {', '.join(a.boutiques) or 'all'}")
        elif args.users_command in ("disable", "enable"):
            account = directory.set_disabled(args.username, args.users_command == "disable", actor=actor)
            print(f"{account.username} {args.users_command}d")
        else:
            account = directory.set_password(args.username, read_password(args.password_stdin), actor=actor)
            print(f"password of {account.username} set")
    except (AccountError, FeedbackStoreError) as e:
        print(f"seller users {args.users_command}: {e}", file=sys.stderr)
        return 1
    return 0
