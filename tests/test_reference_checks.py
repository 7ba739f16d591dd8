"""Issue 37: results/reference_checks.md names, for every built-in method, the reference it was checked
against, what was compared and its departures (scripts/compare_authors.py prints it), so that a method added
without saying how it was checked fails here, and the committed file is what the script prints."""

import importlib.util
from pathlib import Path

import methods as M

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("compare_authors", ROOT / "scripts" / "compare_authors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_built_in_method_says_what_it_was_checked_against():
    built_in = {n for n, c in M.REGISTRY.items() if c.__module__.startswith("methods.")}
    listed = _script().EVERY_METHOD
    assert built_in - set(listed) == set(), "add the method to EVERY_METHOD in scripts/compare_authors.py"
    assert set(listed) - built_in == set()
    assert all(reference and where and departures for reference, where, departures in listed.values())


def test_the_committed_reference_checks_list_every_method_and_the_schedules():
    text = (ROOT / "results" / "reference_checks.md").read_text()
    rows = [
        line.split("|")[1].strip() for line in text.split("## Every method")[1].splitlines() if line.startswith("| ")
    ]
    assert sorted(rows[1:]) == sorted(_script().EVERY_METHOD)  # the first row is the header
    assert "MaxNorm schedule, `wb.project=epoch`" in text and "0 extra, 0 missing" in text
    assert "learning-rate factor of the peak, epochs before the switch" in text
