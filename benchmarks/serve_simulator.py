"""Serve the simulated exchange in its own process, for benchmarks against many accounts.

    python benchmarks/serve_simulator.py --accounts 1000 --currencies 20 --log requests.json

Prints its URL on the first line of stdout. On SIGTERM it writes every balance request
it received (api key, time) to --log and exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.sources.coinw.simulator import Simulator

SECRET = "benchmark-secret-0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--currencies", type=int, default=20)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    simulator = Simulator()
    # Requests of different accounts at the same moment are normal for many accounts: the
    # per-key limit stays 3/s, nothing else is limited here.
    names = [f"C{n:02d}" for n in range(args.currencies)]
    for n in range(args.accounts):
        holdings = {name: str(Decimal(n + 1) / 7)[:12] for name in names}
        simulator.add_account(f"bench-{n:04d}", SECRET, holdings)
    simulator.set_ticker({f"{name}_USDT": f"{1 + i / 10:.2f}" for i, name in enumerate(names)})
    simulator.start()
    print(simulator.url, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    requests = [(r.api_key, r.at, r.answered) for r in simulator.requests("returnBalances")]
    args.log.write_text(json.dumps(requests))
    simulator.stop()


if __name__ == "__main__":
    main()
