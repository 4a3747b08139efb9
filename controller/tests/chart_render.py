#!/usr/bin/env python3
"""Renders or lints the Helm chart with Helm's own engine (helm-python-sdk, which binds Helm v4's
Go library; no cluster, no network). Used by controller/tests/chart.rs.

    chart_render.py render CHART RELEASE NAMESPACE VALUES_JSON  -> {"template path": "manifest", ...}
    chart_render.py lint CHART VALUES_JSON                      -> helm lint's report

Exits 3 when helm-python-sdk is not installed (`python3 -m pip install helm-python-sdk`).
"""

import json
import sys

try:
    import helm_python as helm
except ImportError:
    print("helm-python-sdk is not installed: python3 -m pip install helm-python-sdk", file=sys.stderr)
    sys.exit(3)


def main(argv):
    if argv[1] == "render":
        chart, release, namespace, values = argv[2], argv[3], argv[4], json.loads(argv[5])
        with helm.Chart.load(chart) as c:
            out = c.render(values=values, name=release, namespace=namespace, is_install=True)
    elif argv[1] == "lint":
        out = helm.lint(argv[2], json.loads(argv[3]), strict=True)
    else:
        raise SystemExit(f"unknown command {argv[1]}")
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv)
