"""avflow built-in plugin: audio-visual sync (registered through the avflow.plugins entry point).

Nodes: ``sync.mel`` (Wav2Lip's mel spectrogram, streamed), ``sync.windows`` (5 frames x 16 mel
columns per track), ``sync.syncnet`` (Wav2Lip's lip-sync expert), ``sync.motion`` (lip landmarks
against the audio, no weights), ``sync.assign`` (each voice given to the face whose lips follow
it; the default decision), ``sync.smooth`` (per-track moving mean/median), ``sync.speaker``
(active speaker per frame from the scores alone), ``sync.diarization`` (diarization.json, RTTM,
plot), ``sync.annotate`` (the annotated preview's frames), ``sync.face_clips`` (one clip per face). Algorithms live in plain
modules (:mod:`.mel`, :mod:`.windows`, :mod:`.syncnet`, :mod:`.smoothing`, :mod:`.decision`),
node classes in :mod:`.nodes`.
"""

from avflow import hookimpl


@hookimpl
def avflow_register_nodes():
    from .nodes.annotate import Annotate
    from .nodes.assign import VoiceAssigner
    from .nodes.diarization import DiarizationWriter
    from .nodes.face_clips import FaceClips
    from .nodes.mel import MelSpectrogram
    from .nodes.smooth import ScoreSmoother
    from .nodes.speaker import SpeakerDecision
    from .nodes.syncnet import SyncNetScorer
    from .nodes.windows import SyncWindows
    from .motion import MotionScorer

    return [
        MelSpectrogram,
        SyncWindows,
        SyncNetScorer,
        MotionScorer,
        ScoreSmoother,
        SpeakerDecision,
        VoiceAssigner,
        DiarizationWriter,
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
