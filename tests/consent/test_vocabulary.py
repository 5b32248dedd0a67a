"""The v3-ActReason purpose hierarchy and the label codes the engine relies on."""

import pytest

from consent import vocabulary as v


class TestPurposeHierarchy:
    @pytest.mark.parametrize(
        ("purpose", "covered_by"),
        [
            ("TREAT", {"TREAT"}),
            ("ETREAT", {"ETREAT", "TREAT"}),
            ("BTG", {"BTG", "ETREAT", "TREAT"}),
            ("ERTREAT", {"ERTREAT", "ETREAT", "TREAT"}),
            ("COC", {"COC", "TREAT"}),
            ("CLINTRL", {"CLINTRL", "TREAT"}),
            ("POPHLTH", {"POPHLTH", "TREAT"}),
            ("ELIGVER", {"ELIGVER", "COVERAGE", "HPAYMT"}),
            ("HTEST", {"HTEST", "SYSDEV", "HOPERAT"}),
            ("CLINTRCHPC", {"CLINTRCHPC", "CLINTRCH", "HRESCH"}),
            ("FAMRQT", {"FAMRQT", "PATRQT"}),
            ("THREAT", {"THREAT", "PUBHLTH"}),
            ("HMARKT", {"HMARKT"}),
        ],
    )
    def test_closure(self, purpose: str, covered_by: set[str]) -> None:
        assert v.purpose_closure(purpose) == covered_by

    def test_hlegal_is_covered_by_nothing_but_itself(self) -> None:
        assert v.PURPOSE_PARENT["HLEGAL"] == "HOPERAT"
        assert v.purpose_closure("HLEGAL") == {"HLEGAL"}

    def test_an_unknown_code_covers_only_itself(self) -> None:
        assert v.purpose_closure("LOCAL-PURPOSE") == {"LOCAL-PURPOSE"}

    def test_every_parent_is_a_known_purpose(self) -> None:
        known = set(v.PURPOSE_PARENT) | v.TOP_PURPOSES

        assert set(v.PURPOSE_PARENT.values()) <= known

    def test_every_purpose_reaches_a_top_purpose(self) -> None:
        for code in v.PURPOSE_PARENT:
            if code in v.NOT_SUBSUMED:
                continue
            assert v.purpose_closure(code) & v.TOP_PURPOSES, code


class TestLabels:
    def test_sud_covers_its_children_and_the_retired_eth(self) -> None:
        assert v.SENSITIVITY_COVERS[v.SUD] == {v.SUD, v.ETHUD, v.OPIOIDUD, v.ETH}

    def test_specific_codes_cover_only_themselves(self) -> None:
        assert v.SENSITIVITY_COVERS[v.ETHUD] == {v.ETHUD}
        assert v.SENSITIVITY_COVERS[v.OPIOIDUD] == {v.OPIOIDUD}

    def test_confidentiality_is_ordered_low_to_high(self) -> None:
        ranks = [v.CONFIDENTIALITY_RANK[code] for code in ("U", "L", "M", "N", "R", "V")]

        assert ranks == sorted(ranks)
