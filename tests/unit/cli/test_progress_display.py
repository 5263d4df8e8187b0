"""One progress bar per run, with a stage line; plain lines when stderr is not a terminal (issue 14)."""

from __future__ import annotations

import io
import logging

from avflow.cli.progress import ProgressDisplay
from avflow.runtime.runner import ProgressEvent


def _feed(display, events):
    for node, done, total in events:
        display(ProgressEvent(node, done, total, "frames"))


def test_plain_lines_without_cursor_codes_off_a_terminal():
    out = io.StringIO()
    d = ProgressDisplay(stream=out, tty=False, interval=0)
    _feed(d, [("audio", 0, None)] + [("decode", i, 10) for i in range(11)])
    d.close()
    text = out.getvalue()
    assert "\x1b[" not in text and "\r" not in text
    assert text.splitlines()[-1].startswith("progress: 10/10 frames (100%)")
    assert "audio" not in text  # an audio-only decoder has no frames to count: no "audio: 0frame"


def test_one_bar_that_waits_on_the_node_furthest_behind():
    d = ProgressDisplay(stream=io.StringIO(), tty=False)
    _feed(d, [("video", 100, 100), ("prompts", 10, 250)])  # prompts count the audio's frames
    assert d.position() == (10, 250, "prompts")
    _feed(d, [("prompts", 250, 250)])
    done, total, stage = d.position()
    assert done == total and stage == "finishing"


def test_on_a_terminal_one_bar_and_log_lines_above_it():
    out = io.StringIO()
    logger = logging.getLogger("avflow")
    saved = list(logger.handlers), logger.level
    handler = logging.StreamHandler(out)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    try:
        d = ProgressDisplay(stream=out, tty=True)
        _feed(d, [("decode", 1, 10), ("mouths", 1, 10)])
        logging.getLogger("avflow.test").info("a log line")
        _feed(d, [("decode", 10, 10), ("mouths", 10, 10)])
        d.close()
        assert logger.handlers == [handler]  # restored
    finally:
        logger.handlers[:], _ = saved[0], logger.setLevel(saved[1])
    text = out.getvalue()
    assert text.count("frames:") >= 1 and "decode:" not in text and "mouths:" not in text  # one bar
    assert "a log line\n" in text
