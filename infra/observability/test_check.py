"""check.py refuses a broken dashboard (run from infra/ by infra/check)."""

import copy
import json
import pathlib
import shutil
import sys
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check  # noqa: E402

DASHBOARD = json.loads((pathlib.Path(check.HERE) / "dashboard.json").read_text())


class DashboardCheck(unittest.TestCase):
    def test_the_committed_dashboard_passes(self):
        self.assertEqual(check.structure_errors(DASHBOARD), [])

    def test_overlapping_panels_and_a_fixed_datasource_are_refused(self):
        broken = copy.deepcopy(DASHBOARD)
        panels = [p for p in broken["panels"] if p["type"] != "row"]
        panels[1]["gridPos"] = dict(panels[0]["gridPos"])
        panels[2]["datasource"] = {"type": "prometheus", "uid": "prod-prometheus"}
        errors = check.structure_errors(broken)
        self.assertTrue(any("overlaps" in e for e in errors), errors)
        self.assertTrue(any("datasource must be" in e for e in errors), errors)

    @unittest.skipUnless(shutil.which("promtool"), "promtool (Debian prometheus) is installed by infra/check")
    def test_an_expression_promtool_cannot_parse_is_refused(self):
        broken = copy.deepcopy(DASHBOARD)
        next(p for p in broken["panels"] if p["type"] != "row")["targets"][0]["expr"] = "sum by (service (rate(x[5m]))"
        self.assertNotEqual(check.promtool_errors(broken, "promtool"), [])
        self.assertEqual(check.promtool_errors(DASHBOARD, "promtool"), [])


if __name__ == "__main__":
    unittest.main()
