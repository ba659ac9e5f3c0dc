"""Fingerprints of states, a compact seen set and a frontier that spills to disk.

The explorer's fingerprint mode keeps, for every state it has met, only a 64-bit fingerprint
(in `FingerprintTable`, with the state's number), and for the states still to expand a compact
record (`StateCodec`) in a `SpillBuffer`, which moves to a temporary file past a memory budget.

A state is a tuple of fields (a NamedTuple), cut into a few parts (`StateCodec`). Each distinct
value of a part gets a 64-bit hash: BLAKE2b (Python's `hashlib`) of a serialisation of the value
that follows Python equality (tuples by their items whatever their class, `True` as `1`), keyed
by the part. A state's record is the tuple of its parts' hashes, and its fingerprint their sum
modulo 2^64 (Zobrist hashing): for two different states the difference of their fingerprints is
a sum in which some part's hash appears once, so they collide with probability 2^-64, as for one
hash of the whole state. A part's hash is worked out once per distinct value and then found by
one dictionary look-up. Since the hashes come from the values alone, every process
(`checker.engines.workers`) computes the same fingerprints and records.
"""

from __future__ import annotations

import hashlib
import os
import resource
import tempfile
from array import array
from collections.abc import Iterator
from operator import itemgetter
from typing import Any

import numpy as np

MASK = (1 << 64) - 1
_EMPTY = 0  # a free slot in `FingerprintTable`; the fingerprint 0 is stored as 1


def collision_probability(distinct: int, generated: int) -> float:
    """The chance that some state was taken for one met before because their fingerprints
    were equal, as TLC estimates it ("calculated (optimistic)"): each of the `generated -
    distinct` times a generated state was found already seen, it matched one of at most
    `distinct` fingerprints by chance with probability `distinct / 2^64`."""
    return distinct * max(generated - distinct, 0) / 2.0 ** 64


def serialise(value: Any, memo: dict) -> bytes:
    """Bytes that are equal exactly when values are equal (`==`), up to the collisions of a
    128-bit hash, for the values states hold: None, booleans, integers, integral floats,
    strings and tuples of them (of any tuple class: a NamedTuple equals the plain tuple of
    its items). A tuple's items are serialised and hashed (BLAKE2b, 16 bytes), so a tuple
    inside a value costs 16 bytes whatever its size; `memo` keeps those hashes of inner
    tuples (a model's records repeat across the values that hold them)."""
    if isinstance(value, tuple):
        return b"(" + b"".join([_item(v, memo) for v in value]) + b")"
    return _scalar(value)


def _item(value: Any, memo: dict) -> bytes:
    if isinstance(value, tuple):
        done = memo.get(value)
        if done is None:
            done = memo[value] = b"t" + hashlib.blake2b(serialise(value, memo),
                                                        digest_size=16).digest()
        return done
    return _scalar(value)


def _scalar(value: Any) -> bytes:
    if value is None:
        return b"n"
    kind = type(value)
    if kind is bool or kind is int:
        return b"i%d;" % value
    if kind is str:
        data = value.encode("utf-8", "surrogatepass")
        return b"s%d:%s" % (len(data), data)
    if kind is float:
        return b"i%d;" % int(value) if value.is_integer() else b"f%r;" % value
    raise TypeError(f"fingerprint mode cannot encode a {kind.__name__} in a state "
                    "(states must be tuples of None, booleans, numbers, strings and tuples); "
                    "use the exact mode")


