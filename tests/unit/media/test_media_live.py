"""media.live on local files and refused connections; a graceful stop of a live graph."""

from __future__ import annotations

import threading
import time

import av
import pytest

import avflow
from avflow import InputError
from avflow.testing import NodeRunner, synth_audio, synth_video, write_video
from avflow.testing.live import free_port
from avflow_media import LiveSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "clip.mp4"
    return write_video(path, synth_video(50), fps=25, audio=synth_audio(2.0), sample_rate=16000)


def test_a_file_streams_from_time_zero_with_contiguous_audio(clip):
    out = NodeRunner(LiveSource, source=str(clip), audio_rate=16000, audio_channels=1,
                     connected_outputs=("info", "video", "audio")).run()
    assert len(out["info"]) == 1 and out["info"][0].duration == 0.0
    video, audio = out["video"], out["audio"]
    assert len(video) == 50 and video[0].time == pytest.approx(0.0, abs=0.05)
    assert [v.index for v in video] == list(range(50))
    assert all(b.time > a.time for a, b in zip(video, video[1:]))
    for a, b in zip(audio, audio[1:]):  # one timeline, no gaps or overlaps
        assert b.pts == a.pts + a.samples.shape[1]
    assert sum(a.samples.shape[1] for a in audio) / 16000 == pytest.approx(2.0, abs=0.1)


def test_realtime_reads_a_file_at_its_own_pace(clip):
    t0 = time.monotonic()
    out = NodeRunner(LiveSource, source=str(clip), realtime=True, connected_outputs=("video",)).run()
    assert len(out["video"]) == 50
    assert time.monotonic() - t0 >= 1.7  # 2 s of media


def test_a_source_that_cannot_be_opened_is_an_input_error():
    port = free_port()  # nobody listens: refused until open_timeout
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"tcp://127\.0\.0\.1:\d+ within 0\.5 s \(open_timeout\)"):
        NodeRunner(LiveSource, source=f"tcp://127.0.0.1:{port}", open_timeout=0.5,
                   connected_outputs=("video",)).run()
    assert time.monotonic() - t0 < 10


@pytest.mark.skipif("v4l2" in av.formats_available, reason="this PyAV has FFmpeg's v4l2 input")
def test_a_device_this_pyav_cannot_capture_is_an_input_error_that_says_why():
    # PyAV's wheels carry no capture devices: say so and what would work, not "no such format"
    with pytest.raises(InputError, match=r"/dev/video0: this PyAV has no 'v4l2' input .*no-binary av.*tcp://"):
        NodeRunner(LiveSource, source="/dev/video0", open_timeout=0.5, connected_outputs=("video",)).run()


def test_stop_ends_a_live_graph_gracefully(clip, tmp_path):
    """Runner.stop() ends the live source's stream; the rest of the graph finishes (exit 0 in the CLI)."""
    graph = {"name": "live_copy", "nodes": {
        "live": {"type": "media.live", "params": {"source": str(clip), "realtime": True}},
        "mux": {"type": "media.mux", "inputs": {"video": "live.video", "audio": "live.audio"},
                "params": {"path": "copy.mp4", "fragmented": True}}},
        "outputs": {"file": "mux.file"}}
    runner = avflow.Runner(graph, output_dir=tmp_path, device="cpu")
    threading.Timer(1.0, runner.stop).start()
    t0 = time.monotonic()
    result = runner.run()
    assert time.monotonic() - t0 < 1.9  # stopped before the 2 s clip ended
    with av.open(str(result.outputs["file"].path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert 10 <= n < 50


def test_stop_does_nothing_without_a_live_source(clip, tmp_path):
    graph = {"name": "copy", "nodes": {"decode": {"type": "media.decode", "params": {"path": str(clip)}}},
             "outputs": {"video": "decode.video"}}
    runner = avflow.Runner(graph, output_dir=tmp_path, device="cpu")
    assert runner.stop() is False
    assert len(runner.run().outputs["video"]) == 50


def test_a_fragmented_mp4_plays_while_it_is_written(tmp_path):
    from avflow_media import MediaWriter

    w = MediaWriter(tmp_path / "f.mp4", fps=25, fragmented=True, preset="ultrafast")
    for i, img in enumerate(synth_video(150)):
        w.add_video(img, i / 25)
    with av.open(str(tmp_path / "f.mp4")) as c:  # still being written, under its final name: playable
        assert sum(1 for _ in c.decode(video=0)) >= 50
    w.close()
    with av.open(str(tmp_path / "f.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 150


def test_a_dropped_stream_is_reopened_and_its_timeline_goes_on(clip):
    """The sender closes after 1 s and comes back; with reconnect the source reopens it, its times go
    on from the time that passed, and the audio of the gap is silence (one contiguous timeline)."""
    from avflow.testing.live import StreamSender

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    out: dict = {}

    def read() -> None:
        out.update(NodeRunner(LiveSource, source=url, reconnect=1, backoff=0.2, stall_timeout=2.0, open_timeout=4,
                              audio_rate=16000, audio_channels=1, connected_outputs=("video", "audio")).run())

    first = StreamSender(clip, url + "?listen=1", close_after=1.0)
    reader = threading.Thread(target=read)
    reader.start()
    first.wait_started(30)
    first.wait(30)
    second = StreamSender(clip, url + "?listen=1")
    second.wait_started(30)
    second.wait(30)
    reader.join(30)
    video, audio = out["video"], out["audio"]
    times = [v.time for v in video]
    assert all(b > a for a, b in zip(times, times[1:]))
    jump = max(b - a for a, b in zip(times, times[1:]))
    assert 0.2 < jump < 5.0  # the gap while the sender was away
    assert len(video) > 50  # the part before the drop and the whole clip after it
    for a, b in zip(audio, audio[1:]):
        assert b.pts == a.pts + a.samples.shape[1]
