"""Waits until every service's /readyz answers 200, prints the platform's URL, then idles.

Run by dev/up as one process of the Procfile: it must stay alive, because the Procfile
runner stops the whole platform when any of its processes exits.

usage: wait_ready.py PUBLIC_URL NAME=READYZ_URL...
"""

import os
import signal
import sys
import time
import urllib.request


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    public_url, checks = sys.argv[1], dict(arg.split("=", 1) for arg in sys.argv[2:])
    started = time.monotonic()
    pending = set(checks)
    while pending:
        pending = {name for name in pending if not ready(checks[name])}
        if pending:
            time.sleep(0.5)
    print(f"all {len(checks)} services ready in {time.monotonic() - started:.1f}s", flush=True)
    print(f"platform ready at {public_url}  (open it in a browser; the API is under /api; Ctrl-C stops everything)",
          flush=True)
    if os.environ.get("PROMETHEUS_URL"):
        print(f"Prometheus at {os.environ['PROMETHEUS_URL']}/graph  (every service scraped every 5 s; alerts: /alerts)",
              flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
