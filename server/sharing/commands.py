"""The ``meddav share list|create|revoke`` commands: scriptable, no prompts.

``server/cli.py`` calls :func:`add_commands` with its sub-parsers and its way
of opening the configured instance.  A share is made for its owner
(``--owner``): the policy decides as it would for that user on the web, and
the audit log records the operator ("os:<system user>") as who acted.  The
operator ends any share (a disabled owner's too).  Exit status: 0 success, 1
failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.errors import BadRequest, NotFound
from server.policy import SHARE_MODES, Operator
from server.sharing import SECOND_CHANNELS

if TYPE_CHECKING:
    from server.instance import Instance
    from server.sharing import ShareInfo

__all__ = ["add_commands"]

OpenInstance = Callable[[argparse.Namespace], "Instance"]

_CREATE_HELP = """\
Share a file or folder of --owner's drive (--path, from the drive's root):
with a colleague of the same organisation (--colleague USER), or by a link to
an e-mail address (--email). A link is read-only unless --mode says otherwise,
expires at the end of the day [sharing] default_expiry_days ahead unless
--expires gives the day, and is protected by the password read with
--password-stdin, by codes e-mailed at each access (--code-by-email), or else
by a password MedDAV generates.

The recipient of a link is e-mailed the link and, in a second mail, the
password (--password-by owner: you give it yourself, and a generated one is
printed once). The mails name who shares and until when, never the item nor
the note.

Prints the share's id, then for a link its address (and a password to give)."""

_MODE_TEXT = {"read": "read-only", "write": "read-write", "dropbox": "drop box"}


def _operator() -> Operator:
    return Operator(f"os:{getpass.getuser()}")


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r}; write it as YYYY-MM-DD") from None


def _when(at: float | None) -> str:
    return "-" if at is None else dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_share_create(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    password = None
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise BadRequest("--password-stdin: nothing on standard input")
        password = line.rstrip("\r\n")
    note = None
    if args.note_file:
        try:
            with open(args.note_file, encoding="utf-8") as handle:
                note = handle.read().strip() or None
        except (OSError, UnicodeDecodeError) as error:
            raise BadRequest(f"--note-file: cannot read {args.note_file} ({type(error).__name__})") from None
    instance = open_instance(args)
    try:
        owner = instance.accounts.get(args.owner)
        names = [part for part in args.path.split("/") if part]
        node = instance.tree.resolve(owner.root_id, names)
        if node is None:
            raise NotFound(f"nothing at {args.path} in {owner.username}'s drive")
        colleague = instance.accounts.get(args.colleague).id if args.colleague else None
        made = instance.shares.create(
            owner.principal(),
            node,
            mode=args.mode,
            colleague=colleague,
            email=args.email,
            password=password,
            code_by_email=args.code_by_email,
            expires_on=args.expires,
            note=note,
            max_downloads=args.max_downloads,
            networks=args.network or (),
            second_channel=args.password_by,
            phone=args.phone,
            notify_uploads=args.notify_uploads,
            locale=args.lang,
            recorded_as=_operator().username,
        )
        base = instance.settings.public_base_url()
    finally:
        instance.close()
    print(made.info.id)
    if made.token is not None:
        print(f"{base}/s/{made.token}")
    if made.password is not None:
        print(f"password: {made.password}")
    print(
        f"{_MODE_TEXT[made.info.mode]}, until {_when(made.info.expires_at)}",
        file=sys.stderr,
    )
    return 0


def cmd_share_list(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    try:
        owner = instance.accounts.get(args.owner) if args.owner else None
        shares = instance.shares.all() if owner is None else instance.shares.by_owner(owner.id)
        now = instance.shares.clock()
        users = {user.id: user.username for user in instance.accounts.list()}
    finally:
        instance.close()
    print(f"{'ID':>6}  {'OWNER':<16} {'NODE':>8}  {'KIND':<9} {'MODE':<8} {'STATE':<8} {'EXPIRES':<20}  RECIPIENT")
    for share in shares:
        print(_line(share, users, now))
    return 0


def _line(share: ShareInfo, users: dict[int, str], now: float) -> str:
    recipient = share.recipient_email or users.get(share.recipient_user_id or 0, "?")
    owner = users.get(share.owner_id, "?")
    return (
        f"{share.id:>6}  {owner:<16} {share.node_id:>8}  {share.kind:<9} {share.mode:<8} "
        f"{share.state(now):<8} {_when(share.expires_at):<20}  {recipient}"
    )


def cmd_share_revoke(args: argparse.Namespace, open_instance: OpenInstance) -> int:
    instance = open_instance(args)
    try:
        instance.shares.revoke(_operator(), args.id)
    finally:
        instance.close()
    print(f"share {args.id} revoked", file=sys.stderr)
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], open_instance: OpenInstance) -> None:
    """Add ``share list|create|revoke`` to ``subparsers``; each sets ``func(args) -> exit status``."""

    def bind(command: Callable[[argparse.Namespace, OpenInstance], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, open_instance)

    raw = argparse.RawDescriptionHelpFormatter
    share = subparsers.add_parser(
        "share", help="list, create and revoke shares", description="Shares: list, create, revoke."
    )
    actions = share.add_subparsers(dest="share_command", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="list shares (ended ones too)", description="List shares and their state.")
    p.add_argument("--owner", metavar="USER", help="only the shares USER made")
    p.set_defaults(func=bind(cmd_share_list))

    p = actions.add_parser("create", help="share a file or folder", description=_CREATE_HELP, formatter_class=raw)
    p.add_argument("--owner", required=True, metavar="USER", help="whose drive holds the item")
    p.add_argument("--path", required=True, metavar="PATH", help="the item, from the drive's root, e.g. /Dossiers/x")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDRESS", help="share by a link sent to this address")
    who.add_argument("--colleague", metavar="USER", help="share with this member of the organisation")
    p.add_argument("--mode", choices=SHARE_MODES, default="read", help="read (default), write, or dropbox (a folder)")
    p.add_argument("--expires", type=_day, metavar="YYYY-MM-DD", help="last day of the share")
    p.add_argument("--password-stdin", action="store_true", help="read the link's password from standard input")
    p.add_argument("--code-by-email", action="store_true", help="a code e-mailed at each access instead of a password")
    p.add_argument(
        "--password-by",
        choices=SECOND_CHANNELS,
        default="email",
        help="email (default): a second mail carries the password; sms: a text message to --phone (when a plugin "
        "provides the channel sms); owner: you give it (a generated one is printed)",
    )
    p.add_argument("--phone", metavar="+33...", help="the recipient's mobile number, for --password-by sms")
    p.add_argument("--notify-uploads", action="store_true", help="e-mail the owner a digest of files added")
    p.add_argument("--lang", choices=("fr", "en"), default="fr", help="language of the recipient's mails (fr)")
    p.add_argument(
        "--note-file",
        metavar="FILE",
        help="the note (UTF-8 text), shown to the recipient after the password, never e-mailed; a file, not an "
        "argument, since arguments show in the process list",
    )
    p.add_argument("--max-downloads", type=int, metavar="N", help="the link works for N downloads")
    p.add_argument("--network", action="append", metavar="CIDR", help="allowed client network (repeatable)")
    p.set_defaults(func=bind(cmd_share_create))

    p = actions.add_parser("revoke", help="end a share now", description="End a share now (its owner's act).")
    p.add_argument("id", type=int, metavar="ID", help="the share, as listed")
    p.set_defaults(func=bind(cmd_share_revoke))
