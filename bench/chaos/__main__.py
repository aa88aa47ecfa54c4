"""``python -m bench.chaos`` (``make chaos``): the full fault suite.

Exit code 1 unless lost=0 duplicated=0 (and nothing unexpected, the poison all dead-lettered).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

from bench.chaos.run import ChaosConfig, cluster_config, run_chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="three NATS nodes (R3), a Postgres primary with a synchronous standby, two replicas per "
        "service; nats and postgres faults become stream-leader kills and failovers",
    )
    parser.add_argument("--replicas", type=int, default=None, help="processes per service (cluster: 2)")
    parser.add_argument(
        "--leader-kills", type=int, default=None, help="per service: kill -9 of the relay leader"
    )
    known, _ = parser.parse_known_args(argv)
    d = cluster_config() if known.cluster else ChaosConfig()
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--loan-flows", type=int, default=d.loan_flows)
    parser.add_argument("--decision-flows", type=int, default=d.decision_flows)
    parser.add_argument("--catalog-flows", type=int, default=d.catalog_flows)
    parser.add_argument("--concurrency", type=int, default=d.concurrency)
    parser.add_argument("--poison", type=int, default=d.poison)
    parser.add_argument("--kills-per-service", type=int, default=d.kills_per_service)
    parser.add_argument("--nats-kills", type=int, default=d.nats_kills)
    parser.add_argument("--postgres-restarts", type=int, default=d.postgres_restarts)
    parser.add_argument("--oidc-kills", type=int, default=d.oidc_kills)
    parser.add_argument("--pauses", type=int, default=d.pauses)
    parser.add_argument(
        "--failpoints",
        default=",".join(d.failpoints),
        help="comma-separated service:point kills at failpoints ('' for none); default: every point",
    )
    parser.add_argument("--ack-wait", type=float, default=d.ack_wait)
    parser.add_argument("--fault-window", type=float, default=d.fault_window)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--details", type=Path, default=None, help="write every finding to this JSON file")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        seed=args.seed,
        loan_flows=args.loan_flows,
        decision_flows=args.decision_flows,
        catalog_flows=args.catalog_flows,
        concurrency=args.concurrency,
        poison=args.poison,
        kills_per_service=args.kills_per_service,
        nats_kills=args.nats_kills,
        postgres_restarts=args.postgres_restarts,
        oidc_kills=args.oidc_kills,
        pauses=args.pauses,
        topology=d.topology,
        replicas=args.replicas or d.replicas,
        leader_kills=d.leader_kills if args.leader_kills is None else args.leader_kills,
        partitions=d.partitions,
        failpoints=tuple(filter(None, (f.strip() for f in args.failpoints.split(",")))),
        ack_wait=args.ack_wait,
        fault_window=args.fault_window,
        heal_timeout=d.heal_timeout,
        data_dir=args.data_dir,
        keep_data=args.keep_data,
        log=lambda line: print(line, flush=True),
    )
    started = time.monotonic()
    print(
        f"chaos on {platform.node()} ({platform.machine()}, {platform.python_version()}), seed {config.seed}"
    )
    report = asyncio.run(run_chaos(config))
    print(report.render())
    if args.details is not None:
        args.details.write_text(json.dumps(report.details, indent=1, sort_keys=True), encoding="utf-8")
    print(f"chaos: {time.monotonic() - started:.0f}s; {report.summary()}")
    if config.failpoints_missed:
        print(f"chaos: failpoints never reached: {', '.join(config.failpoints_missed)}")
    return 0 if report.ok and not config.failpoints_missed else 1


if __name__ == "__main__":
    sys.exit(main())
