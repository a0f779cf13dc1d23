"""The README's and docs/ pages' examples are what cbrun really does: the config validates,
the error example prints exactly the output shown, and every link between pages leads to a
file that exists."""

import re

import pytest
from conftest import REPO, cli

README = (REPO / "README.md").read_text()
DOCS = sorted((REPO / "docs").glob("*.md"))


def page(name: str) -> str:
    return (REPO / "docs" / name).read_text()


def test_the_readme_config_is_valid(tmp_path):
    config = re.search(r"## A config\n\n```yaml\n(.*?)```", README, re.DOTALL).group(1)
    (tmp_path / "digits.yaml").write_text(config)
    assert cli("validate", tmp_path / "digits.yaml") == 0


def test_the_error_example_is_the_real_output(tmp_path, capsys, monkeypatch):
    source, shown = re.search(
        r"`old_tutorial.yaml`:\n\n```yaml\n(.*?)```\n\n```\n\$ cbrun validate old_tutorial.yaml\n"
        r"(.*?)```", page("errors.md"), re.DOTALL).groups()
    (tmp_path / "old_tutorial.yaml").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    assert cli("validate", "old_tutorial.yaml") == 2
    assert capsys.readouterr().out == shown


@pytest.mark.parametrize("path", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_links_between_pages_lead_to_files(path):
    text = path.read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
               if not t.startswith(("http://", "https://", "#"))]
    missing = [t for t in targets if not (path.parent / t).exists()]
    assert not missing, missing


def test_the_readme_leads_to_every_docs_page():
    linked = set(re.findall(r"\]\(docs/([^)#\s]+)\)", README))
    assert linked == {p.name for p in DOCS}


def test_the_architecture_names_files_that_exist():
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)", page("ARCHITECTURE.md")))
    assert {"callbacks/early_stopping.py", "run/record.py", "engine/session.py",
            "state/files.py"} <= named
    missing = [n for n in named if not (REPO / "cbrun" / n).exists() and not (REPO / n).exists()]
    assert not missing, missing


def test_the_after_training_examples_are_commands_cbrun_takes():
    """Every `$ cbrun evaluate|predict ...` line shown parses with today's options, and the
    Python calls shown take the arguments given (both without TensorFlow)."""
    import inspect
    import shlex

    from cbrun import api
    from cbrun.cli import COMMANDS, cli

    shown = page("after-training.md") + README
    lines = re.findall(r"^\$ cbrun ((?:evaluate|predict) .*)$", shown, re.MULTILINE)
    assert len(lines) >= 5
    for line in lines:
        name, *args = shlex.split(line)
        assert name in COMMANDS
        command = cli.get_command(None, name)
        command.make_context(name, list(args))  # raises on an unknown option or argument
    assert "overrides" in inspect.signature(api.train).parameters
    assert "epochs" in inspect.signature(api.resume).parameters
    for method in ("model", "evaluate", "predict", "checkpoint"):
        assert f"run.{method}(" in shown and hasattr(api.Run, method)
