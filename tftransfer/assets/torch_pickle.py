"""Read legacy (pre-zip) PyTorch state dicts into numpy arrays, without torch.

Legacy layout: five pickles (magic number, protocol version, system info, the
state dict, the list of storage keys), then for every key in that list an int64
element count followed by the storage's raw little-endian bytes.

Unpickling is restricted to the four globals such a state dict needs, each
mapped to a harmless local stand-in, so a hostile file cannot run code.
"""

import collections
import pickle
import struct
import zipfile
from typing import BinaryIO, Dict, List

import numpy as np

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001


class _StateDict(collections.OrderedDict):
    """OrderedDict that ignores pickled attribute state (torch's `_metadata`)."""

    def __setstate__(self, state):
        del state  # Module version numbers only; nothing we need.


class _StorageType:
    """Stand-in for `torch.FloatStorage` / `torch.LongStorage`."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype).newbyteorder("<")


class _Storage:
    """Placeholder for one storage; `data` is read after the pickles."""

    def __init__(self, storage_type: _StorageType, key: str):
        self.dtype = storage_type.dtype
        self.key = key
        self.data = None


class _TensorRef:
    """What `_rebuild_tensor_v2` returns: a strided view into a storage."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("tensor does not reference a storage")
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(n) for n in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if 0 in self.size:
            return np.zeros(self.size, flat.dtype.newbyteorder("="))
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= flat.size:
            raise ValueError(f"tensor view exceeds storage {self.storage.key!r}")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=[s * flat.itemsize for s in self.stride],
        )
        return np.array(view, dtype=flat.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, offset, size, stride, *unused_args):
    return _TensorRef(storage, offset, size, stride)


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): _StateDict,
    ("torch", "FloatStorage"): _StorageType(np.float32),
    ("torch", "LongStorage"): _StorageType(np.int64),
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals of a plain tensor state dict."""

    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self.storages: Dict[str, _Storage] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only plain "
                "PyTorch tensor state dicts are allowed"
            ) from None

    def persistent_load(self, pid):
        # pid is ('storage', storage type, key, device, numel, view metadata).
        if not (
            isinstance(pid, tuple)
            and len(pid) >= 3
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        ):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1], key)
        return self.storages[key]


def _read_storage_data(f: BinaryIO, storages: Dict[str, _Storage], keys: List) -> None:
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise ValueError(f"storage key {key!r} is not used by any tensor")
        header = f.read(8)
        count = struct.unpack("<q", header)[0] if len(header) == 8 else -1
        nbytes = count * storage.dtype.itemsize
        raw = f.read(nbytes) if count >= 0 else b""
        if count < 0 or len(raw) != nbytes:
            raise ValueError(f"truncated data for storage {key!r}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Return {name: array} from a legacy-format PyTorch state dict file."""
    if zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is a zip-format (torch>=1.6) checkpoint; only the legacy "
            "format is supported"
        )
    with open(path, "rb") as f:
        unpickler = RestrictedUnpickler(f)
        try:
            magic, protocol, sys_info = [unpickler.load() for _ in range(3)]
        except Exception as error:  # Any parse failure means "wrong format".
            raise ValueError(f"{path} is not a legacy PyTorch checkpoint: {error}") from error
        if magic != _MAGIC_NUMBER or protocol != _PROTOCOL_VERSION:
            raise ValueError(f"{path} is not a legacy PyTorch checkpoint")
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
            raise ValueError(f"{path}: only little-endian checkpoints are supported")
        state = unpickler.load()
        keys = unpickler.load()
        if not isinstance(state, dict) or not isinstance(keys, list):
            raise ValueError(f"{path} does not hold a state dict")
        _read_storage_data(f, unpickler.storages, keys)
    arrays = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        arrays[name] = value.to_numpy()
    return arrays
