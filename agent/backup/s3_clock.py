"""An S3 store refusing this host's clock, told apart from a refusal of its
credentials (both are HTTP 403). SigV4 signs the request time, and S3 (AWS,
SeaweedFS, MinIO) refuses a request more than about 15 min off its own clock
with RequestTimeTooSkewed; reading that as "access denied" sent operators to
check keys that were right, and let a fleet site in `on_unreachable =
"deliver"` mode deliver without a claim. Pure: a botocore error response in,
no boto3 import, no clock read (the times are the store's own answer).
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import parsedate_to_datetime

# A 403 these codes name is the store refusing this host's clock (a SigV4
# request more than ~15 min off its own), not the credentials: told apart so
# nobody is sent to check keys that are right.
_CLOCK_CODES = {"RequestTimeTooSkewed", "RequestExpired"}
# RequestTimeout is not one: the store gave up waiting for the request's body.
_CLOCK_WORDS = re.compile(r"skew|clock|requesttime(?!out)", re.IGNORECASE)


def clock_refusal(response: dict) -> tuple[str, dt.datetime | None] | None:
    """(what the store said, its clock in UTC or None) when an S3 error
    response is a refusal of this host's clock (RequestTimeTooSkewed,
    RequestExpired, or a 403 whose code speaks of the time), else None. The
    store's clock is the error's ServerTime (AWS) or the answer's Date."""
    err = (response or {}).get("Error") or {}
    code = str(err.get("Code", ""))
    status = ((response or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode", 0)
    if code not in _CLOCK_CODES and not (status in (400, 403) and _CLOCK_WORDS.search(code)):
        return None
    server = _when(err.get("ServerTime"))
    if server is None:
        date = ((response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
        try:
            server = parsedate_to_datetime(date).astimezone(dt.timezone.utc) if date else None
        except (TypeError, ValueError, IndexError):
            server = None
    request = _when(err.get("RequestTime"))
    said = code
    if server is not None and request is not None:
        skew = (request - server).total_seconds()
        said += (f": this host's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
                 "the store's")
    elif server is not None:
        said += f": this host's clock is off the store's, which read {server:%Y-%m-%d %H:%M:%S} UTC"
    else:
        said += ": this host's clock is off the store's"
    return said, server


def _when(text: object) -> dt.datetime | None:
    # An S3 error body's time: ISO 8601 (ServerTime) or the SigV4 form 20240101T000000Z (RequestTime).
    if not isinstance(text, str) or not text:
        return None
    for parse in (lambda t: dt.datetime.strptime(t, "%Y%m%dT%H%M%SZ"),
                  lambda t: dt.datetime.fromisoformat(t.replace("Z", "+00:00"))):
        try:
            moment = parse(text.strip())
        except ValueError:
            continue
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
    return None
