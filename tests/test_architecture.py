"""The import layers of docs/ARCHITECTURE.md, checked by import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_no_upward_import_no_cycle_and_submissions_stands_alone(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the contracts name the packages of this checkout
    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert exit_code == 0, capsys.readouterr().out


def test_the_layers_named_in_the_contract_exist():
    """A renamed package would silently drop out of the layers; every layer must name a real module."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    names = [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]
    missing = [n for n in names if not any((ROOT / n.replace(".", "/")).with_suffix(s).exists() or
                                           (ROOT / n.replace(".", "/") / "__init__.py").exists() for s in (".py",))]
    assert not missing, f"layers name modules that do not exist: {missing}"


def sources_matching(pattern: str, *packages: str) -> list[str]:
    return sorted(str(path.relative_to(ROOT)) for package in packages for path in (ROOT / package).rglob("*.py")
                  if re.search(pattern, path.read_text(encoding="utf-8")))


def test_status_events_are_written_by_transition_only():
    """An event written by hand around `transition` could disagree with the status it claims to record."""
    assert sources_matching(r"(?<!class )JobEvent\(", "server") == ["server/db/events.py"]


def test_signal_handlers_are_installed_in_one_place():
    """SIGTERM handling of `arena worker` and `arena serve` is one rule (server.jobs.signals.ShutdownSignals)."""
    assert sources_matching(r"signal\.(signal|setitimer)\(", "server", "submissions", "baselines") == [
        "server/jobs/signals.py"]


def test_benchmarks_run_as_modules_without_sys_path_edits():
    """`python -m bench.NAME` from the repository root imports this checkout; a sys.path edit would hide a wrong
    command."""
    assert sources_matching(r"sys\.path\.(insert|append)", "bench", "server", "submissions", "baselines") == []
