"""What the soak watches besides answers: memory over time, and log files for party numbers.

Memory: the resident set (VmRSS) of a process and all its descendants, read
from /proc (children are found through each process's parent id in
/proc/<pid>/stat, so nothing beyond the standard library is needed), and
Redis's memory, split by key lifetime:

* keys with a TTL (webhook de-duplication records, per-binding quota
  counters, lock-outs, alert counters) go away by themselves, but only after
  their TTL, which can be longer than a soak (quota counters: 2 h and 2 days);
  their memory grows during any run shorter than that and proves nothing.
  It is reported, not judged;
* keys without a TTL (the route hash of each relay number) must stay in
  proportion to the bindings that are live: that is where a leak would show
  (entries of ended bindings the worker never purges, keys never deleted).
  Their memory is the sum of ``MEMORY USAGE`` (exact for small hashes, and
  free of the client-buffer noise in ``used_memory``).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of one process in KiB ((0, 0) if it is gone).

    RssAnon is the heap: the part a leak grows. The rest is mapped files
    (shared libraries, and prometheus_client's metric files, which grow
    with new label values)."""
    found = {"VmRSS:": 0, "RssAnon:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name = line.split(":", 1)[0] + ":"
            if name in found:
                found[name] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return found["VmRSS:"], found["RssAnon:"]


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the parent ids in /proc/*/stat."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat[stat.rfind(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def tree_by_pid(root: int) -> dict[int, tuple[int, int]]:
    """(VmRSS, RssAnon) in KiB of each process of ``root``'s tree."""
    return {pid: rss_kib(pid) for pid in descendants(root)}


def tree_rss_kib(root: int) -> tuple[int, int, int]:
    """(summed VmRSS, summed RssAnon, both in KiB; number of processes) of ``root``'s tree."""
    pids = descendants(root)
    sizes = [rss_kib(pid) for pid in pids]
    return sum(s[0] for s in sizes), sum(s[1] for s in sizes), len(pids)


def key_family(key: bytes) -> str:
    """A key's shape with relay numbers, sids and ids taken out (for the report)."""
    text = key.decode(errors="replace")
    text = re.sub(r"\{[^}]*\}", "{X}", text)
    text = re.sub(r"\+\d+", "X", text)
    text = re.sub(r"bd_[a-z0-9]+", "*", text)
    text = re.sub(r"[0-9a-f]{12,}", "*", text)
    return re.sub(r"(?<![a-z])[hd]?\d+\b", "*", text)


@dataclass(frozen=True)
class RedisSample:
    used_memory: int
    persistent_bytes: int  # keys without a TTL: MEMORY USAGE summed
    persistent_keys: int
    route_entries: int  # fields in the relay numbers' route hashes
    expiring_keys: int
    families: dict[str, int]  # key shape -> count
    cached_scripts: int


def sample_redis(client: Any) -> RedisSample:
    """One look at Redis: every key's TTL, and the size of those without one."""
    keys = list(client.scan_iter(count=2000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    ttls = pipe.execute() if keys else []
    persistent = [k for k, ttl in zip(keys, ttls, strict=True) if ttl == -1]
    pipe = client.pipeline(transaction=False)
    for key in persistent:
        pipe.memory_usage(key, samples=0)
        pipe.type(key)
    sizes = pipe.execute() if persistent else []
    route_hashes = [k for k, kind in zip(persistent, sizes[1::2], strict=True) if kind in (b"hash", "hash")]
    pipe = client.pipeline(transaction=False)
    for key in route_hashes:
        pipe.hlen(key)
    entries = sum(pipe.execute()) if route_hashes else 0
    info = client.info("memory")
    return RedisSample(
        used_memory=int(info["used_memory"]),
        persistent_bytes=sum(int(s or 0) for s in sizes[0::2]),
        persistent_keys=len(persistent),
        route_entries=int(entries),
        expiring_keys=len(keys) - len(persistent),
        families=dict(Counter(key_family(k) for k in keys)),
        cached_scripts=int(info.get("number_of_cached_scripts", 0)),
    )


def growth(values: list[float]) -> float | None:
    """Growth in % from the median of the middle third to the median of the last third.

    The first third is warm-up (imports, pools, caches, the live set filling
    up) and is skipped. None when there are too few samples to say.
    """
    if len(values) < 6:
        return None
    third = len(values) // 3
    middle = statistics.median(values[third : 2 * third])
    last = statistics.median(values[2 * third :])
    if middle <= 0:
        return None
    return 100.0 * (last - middle) / middle


# -- party numbers in logs ----------------------------------------------------------

# A run of digits with the separators people and programs put between them:
# "+1 (415) 555-0132", "415.555.0132", "14155550132".
_DIGIT_RUN = re.compile(rb"\d[\d ()+.\-]*\d")


def find_party_numbers(blob: bytes, wanted: Mapping[str, str]) -> Counter[str]:
    """Which numbers of ``wanted`` (national digits -> E.164, all +1) appear in
    ``blob``, in E.164 or any national form.

    Every run of digits and separators is reduced to its digits, and each
    10-digit window is looked up: one pass over the log whatever the number
    of party numbers (searching each form of thousands of numbers in turn
    would take minutes). The seven-digit local form is not searched: the
    soak's numbers share their exchange (555), so it would not tell them apart.
    """
    found: Counter[str] = Counter()
    for match in _DIGIT_RUN.finditer(blob):
        digits = re.sub(rb"\D", b"", match.group()).decode()
        for i in range(len(digits) - 9):
            number = wanted.get(digits[i : i + 10])
            if number is not None:
                found[number] += 1
    return found
