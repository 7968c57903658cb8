"""What a Prometheus scrape of `/metrics` costs with a large table: the gauges read from the
database at scrape time (shipments by status and carrier, the due backlog, the last runs).

    .venv/bin/python bench/metrics_scrape.py                    # 100,000 shipments, SQLite
    .venv/bin/python bench/metrics_scrape.py --database postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from sync_throughput import PROVIDERS, Plan, load, scratch_database  # noqa: E402

from parcelwatch.api.app import create_app  # noqa: E402
from parcelwatch.config import load_settings  # noqa: E402
from parcelwatch.db import create_db_engine  # noqa: E402
from parcelwatch.logs import configure_logging  # noqa: E402
from parcelwatch.migrate import upgrade  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("warning", "console")
    with scratch_database(args.database) as scratch_url:
        url = scratch_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'metrics.db'}"
        settings = load_settings(database_url=url, auto_update_enabled=False, _env_file=None)
        db = create_db_engine(settings.sqlalchemy_url)
        upgrade(db)
        each = args.shipments // len(PROVIDERS)
        plans = [Plan(p, carrier, 1, 1.0, 1, False, 1.0, each) for p, carrier in PROVIDERS.items()]
        load(db, plans, 0)
        db.dispose()
        with TestClient(create_app(settings)) as client:
            client.get("/metrics")  # warm: imports, compiled statements
            times = []
            for _ in range(args.scrapes):
                started = time.perf_counter()
                response = client.get("/metrics")
                times.append(time.perf_counter() - started)
                response.raise_for_status()
    result = {
        "database": url.split(":")[0],
        "shipments": each * len(PROVIDERS),
        "scrapes": args.scrapes,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "body_bytes": len(response.content),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:12} {value}")


if __name__ == "__main__":
    main()
