"""The diarize graph's ``outputs`` param: what a run writes, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

import avflow

REGISTRY = avflow.Registry.default()
# validation checks that the input exists: a real clip (the tests only validate, nothing runs)
VIDEO = Path(__file__).resolve().parents[3] / ".." / "shared" / "media" / "talking1.mp4"


def plan(**overrides):
    if not VIDEO.is_file():
        pytest.skip(f"test media {VIDEO} is absent")
    return avflow.validate(avflow.load_graph(REGISTRY.graphs()["diarize"]), REGISTRY,
                           {"video": str(VIDEO), **overrides})


def test_default_outputs_write_json_rttm_captions_plot_and_the_annotated_video():
    p = plan()
    assert p.params["outputs"] == ["json", "rttm", "vtt", "plot", "annotated"]
    assert p.nodes["report"].config.outputs == ("json", "rttm", "vtt", "plot", "annotated")
    assert {"annotate", "annotated"} <= set(p.order)
    assert {"json", "rttm", "vtt", "srt", "audacity", "elan", "plot", "annotated"} <= set(p.outputs)


def test_leaving_annotated_out_switches_its_nodes_off():
    p = plan(outputs=["json", "srt", "elan"])
    assert p.nodes["report"].config.outputs == ("json", "srt", "elan")
    assert {"annotate", "annotated"} <= set(p.disabled) and "annotated" not in p.outputs


def test_unknown_output_names_are_rejected_with_the_choices():
    with pytest.raises(avflow.GraphValidationError) as info:
        plan(outputs=["json", "mp4"])
    assert [i.message for i in info.value.issues] == [
        "graph parameter 'outputs': unknown 'mp4' in ['json', 'mp4']; each item must be one of "
        "'json', 'rttm', 'vtt', 'srt', 'audacity', 'elan', 'plot', 'annotated'"]
    with pytest.raises(avflow.GraphValidationError, match="report.*unknown 'svg'.*one of 'json'"):
        plan(**{"report.outputs": ["svg"]})
