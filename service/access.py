"""Who is acting, and whether they may: identity and roles by Unix group.

Identity comes from the kernel, never from the environment: the effective
uid's name in the password database. `LOGNAME`/`USER` are the caller's to
set and prove nothing. `SUDO_UID` names the person behind `sudo -u fapiao`
and is believed only when the process runs as root or as the service user,
who are the only accounts sudo (or our own re-exec) leaves it for.

Roles: every CLI command has one entry in COMMAND_ROLES. A new command
names its role with one line there (`"approve": APPROVE`); a command with
no entry is treated as a service-only write, so forgetting fails closed.
`cli.py` applies `guard` to every command in one place.

- READ  needs [access] read_group (amend_group and approve_group also may
  read); opens the ledger read-only and never creates one.
- AMEND needs amend_group; APPROVE needs approve_group; OPERATE (retry,
  ingest, backups...) needs amend_group; DECLINE needs either, and the
  command asks approve_group unless its filer withdraws their own
  application; SERVICE (the daemon) needs the service user. These write state, so they run as the service user: root
  re-executes itself as that user, and a person is told the `sudo -u` line.
- Root and the service user pass every check; under `sudo -u <service>`
  the check is made on the person who ran sudo, so a sudo rule cannot
  widen a role.
"""

from __future__ import annotations

import grp
import os
import pwd
import sys
from dataclasses import dataclass

import click

NONE, READ, AMEND, APPROVE, OPERATE, SERVICE = "none", "read", "amend", "approve", "operate", "service"
DECLINE = "decline"   # approve_group, or amend_group for the filer's own application (withdraw)
WRITE_ROLES = frozenset({AMEND, APPROVE, OPERATE, DECLINE, SERVICE})
DENIED_EXIT = 3

COMMAND_ROLES: dict[str, str] = {
    # Touch no state: the config file and the files named on the command line.
    "config init": NONE, "config check": NONE, "extract": NONE, "check": NONE,
    # Read the ledger (read-only).
    "status": READ, "list": READ, "show": READ, "quarantine": READ, "refused": READ, "search": READ, "report": READ,
    "requests": READ, "requests show": READ, "requests list": READ,
    "audit ledger": READ, "audit verify": READ, "audit export": READ, "backup status": READ,
    "fleet status": READ, "fleet find": READ, "fleet epoch": READ,
    # 补录: file, decide.
    "amend": AMEND, "reject": AMEND, "reopen": AMEND,
    "accept": APPROVE, "approve": APPROVE, "decline": DECLINE,
    # Operational writes: the people who fix deliveries and intake.
    "retry": OPERATE, "requeue": OPERATE, "reconcile": OPERATE, "ingest": OPERATE, "deliver": OPERATE,
    "drop-destination": OPERATE,   # lets go of a removed destination's deliveries
    "forget-key": OPERATE,         # a copy under an old key removed at a destination by hand
    "backup verify": OPERATE, "backup restore": OPERATE, "backup drill": OPERATE, "backup accept": OPERATE,
    "notify test": OPERATE,   # sends a message and records it in the ledger
    "fleet repair": OPERATE,  # writes a released generation over an invalid claim in the shared store
    "fleet acknowledge": OPERATE,  # writes an acknowledged epoch: every site claims without look-ups again
    # The daemon itself, and accepting a replaced watched folder.
    "run": SERVICE, "config repin": SERVICE,
}

# Commands that write files where their caller says (not the ledger): they
# run as the caller. Lent the service user's rights by `sudo -u`, `config
# init --force PATH` wrote over the live ledger, a vault original or a
# delivered file, and `report --out` into the state or a watched folder.
# Neither needs them: config init touches no state, report only reads.
CALLER_WRITES = frozenset({"config init", "report"})

# Set in the click context by `enforce` for the command being run:
# `open_ledger` reads it to open read-only for READ commands.
_ROLE_KEY = "fapiao_agent.role"


class AccessDenied(Exception):
    """One line telling the caller what they lack; exit status 3."""


@dataclass(frozen=True)
class Identity:
    """The account acting (effective uid) and, when trusted, the person who
    ran sudo (`invoker`)."""

    uid: int
    name: str
    invoker_uid: int | None = None
    invoker: str | None = None

    def label(self) -> str:
        """`alice`, or `alice (sudo → fapiao)` under a trusted sudo."""
        if self.invoker is None:
            return self.name
        return f"{self.invoker} (sudo → {self.name})"


