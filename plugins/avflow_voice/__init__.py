"""avflow built-in plugin: voices (registered through the avflow.plugins entry point).

Nodes: ``voice.activity`` (speech activity per 32 ms, Silero VAD), ``voice.embed`` (voice
embeddings of speech windows, Resemblyzer's GE2E encoder), ``voice.cluster`` (voices and their
turns), ``voice.online`` (voices decided as they are heard, for live input). Both models are the trained weights their wheels ship, so everything works offline.
Algorithms live in plain modules (:mod:`.vad`, :mod:`.embed`, :mod:`.cluster`, :mod:`.audio`), node
classes in :mod:`.nodes` (one module per node), payloads in :mod:`.payloads`.
"""

from avflow import hookimpl


@hookimpl
def avflow_register_nodes():
    from .nodes.activity import SpeechActivityDetector
    from .nodes.cluster import VoiceClusterer
    from .nodes.embed import VoiceEmbedder
    from .nodes.online import OnlineVoiceClusterer

    return [SpeechActivityDetector, VoiceEmbedder, VoiceClusterer, OnlineVoiceClusterer]
