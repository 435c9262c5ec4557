"""The events a [[notify]] entry may ask for, and the robot presets.

Kept apart (no imports) so the config can check names without loading the
adapters."""

from __future__ import annotations

EVENTS = ("quarantined", "sla-at-risk", "sla-breached", "destination-paused", "backup-failing",
          "verify-mismatch", "disk-full", "intake-stuck", "application-pending", "config-refused",
          "rejected-at-destination", "held-under-old-key", "fleet-claims-lost", "weekly-report")
# Level-triggered: open while the ledger (or the heartbeat against the
# config file) shows them (agent/notify/faults.py).
FAULT_EVENTS = ("sla-at-risk", "sla-breached", "destination-paused", "backup-failing", "verify-mismatch",
                "disk-full", "intake-stuck", "application-pending", "config-refused", "rejected-at-destination",
                "held-under-old-key", "fleet-claims-lost")
PRESETS = ("wecom", "dingtalk", "feishu", "generic")
# A robot's host names its preset when `preset` is not given.
PRESET_HOSTS = {"qyapi.weixin.qq.com": "wecom", "oapi.dingtalk.com": "dingtalk",
                "open.feishu.cn": "feishu", "open.larksuite.com": "feishu"}
SIGNED_PRESETS = ("dingtalk", "feishu")   # the robots that take a `secret` to sign with
