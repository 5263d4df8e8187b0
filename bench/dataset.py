"""AVClipDataset read speed against DiffPoseTalk's loader, and the dataset build rate.

Reading: one synthetic DiffPoseTalk-layout LMDB (random coefficients, noise audio as 16-bit FLAC
clips) is read, in the same run, by

- ``baseline``: DiffPoseTalk's ``LmdbDataset`` way: a transaction for the metadata and one for
  the clips of every item, ``pickle.loads`` and a FLAC decode of every clip, nothing reused;
- ``avflow``: :class:`avflow_datasets.AVClipDataset` (cached lengths, one transaction, restricted
  unpickler, per-worker LRU cache of decoded clips);
- ``avflow-nocache``: the same with ``cache_mb=0`` (every clip decoded every time).

Each through a ``DataLoader`` (random crops, shuffled, ``batch_size``) with 0 and 2 workers, in
samples/s after one warm-up epoch; the main process uses one torch thread (``--torch-threads``),
as DataLoader workers do. The baseline's items are checked against AVClipDataset's.

Building: graphs/dataset.yaml (MediaPipe coefficients) over copies of ../shared/media talking
clips, in video-seconds per second, with the sequential and the local executor.

    python bench/dataset.py [--subjects 16] [--seconds 30] [--epochs 2] [--workers 0 2] [--build-copies 2]
                            [--skip-build] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import MEDIA, machine  # noqa: E402

from avflow_datasets import AVClipDataset, build_dataset  # noqa: E402
from avflow_datasets.layout import READERS, LmdbWriter, SubjectData, subject_records  # noqa: E402
from avflow_datasets.pickles import dumps  # noqa: E402
from avflow_datasets.splits import coef_stats  # noqa: E402


class BaselineLmdbDataset(torch.utils.data.Dataset):
    """DiffPoseTalk's ``datasets/data.py:LmdbDataset`` read path (torchaudio's soundfile backend -> soundfile)."""

    def __init__(self, lmdb_dir, split_file, coef_stats_file, coef_fps=25, n_motions=100, crop_strategy="random"):
        stats = dict(np.load(coef_stats_file))
        self.coef_stats = {k: torch.tensor(v) for k, v in stats.items()}
        self.audio_unit = 16000.0 / coef_fps
        self.n_motions = n_motions
        self.n_audio_samples = round(self.audio_unit * n_motions)
        self.coef_total_len = n_motions * 2
        self.crop_strategy = crop_strategy
        self.entries = [line.strip() for line in open(split_file)]
        # DiffPoseTalk calls lmdb.open(dir, readonly=True, lock=False, readahead=False, meminit=False);
        # the same handle, from the process's shared ones, since LMDB allows one per process.
        self.lmdb_env = READERS.get(lmdb_dir)
        with self.lmdb_env.begin(write=False) as txn:
            self.clip_len = pickle.loads(txn.get(b"metadata"))["seg_len"]

    def __len__(self):
        return len(self.entries)

    def __getitem__(self, index, start_frame=None):
        import soundfile as sf

        with self.lmdb_env.begin(write=False) as txn:
            seq_len = pickle.loads(txn.get(f"{self.entries[index]}/metadata".encode()))["n_frames"]
        if start_frame is None:
            if self.crop_strategy == "random":
                start_frame = np.random.randint(0, seq_len - self.coef_total_len + 1)
            elif self.crop_strategy == "begin":
                start_frame = 0
            else:
                start_frame = seq_len - self.coef_total_len
        keys = ["shape", "exp", "pose"]
        coef_dict = {k: [] for k in keys}
        audio = []
        with self.lmdb_env.begin(write=False) as txn:
            for clip_idx in range(start_frame // self.clip_len,
                                  (start_frame + self.coef_total_len - 1) // self.clip_len + 1):
                s = max(start_frame - clip_idx * self.clip_len, 0)
                e = min(start_frame + self.coef_total_len - clip_idx * self.clip_len, self.clip_len)
                entry = pickle.loads(txn.get(f"{self.entries[index]}/{clip_idx:03d}".encode()))
                for k in keys:
                    coef_dict[k].append(entry["coef"][k][s:e])
                clip, sr = sf.read(io.BytesIO(entry["audio"]), dtype="float32")
                audio.append(torch.from_numpy(clip)[round(s * self.audio_unit):round(e * self.audio_unit)])
        coef_dict = {k: torch.tensor(np.concatenate(coef_dict[k], axis=0)) for k in keys}
        audio = torch.cat(audio, dim=0)
        audio_mean, audio_std = audio.mean(), audio.std()
        audio = (audio - audio_mean) / (audio_std + 1e-5)
        coef_dict = {k: (coef_dict[k] - self.coef_stats[f"{k}_mean"]) / (self.coef_stats[f"{k}_std"] + 1e-9)
                     for k in keys}
        audio_pair = [audio[:self.n_audio_samples].clone(), audio[-self.n_audio_samples:].clone()]
        coef_pair = [{k: coef_dict[k][:self.n_motions].clone() for k in keys},
                     {k: coef_dict[k][-self.n_motions:].clone() for k in keys}]
        return audio_pair, coef_pair, (audio_mean, audio_std)


def make_lmdb(path: Path, subjects: int, seconds: float, seg_len: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = int(seconds * 25)
    with LmdbWriter(path) as w:
        w.put([(b"metadata", dumps({"seg_len": seg_len}))])
        for s in range(subjects):
            coefs = {"shape": np.repeat(rng.normal(size=(1, 100)), n, 0).astype(np.float32),
                     "exp": rng.normal(size=(n, 50)).astype(np.float32),
                     "pose": rng.normal(scale=0.1, size=(n, 6)).astype(np.float32)}
            audio = (rng.normal(scale=3000, size=n * 640)).clip(-32768, 32767).astype(np.int16)
            w.put(subject_records(f"person{s:03d}/000", SubjectData(coefs, audio), seg_len, 640))
        keys = sorted(w.subjects())
        stats = coef_stats(w.env, keys)
    (path / "keys.txt").write_text("".join(f"{k}\n" for k in keys))
    np.savez(path / "stats_train.npz", **stats)
    return path


def samples_per_s(ds, workers: int, batch_size: int, epochs: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, drop_last=False)
    for _ in loader:  # warm-up epoch (worker start, page cache, the clip cache)
        pass
    t0 = time.perf_counter()
    n = 0
    for _ in range(epochs):
        for batch in loader:
            n += batch[0][0].shape[0]
    return n / (time.perf_counter() - t0)


def check_same_items(path: Path, n_motions: int) -> None:
    keys, stats = path / "keys.txt", path / "stats_train.npz"
    ours = AVClipDataset(path, keys, stats, n_motions=n_motions, crop_strategy="end")
    theirs = BaselineLmdbDataset(path, keys, stats, n_motions=n_motions, crop_strategy="end")
    for i in range(min(4, len(ours))):
        a, b = ours[i], theirs[i]
        # audio: equal up to the rounding of torch's float32 mean/std; coefficients: bit-identical
        if not (all(torch.allclose(x, y, rtol=1e-5, atol=1e-5) for x, y in zip(a[0], b[0]))
                and all(torch.equal(x[k], y[k]) for x, y in zip(a[1], b[1]) for k in x)):
            raise SystemExit("AVClipDataset and the baseline disagree")


def bench_read(tmp: Path, args) -> dict:
    path = make_lmdb(tmp / "bench_lmdb", args.subjects, args.seconds)
    check_same_items(path, args.n_motions)
    keys, stats = path / "keys.txt", path / "stats_train.npz"
    # Every item is a random crop; an epoch over the subjects is short, so repeat the key list.
    (tmp / "items.txt").write_text(keys.read_text() * args.repeat)
    split = tmp / "items.txt"
    rows = {}
    for workers in args.workers:
        base = samples_per_s(BaselineLmdbDataset(path, split, stats, n_motions=args.n_motions), workers,
                             args.batch_size, args.epochs)
        ours = samples_per_s(AVClipDataset(path, split, stats, n_motions=args.n_motions), workers,
                             args.batch_size, args.epochs)
        cold = samples_per_s(AVClipDataset(path, split, stats, n_motions=args.n_motions, cache_mb=0), workers,
                             args.batch_size, args.epochs)
        rows[f"workers={workers}"] = {"baseline": round(base, 1), "avflow": round(ours, 1),
                                      "avflow-nocache": round(cold, 1), "speedup": round(ours / base, 2),
                                      "speedup-nocache": round(cold / base, 2)}
    audio_s = args.subjects * args.seconds
    return {"subjects": args.subjects, "audio_minutes": round(audio_s / 60, 1),
            "decoded_mb": round(audio_s * 16000 * 4 / 2**20, 1), "n_motions": args.n_motions,
            "batch_size": args.batch_size, "rows": rows}


def bench_build(tmp: Path, copies: int) -> dict:
    videos = tmp / "videos"
    videos.mkdir()
    seconds = 0.0
    for c in range(copies):
        for name in ("talking1", "talking2", "talking3"):
            (videos / f"{name}c{c}_{c}.mp4").symlink_to(MEDIA / f"{name}.mp4")
    rows = {}
    for executor, workers in (("sequential", None), ("local", 2)):
        t0 = time.perf_counter()
        report = build_dataset(videos, tmp / f"built_{executor}", seg_len=100, executor=executor, workers=workers,
                               resume=False)
        wall = time.perf_counter() - t0
        seconds = report.video_seconds
        rows[executor] = {"videos": len(report.written), "video_s": round(seconds, 1), "wall_s": round(wall, 2),
                          "video_s_per_s": round(seconds / wall, 2)}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30.0, help="audio/coefficient seconds per subject")
    ap.add_argument("--n-motions", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=4, help="items per subject per epoch")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--build-copies", type=int, default=2, help="copies of the 3 talking clips to build from")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch threads of the main process (DataLoader workers always use 1); 0: torch's "
                         "default. 1 keeps OpenMP contention on a busy machine out of the figures")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        read = bench_read(tmp, args)
        print(f"machine: {machine()}, torch threads {torch.get_num_threads()}")
        print(f"read: {read['subjects']} subjects, {read['audio_minutes']} min of audio "
              f"({read['decoded_mb']} MB decoded), crops of 2x{read['n_motions']} frames, batch {read['batch_size']}")
        for label, r in read["rows"].items():
            print(f"  {label}: baseline {r['baseline']:8.1f}  avflow {r['avflow']:8.1f} ({r['speedup']}x)  "
                  f"avflow no cache {r['avflow-nocache']:8.1f} ({r['speedup-nocache']}x) samples/s")
        out = {"machine": machine(), "read": read}
        if not args.skip_build and MEDIA.is_dir():
            build = bench_build(tmp, args.build_copies)
            for label, r in build.items():
                print(f"build ({label}): {r['videos']} videos, {r['video_s']} s of video in {r['wall_s']} s: "
                      f"{r['video_s_per_s']} video-seconds/s")
            out["build"] = build
        print(json.dumps(out))


if __name__ == "__main__":
    main()
