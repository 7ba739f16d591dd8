"""Adding a method as a user would: typed --set values, a new file in methods/, an entry point, --plugin."""

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

import methods as M
from bench import store
from bench.cli import main
from bench.settings import expand_methods as _expand_methods

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Typed(M.Auxiliary):
    """A term with one field of every parseable type."""

    name = "test_typed"
    scale: float | None = None
    steps: tuple[float, ...] = (0.5, 1.0)
    ids: list[int] = None
    mode: Literal["a", "b"] = "a"
    on: bool = False

    def __call__(self, feats, labels):
        return 0


def test_set_values_are_parsed_by_the_field_type():
    M.register(Typed)
    try:
        t = M.parse_method(
            "test_typed",
            {"test_typed": {"scale": "1.5", "steps": "0.1, 2", "ids": "3,4", "mode": "b", "on": "yes"}},
        ).auxiliaries[0]
        assert (t.scale, t.steps, t.ids, t.mode, t.on) == (1.5, (0.1, 2.0), [3, 4], "b", True)
        assert M.parse_method("test_typed", {"test_typed": {"scale": "none"}}).auxiliaries[0].scale is None
        for raw, message in (
            ({"scale": "x"}, "is not a valid"),
            ({"mode": "c"}, "not one of a, b"),
            ({"on": "2"}, "bool"),
        ):
            with pytest.raises(M.MethodError, match=message):
                M.parse_method("test_typed", {"test_typed": raw})
    finally:
        M.unregister("test_typed")


def test_registration_refuses_a_field_type_it_cannot_parse():
    @dataclass
    class Bad(M.Auxiliary):
        name = "test_bad"
        table: dict = None

    with pytest.raises(TypeError, match="table: unsupported hyper-parameter type"):
        M.register(Bad)
    assert "test_bad" not in M.REGISTRY


def test_description_falls_back_to_the_docstring():
    @dataclass
    class Documented(M.Auxiliary):
        """Pulls features together.

        More words."""

        name = "test_doc"

    assert Documented.describe() == "Pulls features together."


def test_os_all_composes_os_with_every_method_it_may_go_with():
    names = _expand_methods(["os+all"])
    assert "os+fsc" in names and "os+crt" in names and "os+ldam" in names
    assert not {"os", "os+la", "os+cb", "os+drw", "os+pla", "os+cbs"} & set(names)


def _run(cmd, env_extra, cwd):
    env = dict(os.environ) | env_extra
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_a_new_file_in_methods_using_the_readme_snippet_is_picked_up(tmp_path):
    """A copy of the package with one more file, written as the README shows: it is registered
    without being listed anywhere, and importing it causes no circular import."""
    pkg = tmp_path / "methods"
    shutil.copytree(REPO / "methods", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "import methods as M" in snippet and "@M.register" in snippet
    (pkg / "centerpull.py").write_text(snippet)
    code = "import methods; print(sorted(methods.REGISTRY))"
    r = _run([sys.executable, "-c", code], {"PYTHONPATH": str(tmp_path)}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "'centerpull'" in r.stdout and "'fsc'" in r.stdout


def _plugin_module(where: Path, name: str, method: str) -> None:
    (where / f"{name}.py").write_text(
        textwrap.dedent(
            f'''
            import torch
            import methods as M


            @M.register
            class Shrink(M.Auxiliary):
                """Shrinks the pooled layer4 features."""

                name = "{method}"
                lam: float = M.hp(0.01, ge=0)

                @property
                def taps(self):
                    return ("layer4",)

                def __call__(self, feats, labels):
                    return self.lam * feats["layer4"].float().pow(2).mean()
            '''
        )
    )


@pytest.mark.slow
def test_an_entry_point_plugin_is_listed_and_runs(tmp_path):
    _plugin_module(tmp_path, "shrink_plugin", "shrink")
    dist = tmp_path / "shrink_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shrink-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\nshrink = shrink_plugin\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}", "COLUMNS": "250"}
    r = _run([sys.executable, "-m", "bench", "list"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "shrink" in r.stdout and "Shrinks the pooled layer4 features." in r.stdout
    out = tmp_path / "runs"
    argv = ["run", "--dataset", "synthetic", "--preset", "tiny", "--ratios", "0.25", "--methods", "os+shrink"]
    r = _run([sys.executable, "-m", "bench", *argv, "--out", str(out), "--plain"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [(_, rec)] = list(store.iter_records(out))
    assert rec["status"] == "ok" and rec["spec"]["method"] == "os+shrink" and "shrink" in rec["history"][0]


@pytest.mark.slow
def test_plugin_flag_loads_a_module_in_pool_workers_too(tmp_path, monkeypatch):
    _plugin_module(tmp_path, "grow_plugin", "test_grow")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{REPO}")  # the spawned workers' import path
    out = tmp_path / "runs"
    argv = ["run", "--dataset", "synthetic", "--preset", "tiny", "--ratios", "0.25", "--methods", "test_grow"]
    try:
        assert main([*argv, "--plugin", "grow_plugin", "--executor", "pool", "--out", str(out), "--plain"]) == 0
    finally:
        M.unregister("test_grow")
    [(_, rec)] = list(store.iter_records(out))
    assert rec["status"] == "ok" and rec["spec"]["method"] == "test_grow"


def test_a_plugin_that_cannot_be_imported_is_one_line(capsys):
    assert main(["list", "--plugin", "no_such_module_xyz"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--plugin no_such_module_xyz: cannot import it" in err


def test_every_example_in_the_readme_section_on_adding_methods_trains(tmp_path):
    """The examples of docs/methods.md (the README links it), one per role and a two-stage one, registered
    and trained as written."""
    import torch

    from bench.executors import RunOptions, run_local

    from .conftest import tiny_specs

    readme = (REPO / "docs" / "methods.md").read_text()  # the README's first example, then one per role
    section = readme.split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) >= 3
    before = set(M.REGISTRY)
    namespace = {"torch": torch}
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        added = sorted(set(M.REGISTRY) - before)
        roles = {M.REGISTRY[n].role for n in added}
        assert roles == set(M.ROLES), f"the README lacks an example of {set(M.ROLES) - roles}"
        specs = tiny_specs(added)
        recs = run_local(specs, tmp_path, torch.device("cpu"), RunOptions(plain=True)).written
        assert {r["spec"]["method"] for r in recs} == set(added)
        assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    finally:
        for name in set(M.REGISTRY) - before:
            M.unregister(name)
