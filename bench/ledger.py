"""Ledger at scale: fill 1,000,000 documents, then time `status` and
`list --state failed --limit 50` (target: both under 50 ms), `search` of
several kinds (target: each under 100 ms) beside anchors in the same run,
and the ingest rate of 10,000 small files.

    .venv/bin/python bench/ledger.py [--documents 1000000] [--files 10000]
        [--ledger /tmp/bench-1m/ledger.sqlite3]   build it once there, reuse it after
        [--search-only]                           skip status, list and ingest

Documents carry invoice fields (buyer, seller, tax ids, line items), a file
name and an arrival; one in five came by e-mail (subject, sender). The fill
writes them into a ledger of the schema before the search index, then opens
it as any upgrade does: that migration's backfill is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.defaults import DEFAULT_CONFIG  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.model import State  # noqa: E402
from service.commands.status import status_report  # noqa: E402
from agent.config import load_config  # noqa: E402
from agent.ledger.schema import MIGRATIONS  # noqa: E402
from agent.search import SearchQuery  # noqa: E402

STATES = [s.value for s in State]
# The schema version just before the search index (found by content, so a
# renumbered migration needs no edit here).
BEFORE_SEARCH = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE search_text" in m)
CITIES = "北京 上海 广州 深圳 杭州 成都 武汉 南京 天津 重庆 西安 苏州 长沙 郑州 青岛 厦门".split()
TRADES = "科技 贸易 餐饮 建筑 物流 咨询 文化 医药 电子 机械 能源 食品 服装 印刷 教育 广告".split()
SYLLABLES = "华 鑫 瑞 丰 盛 达 恒 通 泰 宏 昌 兴 源 佳 信 安 捷 博 创 德 汇 金 联 明 润 星 云 正 中 卓".split()
ITEMS = ("办公用品 打印纸 墨盒 餐饮服务 住宿服务 运输服务 技术服务费 咨询费 会议费 汽油 柴油 电费 水费 "
         "通讯服务 软件服务 硬盘 显示器 笔记本电脑 服务器 机柜 网线 打印机 复印纸 文件夹 快递服务").split()
PEOPLE = "张伟 王芳 李娜 刘洋 陈静 杨磊 赵敏 黄强 周杰 吴霞 徐涛 孙丽 马超 朱琳 胡斌 郭鹏".split()


def company(rng: random.Random, n: int) -> tuple[str, str]:
    """The n-th company of a pool: its name and its 18-character tax id."""
    r = random.Random(n)
    name = (r.choice(CITIES) + r.choice(SYLLABLES) + r.choice(SYLLABLES) + r.choice(TRADES)
            + ("有限公司" if n % 7 else "股份有限公司"))
    return name, f"91{110000 + n % 800000:06d}MA{n:08X}"[:18]


class _BeforeSearch(Ledger):
    # A ledger of the release before the search index: what an upgrade finds.
    def migrate(self, target: int = BEFORE_SEARCH) -> int:
        return super().migrate(target)


def fill_invoices(ledger: Ledger, n: int, *, start: int = 0) -> None:
    """`n` documents with invoice fields, a file name and an arrival (one in
    five by e-mail), straight through SQL: the point is the read path."""
    rng = random.Random(7 + start)
    docs, sources = [], []
    sellers = [company(rng, k) for k in range(5000)]
    buyers = [company(rng, 100000 + k) for k in range(2000)]
    insert_docs = ("INSERT INTO documents (id, sha256, size, media_type, source_kind, original_name, received_at, "
                   "updated_at, state, fields, invoice_key, invoice_number, invoice_date, total_cents) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    insert_sources = ("INSERT INTO sources (document_id, at, source_kind, source, original_name, details) "
                      "VALUES (?,?,?,?,?,?)")
    with ledger.transaction() as c:
        for i in range(start, start + n):
            state = rng.choices(STATES, weights=[1, 1, 1, 3, 2, 1, 5, 80, 1, 2, 2, 1, 1, 1])[0]
            ts = f"2026-{1 + i * 11 // max(n + start, 1):02d}-{1 + i % 28:02d}T00:00:00.{i % 1000000:06d}Z"
            day = f"2026-{1 + (i * 7) % 11:02d}-{1 + (i * 13) % 28:02d}"
            seller, seller_id = rng.choice(sellers)
            buyer, buyer_id = rng.choice(buyers)
            number = f"26{(i * 6364136223846793005 + 1442695040888963407) % 10**18:018d}"
            cents = rng.randrange(100, 5_000_000)
            fields = {"is_invoice": True, "kind": "32", "number": number, "date": day,
                      "total": f"{cents / 100:.2f}", "seller_name": seller, "seller_tax_id": seller_id,
                      "buyer_name": buyer, "buyer_tax_id": buyer_id,
                      "items": [{"name": rng.choice(ITEMS), "amount": f"{cents / 113:.2f}"}
                                for _ in range(rng.randint(1, 3))]}
            mail = i % 5 == 0
            name = f"{'att' if mail else 'scan'}_{i:07d}.pdf"
            docs.append((i + 1, f"{i:064x}", 1000, "pdf", "email" if mail else "scanner", name, ts, ts, state,
                         json.dumps(fields, ensure_ascii=False), number, number, day, cents))
            details = None
            if mail:
                who = rng.choice(PEOPLE)
                details = json.dumps({"subject": f"{day[5:7]}月报销 {who} {rng.choice(ITEMS)}",
                                      "from": f"{who} <p{i % 977}@corp.example.cn>"}, ensure_ascii=False)
            sources.append((i + 1, ts, "email" if mail else "scanner", "/srv/in", name, details))
            if len(docs) == 20000:
                c.executemany(insert_docs, docs)
                c.executemany(insert_sources, sources)
                docs.clear()
                sources.clear()
        if docs:
            c.executemany(insert_docs, docs)
            c.executemany(insert_sources, sources)


def search_bench(ledger: Ledger, path: Path, n: int) -> None:
    """Time each kind of search beside anchors on the same file, interleaved."""
    seller = company(random.Random(0), 4321)[0]
    numbers = ledger.conn.execute("SELECT invoice_number, json_extract(fields, '$.seller_tax_id') FROM documents "
                                  "WHERE id = ?", (n // 2,)).fetchone()
    kinds = {
        "name substring (4 chars), relevance": SearchQuery(text=seller[2:6]),
        "name substring, --sort date": SearchQuery(text=seller[2:6], sort="date"),
        "seller name + line item": SearchQuery(text=f"{seller[2:6]} {ITEMS[3]}"),
        "line item (3 chars), --state failed": SearchQuery(text="笔记本", states=("failed",)),
        "short word (2 chars, LIKE path) + --state failed": SearchQuery(text="墨盒", states=("failed",)),
        "line item + --state confirmed (80 % of documents)": SearchQuery(text="笔记本", states=("confirmed",)),
        "short word + --state failed,quarantined, --sort amount": SearchQuery(
            text="墨盒", states=("failed", "quarantined"), sort="amount"),
        "--state confirmed --amount 100..200 only": SearchQuery(states=("confirmed",), amount=(10000, 20000)),
        "e-mail sender": SearchQuery(text="p123@corp"),
        "number prefix (12 digits)": SearchQuery(text=numbers[0][:12]),
        "tax id prefix (10 chars)": SearchQuery(text=numbers[1][:10].lower()),
        "amount range only, --amount 100..200": SearchQuery(amount=(10000, 20000)),
        "amount range only, --sort amount": SearchQuery(amount=(10000, 20000), sort="amount"),
        "date range + text": SearchQuery(text=seller[2:6], date=("2026-03-01", "2026-05-31")),
        "broad word 有限公司 (every document), relevance": SearchQuery(text="有限公司"),
        "broad word 有限公司, --sort date": SearchQuery(text="有限公司", sort="date"),
    }
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    anchors = {
        "anchor: SELECT count(*) FROM documents": lambda: raw.execute("SELECT count(*) FROM documents").fetchone(),
        "anchor: bare FTS MATCH, LIMIT 50": lambda: raw.execute(
            "SELECT rowid FROM search_text_fts WHERE search_text_fts MATCH ? LIMIT 50",
            (f'"{seller[2:6]}"',)).fetchall(),
    }
    times: dict[str, list[float]] = {k: [] for k in [*anchors, *kinds]}
    found: dict[str, str] = {}
    for _ in range(7):  # interleaved rounds: the machine is shared, each kind sees the same load
        for name, fn in anchors.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
        for name, q in kinds.items():
            t = time.perf_counter()
            result = ledger.search(q)
            times[name].append((time.perf_counter() - t) * 1000)
            found[name] = f"{len(result.hits)}{'+' if result.more else ''} hits"
    print(f"search on {n:,} documents (median of 7 interleaved rounds; target ≤ 100 ms):")
    for name, ms in times.items():
        print(f"  {name:<52} median {statistics.median(ms):8.2f} ms  max {max(ms):8.2f} ms  "
              f"{found.get(name, '')}")
    raw.close()


def build_search_ledger(path: Path, n: int) -> None:
    """A ledger of `n` invoice documents at `path`, upgraded to the search
    index, built once (kept for the next run)."""
    if path.exists():
        t = time.perf_counter()
        Ledger(path).close()   # a ledger kept from an older version gets the newer migrations
        print(f"reusing {path} (upgrade check {time.perf_counter() - t:.1f} s)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    older = _BeforeSearch(path)
    t = time.perf_counter()
    fill_invoices(older, n)
    took = time.perf_counter() - t
    print(f"fill: {n:,} invoice documents and arrivals in {took:.1f} s ({took / n * 1e6:.0f} µs each), "
          "before the search index")
    older.close()
    t = time.perf_counter()
    Ledger(path).close()
    print(f"upgrade: the search migration's backfill of {n:,} documents took {time.perf_counter() - t:.1f} s")
    # What the triggers cost each capture: the same fill into two fresh
    # ledgers, without and with the search index.
    with tempfile.TemporaryDirectory() as tmp:
        per = {}
        for label, cls in (("without", _BeforeSearch), ("with", Ledger)):
            with cls(Path(tmp) / f"{label}.sqlite3") as fresh:
                t = time.perf_counter()
                fill_invoices(fresh, 20000)
                per[label] = (time.perf_counter() - t) / 20000 * 1e6
    print(f"fill of 20,000 documents and arrivals into a fresh ledger: {per['without']:.0f} µs each without "
          f"the search index, {per['with']:.0f} µs with it (its triggers)")


def fill(ledger: Ledger, n: int) -> None:
    """Bulk rows straight through SQL: the point is the read path at scale."""
    rng = random.Random(1)
    batch = []
    with ledger.transaction() as c:
        for i in range(n):
            state = rng.choices(STATES, weights=[1, 1, 1, 3, 2, 1, 5, 80, 1, 2, 2, 1, 1, 1])[0]
            ts = f"2026-{1 + i * 11 // n:02d}-{1 + i % 28:02d}T00:00:00.{i % 1000000:06d}Z"
            batch.append((f"{i:064x}", 1000, "pdf", "scanner", ts, ts, state, f"{i:020d}", i % 100000))
            if len(batch) == 20000:
                c.executemany("INSERT INTO documents (sha256, size, media_type, source_kind, received_at, "
                              "updated_at, state, invoice_number, total_cents) VALUES (?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        if batch:
            c.executemany("INSERT INTO documents (sha256, size, media_type, source_kind, received_at, "
                          "updated_at, state, invoice_number, total_cents) VALUES (?,?,?,?,?,?,?,?,?)", batch)


def timed(fn, repeat: int = 20) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--documents", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--ledger", type=Path, help="Build the search ledger here once and reuse it "
                    "(default: a temporary one).")
    ap.add_argument("--search-only", action="store_true", help="Only the search figures.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.ledger or Path(tmp) / "search.sqlite3"
        build_search_ledger(path, args.documents)
        with Ledger(path, readonly=True) as ledger:
            search_bench(ledger, path, args.documents)
    if args.search_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "c.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
        cfg = load_config(tmp / "c.toml", env={})
        ledger = Ledger(cfg.ledger_path)
        t = time.perf_counter()
        fill(ledger, args.documents)
        print(f"fill: {args.documents:,} documents in {time.perf_counter() - t:.1f} s")
        med, worst = timed(lambda: status_report(ledger, cfg))
        print(f"status:                         median {med:.2f} ms, max {worst:.2f} ms (target < 50 ms)")
        med, worst = timed(lambda: ledger.list_documents(state="failed", limit=50))
        print(f"list --state failed --limit 50: median {med:.2f} ms, max {worst:.2f} ms (target < 50 ms)")
        cli = [sys.executable, "-m", "service", "--config", str(tmp / "c.toml")]
        for args_ in (["status", "--json"], ["list", "--state", "failed", "--limit", "50", "--json"]):
            t = time.perf_counter()
            subprocess.run(cli + args_, check=True, capture_output=True)
            print(f"whole CLI process `{' '.join(args_)}`: {(time.perf_counter() - t) * 1000:.0f} ms "
                  "(includes interpreter start-up and imports)")
        ledger.close()

        src = tmp / "files"
        src.mkdir()
        for i in range(args.files):
            (src / f"f{i:05d}.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(64) + b"\n%%EOF\n")
        fresh = tmp / "fresh"
        fresh.mkdir()
        (fresh / "c.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "service", "--config", str(fresh / "c.toml"), "ingest",
                            "--no-process", "--quiet", str(src)], capture_output=True, text=True)
        took = time.perf_counter() - t
        print(f"ingest --no-process of {args.files:,} small files: {took:.1f} s, "
              f"{args.files / took:.0f} files/s ({r.stdout.strip()})")


if __name__ == "__main__":
    main()
