"""Minimal safetensors writer/reader (the format: 8-byte little-endian header length, JSON header, raw
little-endian tensors). Written here because Debian ships no python3-safetensors; the C++ reader is
common/model/safetensors.cpp."""
import json
import struct

import numpy as np
import torch

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32",
           np.dtype("int64"): "I64", np.dtype("uint8"): "U8"}


def save(path, tensors, metadata=None):
    arrays = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in tensors.items()}
    header, offset = {}, 0
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        arrays[name] = a
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align tensor data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in sorted(arrays):
            f.write(arrays[name].astype(arrays[name].dtype.newbyteorder("<")).tobytes())


def load(path):
    inv = {v: k for k, v in _DTYPES.items()}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        if info["dtype"] == "BF16":  # numpy has no bfloat16: read the bits, then view them as torch's
            bits = np.frombuffer(data[a:b], dtype="<i2").reshape(info["shape"]).copy()
            out[name] = torch.from_numpy(bits).view(torch.bfloat16)
            continue
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=inv[info["dtype"]]).reshape(info["shape"]).copy())
    return out
