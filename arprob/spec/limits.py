"""The memory budget every size check compares against, and the checks the declaration
layer makes itself (a spec file can declare any shape: its element count is refused before
the layout exists). The estimates of models live in ``arprob.budget``.
"""

from __future__ import annotations

import math
import os
import re

from ..errors import SpecError

ENV_VAR = "ARPROB_MEMORY_BUDGET"
#: host bytes per element of a ``Spec``'s own arrays (layout and steps: about a dozen
#: int64 vectors of length D, with room for temporaries)
SPEC_BYTES_PER_ELEMENT = 256

_explicit_budget: int | None = None


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


# ------------------------------------------------------------------- the budget
def parse_bytes(value: int | float | str) -> int:
    """Bytes from ``1e9``, ``"8GB"``, ``"512 MiB"`` (decimal and binary units)."""
    if isinstance(value, bool):
        raise ValueError(f"Expected a number of bytes; got {value!r}.")
    if isinstance(value, (int, float)):
        out = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"Expected a number of bytes such as 8000000000, '8GB' or '512MiB'; got {value!r}.")
        out = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"Expected a positive number of bytes; got {value!r}.")
    return int(out)


def available_memory() -> int:
    """Bytes the machine can give now: ``MemAvailable`` (Linux), else free pages x page size."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return 8 * 2**30


#: the share of physical memory the default budget takes (the rest: the OS, JAX, the caller)
PHYSICAL_FRACTION = 0.5


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return None


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)."""
    candidates = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0":  # v2: its own folder's limit first
                    candidates.insert(0, f"/sys/fs/cgroup{parts[2]}/memory.max")
    except OSError:
        pass
    for file in candidates:
        try:
            with open(file) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or v1's huge number: no limit
            return int(text)
    return None


def _address_space_limit() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        return None
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else int(soft)


def machine_budget() -> int:
    """The default budget: the smallest of ``PHYSICAL_FRACTION`` of physical memory, the
    cgroup's memory limit and ``RLIMIT_AS`` (``ulimit -v``). It depends on the machine and
    its limits only, not on the memory free at the moment, so it is the same run to run."""
    limits = [_cgroup_limit(), _address_space_limit()]
    physical = _physical_memory()
    if physical is not None:
        limits.append(int(PHYSICAL_FRACTION * physical))
    limits = [v for v in limits if v is not None and v > 0]
    return min(limits) if limits else 8 * 2**30


def set_memory_budget(nbytes: int | float | str | None) -> None:
    """Set the memory budget of every check (``None``: back to the environment / machine default)."""
    global _explicit_budget
    _explicit_budget = None if nbytes is None else parse_bytes(nbytes)


def budget_is_set() -> bool:
    """Whether the budget was set explicitly (``set_memory_budget`` or the environment)."""
    return _explicit_budget is not None or bool(os.environ.get(ENV_VAR))


def memory_budget() -> int:
    """The budget in bytes: ``set_memory_budget``, else ``$ARPROB_MEMORY_BUDGET``, else
    ``machine_budget()`` (stable run to run)."""
    if _explicit_budget is not None:
        return _explicit_budget
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return parse_bytes(env)
        except ValueError as err:
            raise SpecError(f"${ENV_VAR}: {err}") from None
    return machine_budget()


def format_bytes(n: float) -> str:
    if abs(n) >= 1e100:  # a crafted size: too large for a float's digits
        return f"more than {len(str(int(n))) - 1} decimal digits of bytes"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def how_to_raise() -> str:
    return f"raise it with ar.set_memory_budget(bytes) or ${ENV_VAR}"


def check_num_elements(num_elements: int, where: str = "spec") -> None:
    """Refuse a spec whose ``D`` elements alone (layout and steps, ``SPEC_BYTES_PER_ELEMENT``
    each) exceed the budget, before its arrays exist (a file can declare any shape)."""
    budget = memory_budget()
    need = num_elements * SPEC_BYTES_PER_ELEMENT
    if need > budget:
        raise SpecError(
            f"{where}: {num_elements if num_elements < 10**30 else 'more than 10**30'} elements need about {format_bytes(need)} for the layout alone, over the "
            f"memory budget of {format_bytes(budget)}; {how_to_raise()}."
        )
