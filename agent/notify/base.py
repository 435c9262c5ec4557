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
    """`one_line(text)` as a markdown code span: the robots show it as
    text, never as a link, an image, a mention (`<@all>`), a `<font>` tag
    or emphasis (the webhook makes a span's content inert where a robot
    might act on it: `inert_code_spans`); e-mail shows it between
    backticks. A backtick inside becomes `'` (a span cannot hold its own
    delimiter portably). Every value in a message's subject or text that
    the agent's code did not write (a file, folder or entry name, a path,
    a server's error, an e-mail's subject or sender, a person's words, a
    host name) goes through this: the robots read the rest as markdown."""
    return "`" + one_line(text).replace("`", "'") + "`"


# What a robot's markdown could still act on inside a code span, each swapped
# for its full-width twin: it reads the same and never acts.
# DingTalk's robot markdown has no code spans: a name between backticks is
# live there, `[核对](https://evil)` a link, `![](…)` a remote image, `@138…`
# a mention; every markdown special goes. WeCom documents inline code, but
# its renderer is not CommonMark and says nothing of what a span shields:
# what its syntax starts with within a line (a link or image `[`, a
# `<font>` or `<@user>` tag, `*` emphasis) goes, the rest of a name (`(1)`,
# `_`, `#`) stays exact. Feishu's post sends text segments, never parsed
# (a mention is a segment of its own), and the generic webhook is JSON for
# a program: their spans stay as they are.
_FULL_WIDTH = {"[": "［", "]": "］", "(": "（", ")": "）", "!": "！", "<": "＜", ">": "＞", "@": "＠",
               "*": "＊", "_": "＿", "#": "＃", "|": "｜", "~": "～", "\\": "＼", "&": "＆"}
_INERT = {"dingtalk": str.maketrans(_FULL_WIDTH),
          "wecom": str.maketrans({c: _FULL_WIDTH[c] for c in "[]<>*"})}


def inert_code_spans(text: str, preset: str) -> str:
    """`text` with the content of every code span (`` `…` ``, as `code_span`
    writes them: no backtick or line break inside) holding nothing
    `preset`'s markdown could act on (each such character its full-width
    twin: for DingTalk, which shows no code span, every one of
    [ ] ( ) ! < > @ * _ # | ~ \\ &; for WeCom [ ] < > *); the text outside
    the spans, and every span for another preset, as it is."""
    table = _INERT.get(preset)
    if table is None:
        return text
    return re.sub(r"`([^`\n]*)`", lambda m: "`" + m.group(1).translate(table) + "`", text)


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
