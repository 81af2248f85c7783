#!/usr/bin/python3
"""Baseline for bench/fs: PyTorch 1.13's distributed checkpoint on a local directory.

Saves or loads a state dict with torch.distributed._shard.checkpoint
(save_state_dict / load_state_dict, no_dist=True, FileSystemWriter /
FileSystemReader) and prints one JSON object: bytes, seconds,
bytes_per_second, and what was measured. Only the save_state_dict or
load_state_dict call is timed; building the tensors, allocating and touching
the destination tensors, and the optional check are not.

The state dict mirrors a libdcp checkpoint when --spec names the output of
`dcp inspect --json` (same keys, dtypes and shapes, including the two bytes
items as Python bytes objects); without --spec a mix of the same dtypes adding
up to about --size bytes is built. Tensor contents are pseudo-random bytes, a
function of (--seed, key), so that a load can be checked byte for byte.

Run with Debian's system python (/usr/bin/python3, package python3-torch).
PyTorch 1.13's FileSystemWriter has no thread_count: it writes on the calling
thread only; single_file_per_rank=False (its default) writes one file per
item, --single-file one file in all. Both fsync every data file (sync_files).

Usage:
  torch_dcp.py save --dir DIR [--spec SPEC.json | --size 1G] [--single-file]
  torch_dcp.py load --dir DIR [--spec SPEC.json | --size 1G] [--check]
"""
import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time


def _import_torch_dcp():
    """Imports torch.distributed._shard.checkpoint on Python 3.11.

    PyTorch 1.13 declares a dataclass field whose default is the
    TensorProperties dataclass instance; Python 3.11 refuses unhashable
    defaults (ValueError: mutable default). Making that one class hashable
    (unsafe_hash=True) before the import lets it load; nothing else changes.
    """
    orig = dataclasses.dataclass

    def patched(cls=None, **kw):
        def wrap(c):
            if c.__name__ == "TensorProperties":
                kw2 = dict(kw)
                kw2["unsafe_hash"] = True
                return orig(**kw2)(c)
            return orig(**kw)(c)

        return wrap if cls is None else wrap(cls)

    dataclasses.dataclass = patched
    try:
        import torch.distributed._shard.checkpoint as tdcp
    finally:
        dataclasses.dataclass = orig
    return tdcp


import torch  # noqa: E402  (after the helper's definition, before its use)

tdcp = _import_torch_dcp()

DTYPES = {
    "bf16": torch.bfloat16,
    "f16": torch.float16,
    "f32": torch.float32,
    "f64": torch.float64,
    "i8": torch.int8,
    "u8": torch.uint8,
    "i16": torch.int16,
    "i32": torch.int32,
    "i64": torch.int64,
    "bool": torch.bool,
}

POOL_BYTES = 16 << 20  # random bytes tiled over every tensor


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = s.strip().upper().rstrip("B").rstrip("I")
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def spec_from_inspect(path):
    """[(key, kind, dtype name or None, shape or nbytes)] from `dcp inspect --json`."""
    with open(path) as f:
        md = json.load(f)
    items = []
    for it in md["items"]:
        if it["type"] == "tensor":
            if it["dtype"] not in DTYPES:
                sys.exit(f"torch_dcp.py: {path}: key {it['key']} has dtype {it['dtype']}, "
                         f"which this script does not map to a torch dtype")
            items.append((it["key"], "tensor", it["dtype"], list(it["shape"])))
        else:
            length = sum(c["length"] for c in it["chunks"])
            items.append((it["key"], "bytes", None, length))
    return items