def user_name(uid: int) -> str:
    """The password database's name for `uid`, or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def service_uid(service_user: str) -> int | None:
    """The uid of the configured service user, or None when this host has no such account."""
    try:
        return pwd.getpwnam(service_user).pw_uid
    except KeyError:
        return None


def identity(service_user: str = "fapiao", env: dict[str, str] | None = None) -> Identity:
    """Who is acting. Guarantee: the name comes from the effective uid, never
    from LOGNAME/USER; SUDO_UID is used only when the effective user is root
    or `service_user` and names a different account."""
    env = os.environ if env is None else env
    euid = os.geteuid()
    me = Identity(euid, user_name(euid))
    trusted = euid == 0 or euid == service_uid(service_user)
    raw = env.get("SUDO_UID", "")
    if not trusted or not raw.isdigit() or int(raw) == euid:
        return me
    return Identity(euid, me.name, int(raw), user_name(int(raw)))


def actor(prefix: str = "cli", service_user: str = "fapiao") -> str:
    """The audit trail's actor: `cli:alice`, `cli:alice (sudo → fapiao)`, `daemon:fapiao`."""
    return f"{prefix}:{identity(service_user).label()}"


def service_actor(prefix: str = "daemon") -> str:
    """The daemon's actor: `daemon:<effective user>` (the service user in
    production); whoever started it is not the one acting."""
    return f"{prefix}:{user_name(os.geteuid())}"


def role_of(path: str) -> str:
    """The role a command (`"backup verify"`) needs; unknown commands are
    service-only writes (fail closed)."""
    return COMMAND_ROLES.get(path, SERVICE)


def current_role() -> str | None:
    """The role of the command being run, None outside a guarded command."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_ROLE_KEY) if ctx else None


def role_groups(role: str, access: dict) -> list[str]:
    """The groups whose members hold `role` under this [access] section."""
    if role == READ:
        return [access["read_group"], access["amend_group"], access["approve_group"]]
    if role in (AMEND, OPERATE):
        return [access["amend_group"]]
    if role == APPROVE:
        return [access["approve_group"]]
    if role == DECLINE:
        return [access["approve_group"], access["amend_group"]]
    return []


def _gids(names: list[str]) -> set[int]:
    found = set()
    for name in names:
        try:
            found.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass  # a group this host does not have grants nothing
    return found


def _person_gids(who: Identity) -> set[int]:
    if who.invoker_uid is None:
        return {os.getegid(), *os.getgroups()}   # the kernel's view of this process
    try:
        entry = pwd.getpwuid(who.invoker_uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(entry.pw_name, entry.pw_gid))


def check(role: str, access: dict, who: Identity) -> None:
    """Raise AccessDenied unless `who` holds `role`. Root passes (it could
    edit the ledger anyway), so does the service user itself; under
    `sudo -u <service user>` the person who ran sudo is checked, since a
    sudo rule lends the service's file access, not its roles."""
    if role == NONE or who.uid == 0 or who.invoker_uid == 0:
        return
    if who.invoker_uid is None and who.uid == service_uid(access["service_user"]):
        return
    groups = role_groups(role, access)
    if not groups:
        raise AccessDenied(f"only the service user {access['service_user']} (or root) may do this")
    if not _gids(groups) & _person_gids(who):
        shown = groups[0] if role not in (READ, DECLINE) else " or ".join(groups)
        raise AccessDenied(f"{who.invoker or who.name} may not do this: it needs membership of the group "
                           f"{shown} ([access] {_key(role)})")


def _key(role: str) -> str:
    keys = {READ: "read_group", APPROVE: "approve_group", DECLINE: "approve_group or amend_group"}
    return keys.get(role, "amend_group")


def sudo_line(service_user: str, argv: list[str] | None = None) -> str:
    """The exact command to run the current command as the service user."""
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0]) if argv else "fapiao-agent"
    if prog in ("__main__.py", "-m") or prog.startswith("python"):
        prog = "fapiao-agent"
    import shlex   # here: only a refusal prints a sudo line

    return shlex.join(["sudo", "-u", service_user, prog, *argv[1:]])


