"""The face nodes in a real graph: decode -> detect -> track -> landmarks -> crop, streamed."""

from __future__ import annotations

import avflow


def test_face_nodes_run_in_a_graph(media_dir, tmp_path):
    graph = {
        "name": "faces-test",
        "params": {"video": {"type": "path", "required": True}},
        "nodes": {
            "decode": {"type": "media.decode", "params": {"path": "${video}", "max_duration": 0.5}},
            "detect": {"type": "faces.detect", "inputs": {"frames": "decode.video"}},
            "track": {"type": "faces.track", "inputs": {"detections": "detect.detections", "frames": "decode.video"},
                      "params": {"max_missed": 2, "min_track_len": 3}},
            "mesh": {"type": "faces.landmarks", "inputs": {"frames": "decode.video", "tracks": "track.tracks"}},
            "crop": {"type": "faces.crop", "inputs": {"frames": "decode.video", "tracks": "mesh.tracks"},
                     "params": {"region": "lower_half"}},
        },
        "outputs": {"tracks": "mesh.tracks", "crops": "crop.crops", "detections": "detect.detections"},
    }
    result = avflow.run(graph, {"video": str(media_dir / "talking2.mp4")}, output_dir=tmp_path, device="cpu")
    dets, tracks, crops = (result.outputs[k] for k in ("detections", "tracks", "crops"))
    n = len(dets)
    assert n >= 8
    assert [t.frame_index for t in tracks] == list(range(n))
    assert all([f.track_id for f in t.faces] == ["face_0"] for t in tracks)
    assert all(t.faces[0].landmarks.shape == (468, 3) for t in tracks)
    assert [(c.frame_index, c.track_id) for c in crops] == [(i, "face_0") for i in range(n)]
    assert all(c.image.shape == (48, 96, 3) and c.landmarks.shape == (468, 2) for c in crops)