class StateCodec:
    """Records and fingerprints of the states of one tuple class.

    A state is cut into parts: each field whose value hashes by identity (a part the model
    shares between states and makes once per distinct value, such as the flow model's
    `packages` and `callers`) is a part of its own, and the other fields together are one
    more (`rest`, first). Each distinct value of a part gets a 64-bit hash, worked out once
    (BLAKE2b of `serialise`, keyed by the part); a state's record is the tuple of its parts'
    hashes and its fingerprint their sum modulo 2^64. A state space holds far fewer distinct
    parts than states (the flow model's default configuration: 19,639 states, 605 distinct
    rests, 24 callers and 899 packages values), so the tables stay small, a record is a few
    integers, and `decode(record)` builds the state from the very values met before (the
    parts a model shares stay shared)."""

    def __init__(self, state_type: type, width: int, shared: tuple[int, ...] = ()) -> None:
        self.state_type = state_type
        self.width = width
        self.shared = shared
        self.rest_fields = tuple(i for i in range(width) if i not in shared)
        getters = [itemgetter(i) for i in shared]
        if self.rest_fields:
            rest = self.rest_fields
            getters.insert(0, itemgetter(*rest) if len(rest) > 1 else lambda s: (s[rest[0]],))
        self.getters = getters  # the parts of a state, in record order
        self.parts = len(getters)
        self._suffix = shared == tuple(range(width - len(shared), width))
        self._memo: dict = {}
        self.hashes: list[dict] = [{} for _ in getters]  # per part: value -> hash
        self.values: list[dict] = [{} for _ in getters]  # per part: hash -> value
        self._keys = [b"part-%d" % i for i in range(len(getters))]

    @classmethod
    def for_state(cls, state) -> StateCodec:
        if not isinstance(state, tuple):
            raise TypeError(f"fingerprint mode needs states that are tuples, not "
                            f"{type(state).__name__}; use the exact mode")
        shared = tuple(i for i, value in enumerate(state) if isinstance(value, tuple)
                       and type(value).__hash__ is object.__hash__)
        return cls(type(state), len(state), shared)

    def part_hash(self, part: int, value) -> int:
        """The hash of a part's value, worked out on first use."""
        digest = hashlib.blake2b(serialise(value, self._memo), digest_size=8,
                                 person=self._keys[part]).digest()
        code = int.from_bytes(digest, "little")
        self.hashes[part][value] = code
        self.values[part].setdefault(code, value)
        return code

    def check(self, state) -> None:
        if type(state) is not self.state_type or len(state) != self.width:
            raise TypeError(f"fingerprint mode needs every state to be a {self.width}-field "
                            f"{self.state_type.__name__}, met {type(state).__name__}")

    def record(self, state) -> list[int]:
        self.check(state)
        out = []
        for part, (getter, table) in enumerate(zip(self.getters, self.hashes, strict=True)):
            value = getter(state)
            code = table.get(value)
            out.append(self.part_hash(part, value) if code is None else code)
        return out

    def decode(self, record) -> Any:
        values = [table[code] for table, code in zip(self.values, record, strict=True)]
        if not self.rest_fields:
            fields = values
        elif self._suffix:
            fields = values[0] + tuple(values[1:])
        else:
            fields = [None] * self.width
            for index, value in zip(self.rest_fields, values[0], strict=True):
                fields[index] = value
            for index, value in zip(self.shared, values[1:], strict=True):
                fields[index] = value
        return tuple.__new__(self.state_type, fields)

    def forget(self, keep: list[set[int]]) -> None:
        """Keep only the part values whose hashes are in `keep` (per part: those the records
        still to decode hold) and drop the serialisation memo, so that the tables follow the
        frontier rather than the space. A value met again is hashed again, to the same hash.
        The tables are emptied in place (callers may hold their bound methods)."""
        for part, codes in enumerate(keep):
            values, hashes = self.values[part], self.hashes[part]
            kept = {code: values[code] for code in codes}
            values.clear()
            values.update(kept)
            hashes.clear()
            hashes.update((value, code) for code, value in kept.items())
        self._memo.clear()

    def learn(self, part: int, code: int, value) -> None:
        """A part's value another process met, with its hash (`checker.engines.workers`)."""
        self.values[part].setdefault(code, value)
        self.hashes[part].setdefault(value, code)


