"""µs per `redact` call on a typical remote error message, with two adapters'
secrets remembered (a bearer token and a Basic user:password).

    PYTHONPATH=$PWD /work/main/.venv/bin/python bench/redact.py
"""

from __future__ import annotations

import time

from agent.redact import redact, remember


class Owner:
    pass


def main() -> None:
    owner = Owner()
    remember(owner, "SeKrEtToKeN4242xyz-0123456789abcdef")
    remember(owner, "pw-SPLIT-0a9c7e", basic=("ap", "pw-SPLIT-0a9c7e"))
    messages = [
        "HTTP 503 from https://finance.example/api/invoices: upstream timeout, retry later",
        "HTTP 422: {\"error\":\"duplicate invoice 24312000000012345678\",\"field\":\"number\"}" * 3,
        "S3 SignatureDoesNotMatch: The request signature we calculated does not match " * 5,
    ]
    redact(messages[0])                       # build the cached matcher
    n = 5000
    for text in messages:
        t0 = time.perf_counter()
        for _ in range(n):
            redact(text)
        dt = (time.perf_counter() - t0) / n * 1e6
        print(f"{len(text):5d} chars: {dt:7.1f} µs/message")


if __name__ == "__main__":
    main()
