"""reports.metrics.rules: the rules round-trip through run.json, and importing them stays light
(the load generator imports them inside every Locust worker)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

from reports.metrics.rules import ValidityRules, rules_from_mapping

ROOT = Path(__file__).parents[1]


def test_rules_round_trip_through_run_json() -> None:
    rules = replace(ValidityRules(), knee_factor=3.0, min_samples_p90=10)
    recorded = json.loads(json.dumps(asdict(rules)))
    assert rules_from_mapping(recorded) == rules


def test_rules_from_mapping_ignores_unknown_keys_and_defaults_missing_ones() -> None:
    assert rules_from_mapping(None) == ValidityRules()
    assert rules_from_mapping({}) == ValidityRules()
    recorded = {"knee_factor": 4.0, "a_rule_from_a_later_version": 1}
    assert rules_from_mapping(recorded) == replace(ValidityRules(), knee_factor=4.0)


def test_importing_the_rules_pulls_neither_pandas_nor_numpy() -> None:
    code = (
        "import sys\n"
        "import reports.metrics.rules\n"
        "heavy = sorted({'pandas', 'numpy', 'matplotlib'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
