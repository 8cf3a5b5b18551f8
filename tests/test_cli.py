"""``gvf run``'s arguments as run options: the profile's trials and its servers per scenario, and
what the command line overrides."""

from __future__ import annotations

import pytest

from loadtests.cli import build_parser, run_options
from loadtests.orchestrate import RunOptions
from loadtests.scenarios import PROFILES


def _options(*argv: str) -> RunOptions:
    parser = build_parser()
    return run_options(parser.parse_args(["run", *argv]), parser)


def test_the_profile_sets_trials_and_keeps_the_control_to_the_collision_burst() -> None:
    options = _options("--profile", "quick")
    quick = PROFILES["quick"]
    assert options.repeat == quick.repeat == 3 and options.trial_order == "interleaved"
    assert options.servers == ["gradio", "fastapi", "fastapi-naive"]
    assert options.scenario_servers == quick.scenario_servers
    assert options.gradio_profiling  # on by default: its cost is not measurable (README)


def test_the_command_line_overrides_the_profile() -> None:
    options = _options(
        *("--profile", "quick", "--servers", "fastapi-naive,fastapi", "--repeat", "5"),
        *("--trial-order", "random", "--no-gradio-profiling"),
    )
    assert (options.repeat, options.trial_order, options.gradio_profiling) == (5, "random", False)
    # servers named on the command line run every scenario
    assert options.servers == ["fastapi-naive", "fastapi"] and options.scenario_servers == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--repeat", "0"], "--repeat must be >= 1"),
        (["--trial-order", "alphabetical"], "invalid choice"),
        (["--budget-s", "0"], "--budget-s must be > 0"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        _options("--profile", "smoke", *argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err
