"""Data parallelism: 4 virtual CPU devices (in a subprocess) match one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arprob as ar
from arprob.sharding import check_batch_size, make_mesh

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, optax
    import arprob as ar
    from arprob.data import load_digits

    assert len(jax.devices()) == 4, jax.devices()
    train, test = load_digits()
    train, test = train[:, :4, :4], test[:, :4, :4]  # 16 pixels keep it quick
    spec = ar.Spec(variables=(ar.Binary("img", shape=(4, 4)),))
    model = ar.compile(spec)
    kw = dict(num_steps=25, batch_size=64, seed=0, optimizer=optax.adam(0.05))
    one = ar.fit(model, {"img": train}, **kw)
    four = ar.fit(model, {"img": train}, devices="all", checkpoint=sys.argv[1], **kw)
    leaves = lambda m: [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(m)]
    p_err = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(one.model), leaves(four.model)))
    ev1 = ar.evaluate(one.model, {"img": test}, batch_size=100, return_log_prob=True)
    ev4 = ar.evaluate(one.model, {"img": test}, batch_size=100, devices=4, return_log_prob=True)
    try:
        ar.fit(model, {"img": train}, num_steps=1, batch_size=30, devices=4)
        err = ""
    except ValueError as e:
        err = str(e)
    ck = ar.load_checkpoint(sys.argv[1], model)  # a sharded run's checkpoint loads on one device
    ck_err = max(float(np.max(np.abs(a - b))) for a, b in zip(leaves(ck.model), leaves(four.model)))
    print(json.dumps(dict(
        loss1=one.history["loss"], loss4=four.history["loss"], param_err=p_err,
        nll1=ev1.nll, nll4=ev4.nll, lp_err=float(np.max(np.abs(ev1.log_prob - ev4.log_prob))),
        n4=ev4.num_examples, error=err, ck_err=ck_err, out_devices=len(four.model.components[0].conditioner.weight.devices()),
    )))
    """
)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory) -> dict:
    ckpt = tmp_path_factory.mktemp("shard") / "four.ckpt"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ckpt)], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_four_devices_follow_the_one_device_trajectory(four_devices):
    r = four_devices
    assert len(r["loss4"]) == len(r["loss1"]) == 25
    np.testing.assert_allclose(r["loss4"], r["loss1"], rtol=1e-5)
    assert r["param_err"] < 1e-4
    assert r["ck_err"] == 0.0 and r["out_devices"] == 1  # the result is an ordinary one-device model


def test_sharded_scoring_equals_one_device(four_devices):
    r = four_devices
    assert r["n4"] == 397  # 397 rows: the last batch is padded to a multiple of 4 and the padding ignored
    assert r["nll4"] == pytest.approx(r["nll1"], rel=1e-6)
    assert r["lp_err"] < 1e-4


def test_indivisible_batch_is_a_clear_error(four_devices):
    assert "batch_size=30 is not divisible by the 4 devices" in four_devices["error"]


def test_mesh_options_in_process():
    assert make_mesh(None) is None
    mesh = make_mesh(1)
    assert mesh.axis_names == ("data",) and mesh.devices.size == 1
    with pytest.raises(ValueError, match="devices='all'"):
        make_mesh("gpu")
    with pytest.raises(ValueError, match=r"1 <= devices <="):
        make_mesh(10_000)
    check_batch_size(8, mesh)
    # A one-device mesh runs the sharded code path and gives the plain result.
    spec = ar.Spec(variables=(ar.Binary("b", shape=(3,)),))
    data = np.random.default_rng(0).integers(0, 2, (40, 3))
    a = ar.fit(ar.compile(spec), data, num_steps=5, batch_size=8)
    b = ar.fit(ar.compile(spec), data, num_steps=5, batch_size=8, devices=1)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-6)
