"""Prints 'ci: N passed, N failed, N skipped' from a pytest JUnit XML report, the tests
that ran again before they passed or failed (a test run twice appears twice there), and the
figures tests measured (record_testsuite_property), such as the handoff round trip."""

import sys
import xml.etree.ElementTree as ET  # noqa: N817
from collections import Counter
from pathlib import Path

report, status = Path(sys.argv[1]), int(sys.argv[2])
if not report.exists():
    print("ci: 0 passed, 1 failed" if status else "ci: no pytest report")
    sys.exit(0)
suites = ET.parse(report).getroot()  # noqa: S314 - our own report
suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
assert suite is not None
total, failures, errors, skipped = (int(suite.get(k, 0)) for k in
                                    ("tests", "failures", "errors", "skipped"))
failed = failures + errors + (1 if status and not (failures + errors) else 0)
print(f"ci: {total - failures - errors - skipped} passed, {failed} failed, {skipped} skipped")
runs = Counter(f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase"))
rerun = sorted(name for name, count in runs.items() if count > 1)
if rerun:
    print(f"ci: {len(rerun)} rerun: {', '.join(rerun)}")
# Hypothesis writes its statistics as properties too; ours are figures in ms.
measured = {prop.get("name"): prop.get("value") for prop in suite.iter("property")
            if str(prop.get("name")).endswith("_ms")}
if measured:
    figures = ", ".join(f"{name} {value}" for name, value in sorted(measured.items()))
    print(f"ci: measured {figures}")
