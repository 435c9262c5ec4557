"""Delivery destinations: one small interface, adapters chosen by URL scheme.

See agent/deliver/base.py for the guarantees and docs/destination-api.md for
the HTTP API, the folder and S3 layouts and the configuration keys.
"""

from agent.deliver.base import Destination, Misconfigured, Parcel, Receipt, open_destination, parcel_for

__all__ = ["Destination", "Misconfigured", "Parcel", "Receipt", "open_destination", "parcel_for"]
