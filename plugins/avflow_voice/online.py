"""Online voice clustering: voices created and updated as they are heard (diart's scheme).

Each voice is a centroid (the sum of the embeddings given to it, compared by cosine). An
incoming embedding goes to the nearest voice when its cosine distance is within ``threshold``
(and, within ``update``, moves that voice's centroid); farther from every voice it is held as
a candidate, and ``min_new`` consecutive candidates found close to each other found a new voice
(one stray window, a cough or the mix at a change of speaker, does not). Memory: one centroid
per voice, at most ``max_voices`` (then the nearest voice takes everything), and at most
``min_new`` held windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Labelled:
    """One window's outcome: ``voice`` (index, or None), its similarity, whether it founded the voice."""

    key: object
    voice: int | None
    similarity: float
    new: bool = False


@dataclass
class OnlineVoices:
    """Streaming clustering of L2-normalised embeddings; :meth:`push` returns the windows decided."""

    threshold: float = 0.4
    update: float = 0.3
    min_new: int = 3
    max_voices: int = 16
    _sums: list[np.ndarray] = field(default_factory=list)
    _held: list[tuple[object, np.ndarray]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self._sums)

    def centroids(self) -> np.ndarray:
        if not self._sums:
            return np.zeros((0, 0))
        c = np.stack(self._sums)
        return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)

    def _nearest(self, e: np.ndarray) -> tuple[int | None, float]:
        if not self._sums:
            return None, -1.0
        sims = self.centroids() @ e
        k = int(np.argmax(sims))
        return k, float(sims[k])

    def _give(self, key, e: np.ndarray, k: int, sim: float) -> Labelled:
        if 1.0 - sim <= self.update:
            self._sums[k] = self._sums[k] + e
        return Labelled(key, k, sim)

    def push(self, key, embedding: np.ndarray) -> list[Labelled]:
        e = np.asarray(embedding, np.float64)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        k, sim = self._nearest(e)
        if k is not None and (1.0 - sim <= self.threshold or self.count >= self.max_voices):
            out = self._release()
            out.append(self._give(key, e, k, sim))
            return out
        self._held.append((key, e))
        if len(self._held) >= self.min_new and self._one_voice():
            return self._found()
        if len(self._held) > self.min_new:  # not one voice: the oldest goes to its nearest voice, or none
            return self._release(keep=self.min_new)
        return []

    def _release(self, keep: int = 0) -> list[Labelled]:
        """Decide held candidates (all but the last ``keep``): the nearest voice, or None."""
        out = []
        while len(self._held) > keep:
            key, e = self._held.pop(0)
            k, sim = self._nearest(e)
            out.append(Labelled(key, k, sim) if k is not None else Labelled(key, None, 0.0))
        return out

    @property
    def held(self) -> list:
        """The keys of the candidate windows held, oldest first."""
        return [key for key, _ in self._held]

    def expire(self) -> list[Labelled]:
        """Decide the held candidates now, as if no further window will join them (the caller
        knows the audio has gone on without one): if they are close to each other and far from
        every voice they found a new voice, fewer than ``min_new`` as they may be (a new
        speaker's first utterance, short and heard alone); otherwise each goes to its nearest voice."""
        if not self._held:
            return []
        k, sim = self._nearest(self._held_mean())
        if (k is None or 1.0 - sim > self.threshold) and self._one_voice() and self.count < self.max_voices:
            return self._found()
        return self._release()

    def _held_mean(self) -> np.ndarray:
        mean = np.sum([v for _, v in self._held], axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def _one_voice(self) -> bool:
        """Whether the held candidates all lie within ``threshold`` of their mean."""
        held = np.stack([v for _, v in self._held])
        return float(np.min(held @ self._held_mean())) >= 1.0 - self.threshold

    def _found(self) -> list[Labelled]:
        """A new voice from the held candidates."""
        mean = self._held_mean()
        self._sums.append(np.sum([v for _, v in self._held], axis=0))
        new = self.count - 1
        out = [Labelled(key, new, float(v @ mean), new=True) for key, v in self._held]
        self._held = []
        return out

    def flush(self) -> list[Labelled]:
        """The end of the input: held candidates found a voice if there is none, else go to the nearest."""
        if self._held and not self._sums:
            return self._found()
        return self._release()
