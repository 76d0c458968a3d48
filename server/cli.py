"""The ``meddav`` command.

Every sub-command explains itself with ``--help`` and runs without prompts
when told so (``--password-stdin``), for operators' scripts and for tests.
Exit status: 0 success, 1 the work failed or found damage, 2 bad usage or
configuration (the message names the option and the fix; no traceback).
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from server import __version__
from server.accounts import LOCALES
from server.audit.commands import add_commands as add_audit_commands
from server.config import ENV_VAR, LogSettings, Settings, load_settings, render_example
from server.errors import ConfigError, KeyFileError, MedDAVError
from server.jobs.commands import add_commands as add_job_commands
from server.policy import ROLE_INSTANCE_ADMIN, ROLE_MEMBER, ROLE_ORG_ADMIN, ROLES
from server.sharing.commands import add_commands as add_share_commands
from server.tree import GROUP_ACCESS

if TYPE_CHECKING:
    from server.instance import Instance
    from server.tree import Entry

__all__ = ["main"]

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_DESCRIPTION = """\
MedDAV: an encrypted WebDAV file server for health care.

Quick start:
  meddav init --data-dir var           create an instance (prints the admin password once)
  meddav --config var/meddav.toml serve

The configuration file comes from --config or the MEDDAV_CONFIG environment
variable; `meddav config example` prints every option with its meaning."""


class CommandError(MedDAVError):
    """A command cannot proceed; the message says why and what to do."""


# -- helpers ----------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _open(args: argparse.Namespace) -> Instance:
    """Open the configured instance, logging warnings only unless serving."""
    from server.instance import open_instance
    from server.log import setup_logging

    settings = _settings(args)
    quiet = LogSettings(level="warning", format=settings.log.format, request_log=False)
    setup_logging(settings.log if args.command == "serve" else quiet)
    return open_instance(settings)


def _read_password(args: argparse.Namespace) -> str | None:
    """The password from stdin (--password-stdin), or None to generate one."""
    if not args.password_stdin:
        return None
    line = sys.stdin.readline()
    if not line:
        raise CommandError("--password-stdin: nothing on standard input")
    return line.rstrip("\r\n")


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(the password from stdin, or a generated one; whether it was generated)."""
    given = _read_password(args)
    return (given, False) if given is not None else (secrets.token_urlsafe(18), True)


def _progress(items: Iterable[T], label: str) -> Iterator[T]:
    from tqdm import tqdm

    yield from tqdm(items, desc=label, unit=" " + label, file=sys.stderr, disable=None, leave=False)


# -- commands ---------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from server.instance import init_instance

    password = _read_password(args)
    result = init_instance(
        Path(args.data_dir),
        key_file=Path(args.key_file) if args.key_file else None,
        admin_name=args.admin,
        admin_password=password,
    )
    print(f"Created a MedDAV instance in {Path(args.data_dir).resolve()}")
    print(f"  configuration  {result.config_path}")
    print(f"  master key     {result.key_file}")
    print("                 Back this file up APART from the data directory: without it")
    print("                 nothing can be decrypted, and a backup holding it protects nothing.")
    print(f"  admin account  {result.admin_name}")
    if password is None:
        print(f"  password       {result.admin_password}")
        print("                 Shown once: note it now (change it with `meddav user passwd`).")
    print(f"Next: meddav --config {result.config_path} serve")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from server.httpd import serve

    instance = _open(args)
    serve(instance, host=args.host, port=args.port)
    return EXIT_OK


