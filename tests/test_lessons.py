"""The lessons: every lesson runs with its worked solutions in both languages; checks give hints."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
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
    assert any("image/png" in o.get("data", {}) for o in outputs)  # every lesson has a figure
    assert "np.float64" not in text and "SBGModel(" not in text  # numbers as numbers, models as sentences


def test_every_lesson_says_what_you_will_learn_and_ends_with_a_recap_and_the_next_step():
    for name in LESSONS:
        nb = json.loads((NOTEBOOKS_DIR / "lessons" / f"{name}.ipynb").read_text(encoding="utf-8"))
        for language, start, recap, next_step in (("en", "In this lesson you will", "## Recap", "**Next:**"),
                                                  ("zh", "本课你将", "## 小结", "**下一课：**")):
            cells = ["".join(c["source"]) for c in nb["cells"] if f"lang-{language}" in c["metadata"].get("tags", [])]
            assert start in cells[0], (name, language)
            assert recap in cells[-1] or "课程小结" in cells[-1] or "Recap of the course" in cells[-1], (name, language)
            assert next_step in cells[-1] or name.startswith("07"), (name, language)


def test_a_wrong_answer_gets_a_hint_not_a_traceback(capsys):
    assert lessons.check("1.1", None) is False
    assert lessons.check("1.1", 5000) is False
    assert lessons.check("1.1", 2400.0) is True
    assert lessons.check("2.1", 266.6667) is True  # within the tolerance
    assert lessons.check("1.1", "six thousand") is False
    with pytest.raises(AssertionError, match="exercise 1.1"):
        lessons.check("1.1", 1, strict=True)


def test_answers_are_checked_at_the_precision_the_question_asks_for():
    """"To two decimals": 1.60 for 1.604 is right, 1.61 is not; a hint shows the answer as the
    learner wrote it (no numpy repr) and names a table instead of printing it."""
    from ltv_helpers.lessons import _matches, _shown

    assert _matches(1.60, 1.604, 1e-3, 2) and _matches(np.float64(1.6), 1.604, 1e-3, 2)
    assert not _matches(1.61, 1.604, 1e-3, 2)
    assert _matches(0.24, 0.2431, 1e-3, 2) and not _matches(0.25, 0.2431, 1e-3, 2)
    assert _matches(pd.Series([3.0]), 3.0, 1e-3, 2) and not _matches(pd.Series([3.0, 4.0]), 3.0, 1e-3, 2)
    assert _shown(np.float64(1.6), "en") == "1.6" and _shown(np.int64(2400), "en") == "2,400"
    assert _shown(pd.Series(range(5)), "en") == "a table of 5 values: the answer is one value"
    assert "np." not in _shown(np.float64(0.1 + 0.2), "en")
    for name, ex in lessons.EXERCISES.items():  # every number states the precision it is checked at
        assert ex.rtol == 0 or ex.decimals is not None, name


def test_names_are_right_in_either_language(cdnow_sample):
    from ltv_helpers.data import customer_history
    from ltv_helpers.segments import value_tiers

    history = customer_history(cdnow_sample)
    tiers = value_tiers(history)
    assert lessons.check("3.2", "high value", history=history, tiers=tiers)
    assert lessons.check("3.2", "高价值客户", "zh", history=history, tiers=tiers)
    assert not lessons.check("3.2", "low value", history=history, tiers=tiers)


def _widgets(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _widgets(child)


def test_the_explorer_has_no_output_widget_and_follows_its_sliders():
    """An Output widget made notebook runs hang (nbclient answers it on the shell channel while it
    waits there for the cell's reply); the explorer is sliders and an HTML table."""
    import ipywidgets as widgets

    box = lessons.explorer(language="zh")
    assert not any(isinstance(w, widgets.Output) for w in _widgets(box))
    sliders = [w for w in box.children if isinstance(w, widgets.FloatSlider)]
    table = next(w for w in box.children if isinstance(w, widgets.HTML))
    before = table.value
    sliders[1].value = 0.9                                               # retention
    assert table.value != before and "<table" in table.value
    expected = lessons.scenario_table(margin=600.0, retention=[0.9], discount_rate=0.1, cac=300.0,
                                      language="zh").round(2).to_html()
    assert table.value == expected


def test_a_notebook_of_explorers_runs_to_the_end_every_time(tmp_path):
    """The run that hung: many explorers under papermill, twice, each with a timeout."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = ([nbformat.v4.new_code_cell("from ltv_helpers import lessons")]
                + [nbformat.v4.new_code_cell("lessons.explorer(language='zh')") for _ in range(20)])
    nbformat.write(nb, tmp_path / "explorers.ipynb")
    for run in range(2):
        out = papermill.execute_notebook(str(tmp_path / "explorers.ipynb"), str(tmp_path / f"out{run}.ipynb"),
                                         execution_timeout=60, progress_bar=False, kernel_name="python3")
        assert all(c.metadata.papermill.status == "completed" for c in out.cells)
