#!/usr/bin/env python3
"""The scrape configuration of a local Prometheus (`dev/up --observe`, `bench/run
--observe`): one static target per service, labelled `service` as the cluster's PodMonitor
relabels, with the alerting rules of alerts.yaml loaded, so local graphs and alerts read the
same series as the cluster's.

usage: local_prometheus.py OUT_FILE SCRAPE_INTERVAL NAME=HOST:PORT...
"""

import json
import pathlib
import sys

RULES = pathlib.Path(__file__).resolve().parent / "alerts.yaml"


def config(targets, interval):
    """The configuration (JSON, which is YAML) for `targets` ({service: "host:port"})."""
    return json.dumps({
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "ticketing",
            "static_configs": [{"targets": [address], "labels": {"service": name}} for name, address in targets.items()],
        }],
    }, indent=2)


def main(argv):
    out, interval, *pairs = argv
    pathlib.Path(out).write_text(config(dict(pair.split("=", 1) for pair in pairs), interval) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
