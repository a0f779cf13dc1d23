"""The README's examples are what cbrun really does: its config validates, and its error
example prints exactly the output shown."""

import re

from conftest import REPO

README = (REPO / "README.md").read_text()


def test_the_readme_config_is_valid(tmp_path, capsys):
    from conftest import cli

    config = re.search(r"## A config\n\n```yaml\n(.*?)```", README, re.DOTALL).group(1)
    (tmp_path / "digits.yaml").write_text(config)
    assert cli("validate", tmp_path / "digits.yaml") == 0


def test_the_readme_error_example_is_the_real_output(tmp_path, capsys, monkeypatch):
    from conftest import cli

    source, shown = re.search(
        r"`old_tutorial.yaml`:\n\n```yaml\n(.*?)```\n\n```\n\$ cbrun validate old_tutorial.yaml\n"
        r"(.*?)```", README, re.DOTALL).groups()
    (tmp_path / "old_tutorial.yaml").write_text(source)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")
    assert cli("validate", "old_tutorial.yaml") == 2
    assert capsys.readouterr().out == shown
