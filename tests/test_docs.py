"""The documentation: the site builds in strict mode, the README stays a front page, the
generated references cover every config key and every command, and every page is in the nav."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

import reskd
from reskd.cli import build_parser
from reskd.config import Config

ROOT = Path(__file__).resolve().parents[1]
TWO_COMMANDS = ("./scripts/setup.sh && .venv/bin/reskd demo\n"
                "./scripts/setup.sh && .venv/bin/python -m pytest -q\n")


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("reskd",)):
    """(command path, its parser) for every command and subcommand, walked independently of
    docs/hooks.py."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from commands(child, (*path, name))


def test_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    # the generated pages hold the generated text, not their placeholders
    config_html = (site / "config-reference" / "index.html").read_text()
    cli_html = (site / "cli-reference" / "index.html").read_text()
    assert "data.root" in config_html and "distill.teacher" in config_html
    assert "reskd data check" in cli_html
    assert not (site / "hooks.py").exists()
    # the Python API page documents every public name
    api_html = (site / "python-api" / "index.html").read_text()
    missing = [n for n in getattr(reskd, "__all__", ()) if f'id="reskd.{n}"' not in api_html]
    assert not missing, f"docs/python-api.md does not render {missing}"


def test_readme_is_a_short_front_page_that_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    words = len(text.split())
    assert words <= 1500, f"README.md has {words} words; move detail into docs/"
    first_block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    assert first_block is not None
    assert first_block.group(1) == TWO_COMMANDS
    # the two commands are the first thing after the title
    assert text.split("\n", 2)[0] == "# reskd"
    assert text.split("\n", 2)[2].lstrip("\n").startswith("```bash\n" + TWO_COMMANDS + "```")


def test_config_reference_names_every_key_of_every_section():
    text = load_hooks().config_reference()
    missing = []
    for section in dataclasses.fields(Config):
        assert f"## `{section.name}`" in text, section.name
        for key in dataclasses.fields(section.default_factory()):
            if f"`{section.name}.{key.name}`" not in text:
                missing.append(f"{section.name}.{key.name}")
    assert not missing, f"docs/hooks.py config_reference() leaves out {missing}"


def test_config_reference_shows_defaults_allowed_values_and_comments():
    text = load_hooks().config_reference()
    row = next(line for line in text.splitlines() if line.startswith("| `data.shrink` |"))
    assert '`"bilinear"`' in row and "`antialias`" in row and "no antialias" in row
    row = next(line for line in text.splitlines() if line.startswith("| `distill.alpha` |"))
    assert "`100.0`" in row and "feature KD" in row


def test_cli_reference_names_every_command_and_option():
    text = load_hooks().cli_reference()
    found = list(commands(build_parser()))
    assert len(found) > 10
    for path, parser in found:
        assert f"`{' '.join(path)}`" in text, f"cli reference leaves out {' '.join(path)}"
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"{' '.join(path)} {option}"


def nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = set(nav_pages(config["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk - pages == set(), f"pages missing from the mkdocs.yml nav: {on_disk - pages}"
    assert pages - on_disk == set(), f"nav entries without a page: {pages - on_disk}"
