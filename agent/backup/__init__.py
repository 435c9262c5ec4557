"""Backup targets (S3 buckets, mounted disks) behind one small interface.

`open_target(cfg)` picks the adapter from the URL; `object_key` and friends
fix the key layout that restores and scripts depend on.
"""

from agent.backup.base import (AccessDenied, BackupTarget, BucketMissing, ChecksumMismatch,
                               CorruptObject, FolderMissing, InvalidKey, ObjectInfo, TargetUnrecognised,
                               manifest_key, object_key, open_target, sha256_of_object_key,
                               sidecar_key, snapshot_key)

__all__ = [
    "AccessDenied", "BackupTarget", "BucketMissing", "ChecksumMismatch", "CorruptObject",
    "FolderMissing", "InvalidKey", "ObjectInfo", "manifest_key", "object_key", "open_target",
    "sha256_of_object_key", "sidecar_key", "snapshot_key", "TargetUnrecognised",
]
