"""The lessons: every lesson runs with its worked solutions in both languages; checks give hints."""

import json
from pathlib import Path

import pytest

from ltv_helpers import lessons
from ltv_helpers.report import NOTEBOOKS_DIR, run_notebook

LESSONS = sorted(p.stem for p in (NOTEBOOKS_DIR / "lessons").glob("*.ipynb"))


def test_there_are_seven_lessons_with_ten_or_more_exercises():
    assert len(LESSONS) == 7
    assert len(lessons.EXERCISES) >= 10
    for name in LESSONS:
        nb = json.loads((NOTEBOOKS_DIR / "lessons" / f"{name}.ipynb").read_text(encoding="utf-8"))
        cells = nb["cells"]
        solutions = [c for c in cells if "solution" in c["metadata"].get("tags", [])]
        assert all(c["metadata"]["jupyter"]["source_hidden"] for c in solutions)  # hidden by default
        markdown = [c for c in cells if c["cell_type"] == "markdown"]
        assert all(set(c["metadata"]["tags"]) & {"lang-en", "lang-zh"} for c in markdown)
        assert sum("lang-en" in c["metadata"]["tags"] for c in markdown) == \
            sum("lang-zh" in c["metadata"]["tags"] for c in markdown)


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("name", LESSONS)
def test_every_lesson_runs_with_its_solutions_filled_in(name, language, tmp_path):
    executed = run_notebook(f"lessons/{name}", tmp_path, {"language": language, "show_solutions": True})
    nb = json.loads(Path(executed).read_text(encoding="utf-8"))
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = json.dumps(outputs, ensure_ascii=False)
    solved = [c for c in nb["cells"] if "solution" in c["metadata"].get("tags", [])]
    assert solved and text.count("正确" if language == "zh" else "correct.") >= len(solved)


def test_a_wrong_answer_gets_a_hint_not_a_traceback(capsys):
    assert lessons.check("1.1", None) is False
    assert lessons.check("1.1", 5000) is False
    assert lessons.check("1.1", 6000.0) is True
    assert lessons.check("2.1", 266.6667) is True  # within the tolerance
    assert lessons.check("1.1", "six thousand") is False
    with pytest.raises(AssertionError, match="exercise 1.1"):
        lessons.check("1.1", 1, strict=True)


def test_names_are_right_in_either_language(cdnow_sample):
    from ltv_helpers.data import customer_history
    from ltv_helpers.segments import value_tiers

    history = customer_history(cdnow_sample)
    tiers = value_tiers(history)
    assert lessons.check("3.2", "high value", history=history, tiers=tiers)
    assert lessons.check("3.2", "高价值客户", "zh", history=history, tiers=tiers)
    assert not lessons.check("3.2", "low value", history=history, tiers=tiers)
