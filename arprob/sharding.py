"""Data parallelism through ``jax.sharding``: batch split over a mesh, parameters replicated.

A one-axis ``Mesh`` named ``"data"`` over the chosen devices; every batch is placed with
``NamedSharding(mesh, P("data"))`` (row ``i`` of a batch of ``B`` on device
``i // (B / num_devices)``) and the parameters and optimizer state with
``NamedSharding(mesh, P())`` (a full copy on each device). ``jit`` then compiles the
ordinary single-device training step into an SPMD program whose mean loss and gradients
are all-reduced across devices, so the update equals the single-device update up to the
order of floating-point sums.

Several hosts: call ``initialize_distributed()`` at the start of the script on every host
(before any other JAX call); ``jax.devices()`` then lists the devices of all hosts, and
``devices="all"`` spans them. Every process must read the same data with the same seed:
each one builds the same global batch and places only the rows of its own devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

Devices = None | str | int | Sequence[jax.Device] | Mesh


def initialize_distributed(**kwargs) -> None:
    """Start ``jax.distributed`` for multi-host training (no-op when already started).

    On Slurm, Open MPI and Cloud TPU the arguments are detected; elsewhere pass
    ``coordinator_address="host:port"``, ``num_processes`` and ``process_id``
    (see ``jax.distributed.initialize``). Call it before any other JAX computation.
    """
    if jax.distributed.is_initialized():
        return
    jax.distributed.initialize(**kwargs)


def make_mesh(devices: Devices) -> Mesh | None:
    """The data mesh for ``devices``; ``None`` means one device, no mesh.

    **Arguments:**
        devices: ``None`` (the default device), ``"all"`` (every device of every process),
            ``k`` (the first ``k`` devices), a sequence of devices, or a ``Mesh`` whose
            first axis is named ``"data"``.
    """
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if devices.axis_names != (DATA_AXIS,):
            raise ValueError(f"Expected a mesh with the single axis {DATA_AXIS!r}; got axes {devices.axis_names}.")
        return devices
    available = jax.devices()
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"Expected devices='all', an integer, a list of devices or a Mesh; got {devices!r}.")
        chosen = available
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"Expected 1 <= devices <= {len(available)} (the devices JAX sees); got {devices}.")
        chosen = available[: int(devices)]
    else:
        chosen = list(devices)
        if not chosen or not all(isinstance(d, jax.Device) for d in chosen):
            raise ValueError(f"Expected a non-empty list of jax devices; got {devices!r}.")
    return Mesh(np.asarray(chosen), (DATA_AXIS,))


def num_devices(mesh: Mesh | None) -> int:
    return 1 if mesh is None else int(mesh.devices.size)


def check_batch_size(batch_size: int, mesh: Mesh | None, what: str = "batch_size") -> None:
    """A sharded batch must split evenly over the devices."""
    k = num_devices(mesh)
    if batch_size % k:
        raise ValueError(
            f"{what}={batch_size} is not divisible by the {k} devices of the data mesh; "
            f"use a multiple of {k} (e.g. {max(k, batch_size - batch_size % k)})."
        )


def replicate(tree, mesh: Mesh | None):
    """Place every array leaf of ``tree`` on all devices of ``mesh`` (no-op without a mesh)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, P())
    arrays, static = eqx.partition(tree, eqx.is_array)
    arrays = jax.tree_util.tree_map(lambda a: _put_global(np.asarray(a), sharding), arrays)
    return eqx.combine(arrays, static)


def shard_batch(x: np.ndarray | None, mesh: Mesh | None):
    """A host batch ``(B, ...)`` -> a global array split along rows over ``mesh``."""
    if x is None:
        return None
    if mesh is None:
        return jax.numpy.asarray(x)
    check_batch_size(x.shape[0], mesh)
    return _put_global(np.asarray(x), NamedSharding(mesh, P(DATA_AXIS)))


def _put_global(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # Every process holds the same global array; each places the slices of its own devices.
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def is_main_process() -> bool:
    """True on process 0 (the one that writes checkpoints and shows progress)."""
    return jax.process_index() == 0