def spec_default(size, ntensors):
    """About `size` bytes in `ntensors` 2-D tensors cycling through the dtypes."""
    names = ["bf16", "f32", "f16", "bf16", "f64", "i64", "i32", "i8", "u8", "bool"]
    weights = [4, 2, 3, 4, 0.05, 0.2, 0.2, 0.3, 0.3, 0.1]
    w = [weights[i % len(weights)] for i in range(ntensors)]
    items = []
    for i in range(ntensors):
        name = names[i % len(names)]
        es = torch.tensor([], dtype=DTYPES[name]).element_size()
        n = max(1, int(size * w[i] / sum(w)) // es)
        cols = max(1, int(n ** 0.5))
        items.append((f"model.t{i}.{name}", "tensor", name, [max(1, n // cols), cols]))
    return items


def pool(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (POOL_BYTES,), dtype=torch.uint8, generator=g)


def key_offset(key, seed):
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "little") % POOL_BYTES


def fill_bytes(dst_u8, key, seed, rnd):
    """Writes the pattern of (seed, key) into a flat uint8 view."""
    n = dst_u8.numel()
    off = key_offset(key, seed)
    done = 0
    while done < n:
        k = min(n - done, POOL_BYTES - off)
        dst_u8[done:done + k].copy_(rnd[off:off + k])
        done += k
        off = 0


def u8_view(t):
    return t.reshape(-1).view(torch.uint8) if t.dim() > 0 else t.reshape(1).view(torch.uint8)


def build(items, seed, for_load):
    """The state dict; for a load, destinations are allocated and touched (zeroed)."""
    rnd = pool(seed)
    sd, total = {}, 0
    for key, kind, dtype, shape in items:
        if kind == "bytes":
            sd[key] = b"\0" * shape if for_load else pattern_bytes(key, seed, shape, rnd)
            total += shape
            continue
        t = torch.empty(shape, dtype=DTYPES[dtype])
        if for_load:
            u8_view(t).fill_(0xA5 if dtype != "bool" else 0)
        elif dtype == "bool":
            # Only 0 and 1 are valid bools.
            u8 = u8_view(t)
            fill_bytes(u8, key, seed, rnd)
            u8.bitwise_and_(1)
        else:
            fill_bytes(u8_view(t), key, seed, rnd)
        sd[key] = t
        total += t.numel() * t.element_size()
    return sd, total, rnd


def pattern_bytes(key, seed, n, rnd):
    out = torch.empty(n, dtype=torch.uint8)
    fill_bytes(out, key, seed, rnd)
    return bytes(out.numpy().tobytes())


def check(items, sd, seed, rnd):
    """Number of keys whose loaded bytes differ from the pattern."""
    bad = 0
    for key, kind, dtype, shape in items:
        v = sd[key]
        if kind == "bytes":
            ok = isinstance(v, bytes) and v == pattern_bytes(key, seed, shape, rnd)
        else:
            want = torch.empty(shape, dtype=DTYPES[dtype])
            u8 = u8_view(want)
            fill_bytes(u8, key, seed, rnd)
            if dtype == "bool":
                u8.bitwise_and_(1)
            ok = torch.equal(u8_view(v), u8)
        if not ok:
            print(f"torch_dcp.py: key {key}: loaded data differs from what was saved",
                  file=sys.stderr)
            bad += 1
    return bad


def dir_bytes(path):
    n, files = 0, 0
    for e in os.scandir(path):
        if e.is_file():
            n += e.stat().st_size
            files += 1
    return n, files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["save", "load"])
    ap.add_argument("--dir", required=True, help="checkpoint directory (save: must not exist)")
    ap.add_argument("--spec", help="`dcp inspect --json` output to mirror")
    ap.add_argument("--size", default="1G", help="total bytes without --spec (K, M, G)")
    ap.add_argument("--tensors", type=int, default=24, help="tensors without --spec")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--single-file", action="store_true",
                    help="save: FileSystemWriter(single_file_per_rank=True)")
    ap.add_argument("--check", action="store_true", help="load: compare every byte (untimed)")
    a = ap.parse_args()

    items = spec_from_inspect(a.spec) if a.spec else spec_default(parse_size(a.size), a.tensors)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    if a.command == "save":
        if os.path.exists(a.dir):
            sys.exit(f"torch_dcp.py: {a.dir} exists: give a fresh directory to save into")
        sd, total, _ = build(items, a.seed, for_load=False)
        writer = tdcp.FileSystemWriter(a.dir, single_file_per_rank=a.single_file, sync_files=True)
        t0 = time.perf_counter()
        tdcp.save_state_dict(sd, writer, no_dist=True)
        secs = time.perf_counter() - t0
        stored, files = dir_bytes(a.dir)
        res = {"command": "save", "single_file_per_rank": a.single_file}
    else:
        sd, total, rnd = build(items, a.seed, for_load=True)
        reader = tdcp.FileSystemReader(a.dir)
        t0 = time.perf_counter()
        tdcp.load_state_dict(sd, reader, no_dist=True)
        secs = time.perf_counter() - t0
        stored, files = dir_bytes(a.dir)
        res = {"command": "load"}
        if a.check:
            res["mismatched_keys"] = check(items, sd, a.seed, rnd)
    res.update({
        "dir": a.dir,
        "torch": torch.__version__,
        "tensors": sum(1 for i in items if i[1] == "tensor"),
        "bytes_items": sum(1 for i in items if i[1] == "bytes"),
        "bytes": total,
        "stored_bytes": stored,
        "files": files,
        "seconds": secs,
        "bytes_per_second": total / secs if secs > 0 else 0.0,
    })
    print(json.dumps(res))
    return 1 if res.get("mismatched_keys") else 0


if __name__ == "__main__":
    sys.exit(main())
