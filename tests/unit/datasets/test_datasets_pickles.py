"""The restricted unpickler: plain data loads, anything that could run code is refused."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest

from avflow import InputError
from avflow_datasets import AVClipDataset, UnsafePickleError, safe_loads


class _MakesDirectory:
    """A pickle whose loading would call os.mkdir(path)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_loads_with_every_protocol(protocol):
    value = {"audio": b"\x00\x01", "coef": {"exp": np.arange(6, dtype=np.float32).reshape(3, 2)},
             "misc": [1, 2.5, "s", (1, None), {3}, frozenset({4}), True, 1j, bytearray(b"x"),
                      np.float32(1.5), np.int64(7), collections.OrderedDict(a=1), np.array(["a", "b"])]}
    out = safe_loads(pickle.dumps(value, protocol=protocol))
    assert out["audio"] == value["audio"] and out["misc"][:9] == value["misc"][:9]
    assert np.array_equal(out["coef"]["exp"], value["coef"]["exp"]) and out["coef"]["exp"].dtype == np.float32
    assert out["misc"][9] == np.float32(1.5) and out["misc"][11] == {"a": 1}


def test_code_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "created"
    data = pickle.dumps({"audio": b"", "coef": _MakesDirectory(target)})
    with pytest.raises(UnsafePickleError, match=r"posix\.mkdir|os\.mkdir") as e:
        safe_loads(data, "LMDB key 'p/000/000'")
    assert "LMDB key 'p/000/000'" in str(e.value) and "only dicts, lists" in str(e.value)
    assert not target.exists()
    assert isinstance(e.value, InputError) and isinstance(e.value, pickle.UnpicklingError)


def test_other_globals_are_refused():
    for obj in (pickle.loads, collections.Counter(a=1), np.random.default_rng(0)):
        with pytest.raises(UnsafePickleError):
            safe_loads(pickle.dumps(obj))


def test_corrupt_bytes_are_an_input_error():
    with pytest.raises(InputError, match="not a valid pickle"):
        safe_loads(b"\x80\x05garbage")


def test_dataset_refuses_a_malicious_lmdb(tmp_path, ref):
    import lmdb

    path = ref.write_lmdb(tmp_path / "lmdb", {"p/000": ref.ramp_subject(20, 20 * 640)}, seg_len=10)
    target = tmp_path / "pwned"
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        txn.put(b"p/000/001", pickle.dumps({"audio": b"", "coef": _MakesDirectory(target)}))
    env.close()
    (tmp_path / "split.txt").write_text("p/000\n")
    ds = AVClipDataset(path, tmp_path / "split.txt", n_motions=10, crop_strategy="begin")
    with pytest.raises(UnsafePickleError, match="p/000/001"):
        ds[0]
    assert not target.exists()
