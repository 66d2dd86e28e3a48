"""The README stays a user's guide that tells the truth about the code: short, every setting and command
documented, every relative link alive."""

from __future__ import annotations

import re
import runpy
import sys

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
#: Where the product reads its settings (research/ scripts and tests are not the product).
CODE_DIRS = ("softmass_core", "ui", "pages", "tools")
MARKDOWN = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("research/*.md"))]

_ENV_READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]*)["']""")
_SOFTMASS_NAME = re.compile(r"""["'](SOFTMASS_[A-Z0-9_]+)["']""")
_SECRET = re.compile(
    r"""(?:secrets\.get\(|secrets\[)\s*["']([a-z][a-z0-9_]*)["']|_SECRET\s*=\s*["']([a-z][a-z0-9_]*)["']"""
)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _code_files():
    yield ROOT / "app.py"
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _settings_read_by_the_code() -> tuple[set[str], set[str]]:
    env, secrets = set(), set()
    for path in _code_files():
        text = path.read_text(encoding="utf-8")
        env |= set(_ENV_READ.findall(text)) | set(_SOFTMASS_NAME.findall(text))
        secrets |= {a or b for a, b in _SECRET.findall(text)}
    return env, secrets


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_is_at_most_15000_characters():
    assert len(README.read_text(encoding="utf-8")) <= 15_000


def test_every_setting_the_code_reads_is_in_the_readme_configuration():
    env, secrets = _settings_read_by_the_code()
    # the scan must see the settings we know of, else it is broken rather than the README complete
    assert {"SOFTMASS_WEIGHTS", "SOFTMASS_CACHE", "SOFTMASS_READER_DB", "SOFTMASS_DEFAULT_WEIGHTS"} <= env
    assert {"SOFTMASS_TORCH_THREADS", "SOFTMASS_STUDY_ADMIN_PASSPHRASE", "SOFTMASS_CHROMIUM"} <= env
    assert "study_admin_passphrase" in secrets
    config = _section(README.read_text(encoding="utf-8"), "Configuration")
    missing = sorted(name for name in env | secrets if f"`{name}`" not in config)
    assert missing == [], f"document these in the README's Configuration section: {missing}"


def test_every_cli_command_has_a_row_in_the_readme_table(monkeypatch, capsys):
    # `python -m softmass_core --help`, run in this process (the entry point, whatever module builds the parser)
    monkeypatch.setattr(sys, "argv", ["softmass_core", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("softmass_core", run_name="__main__", alter_sys=False)
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    choices = re.search(r"\{([a-z0-9,-]+)\}", help_text)
    assert choices, help_text
    commands = set(choices.group(1).split(","))
    assert {"predict", "evaluate", "train", "reader-study"} <= commands
    table = _section(README.read_text(encoding="utf-8"), "Command line")
    rows = set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.M))
    assert rows == commands  # every command once, and no row for a command that does not exist


def test_every_relative_link_in_the_docs_points_to_an_existing_file():
    broken = []
    for doc in MARKDOWN:
        for target in _LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), flags=re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_docs_are_found_and_the_readme_links_them():
    names = {p.relative_to(ROOT).as_posix() for p in MARKDOWN}
    assert {"docs/manifest.md", "docs/experiments.md", "docs/usage.md", "research/README.md"} <= names
    text = README.read_text(encoding="utf-8")
    for target in ("docs/manifest.md", "docs/experiments.md", "docs/usage.md", "research/README.md"):
        assert f"]({target}" in text
    for card in sorted(ROOT.glob("weights/*/README.md")):
        assert f"]({card.relative_to(ROOT).as_posix()})" in text  # every shipped set links its model card
