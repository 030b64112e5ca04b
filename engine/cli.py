"""The ``stintsim`` console script: one subcommand per ``python -m`` entry point.

Each subcommand forwards its arguments to its command module's ``main(argv)``
(:data:`COMMAND_MODULES`; the engine's commands live in :mod:`engine.commands`), so
``stintsim simulate ...`` and ``python -m engine.simulate ...`` are the same program.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from data.entry import run_main

COMMAND_MODULES: dict[str, tuple[str, str]] = {
    # name: (module with main(argv) -> int, one-line description), in the order of the data flow
    "ingest": ("data.ingest", "read telemetry / timing files into the SQLite lap store"),
    "fit-world-model": ("world_model.fit", "train the learned lap model on a lap store"),
    "evaluate-world-model": (
        "world_model.evaluate",
        "score lap models on held-out races (NLL, CRPS, coverage) against baselines",
    ),
    "generate-laps": ("world_model.generate", "roll a lap model forward into lap-store laps"),
    "car": ("engine.car_report", "per car of a session log: pace, fuel and energy per lap, stints"),
    "scenario": ("engine.scenario_from_log", "write a scenario for my race from my car in a log"),
    "fit-events": ("events.fit", "fit the incident, neutralisation and weather models (Pyro)"),
    "simulate": (
        "engine.commands.simulate",
        "simulate races of a scenario and print the classification",
    ),
    "validate": (
        "engine.validate",
        "compare a real race's statistics with races simulated from its scenario",
    ),
    "evaluate": (
        "engine.commands.evaluate",
        "compare strategies by Monte Carlo on common random numbers",
    ),
    "whatif": (
        "engine.commands.whatif",
        "what-if: forced events, rule changes, decisions mid-race",
    ),
    "sensitivity": (
        "engine.commands.sensitivity",
        "vary a risk prior over values: how the best strategy and its tail (CVaR) move",
    ),
    "tune": (
        "engine.commands.tune",
        "find the best fixed plan (stints, tyres, pace) by grid search",
    ),
    "advise": (
        "engine.advise",
        "rank the options now from a race state, or live from a recording (--follow)",
    ),
    "plan": ("engine.commands.plan", "the best plan as a pit-wall table; writes the plan: file"),
    "train": (
        "engine.commands.train",
        "train a strategy agent (PPO, DQN, CVaR IQN) and compare it",
    ),
}


def _parser() -> argparse.ArgumentParser:
    lines = "\n".join(
        f"  {name:<22} {desc} (python -m {mod})" for name, (mod, desc) in COMMAND_MODULES.items()
    )
    return argparse.ArgumentParser(
        prog="stintsim",
        description="Race-strategy engine for endurance racing.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"subcommands:\n{lines}\n\n'stintsim SUBCOMMAND --help' explains its options.",
        usage="stintsim [-h] SUBCOMMAND [options]",
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMAND_MODULES:
        parser.error(f"unknown subcommand {name!r}; choose from {', '.join(COMMAND_MODULES)}")
    module = importlib.import_module(COMMAND_MODULES[name][0])
    return int(module.main(rest) or 0)


def console() -> None:
    """The ``stintsim`` console script (``main`` behind :func:`data.entry.run_main`)."""
    run_main(main)


if __name__ == "__main__":
    run_main(main)
