"""Several sites, one shared object store: cross-site exactly once and one view.

store.py (the small interface, chosen by URL scheme; file:// here), s3.py
(the only boto3 importer of the package), claims.py (the claim chain and its
decisions, pure: `now` passed in), status.py (each site's status.json).
"""

# The longest lease a claim may carry (a day). Here, not in claims.py, so
# the config check of [fleet] lease_s needs no claim code: every CLI
# command reads the config.
MAX_LEASE_S = 86_400.0
