"""``avflow eval``: score a diarization against a reference RTTM."""

from __future__ import annotations

import json

import click


@click.command(name="eval")
@click.argument("reference", type=click.Path())
@click.argument("hypothesis", type=click.Path())
@click.option("--collar", type=float, default=0.25, show_default=True,
              help="seconds not scored on each side of every reference boundary (NIST convention)")
@click.option("--frame-collar", type=int, default=6, show_default=True,
              help="frames not counted on each side of a reference change, for frame accuracy")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def eval_(reference: str, hypothesis: str, collar: float, frame_collar: int, as_json: bool) -> None:
    """DER and JER of HYPOTHESIS (an RTTM, or a diarize output folder) against REFERENCE (RTTM).

    Scored with pyannote.metrics (speakers mapped one to one; overlap scored), each file id of
    the RTTMs on its own and summed (one file id on each side: paired whatever their names). With
    an output folder, also the frame accuracy at its frame rate. Exit 2 on a missing or
    malformed file.
    """
    from ..evaluation import evaluate

    r = evaluate(reference, hypothesis, collar=collar, frame_collar=frame_collar)
    if as_json:
        click.echo(json.dumps(r, indent=1))
        return
    click.echo(f"DER {r['der']:.4f} (missed {r['missed']:.2f} s, false alarm {r['false_alarm']:.2f} s, "
               f"confusion {r['confusion']:.2f} s of {r['total']:.2f} s; collar {collar} s each side)")
    click.echo(f"JER {r['jer']:.4f}")
    if r["frame_accuracy"] is not None:
        click.echo(f"frame accuracy {r['frame_accuracy']:.4f} (collar {frame_collar} frames)")
    if len(r["files"]) == 1:
        click.echo("mapping " + ", ".join(f"{h} -> {ref}" for h, ref in sorted(r["mapping"].items())))
        return
    for fid, f in r["files"].items():
        click.echo(f"  {fid}: DER {f['der']:.4f}, JER {f['jer']:.4f} of {f['total']:.2f} s; mapping "
                   + (", ".join(f"{h} -> {ref}" for h, ref in sorted(f["mapping"].items())) or "(none)"))