MIN_DEFAULT_BUDGET = 128 << 20
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def default_memory_budget() -> int:
    """A run's memory budget when none is given: an eighth of the memory this process may use
    (the machine's, or less where its container's cgroup or its address-space limit says so),
    at least `MIN_DEFAULT_BUDGET`. The frontier being read, the frontier being written and the
    model's memo tables each stay within the budget, so a run stays within about three eighths
    and its seen set. Only speed and memory depend on it, never a result: a budget too small
    makes the model work out again what it forgot; workers split it."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system that says
        memory = 4 << 30
    for path in CGROUP_LIMITS:
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit():
            memory = min(memory, int(text))
    address_space = resource.getrlimit(resource.RLIMIT_AS)[0]
    if address_space != resource.RLIM_INFINITY:
        memory = min(memory, address_space)
    return max(memory // 8, MIN_DEFAULT_BUDGET)


# What one entry of a model's memo tables holds on average, with the values it keeps alive
# (measured on the flow model, 3 packages x 3 CPUs: 650,000 entries in 740 MB).
MEMO_ENTRY_BYTES = 1024


class MemoBudget:
    """A model's memo tables held to a memory budget (`MEMO_ENTRY_BYTES` an entry): `over()`
    says when they have outgrown it and the model should `forget`. A model without
    `memo_entries` and `forget` never is."""

    def __init__(self, model, budget: int) -> None:
        self.entries = getattr(model, "memo_entries", None) if hasattr(model, "forget") \
            else None
        self.limit = budget // MEMO_ENTRY_BYTES

    def over(self) -> bool:
        return self.entries is not None and self.entries() > self.limit


def keep_frontier_values(codec: StateCodec, frontier: SpillBuffer) -> None:
    """Empty the codec's part tables but for the values the frontier's records refer to: what
    is left is what the next level needs."""
    keep: list[set[int]] = [set() for _ in range(codec.parts)]
    for record in frontier:
        for codes, code in zip(keep, record, strict=True):
            codes.add(code)
    codec.forget(keep)


def fingerprint(record) -> int:
    """The fingerprint of a state's record: its fields' hashes summed modulo 2^64, never 0."""
    return (sum(record) & MASK) or 1


class FingerprintTable:
    """A set of 64-bit fingerprints, each with a 32-bit number: open addressing with linear
    probing in two flat arrays (8 + 4 bytes a slot), at most four fifths full, so 15 to 30
    bytes a fingerprint. Slots are picked by the low bits, so a caller spreading
    fingerprints over several tables by their value should use high bits (`owner`)."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        size = 1 << max(capacity - 1, 15).bit_length()
        self._allocate(size)
        self.count = 0

    def _allocate(self, size: int) -> None:
        self.keys = array("Q", bytes(8 * size))
        self.ids = array("I", bytes(4 * size))
        self.mask = size - 1
        self.limit = size * 4 // 5

    @property
    def nbytes(self) -> int:
        return len(self.keys) * 12

    def __len__(self) -> int:
        return self.count

    def _slot(self, fp: int) -> int:
        """The slot holding `fp`, or the free slot where it would go (linear probing)."""
        keys, mask = self.keys, self.mask
        slot = fp & mask
        key = keys[slot]
        while key and key != fp:
            slot = (slot + 1) & mask
            key = keys[slot]
        return slot

    def get(self, fp: int, default: int | None = None) -> int | None:
        slot = self._slot(fp)
        return self.ids[slot] if self.keys[slot] else default

    def setdefault(self, fp: int, ident: int) -> int:
        """The number stored with `fp`, storing `ident` first if `fp` is new."""
        slot = self._slot(fp)
        keys = self.keys
        if keys[slot]:
            return self.ids[slot]
        keys[slot] = fp
        self.ids[slot] = ident
        self.count += 1
        if self.count > self.limit:
            self._grow()
        return ident

    # The batch calls below do a round's look-ups and stores with numpy on views of the same
    # two arrays: one Python call per probing step of the whole batch, not per fingerprint.

    def _views(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.keys, np.uint64), np.frombuffer(self.ids, np.uint32)

    def _slots(self, keys: np.ndarray, fps: np.ndarray) -> np.ndarray:
        """Per fingerprint, the slot holding it or the free slot where it would go."""
        mask = np.uint64(self.mask)
        slots = fps & mask
        todo = np.flatnonzero(keys[slots] != fps)
        while todo.size:
            held = keys[slots[todo]]
            todo = todo[(held != 0) & (held != fps[todo])]
            slots[todo] = (slots[todo] + np.uint64(1)) & mask
        return slots

    def get_many(self, fps, default: int) -> np.ndarray:
        """`get` of each fingerprint of a batch, as 64-bit integers."""
        fps = np.asarray(fps, np.uint64)
        keys, ids = self._views()
        slots = self._slots(keys, fps)
        held = keys[slots] != 0
        out = np.full(len(fps), default, np.uint64)
        out[held] = ids[slots[held]]
        return out

    def add_many(self, fps, idents) -> None:
        """`setdefault` of each fingerprint of a batch with its number, in batch order."""
        fps, idents = np.asarray(fps, np.uint64), np.asarray(idents, np.uint32)
        while self.count + len(fps) > self.limit:
            self._grow()
        keys, ids = self._views()
        while fps.size:
            slots = self._slots(keys, fps)
            free = keys[slots] == 0  # the others are stored already: kept as they are
            slots, fps, idents = slots[free], fps[free], idents[free]
            # where several want one free slot, the first in the batch takes it and the
            # others probe again (one of them may be its duplicate)
            _, first = np.unique(slots, return_index=True)
            keys[slots[first]] = fps[first]
            ids[slots[first]] = idents[first]
            self.count += len(first)
            rest = np.ones(len(fps), bool)
            rest[first] = False
            fps, idents = fps[rest], idents[rest]

    def _grow(self) -> None:
        old_keys, old_ids = self._views()
        used = old_keys != 0
        fps, idents = old_keys[used], old_ids[used]
        self._allocate(len(self.keys) * 2)
        self.count = 0
        self.add_many(fps, idents)

    def items(self) -> Iterator[tuple[int, int]]:
        for fp, ident in zip(self.keys, self.ids, strict=True):
            if fp:
                yield fp, ident


