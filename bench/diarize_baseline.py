"""What the original scripts do, for comparison: every frame kept in memory, face detection on
each frame, greedy IoU tracks, and SyncNet scoring one window at a time (batch size 1).

Same detector, crops, mel and SyncNet weights as avflow's graph, so the difference measured is
the execution model, not the models.
"""

from __future__ import annotations

import numpy as np


def run_baseline(video: str, weights: str) -> dict:
    import av
    import cv2
    import mediapipe as mp
    import torch

    from avflow_sync.mel import wav2lip_mel
    from avflow_sync.syncnet import load_syncnet, sync_similarity

    # 1. Read the whole video and audio into memory.
    frames, times = [], []
    with av.open(video) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
    with av.open(video) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        audio = np.concatenate([r.to_ndarray().reshape(-1) for f in c.decode(audio=0) for r in resampler.resample(f)])

    # 2. Detect faces on every frame; 3. greedy IoU tracking.
    tracks: dict[int, dict[int, tuple]] = {}
    last: dict[int, tuple] = {}
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as det:
        for i, img in enumerate(frames):
            h, w = img.shape[:2]
            res = det.process(img)
            for d in res.detections or []:
                b = d.location_data.relative_bounding_box
                box = (b.xmin * w, b.ymin * h, b.width * w, b.height * h)
                best, best_iou = None, 0.3
                for tid, prev in last.items():
                    iou = _iou(prev, box)
                    if iou > best_iou:
                        best, best_iou = tid, iou
                if best is None:
                    best = len(tracks)
                    tracks[best] = {}
                tracks[best][i] = box
                last[best] = box

    # 4. Lower-half 48x96 crops of every track frame, kept in memory.
    crops: dict[int, dict[int, np.ndarray]] = {}
    for tid, boxes in tracks.items():
        crops[tid] = {}
        for i, (x, y, bw, bh) in boxes.items():
            side = max(bw, bh) * 1.2
            cx, cy = x + bw / 2, y + bh / 2
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            sq = frames[i][y0:y0 + int(side), x0:x0 + int(side)]
            sq = cv2.resize(sq, (96, 96), interpolation=cv2.INTER_AREA)
            crops[tid][i] = sq[48:, :, ::-1]

    # 5. Mel of the whole audio; SyncNet one window at a time.
    mel = wav2lip_mel(audio)
    model = load_syncnet(weights, "cpu")
    scores: dict[int, dict[int, float]] = {}
    n_windows = 0
    for tid, tc in crops.items():
        scores[tid] = {}
        for i in sorted(tc):
            if not all(i + k in tc for k in range(5)):
                continue
            start = int(80 * times[i])
            if start + 16 > mel.shape[1]:
                continue
            v = np.concatenate([tc[i + k] for k in range(5)], axis=2).transpose(2, 0, 1)[None]
            m = mel[:, start:start + 16][None, None]
            s = sync_similarity(model, torch.from_numpy(np.ascontiguousarray(v)), torch.from_numpy(m))
            scores[tid][i + 2] = float(s[0, 0])
            n_windows += 1

    # 6. Speaker per frame: the best score above 0.5.
    active = []
    for i in range(len(frames)):
        cand = {tid: s[i] for tid, s in scores.items() if i in s}
        best = max(cand, key=cand.get) if cand else None
        active.append(best if best is not None and cand[best] >= 0.5 else None)
    return {"n_frames": len(frames), "n_tracks": len(tracks), "n_windows": n_windows}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
