"""mailto:ADDRESS[,ADDRESS]: a notification as an e-mail over SMTP.

Keys: host (default localhost), port (25; 465 with ssl; 587 with
starttls), ssl (implicit TLS), starttls, username with password or
password_file (a file only the service user reads, relative to the
config), sender (default fapiao-agent@<this host>), timeout_s, tls_verify,
ca_file. The message is UTF-8 (subject RFC 2047-encoded), plain text with
the html as an alternative part when given, and the attachments (the weekly
report's HTML and CSV). smtplib is the client: the standard library speaks
every part of this (AUTH, STARTTLS, SMTPUTF8-free 7-bit headers).
"""

from __future__ import annotations

import email.utils
import smtplib
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from agent.config_notify import mail_recipients
from agent.deadline import open_connection, send_deadline, tls_context
from agent.errors import ConfigError, NotifyPermanent, NotifyRetryable
from agent.notify.base import Message
from agent.redact import remember


class _SMTP(smtplib.SMTP):
    # smtplib's socket is a DeadlineSocket: a server trickling "220-" lines
    # (each within the timeout) would otherwise hold getreply for ever.
    def _get_socket(self, host, port, timeout):
        return open_connection(host, port, timeout=timeout, source_address=self.source_address)


class _SMTPS(smtplib.SMTP_SSL, _SMTP):
    # Implicit TLS: SMTP_SSL wraps the socket _SMTP opens (its super()).
    pass


class SmtpNotifier:
    """Sends each message in its own SMTP session (notifications are few)."""

    def __init__(self, name: str, recipients: list[str], *, host: str, port: int, ssl_: bool = False,
                 starttls: bool = False, username: str | None = None, password: str | None = None,
                 sender: str | None = None, timeout_s: float = 10.0, tls_verify: bool = True,
                 ca_file: str | None = None):
        self.name, self.recipients = name, recipients
        self.host, self.port, self.ssl, self.starttls = host, port, ssl_, starttls
        self.username, self._password = username, password
        self.sender = sender or f"fapiao-agent@{socket.getfqdn() or 'localhost'}"
        self.timeout_s, self.tls_verify, self.ca_file = timeout_s, tls_verify, ca_file
        remember(self, password)

    def __repr__(self) -> str:
        return f"SmtpNotifier({self.name!r}, {self.host}:{self.port})"

    __str__ = __repr__

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> "SmtpNotifier":
        """From a checked [[notify]] entry; reads password_file (ConfigError
        naming the key, never its content, when it cannot)."""
        password = entry.get("password")
        if entry.get("password_file"):
            path = Path(entry.get("base_dir", ".")) / entry["password_file"]
            try:
                password = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"notify {entry['name']}: password_file {path} cannot be read "
                                  f"({getattr(e, 'strerror', None) or type(e).__name__})") from None
        port = entry.get("port") or (465 if entry.get("ssl") else 587 if entry.get("starttls") else 25)
        return cls(entry["name"], mail_recipients(entry["url"]), host=entry.get("host") or "localhost",
                   port=port, ssl_=bool(entry.get("ssl")), starttls=bool(entry.get("starttls")),
                   username=entry.get("username"), password=password, sender=entry.get("sender"),
                   timeout_s=float(entry.get("timeout_s") or 10.0), tls_verify=entry.get("tls_verify", True),
                   ca_file=entry.get("ca_file"))

    def compose(self, message: Message) -> EmailMessage:
        """The e-mail for `message` (public for tests and `notify test --dry-run`)."""
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = email.utils.formatdate(localtime=False)
        mail["Message-ID"] = email.utils.make_msgid(domain=self.sender.rpartition("@")[2] or None)
        mail["Auto-Submitted"] = "auto-generated"        # RFC 3834: no vacation replies to a robot
        mail.set_content(message.text, charset="utf-8")
        if message.html:
            mail.add_alternative(message.html, subtype="html", charset="utf-8")
        for a in message.attachments:
            maintype, _, subtype = a.mimetype.partition("/")
            mail.add_attachment(a.data, maintype=maintype or "application",
                                subtype=subtype or "octet-stream", filename=a.filename)
        return mail

    def send(self, message: Message) -> None:
        """One SMTP session: connect (TLS as configured), AUTH when a
        username is set, send; all of it within timeout_s, whatever the
        server does (agent/deadline.py). 4xx replies, timeouts, the
        deadline and refused connections are NotifyRetryable; 5xx, bad
        credentials, a refused recipient or a certificate that does not
        verify are NotifyPermanent."""
        mail = self.compose(message)
        where = f"notify {self.name} (smtp {self.host}:{self.port})"
        with send_deadline(self.timeout_s) as deadline:
            try:
                self._session(mail)
            except Exception as e:
                if deadline.spent():     # whatever smtplib made of it, the server was too slow
                    raise NotifyRetryable(f"{where}: the session did not finish within {self.timeout_s:g} s "
                                          f"(timeout_s): {type(e).__name__}"[:300]) from None
                failure = _failure(where, e)
                if failure is None:     # not the server's doing: a bug, shown as it is
                    raise
                raise failure from None

    def _session(self, mail: EmailMessage) -> None:
        context = self._tls_context()
        if self.ssl:
            smtp = _SMTPS(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = _SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password or "")
            smtp.send_message(mail, from_addr=self.sender, to_addrs=self.recipients)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not (self.ssl or self.starttls):
            return None
        return tls_context(verify=self.tls_verify, ca_file=self.ca_file)


def _failure(where: str, e: Exception) -> Exception | None:
    # What a failed session (not the deadline) means: try later, or never;
    # None for an exception no server causes.
    if isinstance(e, smtplib.SMTPAuthenticationError):
        return NotifyPermanent(f"{where}: login refused ({e.smtp_code}); check username and password")
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return NotifyPermanent(f"{where}: recipients refused: {', '.join(e.recipients)}")
    if isinstance(e, smtplib.SMTPNotSupportedError):
        return NotifyPermanent(f"{where}: server does not support it: {e}")
    if isinstance(e, smtplib.SMTPResponseException):
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        kind = NotifyRetryable if 400 <= e.smtp_code < 500 else NotifyPermanent
        return kind(f"{where}: server said {e.smtp_code} {text[:200]}")
    if isinstance(e, ssl.SSLCertVerificationError):
        return NotifyPermanent(f"{where}: TLS certificate not trusted ({e.verify_message}); "
                               "set ca_file or fix the server's certificate")
    if isinstance(e, (smtplib.SMTPException, OSError)):   # disconnects, timeouts, refused, DNS
        return NotifyRetryable(f"{where}: {type(e).__name__}: {e}"[:300])
    return None