class SpillBuffer:
    """Fixed-width records of unsigned 64-bit integers, appended and then read once in order.
    Past `budget` bytes in memory the records move to an unnamed temporary file (in `folder`,
    or the system's), which is gone once the buffer is closed or collected."""

    CHUNK = 1 << 16  # integers written to disk at a time

    def __init__(self, width: int, budget: int, folder: str | None = None) -> None:
        self.width = width
        self.budget = max(budget, 8 * width)
        self.folder = folder
        self._memory = array("Q")
        self._file = None
        self._on_disk = 0  # integers in the file
        self.spilled_bytes = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        return len(self._memory) * 8

    def append(self, record) -> None:
        self._memory.extend(record)
        self.count += 1
        if len(self._memory) * 8 > self.budget:
            self._spill()

    def extend(self, records: np.ndarray) -> None:
        """`append` of each row of a 2-D array, a chunk at a time."""
        step = max(self.CHUNK // self.width, 1)
        for start in range(0, len(records), step):
            chunk = records[start:start + step]
            self._memory.frombytes(chunk.tobytes())
            self.count += len(chunk)
            if len(self._memory) * 8 > self.budget:
                self._spill()

    def _spill(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="tdx-frontier-", dir=self.folder)
        self._memory.tofile(self._file)
        self._on_disk += len(self._memory)
        self.spilled_bytes += len(self._memory) * 8
        self._memory = array("Q")

    def __iter__(self) -> Iterator[array]:
        width = self.width
        if self._file is not None:
            self._file.seek(0)
            step = max(self.CHUNK // width, 1) * width
            left = self._on_disk
            while left:
                chunk = array("Q")
                chunk.fromfile(self._file, min(step, left))
                left -= len(chunk)
                for start in range(0, len(chunk), width):
                    yield chunk[start:start + width]
        memory = self._memory
        for start in range(0, len(memory), width):
            yield memory[start:start + width]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = array("Q")


def spill_folder(path: str | None) -> str | None:
    """The folder for spilled frontiers, checked (None: the system's temporary folder)."""
    if path is None:
        return None
    if not os.path.isdir(path):
        raise ValueError(f"spill folder {path}: not a folder")
    if not os.access(path, os.W_OK):
        raise ValueError(f"spill folder {path}: not writable")
    return path
