"""avflow built-in plugin: audio-visual sync (registered through the avflow.plugins entry point).

Nodes (one module each in :mod:`.nodes`):

- ``sync.motion``: lip landmarks against the audio bands, no weights (the default scorer).
- ``sync.mel``, ``sync.windows``, ``sync.syncnet``: Wav2Lip's mel spectrogram, 5 frames x 16 mel
  columns per track, Wav2Lip's lip-sync expert (the other scorer).
- ``sync.assign``: each voice given to the face whose lips follow it, every frame decided from
  the voices (the default decision).
- ``sync.live_assign``, ``sync.live_report``: the same decision online, each frame at most
  ``latency`` seconds after it was heard, and live.jsonl plus diarization files rewritten as a
  stream goes (``graphs/diarize_live.yaml``).
- ``sync.smooth``, ``sync.speaker``: per-track smoothing, then the speaker per frame from the
  scores alone (``decision=frame``).
- ``sync.diarization``: diarization.json, diarization.rttm, WebVTT/SRT speaker captions, Audacity
  and ELAN label tracks, sync_signals.png (those its ``outputs`` param names).
- ``sync.annotate``: the annotated preview's frames; ``sync.face_clips``: one clip per face.

Algorithms live in plain modules (:mod:`.mel`, :mod:`.windows`, :mod:`.syncnet`,
:mod:`.motion_features`, :mod:`.assign`, :mod:`.smoothing`, :mod:`.decision`, :mod:`.report`,
:mod:`.formats` (captions, label tracks, pyannote and lhotse objects from a run's result),
:mod:`.scoring` (a diarization against a composed fixture)).
"""

from avflow import hookimpl


@hookimpl
def avflow_register_nodes():
    from .nodes.annotate import Annotate
    from .nodes.assign import VoiceAssigner
    from .nodes.diarization import DiarizationWriter
    from .nodes.live_assign import LiveVoiceAssigner
    from .nodes.live_report import LiveDiarizationWriter
    from .nodes.face_clips import FaceClips
    from .nodes.mel import MelSpectrogram
    from .nodes.smooth import ScoreSmoother
    from .nodes.speaker import SpeakerDecision
    from .nodes.syncnet import SyncNetScorer
    from .nodes.windows import SyncWindows
    from .nodes.motion import MotionScorer

    return [
        MelSpectrogram,
        SyncWindows,
        SyncNetScorer,
        MotionScorer,
        ScoreSmoother,
        SpeakerDecision,
        VoiceAssigner,
        LiveVoiceAssigner,
        DiarizationWriter,
        LiveDiarizationWriter,
        Annotate,
        FaceClips,
    ]


@hookimpl
def avflow_register_model_scaffolds():
    from avflow.node import ModelScaffold

    return [ModelScaffold(name="syncnet", doc="Wav2Lip lip-sync expert with random weights (lipsync_expert.pth)",
                          write=_write_syncnet_scaffold, default=False)]


def _write_syncnet_scaffold(directory, tiny, seed):
    """Write ``DIR/lipsync_expert.pth`` (``tiny`` is ignored: the format fixes the architecture)."""
    from pathlib import Path

    from .syncnet import save_random_syncnet

    return [save_random_syncnet(Path(directory) / "lipsync_expert.pth", seed)]