def cmd_org_add(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        org_id = instance.accounts.create_organisation(args.name)
    finally:
        instance.close()
    print(f"created organisation {args.name.strip()} (id {org_id}) with its own key")
    return EXIT_OK


def cmd_org_list(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        orgs = instance.accounts.organisations()
        counts = {o.id: len(instance.accounts.list(o.id)) for o in orgs}
    finally:
        instance.close()
    print(f"{'id':>4}  {'organisation':<40} {'members':>7}  second factor")
    for o in orgs:
        print(f"{o.id:>4}  {o.name:<40} {counts[o.id]:>7}  {'required' if o.require_second_factor else 'optional'}")
    return EXIT_OK


def cmd_org_set(args: argparse.Namespace) -> int:
    if args.time_zone is None and args.require_second_factor is None:
        raise CommandError("nothing to change: give --require-second-factor, --time-zone or both")
    instance = _open(args)
    try:
        org = instance.accounts.organisation(args.org)
        if args.time_zone is not None:
            zone = args.time_zone or None  # "" goes back to [sharing] time_zone
            instance.accounts.set_time_zone(org.id, zone)
            _audit_cli(instance, "admin.org.time_zone", org_id=org.id)
            print(f"{org.name}: days end in {zone or instance.settings.sharing.time_zone}")
        if args.require_second_factor is not None:
            required = args.require_second_factor == "yes"
            instance.accounts.set_second_factor_required(org.id, required=required)
            _audit_cli(instance, "admin.org.second_factor", org_id=org.id)
            if required:
                print(f"{org.name}: every member needs a second factor; drives must now use app passwords")
            else:
                print(f"{org.name}: a second factor is optional")
    finally:
        instance.close()
    return EXIT_OK


def cmd_user_add(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        password, generated = _password(args)
        org_id = instance.accounts.organisation(args.org).id if args.org is not None else None
        user = instance.accounts.create_user(
            args.name,
            password,
            org_id=org_id,
            quota_bytes=args.quota,
            role=args.role,
            email=args.email,
            locale=args.lang,
        )
    finally:
        instance.close()
    print(f"created user {user.username} (id {user.id}, organisation {user.org_id}, role {user.role})")
    if generated:
        print(f"password: {password}  (shown once)")
    return EXIT_OK


def cmd_user_invite(args: argparse.Namespace) -> int:
    """Create an account without a password and e-mail a single-use link that sets it."""
    from datetime import UTC, datetime

    instance = _open(args)
    try:
        org = instance.accounts.organisation(args.org) if args.org is not None else None
        user = instance.accounts.create_user(
            args.name, None, org_id=org.id if org else None, role=args.role, email=args.email, locale=args.lang
        )
        org = org or instance.accounts.organisation(user.org_id)
        ttl = instance.settings.web.invitation_days * 86400
        token = instance.credentials.issue_token(user.id, "invite", ttl)
        instance.mailer.send(
            "invitation",
            args.email,
            locale=args.lang or "fr",
            context={
                "inviter_name": args.inviter or getpass.getuser(),
                "organisation_name": org.name,
                "set_password_url": f"{instance.mailer.base_url}/ui/invite/{token}",
                "expires_at": datetime.fromtimestamp(time.time() + ttl, UTC),
            },
        )
        _audit_cli(instance, "admin.user.invite", user_id=user.id, org_id=user.org_id)
    finally:
        instance.close()
    print(
        f"invited {user.username} ({args.email}): the link to set a password works once, for "
        f"{instance.settings.web.invitation_days} days"
    )
    return EXIT_OK


def cmd_user_list(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        users = instance.accounts.list()
        default_quota = instance.settings.storage.default_quota_bytes
    finally:
        instance.close()
    print(f"{'id':>4}  {'user':<24} {'org':>4} {'role':<15} {'state':<9} {'used bytes':>14} {'quota bytes':>14}")
    for u in users:
        quota = u.quota_bytes if u.quota_bytes is not None else default_quota
        print(
            f"{u.id:>4}  {u.username:<24} {u.org_id:>4} {u.role:<15} {'disabled' if u.disabled else 'active':<9} "
            f"{u.used_bytes:>14} {quota or 'unlimited':>14}"
        )
    return EXIT_OK


def cmd_user_passwd(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        password, generated = _password(args)
        instance.accounts.set_password(args.name, password)
        instance.credentials.revoke_sessions(instance.accounts.get(args.name).id)
    finally:
        instance.close()
    print(f"password of {args.name} changed; cached logins and web sessions with the old one end now")
    if generated:
        print(f"new password: {password}  (shown once)")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, *, disabled: bool) -> int:
    instance = _open(args)
    try:
        instance.accounts.set_disabled(args.name, disabled=disabled)
        if disabled:
            instance.credentials.revoke_sessions(instance.accounts.get(args.name).id)
    finally:
        instance.close()
    print(f"user {args.name} {'disabled' if disabled else 'enabled'}")
    return EXIT_OK


def cmd_user_quota(args: argparse.Namespace) -> int:
    if args.bytes != "default" and not args.bytes.isdigit():
        raise CommandError("the quota is a number of bytes (0: unlimited) or 'default'")
    quota = None if args.bytes == "default" else int(args.bytes)
    instance = _open(args)
    try:
        instance.accounts.set_quota(args.name, quota)
        default = instance.settings.storage.default_quota_bytes
    finally:
        instance.close()
    shown = {None: f"the default ({default or 'unlimited'})", 0: "unlimited"}.get(quota, f"{quota} bytes")
    print(f"quota of {args.name}: {shown}")
    return EXIT_OK


def cmd_user_role(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        instance.accounts.set_role(args.name, args.role)
    finally:
        instance.close()
    print(f"role of {args.name}: {args.role}; their cached logins end now")
    return EXIT_OK


def _audit_cli(instance: Instance, action: str, *, user_id: int | None = None, org_id: int | None = None) -> None:
    """An administrative action done from the command line, in the audit log."""
    from server.audit import AuditEvent

    instance.audit.record(
        AuditEvent(
            principal=f"os:{getpass.getuser()}",
            address="local",
            surface="cli",
            action=action,
            target_id=user_id,
            org_id=org_id,
            outcome="ok",
        )
    )


def cmd_user_reset_2fa(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        user = instance.accounts.get(args.name)
        instance.credentials.reset_second_factor(user.id)
        _audit_cli(instance, "admin.user.reset_2fa", user_id=user.id, org_id=user.org_id)
        if user.email:
            _alert(instance, user.email, user.locale, "second_factor_reset", admin_name=getpass.getuser())
    finally:
        instance.close()
    print(
        f"second factor of {user.username} removed with its recovery codes; "
        "they set up a new one at their next web login"
    )
    return EXIT_OK


def cmd_app_password_list(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        user = instance.accounts.get(args.name)
        apps = instance.credentials.app_passwords(user.id)
    finally:
        instance.close()
    print(f"{'id':>4}  {'name':<32} {'created (UTC)':<17} {'last used (UTC)':<17} address")
    for app in apps:
        used = _utc(app.last_used_at) if app.last_used_at else "never"
        print(f"{app.id:>4}  {app.name:<32} {_utc(app.created_at):<17} {used:<17} {app.last_used_address or '-'}")
    return EXIT_OK


def cmd_app_password_revoke(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        user = instance.accounts.get(args.name)
        instance.credentials.revoke_app_password(user.id, args.id)
        _audit_cli(instance, "app_password.revoke", user_id=user.id, org_id=user.org_id)
    finally:
        instance.close()
    print(f"app password {args.id} of {user.username} revoked; the device using it is refused from now on")
    return EXIT_OK


def _alert(instance: Instance, to: str, locale: str | None, template: str, **context: Any) -> None:
    """Tell a user about a change to their account; a mail that cannot be sent is reported, not fatal."""
    from datetime import UTC, datetime

    from server.mail import MailError

    try:
        instance.mailer.send(template, to, locale=locale or "fr", context={"reset_at": datetime.now(UTC), **context})
    except MailError as exc:
        print(f"warning: the user could not be told by e-mail: {exc}", file=sys.stderr)


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(when))


def _group_root(instance: Instance, org_ref: str, name: str) -> Entry:
    org = instance.accounts.organisation(org_ref)
    root = instance.tree.group_folder_named(org.id, name)
    if root is None:
        raise CommandError(f"organisation {org.name} has no group folder named {name!r} (see: meddav group list)")
    return root


def _owner_for_group(instance: Instance, org_id: int) -> int:
    """The account recorded as the creator of a group folder made from the CLI: an admin of the organisation."""
    admins = [u for u in instance.accounts.list(org_id) if u.role in (ROLE_ORG_ADMIN, ROLE_INSTANCE_ADMIN)]
    if not admins:
        raise CommandError(
            "the organisation has no admin yet: make one first (meddav user role NAME org_admin), "
            "who will be recorded as the group folder's creator"
        )
    return min(admins, key=lambda u: u.id).id


def cmd_group_add(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        org = instance.accounts.organisation(args.org)
        root = instance.tree.create_group_folder(
            org.id,
            args.name,
            owner_id=_owner_for_group(instance, org.id),
            member_access=args.access,
            quota_bytes=args.quota,
        )
    finally:
        instance.close()
    access = "read and write" if root.group_access == "rw" else "read only"
    print(f"created group folder {root.name} of {org.name}: members {access}; it appears at the root of their drives")
    return EXIT_OK


def cmd_group_list(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        orgs = [instance.accounts.organisation(args.org)] if args.org else instance.accounts.organisations()
        rows = [(org, root, instance.tree.usage(root)) for org in orgs for root in instance.tree.group_folders(org.id)]
    finally:
        instance.close()
    print(f"{'organisation':<24} {'group folder':<32} {'members':<8} {'used bytes':>14} {'quota bytes':>14}")
    for org, root, (used, quota) in rows:
        print(f"{org.name:<24} {root.name:<32} {root.group_access or '':<8} {used:>14} {quota or 'unlimited':>14}")
    return EXIT_OK


def cmd_group_set(args: argparse.Namespace) -> int:
    if args.access is None and args.quota is None:
        raise CommandError("nothing to change: give --access and/or --quota")
    instance = _open(args)
    try:
        root = _group_root(instance, args.org, args.name)
        root = instance.tree.set_group_folder(root, member_access=args.access, quota_bytes=args.quota)
        used, quota = instance.tree.usage(root)
    finally:
        instance.close()
    print(f"group folder {root.name}: members {root.group_access}, quota {quota or 'unlimited'}, used {used} bytes")
    return EXIT_OK


def cmd_group_remove(args: argparse.Namespace) -> int:
    instance = _open(args)
    try:
        root = _group_root(instance, args.org, args.name)
        if not args.yes:
            raise CommandError(f"this deletes group folder {root.name} and every file in it; add --yes to confirm")
        instance.tree.delete_group_folder(root)
    finally:
        instance.close()
    print(f"deleted group folder {args.name} and its content")
    return EXIT_OK


def cmd_user_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, disabled=True)


def cmd_user_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, disabled=False)


def cmd_plugins_list(args: argparse.Namespace) -> int:
    """Installed plugins, their versions and hooks, and whether this configuration enables them."""
    from server.plugins import installed_plugins

    settings = _settings(args) if (args.config or os.environ.get(ENV_VAR)) else None
    enabled = set(settings.plugins.enabled) if settings else set()
    found = installed_plugins()
    if not found:
        print("no plugin installed (entry point group 'meddav')")
        return EXIT_OK
    print(f"{'plugin':<20} {'version':<10} {'state':<9} hooks")
    for plugin in found:
        try:
            module = plugin.entry_point.load()
            hooks = ", ".join(sorted(n for n in dir(module) if n.startswith("meddav_"))) or "-"
        except Exception as exc:  # a broken plugin is reported, not fatal to the listing
            hooks = f"cannot be loaded: {type(exc).__name__}: {exc}"
        state = "enabled" if plugin.name in enabled else "disabled"
        print(f"{plugin.name:<20} {plugin.version:<10} {state:<9} {hooks}")
    return EXIT_OK


def cmd_fsck(args: argparse.Namespace) -> int:
    from server.fsck import fsck

    instance = _open(args)
    try:
        report = fsck(instance, remove=not args.dry_run, grace_seconds=args.grace, progress=_progress)
    finally:
        instance.close()
    for line in report.lines():
        print(line)
    return EXIT_FAILED if report.missing else EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from server.db import Database

    settings = _settings(args)
    db = Database(settings, pool_size=1)
    try:
        before, after = db.upgrade()
    finally:
        db.close()
    print(
        f"database schema: {before or 'empty'} -> {after}" if before != after else f"database schema already at {after}"
    )
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from server.doctor import diagnose

    report = diagnose(args.config)
    print(report.as_json() if args.format == "json" else "\n".join(report.lines()))
    return EXIT_FAILED if report.problems else EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    print(f"{settings.source}: OK")
    print(f"  data_dir  {settings.storage.data_dir}")
    print(f"  key_file  {settings.storage.key_file}")
    print(
        f"  listens   {settings.server.host}:{settings.server.port} ({'TLS' if settings.server.tls else 'plain HTTP'})"
    )
    return EXIT_OK


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(render_example())
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    print(f"meddav {__version__}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meddav", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default: ${ENV_VAR})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, **kw: Any
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=kw.pop("description", help_text), **kw)
        p.set_defaults(func=func)
        return p

    p = command(
        "init",
        cmd_init,
        "create a new instance: data directory, configuration, master key, first admin",
        description=(
            "Create a complete instance in DIR: DIR/meddav.toml, the SQLite database and the blob\n"
            "store, a master key file OUTSIDE DIR (default: beside it, DIR.master.key, mode 0600),\n"
            "and a first admin account whose generated password is printed once."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", required=True, metavar="DIR", help="data directory to create (e.g. var)")
    p.add_argument("--key-file", metavar="PATH", help="where to write the master key (never inside DIR)")
    p.add_argument("--admin", default="admin", metavar="NAME", help="name of the first account (default: admin)")
    p.add_argument("--password-stdin", action="store_true", help="read the admin password from standard input")

    p = command("serve", cmd_serve, "serve WebDAV and the web pages until Ctrl-C")
    p.add_argument("--host", help="address to listen on (default: [server] host)")
    p.add_argument("--port", type=int, help="port to listen on, 0 for any free one (default: [server] port)")

    p = command("user", lambda a: EXIT_USAGE, "manage user accounts")
    user = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    def user_command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        q = user.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(func=func)
        return q

    q = user_command("add", cmd_user_add, "create a user (prints a generated password unless --password-stdin)")
    q.add_argument("name", help="user name (case-insensitive)")
    q.add_argument("--org", metavar="ORG", help="organisation, by id or name (default: the first one)")
    q.add_argument(
        "--role",
        choices=ROLES,
        default=ROLE_MEMBER,
        help="member (default), org_admin (members, group folders, audit of the organisation; never their "
        "files) or instance_admin (every organisation)",
    )
    q.add_argument("--email", help="e-mail address (invitations, password resets, security alerts)")
    q.add_argument("--lang", choices=LOCALES, help="language of the pages and e-mails (fr or en)")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    q.add_argument(
        "--quota",
        type=int,
        metavar="BYTES",
        help="storage quota in bytes (0: unlimited; default: [storage] default_quota_bytes)",
    )
    q = user_command("invite", cmd_user_invite, "create a user and e-mail them a link to set their password")
    q.add_argument("name", help="user name (case-insensitive)")
    q.add_argument("--email", required=True, help="where the invitation goes")
    q.add_argument("--org", metavar="ORG", help="organisation, by id or name (default: the first one)")
    q.add_argument("--role", choices=ROLES, default=ROLE_MEMBER)
    q.add_argument("--lang", choices=LOCALES, help="language of the invitation and the pages (default: fr)")
    q.add_argument("--inviter", help="the name shown as inviting (default: your login name)")
    user_command("list", cmd_user_list, "list users with their usage and quota")
    q = user_command("passwd", cmd_user_passwd, "set a user's password (ends their cached logins)")
    q.add_argument("name")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    q = user_command("quota", cmd_user_quota, "set a user's storage quota")
    q.add_argument("name")
    q.add_argument("bytes", help="bytes the user may store; 0: unlimited; default: [storage] default_quota_bytes")
    q = user_command(
        "reset-2fa", cmd_user_reset_2fa, "remove a user's second factor (a lost phone); they enrol a new one"
    )
    q.add_argument("name")
    q = user_command("role", cmd_user_role, "change a user's role (applies at once)")
    q.add_argument("name")
    q.add_argument("role", choices=ROLES)
    q = user_command("disable", cmd_user_disable, "refuse every further login of a user")
    q.add_argument("name")
    q = user_command("enable", cmd_user_enable, "allow a disabled user to log in again")
    q.add_argument("name")

    p = command("org", lambda a: EXIT_USAGE, "manage organisations (each has its own encryption key)")
    org = p.add_subparsers(dest="org_command", metavar="ACTION", required=True)
    q = org.add_parser("add", help="create an organisation", description="Create an organisation and its key.")
    q.set_defaults(func=cmd_org_add)
    q.add_argument("name", help="its name, e.g. 'Cabinet du Dr Martin'")
    q = org.add_parser("list", help="list organisations", description="List organisations and their sizes.")
    q.set_defaults(func=cmd_org_list)
    q = org.add_parser(
        "set",
        help="change an organisation's rules",
        description=(
            "Require a second factor of every member (yes) or not (no). When required, drives\n"
            "(WebDAV) accept only app passwords, made on the web pages once the second factor is set up.\n"
            'Set the time zone where the organisation\'s share expiries end ("" for [sharing] time_zone).'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.set_defaults(func=cmd_org_set)
    q.add_argument("org", help="organisation, by id or name")
    q.add_argument("--require-second-factor", choices=("yes", "no"))
    q.add_argument("--time-zone", metavar="ZONE", help="IANA time zone, e.g. Europe/Paris or America/Cayenne")

    p = command(
        "group",
        lambda a: EXIT_USAGE,
        "manage group folders (owned by an organisation, shown in every member's drive)",
    )
    grp = p.add_subparsers(dest="group_command", metavar="ACTION", required=True)
    q = grp.add_parser(
        "add",
        help="create a group folder",
        description="Create a group folder; it appears at the root of every member's drive.",
    )
    q.set_defaults(func=cmd_group_add)
    q.add_argument("name", help="its name as members see it")
    q.add_argument("--org", required=True, metavar="ORG", help="organisation, by id or name")
    q.add_argument(
        "--access",
        choices=GROUP_ACCESS,
        default="rw",
        help="members may read and write (rw, default) or only read (ro)",
    )
    q.add_argument("--quota", type=int, metavar="BYTES", help="storage quota of the group folder (0: unlimited)")
    q = grp.add_parser("list", help="list group folders", description="List group folders, their access and usage.")
    q.set_defaults(func=cmd_group_list)
    q.add_argument("--org", metavar="ORG", help="only this organisation (id or name)")
    q = grp.add_parser("set", help="change a group folder's access or quota", description="Change access or quota.")
    q.set_defaults(func=cmd_group_set)
    q.add_argument("name")
    q.add_argument("--org", required=True, metavar="ORG")
    q.add_argument("--access", choices=GROUP_ACCESS)
    q.add_argument("--quota", type=int, metavar="BYTES", help="0: unlimited")
    q = grp.add_parser(
        "remove",
        help="delete a group folder and its content",
        description="Delete a group folder and every file in it.",
    )
    q.set_defaults(func=cmd_group_remove)
    q.add_argument("name")
    q.add_argument("--org", required=True, metavar="ORG")
    q.add_argument("--yes", action="store_true", help="confirm the deletion")

    p = command("app-password", lambda a: EXIT_USAGE, "list or revoke a user's app passwords (WebDAV devices)")
    apw = p.add_subparsers(dest="app_password_command", metavar="ACTION", required=True)
    q = apw.add_parser(
        "list", help="list a user's app passwords", description="List a user's app passwords in use, with last use."
    )
    q.set_defaults(func=cmd_app_password_list)
    q.add_argument("name", help="user name")
    q = apw.add_parser(
        "revoke", help="revoke an app password", description="Revoke an app password: its device is refused at once."
    )
    q.set_defaults(func=cmd_app_password_revoke)
    q.add_argument("name", help="user name")
    q.add_argument("id", type=int, help="the app password's id (see: meddav app-password list NAME)")

    add_audit_commands(sub, _open)
    add_job_commands(sub, _open)
    add_share_commands(sub, _open)

    p = command("plugins", lambda a: EXIT_USAGE, "plugins installed (entry point group meddav) and enabled")
    plg = p.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    q = plg.add_parser(
        "list",
        help="list installed plugins",
        description="List installed plugins: name, version, enabled in this configuration or not, hooks implemented.",
    )
    q.set_defaults(func=cmd_plugins_list)

    p = command(
        "fsck",
        cmd_fsck,
        "check database against blob store; remove orphan blobs, report missing ones",
        description=(
            "Check that every file's blob exists and every blob belongs to a file.\n"
            "Orphan blobs and unfinished uploads are removed (unless --dry-run); files whose\n"
            "blob is missing are reported (exit status 1). While a server runs on the same\n"
            "data directory, blobs younger than --grace seconds (default 3600) are left alone."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dry-run", action="store_true", help="report only, remove nothing")
    p.add_argument("--grace", type=float, metavar="SECONDS", help="leave alone blobs younger than this")

    p = command(
        "doctor",
        cmd_doctor,
        "check the instance's security settings (TLS, key and data permissions, mail...) and say what to fix",
        description=(
            "Check the security of the configured instance without a running server: TLS and its\n"
            "certificate, the master key file (owner-only, outside the data directory), the data\n"
            "directory's permissions, debug logging, mail, the public URL, a reverse proxy, Argon2,\n"
            "sessions and other policies weaker than the defaults. One line per finding: ok, warning\n"
            "or problem, naming the option or path, then the fix. Nothing secret is printed.\n"
            "Run it as the user that runs meddav serve (files owned by another user are problems).\n"
            "Exit status: 0 no problem (warnings allowed), 1 at least one problem, 2 no configuration.\n"
            "What each check looks at and why: docs/doctor.md."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default: one line per finding) or json (one document: counts and findings)",
    )

    p = command("db", lambda a: EXIT_USAGE, "database schema")
    db = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    q = db.add_parser(
        "upgrade", help="apply pending schema migrations", description="Apply pending Alembic migrations."
    )
    q.set_defaults(func=cmd_db_upgrade)

    p = command("config", lambda a: EXIT_USAGE, "configuration helpers")
    cfg = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = cfg.add_parser("check", help="validate the configuration file and show where things are")
    q.set_defaults(func=cmd_config_check)
    q = cfg.add_parser("example", help="print every option with its default and meaning")
    q.set_defaults(func=cmd_config_example)

    command("version", cmd_version, "print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Everything MedDAV creates (database, blobs, keys, logs) is for its own user only.
    os.umask(0o077)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, KeyFileError) as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except MedDAVError as exc:
        print(f"meddav: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `meddav user list | head`).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
