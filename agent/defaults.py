"""The commented default configuration written by `fapiao-agent config init`."""

DEFAULT_CONFIG = '''\
# fapiao-agent configuration. Relative paths resolve against this file's folder.
# Any key can be overridden from the environment:
#   FAPIAO_AGENT__<SECTION>__<KEY>, e.g. FAPIAO_AGENT__VALIDATION__MAX_AGE_DAYS=400
#   FAPIAO_AGENT__DESTINATION__<NAME>__<KEY> for a named [[destination]] or [[backup]],
#   e.g. FAPIAO_AGENT__DESTINATION__FINANCE__TOKEN=... keeps secrets out of this file.

[agent]
state_dir = "state"            # ledger and vault live here
max_file_mb = 100              # larger files are refused, not read
stop_timeout_s = 20            # SIGTERM: finish in-flight work within this
rescan_interval_s = 300        # full rescan of watched folders, the safety net

[company]
tax_ids = []                   # the buyer ids that count as "us"; empty = rule off
names = []

[validation]
max_age_days = 360             # older invoices are "expired"
# expected_region = "11"       # warn for invoices issued elsewhere (11 = 北京)
# rules = { "tax-id-legacy" = "off", "region-unexpected" = "error" }

[extract]
ocr = "auto"                   # scans: read names, tax ids, 税额, 大写 by OCR when the
                               # ocr extra is installed (~1-3 s a page); "off": QR only
ocr_workers = 1                # workers that may OCR at once (each needs ~600 MB); 0: all
ocr_idle_unload_s = 120        # a worker idle this long after OCR is replaced, handing back
                               # the ~150 MB its engine keeps (~0.3 s to load again); 0: never
timeout_s = 60                 # a document still being read after this is stopped and
                               # quarantined (extract-timeout); raise it for long scan batches

[delivery]
sla_hours = 24                 # flag invoices not delivered within this after arrival
                               # (quarantined ones count: the clock starts at capture)
reconcile_interval_s = 3600    # how often to check delivered invoices are still there

[health]
# `fapiao-agent status --check` (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
# CRITICAL always: the daemon not running or its heartbeat older than
# heartbeat_stale_s, intake paused, a watched folder not watched, an invoice
# past sla_hours, a destination paused, a backup object that cannot be backed up.
sla_warn_fraction = 0.8                 # WARNING once an invoice waited this share of sla_hours
backup_unreachable_warn_minutes = 30    # a backup target not answering this long: WARNING
backup_unreachable_crit_minutes = 120   # ... and this long: CRITICAL
heartbeat_stale_s = 120
failed_warn = 1                         # invoices whose delivery failed (retries exhausted)
failed_crit = 10                        # 0: never CRITICAL for this
quarantined_warn = 1                    # invoices waiting for a person (quarantined, or held
quarantined_crit = 0                    # by a pending 补录 application, a duplicate too)
application_pending_hours = 24          # a 补录 application waiting this long for its approver:
                                        # WARNING and an application-pending alert (0: never)

[backup_policy]
# Every week the daemon proves each [[backup]] target restores: it fetches
# drill_sample random originals (with the sidecars describing them) and the newest ledger
# snapshot into a temporary folder, checks every hash, opens the snapshot
# read-only and runs PRAGMA integrity_check, then deletes the folder. The
# result is in `status` and the metrics; `fapiao-agent backup drill` runs one now.
drill_weekday = "mon"          # mon .. sun, or "off" (then only by hand)
drill_time = "03:30"           # HH:MM, this host's local time; a failed drill runs again hourly
drill_sample = 20              # originals per target and drill (drawn with a recorded seed)
drill_max_age_days = 8         # `status --check` warns when no drill passed for this long (0: never)

[report]
# The weekly check (每周发票状态检查): an HTML page and a CSV (for Excel) of the
# week before, written by the daemon at this moment (`fapiao-agent report`
# makes one on demand). docs/monitoring.md#weekly-report.
weekday = "monday"
time = "08:00"
time_zone = "Asia/Shanghai"    # the clock `time` is read on; the daemon converts to its own
keep_weeks = 52                # older reports in dir are deleted
expiry_warn_days = 30          # list undelivered invoices this close to max_age_days
# dir = "/srv/finance/reports" # default: <state_dir>/reports

[metrics]
# Prometheus series (fapiao_*; docs/monitoring.md lists them, docs/monitoring/
# has alert rules and a Grafana dashboard). Both forms are off while empty.
listen = ""                    # e.g. "127.0.0.1:9464": Prometheus scrapes http://127.0.0.1:9464/metrics
                               # (keep it on loopback or a private address: no login protects it)
textfile = ""                  # e.g. "/var/lib/node_exporter/fapiao.prom": node_exporter's textfile
                               # collector folder; written whole every interval_s, then renamed in
interval_s = 15                # how often the textfile is rewritten (the endpoint reads at each scrape)

# [fleet]
# Several sites sharing one S3-compatible store (docs/fleet.md): each invoice is
# delivered once across the fleet, and `fapiao-agent fleet status` shows every site.
# Without this section nothing changes.
# url = "s3://shared-bucket/fapiao-fleet"   # or file:///mnt/shared/fleet on one host
# site = "beijing"                 # unique in the fleet: a-z, 0-9 and -
# lease_s = 300                    # a dead site's claim is taken over after this
# on_unreachable = "hold"          # store down: "hold" deliveries, or "deliver" and
#                                  # reconcile the claim later (the destination's own
#                                  # idempotency is then the last guard)
# endpoint_url = "https://minio.example.cn:9000"
# region = "us-east-1"
# addressing_style = "path"
# access_key_id = "..."            # or FAPIAO_AGENT__FLEET__ACCESS_KEY_ID
# secret_access_key = "..."        # or FAPIAO_AGENT__FLEET__SECRET_ACCESS_KEY

[access]
# Who may do what, by Unix group (docs/install.md: which groups, who joins which).
# root and service_user pass every check; commands that change state run as
# service_user (root re-runs itself as it; others use `sudo -u fapiao ...`).
read_group = "fapiao-read"       # status, list, show, quarantine, audit ..., backup status
amend_group = "fapiao-amend"     # amend, reject; retry, requeue, reconcile, ingest, backup verify|restore
approve_group = "fapiao-approve" # accept (and, later, approve/decline 补录 applications)
service_user = "fapiao"          # the account the daemon runs as; owns every state file
self_approve_empty_fields = true # a filer may approve filling a field no source carried

# Each watch takes its folder and every folder below it; give each its own
# folder (one inside another is a config error), apart from the agent's own.
[[watch]]
path = "inbox/scanner"
kind = "scanner"               # or "email"
after = "keep"                 # keep | move (to processed/YYYY-MM-DD/) | delete
# quiet_seconds = 30           # moved/deleted only once unchanged this long: a writer
                               # pausing mid-file (the file open) loses nothing

[[watch]]
path = "inbox/email"
kind = "email"

[[destination]]
name = "outbox"
url = "folder://outbox"        # later also http(s)://... and s3://bucket/prefix

[[backup]]
name = "local"
url = "file://backup"          # or s3://bucket/prefix with endpoint_url = ...

# Notifications (docs/monitoring.md "Notifications"): each [[notify]] entry is told
# about the events it lists, once when a fault opens and once when it is resolved.
# events: quarantined (one digest per digest_minutes), sla-at-risk, sla-breached,
#   destination-paused, backup-failing (longer than backup_failing_minutes),
#   verify-mismatch, disk-full (below disk_free_percent), intake-stuck (intake paused, a
#   folder not watched or not readable, a file still being written 30 min on),
#   application-pending (a 补录 application past application_pending_hours),
#   config-refused (a reload refused: the daemon runs its old config), rejected-at-destination
#   (a rejected invoice a destination still holds), held-under-old-key (a destination holds an
#   invoice under a 号码 an amend corrected since), fleet-claims-lost (with [fleet]: the shared
#   store lost claims, or may have), weekly-report. Default: all.
# Secrets (password, secret, a webhook url: it holds the robot's key) may come from
# the environment instead: FAPIAO_AGENT__NOTIFY__<NAME>__URL / __PASSWORD / __SECRET.
#
# [[notify]]
# name = "finance-mail"
# url = "mailto:finance@example.com,ops@example.com"
# host = "smtp.example.com"
# port = 587
# starttls = true              # or ssl = true (port 465)
# username = "fapiao-agent@example.com"
# password_file = "/etc/fapiao-agent/smtp-password"   # or password = "..." (chmod 640 this file)
# sender = "fapiao-agent@example.com"
# events = ["quarantined", "sla-breached", "backup-failing", "weekly-report"]
#
# [[notify]]
# name = "wecom-ops"           # 企业微信群机器人; preset inferred from the host
# url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=..."
# events = ["sla-at-risk", "sla-breached", "destination-paused", "backup-failing",
#           "verify-mismatch", "disk-full", "intake-stuck", "config-refused",
#           "rejected-at-destination", "held-under-old-key",
#           "fleet-claims-lost"]
# digest_minutes = 15          # quarantine digests at most this often
# repeat_hours = 24            # remind of a fault still open (0: never)
# resolve_after_minutes = 10   # "resolved" only after this long clear: a flap sends one message
# backup_failing_minutes = 30
# disk_free_percent = 5
# give_up_hours = 24           # a message not sent by then is given up (status shows it)
#
# [[notify]]
# name = "dingtalk"            # 钉钉; preset = "dingtalk" | "feishu" | "wecom" | "generic"
# url = "https://oapi.dingtalk.com/robot/send?access_token=..."
# secret = "SEC..."            # 加签 (DingTalk) / 签名校验 (Feishu), optional
'''

# Folders the default config refers to, created by `config init`.
DEFAULT_FOLDERS = ("state", "inbox/scanner", "inbox/email", "outbox", "backup")