def become_service(service_user: str, who: Identity) -> None:
    """Replace this process (root) with the same command run as the service
    user, so nothing it writes is owned by root. The person stays on record:
    SUDO_UID names them (root itself when root was not behind sudo).
    Returns only when there is no service user on this host."""
    try:
        entry = pwd.getpwnam(service_user)
    except KeyError:
        return
    env = dict(os.environ, SUDO_UID=str(who.invoker_uid if who.invoker_uid is not None else 0),
               SUDO_USER=who.invoker or "root", HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    import shutil   # here: it imports zlib, bz2 and lzma, which every other command can do without

    argv = [sys.executable, *(["-m", "service"] if _run_as_module() else [sys.argv[0]]), *sys.argv[1:]]
    setpriv = shutil.which("setpriv")
    if setpriv:
        cmd = [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *argv]
    else:
        cmd = [shutil.which("runuser") or "/sbin/runuser", "-u", service_user, "--", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, env)


def _run_as_module() -> bool:
    main = sys.modules.get("__main__")
    return getattr(main, "__package__", None) == "service" or sys.argv[0].endswith("__main__.py")


def trusted_config(config, who: Identity, service_user: str) -> None:
    """Raise AccessDenied when the config (a loaded Config) could have been
    written by someone other than root or the account running: its [access]
    section decides every role (and which service user is trusted), so a
    file of one's own brought to `sudo -u fapiao` would grant any role.
    Guarantee: a config that counts is owned by root or the effective user
    and writable by no group or other, judged on the file that was read
    (not the path afterwards), never on anything the file itself says."""
    if config is None or config.path is None:
        return
    uid, mode = config.file_owner, config.file_mode
    if uid is None or mode is None:   # not read by load_config: judge the path
        st = os.stat(config.path)
        uid, mode = st.st_uid, st.st_mode
    euid = os.geteuid()
    if uid not in (0, euid) or mode & 0o022:
        owners = "root" if euid == 0 else f"root or {user_name(euid)}"
        raise AccessDenied(f"the config must be owned by {owners} and writable by nobody else; "
                           f"{config.path} is owned by {user_name(uid)} (mode {mode & 0o777:o})")


ENV_SETTINGS_PREFIX = "FAPIAO_AGENT__"   # agent/config.py ENV_PREFIX


def env_settings(who: Identity, env: dict[str, str] | None = None) -> None:
    """Raise AccessDenied when a person behind sudo brings settings in the
    environment (FAPIAO_AGENT__...): they override the trusted config, its
    [access] groups, state_dir or a destination's URL included. sudo's
    env_reset drops them; this holds when a sudo rule keeps them too."""
    if who.invoker_uid in (None, 0):
        return
    found = sorted(k for k in (os.environ if env is None else env) if k.startswith(ENV_SETTINGS_PREFIX))
    if found:
        raise AccessDenied(f"under sudo no setting may come from the environment; unset {', '.join(found)}")


def refuse_lent_rights(path: str, env: dict[str, str] | None = None) -> None:
    """Exit 3 with one line when `path` is one of CALLER_WRITES and runs as
    another (non-root) account than the person's behind sudo (SUDO_UID names
    someone else): its files would be written with that account's rights.
    Judged without the config, which `config init` has not written yet."""
    if path not in CALLER_WRITES:
        return
    raw = (os.environ if env is None else env).get("SUDO_UID", "")
    euid = os.geteuid()
    if euid != 0 and raw.isdigit() and int(raw) != euid:
        click.echo(f"error: `{path}` writes its files as whoever runs it, here {user_name(euid)} with its "
                   f"rights (over the ledger or the vault, for the service user): run it as yourself, "
                   f"without sudo", err=True)
        sys.exit(DENIED_EXIT)


def enforce(path: str, access: dict, config=None) -> None:
    """The check made before every command: the config's trust under sudo,
    the role, then for a write either become the service user (root) or tell
    a person the `sudo -u` line. Exits 3 with one line when denied."""
    role = role_of(path)
    ctx = click.get_current_context(silent=True)
    if ctx:
        ctx.meta[_ROLE_KEY] = role
    service_user = access["service_user"]
    who = identity(service_user)
    try:
        trusted_config(config, who, service_user)
        env_settings(who)
        check(role, access, who)
        if role in WRITE_ROLES:
            svc = service_uid(service_user)
            if who.uid == 0 and svc is not None:
                try:
                    become_service(service_user, who)
                except OSError as e:  # no setpriv/runuser: never write as root instead
                    raise AccessDenied(f"cannot become {service_user} ({e.strerror or e}); "
                                       f"run it as: {sudo_line(service_user)}") from None
            elif svc is not None and who.uid != svc:
                raise AccessDenied(f"`{path}` changes the ledger, which only the service user writes; "
                                   f"run it as: {sudo_line(service_user)}")
    except AccessDenied as e:
        from service.textsafe import echo   # the message quotes the config's user and paths

        echo(f"error: {e}", err=True)
        sys.exit(DENIED_EXIT)
