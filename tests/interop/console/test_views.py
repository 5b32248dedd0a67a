"""The console's pure renderings: the SVG chart and the CSV export, at their edges."""

import csv
import io

from interop.services.console_chart import disclosure_chart
from interop.services.console_review import Decision, decisions_csv


def decision(seq: int, requester: str, day: str, *, released: bool, rule: str = "P1") -> Decision:
    return Decision(
        seq=seq,
        recorded=f"{day}T10:00:00.000Z",
        requester=requester,
        client_id="client-1",
        interaction="read",
        patient="Patient/p1",
        purposes=("TREAT",),
        released=released,
        rule=rule,
        consent=None,
        provision=None,
        resources=("Condition/c1",),
        labels=(),
        emergency={},
    )


class TestChart:
    def test_bars_per_recipient_and_day_with_their_counts(self) -> None:
        svg = disclosure_chart(
            [
                decision(1, "Organization/a", "2026-06-01", released=True),
                decision(2, "Organization/a", "2026-06-01", released=True),
                decision(3, "Organization/a", "2026-06-03", released=False),
                decision(4, "Organization/b", "2026-06-03", released=True),
            ]
        )
        assert svg.startswith("<svg")
        assert "Organization/a 2026-06-01: 2 released" in svg
        assert "Organization/a 2026-06-03: 1 withheld" in svg
        assert "Organization/b 2026-06-03: 1 released" in svg
        assert "2026-05-21 to 2026-06-03" in svg  # fourteen days ending on the newest

    def test_names_are_escaped_and_reviews_are_not_drawn(self) -> None:
        svg = disclosure_chart(
            [
                decision(1, "<script>x</script>", "2026-06-01", released=True),
                decision(2, "staff:cora", "2026-06-01", released=False, rule="E1-review"),
            ]
        )
        assert "<script>" not in svg
        assert "&lt;script&gt;" in svg
        assert "staff:cora" not in svg

    def test_nothing_to_draw_is_nothing(self) -> None:
        assert disclosure_chart([]) == ""


class TestCsv:
    def test_cells_that_look_like_formulas_are_defused(self) -> None:
        text = decisions_csv([decision(1, '=HYPERLINK("http://x")', "2026-06-01", released=True)])
        [row] = list(csv.DictReader(io.StringIO(text)))
        assert row["recipient"].startswith("'=")
        assert row["outcome"] == "released"
        assert row["records"] == "Condition/c1"
