"""The one interface of a notification channel, and opening one by url scheme.

    notifier = open_notifier(entry)   # from a [[notify]] entry
    notifier.send(message)            # returns, or raises NotifyRetryable / NotifyPermanent

`mailto:` is SMTP (agent/notify/smtp.py); `http(s)://` a JSON webhook in
the robot's documented format (agent/notify/webhook.py). A notifier holds
its secrets (`agent.redact.remember`), so no error it raises, and nothing
logged or stored from one, holds a password, a signing secret or the
robot's key; its `str()` is the entry's name and the url's host only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from agent import textchars
from agent.errors import ConfigError


def one_line(text: object) -> str:
    """A stranger's text (a server's error, a file name) fit to sit inside
    one line of a message: every control character, bidi control, line
    separator, invisible format character and surrogate (a file name's
    non-UTF-8 byte: `\\xff`) shown as an escape (`\\n`, `\\x1b`,
    `\\u202e`, `\\u200b`; agent/textchars.py, as the CLI shows them), so
    it can neither start a line of its own (a forged heading or list entry),
    act on the terminal or mail client that shows it, nor hide a character
    (a message holding a surrogate could not be encoded: never sent)."""
    return textchars.shown(text if isinstance(text, str) else str(text))


def code_span(text: object) -> str:
    """`one_line(text)` as a markdown code span: the robots show it as it
    is, never as a link, a mention (`<@all>`) or emphasis. A backtick inside
    becomes `'` (a span cannot hold its own delimiter portably)."""
    return "`" + one_line(text).replace("`", "'") + "`"


# DingTalk's robot markdown has no code spans: a name between backticks is
# live there, `[核对](https://evil)` a link, `![](…)` a remote image, `@138…`
# a mention. Inside the spans `code_span` makes, each markdown special is
# swapped for its full-width twin: it reads the same and never acts.
_INERT = str.maketrans({"[": "［", "]": "］", "(": "（", ")": "）", "!": "！", "<": "＜", ">": "＞", "@": "＠",
                        "*": "＊", "_": "＿", "#": "＃", "|": "｜", "~": "～", "\\": "＼", "&": "＆"})


def inert_code_spans(text: str) -> str:
    """`text` with the content of every code span (`` `…` ``, as `code_span`
    writes them: no backtick or line break inside) holding no markdown
    special character ([ ] ( ) ! < > @ * _ # | ~ \\ &: each its full-width
    twin), for a channel whose markdown shows no code span (DingTalk)."""
    return re.sub(r"`([^`\n]*)`", lambda m: "`" + m.group(1).translate(_INERT) + "`", text)


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail (webhooks get the text summary only)."""

    filename: str
    data: bytes
    mimetype: str = "application/octet-stream"


@dataclass(frozen=True)
class Message:
    """What a notifier sends: `subject`, `text` (plain text that reads as
    markdown too: webhooks send it as markdown), optional `html` (e-mail's
    alternative part) and attachments."""

    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    event: str = "test"
    key: str = ""


class Notifier(Protocol):
    """A channel: SMTP or a webhook."""

    name: str

    def send(self, message: Message) -> None:
        """Deliver `message` once, within the entry's timeout_s; raise
        NotifyRetryable (try later) or NotifyPermanent (this cannot work)."""


def open_notifier(entry: dict[str, Any]) -> Notifier:
    """The notifier for a checked [[notify]] entry, chosen by url scheme.
    Reads password_file here (ConfigError naming the key when it cannot);
    makes no network call."""
    scheme = urlsplit(entry["url"]).scheme.lower()
    if scheme == "mailto":
        from agent.notify.smtp import SmtpNotifier

        return SmtpNotifier.from_config(entry)
    if scheme in ("http", "https"):
        from agent.notify.webhook import WebhookNotifier

        return WebhookNotifier.from_config(entry)
    raise ConfigError(f"notify {entry.get('name')}: url scheme {scheme!r} is not mailto: or https://")
