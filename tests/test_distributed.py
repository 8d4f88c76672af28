"""Multi-process runs: 2 processes on localhost through ``jax.distributed`` (CPU devices,
gloo collectives, coordinator on 127.0.0.1) train, score and checkpoint as one process does.

One launch of two workers does two runs with ``devices="all"`` (one CPU device per
process, so a 2-device mesh across processes): a fresh 6-step fit that checkpoints, then
scores with sharded ``evaluate``; and a resume, to step 12, of a checkpoint written here by
a single process. This process checks the parameters and scores against single-process
runs of the same global batch, that only process 0 wrote a checkpoint, and resumes the
2-process checkpoint alone (2 -> 1 processes; the workers did 1 -> 2).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import arprob as ar

WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    from arprob.sharding import initialize_distributed
    initialize_distributed(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    import equinox as eqx, numpy as np, optax
    import arprob as ar
    import arprob.checkpoint as ck

    assert jax.process_count() == 2 and len(jax.devices()) == 2 and len(jax.local_devices()) == 1
    writes = []
    write = ck.atomic_write_bytes
    ck.atomic_write_bytes = lambda path, data: (writes.append(str(path)), write(path, data))[1]
    data = dict(np.load(f"{out}/data.npz"))
    model = ar.compile(ar.Spec(variables=(ar.Binary("img", shape=(4, 4)),)))
    kw = dict(batch_size=16, seed=0, optimizer=optax.adam(0.05), progress=False, devices="all")
    six = ar.fit(model, data, num_steps=6, checkpoint=f"{out}/two6.ckpt", checkpoint_every=3, **kw)
    ev = ar.evaluate(six.model, data, batch_size=32, devices="all", return_log_prob=True)
    twelve = ar.fit(model, data, num_steps=12, checkpoint=f"{out}/two12.ckpt", resume=f"{out}/one6.ckpt", **kw)
    leaves = lambda m: [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(m, eqx.is_inexact_array))]
    np.savez(f"{out}/proc{pid}.npz", log_prob=ev.log_prob, nll=ev.nll,
             **{f"six{i}": a for i, a in enumerate(leaves(six.model))},
             **{f"twelve{i}": a for i, a in enumerate(leaves(twelve.model))})
    with open(f"{out}/proc{pid}.json", "w") as f:
        json.dump({"writes": writes, "loss6": six.history["loss"], "loss12": twelve.history["loss"]}, f)
    """
)
SPEC = ar.Spec(variables=(ar.Binary("img", shape=(4, 4)),))
KW = dict(batch_size=16, seed=0, optimizer=optax.adam(0.05), progress=False)
TOL = dict(rtol=1e-5, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leaves(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Single-process references here, then one launch of the two workers."""
    out = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(0)
    data = {"img": (rng.random((96, 4, 4)) < np.linspace(0.1, 0.9, 16).reshape(4, 4)).astype(np.int64)}
    np.savez(out / "data.npz", **data)
    model = ar.compile(SPEC)
    six = ar.fit(model, data, num_steps=6, checkpoint=out / "one6.ckpt", checkpoint_every=3, **KW)
    twelve = ar.fit(model, data, num_steps=12, **KW)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device per process
    env["JAX_PLATFORMS"] = "cpu"
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(i), str(port), str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    workers = [(dict(np.load(out / f"proc{i}.npz")), json.loads((out / f"proc{i}.json").read_text()))
               for i in range(2)]
    return dict(out=out, data=data, model=model, six=six, twelve=twelve, workers=workers)


def test_two_processes_train_to_the_single_process_parameters(runs):
    """``fit(devices="all")`` over 2 processes, global batch 16: the same losses and
    parameters as one process with batch 16 (up to the order of float sums), on both processes."""
    for arrays, info in runs["workers"]:
        np.testing.assert_allclose(info["loss6"], runs["six"].history["loss"], **TOL)
        for i, ref in enumerate(_leaves(runs["six"].model)):
            np.testing.assert_allclose(arrays[f"six{i}"], ref, **TOL)


def test_sharded_scoring_gives_the_same_numbers(runs):
    """``evaluate(devices="all")`` across the processes: every process gets every record's
    log p (gathered), equal to single-process scoring of the same model."""
    ref = ar.evaluate(runs["six"].model, runs["data"], batch_size=32, return_log_prob=True)
    for arrays, _ in runs["workers"]:
        np.testing.assert_allclose(arrays["log_prob"], ref.log_prob, **TOL)
        assert abs(float(arrays["nll"]) - ref.nll) <= 1e-5 * abs(ref.nll)


def test_only_process_zero_writes_checkpoints(runs):
    (_, first), (_, second) = runs["workers"]
    assert second["writes"] == []
    assert sorted(set(first["writes"])) == sorted(str(runs["out"] / n) for n in ("two12.ckpt", "two6.ckpt"))
    assert ar.checkpoint.read_header(runs["out"] / "two6.ckpt")["step"] == 6


def test_resume_under_another_process_count(runs):
    """1 -> 2: the workers resumed a single-process checkpoint at step 6 to step 12;
    2 -> 1: this process resumes the workers' step-6 checkpoint to step 12. Both end at
    the parameters of an uninterrupted single-process run of 12 steps."""
    full = _leaves(runs["twelve"].model)
    for arrays, info in runs["workers"]:
        np.testing.assert_allclose(info["loss12"], runs["twelve"].history["loss"], **TOL)
        for i, ref in enumerate(full):
            np.testing.assert_allclose(arrays[f"twelve{i}"], ref, **TOL)
    alone = ar.fit(runs["model"], runs["data"], num_steps=12, checkpoint=runs["out"] / "alone12.ckpt",
                   resume=runs["out"] / "two6.ckpt", **KW)
    np.testing.assert_allclose(alone.history["loss"], runs["twelve"].history["loss"], **TOL)
    for got, ref in zip(_leaves(alone.model), full):
        np.testing.assert_allclose(got, ref, **TOL)


def test_a_second_run_on_the_same_checkpoint_refuses_at_start(tmp_path):
    """A live process of this host holds ``m.ckpt.lock``: ``fit`` refuses before training,
    naming it; once that process is gone its stale lock is taken over, and released at the end."""
    path, lock = tmp_path / "m.ckpt", tmp_path / "m.ckpt.lock"
    model = ar.compile(SPEC)
    data = {"img": np.random.default_rng(1).integers(0, 2, (32, 4, 4))}
    owner = subprocess.Popen(["sleep", "60"])
    try:
        lock.write_text(json.dumps({"pid": owner.pid, "host": socket.gethostname(), "started": 0.0}))
        with pytest.raises(ar.CheckpointError, match=f"in use by another run \\(process {owner.pid} on host"):
            ar.fit(model, data, num_steps=2, checkpoint=path, **KW)
        assert not path.exists()
    finally:
        owner.kill()
        owner.wait()
    ar.fit(model, data, num_steps=2, checkpoint=path, **KW)
    assert ar.checkpoint.read_header(path)["step"] == 2 and not lock.exists()


def test_interleaved_writers_never_leave_a_damaged_file(tmp_path):
    """Two threads rewrite one container file 40 times each while a third reads it: every
    read is one writer's complete file (atomic rename), never a mix or a truncation."""
    import threading

    from arprob.checkpoint import read_verified, write_verified

    path = tmp_path / "c.ckpt"
    payloads = {w: bytes([w]) * 200_000 for w in (1, 2)}
    write_verified(path, {"format": "t", "writer": 1, "segments": {"a": 200_000}}, [payloads[1]])
    seen, stop = set(), threading.Event()

    def write(w):
        for _ in range(40):
            write_verified(path, {"format": "t", "writer": w, "segments": {"a": 200_000}}, [payloads[w]])

    def read():
        while not stop.is_set():
            header, payload = read_verified(path, "t", ("a",))
            assert payload == payloads[header["writer"]]
            seen.add(header["writer"])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in (1, 2)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert seen and not list(tmp_path.glob(".c.ckpt.*.tmp"))
