"""Command modules load lazily: `heron version` imports no domain, `--help` still lists every
command, and `cli.COMMAND_INDEX` says exactly what each module registers."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from heron import cli


def _registered(module: str) -> dict[str, str]:
    """What `module.register` adds: {"cmd": help, "check cmd": help}."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    check = sub.add_parser("check")
    old = cli._check_sub
    cli._check_sub = check.add_subparsers()
    try:
        importlib.import_module(module).register(sub)
        out: dict[str, str] = {}
        for prefix, action in (("", sub), ("check ", cli._check_sub)):
            for choice in action._choices_actions:
                if choice.dest != "check":
                    out[prefix + choice.dest] = choice.help or ""
        return out
    finally:
        cli._check_sub = old


@pytest.mark.parametrize("module", cli.COMMAND_MODULES)
def test_index_matches_what_the_module_registers(module: str) -> None:
    assert module in cli.COMMAND_INDEX, f"{module}: add its commands to cli.COMMAND_INDEX"
    assert cli.COMMAND_INDEX[module] == _registered(module)


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_version_imports_no_command_module_nor_numpy() -> None:
    out = _run("import sys, contextlib, io\n"
               "from heron.cli import main\n"
               "with contextlib.redirect_stdout(io.StringIO()):\n"
               "    assert main(['version']) == 0\n"
               "print(sorted(m for m in sys.modules if m.startswith(('heron.', 'numpy', 'pydantic'))))")
    loaded = eval(out)  # a printed list of module names
    assert not [m for m in loaded if m.endswith(".cli") and m != "heron.cli"], loaded
    assert "numpy" not in loaded and "pydantic" not in loaded, loaded


def test_help_lists_lazy_commands_and_a_chosen_one_loads() -> None:
    top = subprocess.run([sys.executable, "-m", "heron", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for index in cli.COMMAND_INDEX.values():
        for cmd in index:
            if not cmd.startswith("check "):
                assert cmd in top
    check = subprocess.run([sys.executable, "-m", "heron", "check", "--help"], capture_output=True,
                           text=True, timeout=60).stdout
    assert "rules" in check and "alerting" in check
    rules = subprocess.run([sys.executable, "-m", "heron", "-v", "check", "rules", "--help"],
                           capture_output=True, text=True, timeout=60).stdout
    assert "--lint-fatal" in rules  # the real parser of heron.rules.cli, not the placeholder
