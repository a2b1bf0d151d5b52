from __future__ import annotations

import pickle

import pytest

from detaug import DatasetError
from detaug.io.images import ImageError
from detaug.io.validate import KINDS, Problem, ProblemSink, Report


def test_problem_kinds_are_checked_and_formatted():
    with pytest.raises(ValueError, match="kind"):
        Problem("no_such_kind", "a.txt", 1, "x")
    p = Problem("bad_class", "a.txt", 3, "class id 9")
    assert str(p) == "a.txt:3: bad_class: class id 9" and p.severity == "error"
    assert str(Problem("truncated", "b.jpg", None, "m")) == "b.jpg: truncated: m"
    assert {sev for sev, _ in KINDS.values()} == {"error", "warning"}


def test_report_counts_and_summary():
    r = Report(source="d.yaml", images_found=10, images_used=8, objects=5, background=1, crowd=2)
    for i in range(7):
        r.add(Problem("duplicate", f"l{i}.txt", i + 1, "duplicate of line 1"))
    r.add(Problem("clipped", "c.txt", 2, "clipped"))
    assert r.counts() == {"clipped": 1, "duplicate": 7}
    assert len(r.errors) == 7 and len(r.warnings) == 1 and not r.ok
    s = r.summary(max_examples=3)
    assert s.splitlines()[0] == ("d.yaml: 8 of 10 images used, 5 objects, 1 background, 2 crowd annotations "
                                 "excluded; 8 problems (7 errors, 1 warning)")
    assert "  duplicate: 7" in s and "l0.txt:1: duplicate" in s and "l3.txt" not in s
    assert "... and 5 more" in s


def test_sink_strict_raises_on_errors_only():
    r = Report()
    lenient = ProblemSink(r)
    lenient.add("non_numeric", "x.txt", 4, "value 'a'")
    assert len(r.problems) == 1
    strict = ProblemSink(Report(), strict=True)
    strict.add("clipped", "x.txt", 1, "clipped")
    with pytest.raises(DatasetError, match=r"x\.txt:4: non_numeric") as e:
        strict.add("non_numeric", "x.txt", 4, "value 'a'")
    assert isinstance(e.value, ValueError) and e.value.problems[0].line == 4


def test_errors_survive_pickling():
    # DataLoader workers send exceptions to the main process.
    e = DatasetError("a.txt:1: columns: 3 values", [Problem("columns", "a.txt", 1, "3 values")])
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.problems == e.problems
    ie = pickle.loads(pickle.dumps(ImageError("not_image", "p.jpg", "bad")))
    assert ie.kind == "not_image" and str(ie) == "p.jpg: not_image: bad"
