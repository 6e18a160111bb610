"""The demo report read as a client reads it: a body of at most 12 A4 pages (and 2 more for the check
of the last report in a client's second report) and a technical appendix of at most 8 in both
languages, headings that stay with what follows them, the summary whole on page 1, and none of the
toolkit's plumbing in the client's document."""

import re
from html import unescape
from html.parser import HTMLParser

import pytest

from conftest import pdf_text
from ltv_helpers.labels import label
from ltv_helpers.segments import group_name

BODY_PAGES, APPENDIX_PAGES = 12, 8
#: A client's second report adds "Since the last report", in at most two pages of its own.
MONITORING_PAGES = 2


@pytest.fixture(scope="module", params=["en", "zh"])
def demo(request, chromium_path, pdftotext):
    """The demo report (HTML and PDF) in one language: its language, HTML and the PDF's pages. The
    Chinese one is the demo client's first report (data to 1998-03-31), the English one its second
    (to 1998-06-30), with the check of the first ("Since the last report")."""
    language = request.param
    first, second = request.getfixturevalue("monitored_demo")
    html = second if language == "en" else first / "report.html"
    pages = pdf_text(pdftotext, html.with_suffix(".pdf")).split("\f")
    if pages and not pages[-1].strip():
        pages = pages[:-1]
    return language, html.read_text(encoding="utf-8"), pages


class _Text(HTMLParser):
    """The visible text of a page, and the text of its headings."""

    def __init__(self):
        super().__init__()
        self.text, self.headings, self._skip, self._heading, self._hidden = [], [], 0, None, []

    def handle_starttag(self, tag, attrs):
        # Styles, scripts and nbconvert's heading anchors ("¶", hidden by CSS) are not read.
        hidden = tag in ("style", "script") or (tag == "a" and "anchor-link" in (dict(attrs).get("class") or ""))
        if tag in ("style", "script", "a"):
            self._hidden.append(hidden)
            self._skip += hidden
        if re.fullmatch(r"h[1-4]", tag):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("style", "script", "a") and self._hidden:
            self._skip -= self._hidden.pop()
        if re.fullmatch(r"h[1-4]", tag) and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)
            if self._heading is not None:
                self._heading.append(data)


def _read(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


def _lines(page: str) -> list[str]:
    return [" ".join(line.split()) for line in page.splitlines() if line.strip()]


def test_the_body_and_the_appendix_keep_their_page_budgets(demo):
    language, _, pages = demo
    title = label("Technical appendix", language)
    starts = [i for i, page in enumerate(pages) if _lines(page) and _lines(page)[0] == title]
    assert len(starts) == 1, f"the appendix should start one page with {title!r}"
    body, appendix = starts[0], len(pages) - starts[0]
    since = label("Since the last report", language)
    monitoring = [i for i, page in enumerate(pages[:body]) if _lines(page)[0] == since]
    budget = BODY_PAGES + (MONITORING_PAGES if monitoring else 0)
    assert body <= budget and appendix <= APPENDIX_PAGES, (body, appendix)
    if monitoring:
        assert body - monitoring[0] <= MONITORING_PAGES, "the check of the last report takes more than its pages"


def test_the_summary_is_whole_on_page_one(demo):
    language, _, pages = demo
    last = _lines(pages[0])[-1]
    assert group_name("churn risk", language) in last, "the tier table's last row ends page 1"
    assert _lines(pages[1])[0] == label("Contents", language)


def _pages_ending_in_a_heading(html: str, pages: list[str], language: str) -> list[int]:
    headings = {h for h in _read(html).headings if h}
    found = []
    for number, page in enumerate(pages, start=1):
        lines = _lines(page)
        if lines and lines[0] != label("Contents", language) and lines[-1] in headings:
            found.append(number)  # (the contents page's entries are the headings' own words)
    return found


def test_a_page_that_ends_with_a_heading_is_found():
    html = '<h2 id="x">When did customers arrive?<a class="anchor-link" href="#x">¶</a></h2><p>Each bar</p>'
    pages = ["Data collection\n\n When did customers arrive?\n", "Each bar counts\n"]
    assert _read(html).headings == ["When did customers arrive?"]
    assert _pages_ending_in_a_heading(html, pages, "en") == [1]


def test_no_heading_ends_a_page_apart_from_what_it_introduces(demo):
    language, html, pages = demo
    assert all(_lines(page) for page in pages), "an empty page"
    assert len(_read(html).headings) >= 20
    assert _pages_ending_in_a_heading(html, pages, language) == []


def test_the_client_document_holds_no_plumbing(demo):
    language, html, _ = demo
    text = unescape(" ".join(_read(html).text))
    for word in (".parquet", ".json", ".csv", "notebook", "笔记本", 'model="', "CDNOW", "/tmp/", "Outputs"):
        assert word not in text, f"{word!r} is in the client's report"
    assert "<code>" not in html.split("<footer", 1)[0], "code in the client's report"
    assert not re.search(r"^#+ *\d+\s*[·.]", text, re.M)


def test_counts_show_as_integers(demo):
    language, html, _ = demo
    counts = {label(name, language) for name in ("customers", "orders", "lines")}
    checked = 0
    for table in re.findall(r"<table id=\"T_.*?</table>", html, re.S):
        heads = dict((int(j), unescape(re.sub(r"<[^>]+>", "", text)).strip()) for j, text in
                     re.findall(r'<th[^>]*class="col_heading level0 col(\d+)"[^>]*>(.*?)</th>', table, re.S))
        for j, head in heads.items():
            if head in counts:
                cells = re.findall(rf'<td[^>]*class="data row\d+ col{j}"[^>]*>(.*?)</td>', table, re.S)
                assert all(re.fullmatch(r"-?[\d,]+|–", c.strip()) for c in cells), (head, cells)
                checked += len(cells)
    assert checked >= 10
