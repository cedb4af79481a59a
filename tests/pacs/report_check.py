"""Reading a TID 1500 SR back with highdicom and checking it against the app's JSON, key by key: every
key of the JSON must be carried by the report (`pacs_objects`' registry) or be named here as not a
figure, so a new key in the JSON fails these checks until the SR carries it too."""
from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from TumorApp.analysis.series import pacs_objects as po

ALGORITHM_PARAMETER = "111002"  # DCM "Algorithm Parameters" (TID 4019)
PERSON_LOGIN = "128774"  # DCM "Person Observer's Login Name" (TID 1003)

# Keys of the JSON that are not results: bookkeeping, links, sentences, the network's own result.
SERIES_NOT_FIGURES = {"id", "status", "progress", "name", "kind", "created_at", "export_url", "versions", "notes"}
SLICE_NOT_FIGURES = {"id", "created_at", "file", "notes", "warnings", "model_result"}
CODED = {"stage", "side", "part"}  # coded values: stage concept, finding site


def items(sequence):
    """Every content item below `sequence`, depth first."""
    for item in sequence:
        yield item
        yield from items(item.get("ContentSequence", []))


def texts(group) -> dict:
    """The group's algorithm parameters "key=value" as a dict."""
    found = {}
    for item in items(group):
        if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == ALGORITHM_PARAMETER:
            key, _, value = item.TextValue.partition("=")
            found[key] = value
    return found


def login_names(sr) -> list[str]:
    return [item.TextValue for item in items(sr.ContentSequence)
            if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == PERSON_LOGIN]


def measurement(group, name) -> float:
    [found] = group.get_measurements(name=name)
    return float(found.value)


def check_group(group, record: dict, *, figures: dict, flags=(), text_keys=(), not_figures=(), nested=()):
    """Assert that `group` carries each key of `record` with its value; `nested` keys (lesion lists) are
    checked by the caller."""
    for key, value in record.items():
        if key in not_figures or key in nested:
            continue
        if key in figures:
            concept, unit = figures[key]
            pairs = zip(concept, value) if isinstance(concept, list) else [(concept, value)]
            for name, expected in pairs:
                [found] = group.get_measurements(name=name)
                assert float(found.value) == pytest.approx(float(expected)), key
                assert found.unit == unit, key
        elif key in po.FLAGS and key in flags:
            [found] = group.get_qualitative_evaluations(name=po.FLAGS[key])
            assert found.value == (codes.SCT.Yes if value else codes.SCT.No), key
        elif key in text_keys:
            if value in ("", None):
                assert key not in texts(group), key
            else:
                assert texts(group)[key] == str(value), key
        elif key == "stage":
            [found] = group.get_qualitative_evaluations(name=po.STAGE)
            assert found.value == po.stage_concept(value)
        elif key in ("side", "part"):
            [site] = group.finding_sites
            if key == "side":
                assert site.value == po.LOBES[value]
            else:
                assert site.topographical_modifier == po.PARTS[value]
        else:
            pytest.fail(f"the SR does not carry the JSON's {key!r}")
