"""The project's own exceptions.

Loops catch these and nothing else by name: an exception that is not an
`AgentError` is a bug, and the fuzz tests treat it as one.
"""

from __future__ import annotations

from agent.redact import redact


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """The configuration is invalid; the message names the key."""


class IllegalTransition(AgentError):
    """A document was asked to move between two states the machine forbids."""


class NotFoundInLedger(AgentError):
    """No document matches the given id, hash prefix or invoice number."""


class CaptureError(AgentError):
    """A source file could not be taken into the vault (unreadable, special file...).

    `transient` is True when trying again later may work (disk full, I/O
    error): the source is then left alone for the next rescan.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class SourceUnavailable(CaptureError):
    """The source file cannot be opened or read just now (another program
    holds a lock or lease on it, an I/O error on its disk): this file only,
    never the vault, so it is set back and tried again on its own while
    every other file is taken."""

    def __init__(self, message: str):
        super().__init__(message, transient=True)


class SourceGone(CaptureError):
    """The source file was moved or deleted after it was noticed and before
    it was opened (a writer renaming its temporary file into place): there
    is nothing left to take or to explain under that name."""


class SourceForbidden(CaptureError):
    """The agent's user may not read the source file (its mode or owner):
    refused; when it looks like the file captured there before (a chmod
    after its capture), the refusal names that capture (service/intake.py)."""


class ExtractError(AgentError):
    """A file could not be read as an invoice. `reason` is a short stable code.

    Reasons in use: empty, unsupported-format, encrypted, corrupt, truncated,
    limit-exceeded, unsafe-xml, no-qr, not-invoice, unreadable.

    `message` is English; `zh`, when given, says the same to a Chinese
    reader (operators read either), and `message` then holds both,
    "English / 中文", the way every reason a person reads of a file not
    read is written (agent/extract/refusal_texts.py).
    """

    def __init__(self, reason: str, message: str, zh: str | None = None):
        told = f"{message} / {zh}" if zh else message
        super().__init__(f"{reason}: {told}")
        self.reason = reason
        self.message = told
        self.zh = zh


# Adapter outcomes. Destinations and backup targets turn every vendor error
# into one of these, so the loops decide retry or quarantine in one place.


class AdapterError(AgentError):
    """Base for what a destination or backup target reports.

    Its message is where a remote's own words become ours, so it is made
    here with every configured secret redacted (`agent.redact`): whatever
    logs, stores or prints the error never holds a token, password or key.
    """

    def __init__(self, message: object = "", *args: object):
        super().__init__(redact(message), *args)


class Transient(AdapterError):
    """Worth retrying later: timeouts, 5xx, 429, connection errors.

    `retry_after` (seconds) is set when the remote said how long to wait.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Permanent(AdapterError):
    """Retrying the same request cannot succeed (4xx, bad credentials, no bucket)."""


class OriginalUnreadable(Permanent):
    """The vault's original of a parcel is gone, unreadable or not the bytes
    the ledger recorded: nothing was sent, and no destination refused
    anything (the loop says so, not "delivery refused")."""


class ClockSkewed(Transient):
    """The remote refused the request because this host's clock is too far
    off its own (S3's RequestTimeTooSkewed or RequestExpired: a SigV4
    signature is good for about 15 min either side). Not a credentials
    problem: it clears by itself once the host's time is right (NTP), so it
    is retried like a Transient, and the message names the clock.
    `server_time` is the remote's clock (UTC) when its answer said it."""

    def __init__(self, message: str, server_time=None):
        super().__init__(message)
        self.server_time = server_time


class NotFound(AdapterError):
    """The object or invoice is not at the remote."""


# Notification adapters (agent/notify/): SMTP and webhooks turn every
# vendor error into one of these, so the outbox decides retry or give-up in
# one place. Messages are redacted like every AdapterError's.


class NotifyError(AdapterError):
    """A notification could not be sent."""


class NotifyRetryable(NotifyError):
    """Worth trying again later: a timeout, a refused connection, a 5xx or
    429, an SMTP 4xx reply, a robot's rate limit."""


class NotifyPermanent(NotifyError):
    """The same message cannot succeed: bad credentials, a refused
    recipient, a 4xx, a robot's non-zero errcode other than a rate limit."""


class Conflict(AdapterError):
    """A conditional write lost: the object exists (If-None-Match) or has
    changed since it was read (If-Match). Someone else wrote first."""
