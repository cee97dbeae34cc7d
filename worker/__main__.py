"""`python -m worker`: the one way to run imgpress's workers, a pool on the compression queues (or on
the webhook queue, or on all)."""

from __future__ import annotations

from worker.stopping import stop_quietly_until_ready

# Before the rest loads (a second or so): a stop meanwhile exits at once, without a traceback.
stop_quietly_until_ready()

import argparse
import sys

from redis import Redis

from shared import logs
from shared.settings import from_environment_or_exit
from worker.pool import QUEUES, Pool


def main(argv: list[str] | None = None) -> int:
    """Run a pool of workers until SIGTERM or SIGINT, which stop them after the job in hand."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument(
        "--queues",
        choices=sorted(QUEUES),
        default="compression",
        help="compression (maintenance first; the default), webhooks (deliveries only), or all",
    )
    parser.add_argument(
        "--workers", type=int, help="number of workers (default: IMGPRESS_WORKERS, IMGPRESS_WEBHOOK_WORKERS)"
    )
    parser.add_argument("--burst", action="store_true", help="run the queued jobs, then exit")
    args = parser.parse_args(argv)
    settings = from_environment_or_exit()
    logs.configure()
    default = settings.webhook_workers if args.queues == "webhooks" else settings.workers
    pool = Pool(Redis.from_url(settings.redis_url), args.workers or default, QUEUES[args.queues])
    pool.start(burst=args.burst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
