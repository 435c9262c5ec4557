"""Delivery destinations: one small interface, adapters chosen by URL scheme.

See agent/deliver/base.py for the guarantees and docs/destination-api.md for
the HTTP API, the folder and S3 layouts and the configuration keys.

The names below load agent/deliver/base.py when first asked for, not with
this package: `status` imports agent.deliver.gate and agent.deliver.retry
to report each destination, and needs neither the adapter interface nor the
invoice model behind it (issue 17: start-up).
"""

__all__ = ["Destination", "Misconfigured", "Parcel", "Receipt", "open_destination", "parcel_for"]


def __getattr__(name: str):
    if name in __all__:
        from agent.deliver import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
