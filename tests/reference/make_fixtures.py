"""Writes the RWKV-4/5/6/7 reference fixtures tests/reference/fixtures/rwkv{4,5,6,7}_tiny.h5.

Run with Debian's Python (python3-torch, python3-h5py, python3-numpy):
  /usr/bin/python3 tests/reference/make_fixtures.py [--out DIR]

Before writing, it checks the reference against itself (an assertion stops it otherwise):
  - each WKV recurrence against its closed form (a sum over past tokens) on random inputs,
  - the model run one token at a time with the recurrent state against the whole
    sequence at once (logits_step == logits),
  - autograd gradients of the loss against central finite differences (float64) along
    a random direction for every parameter.
The file format is described in tests/reference/README.md.
"""
import argparse
import math
import os

import h5py
import numpy as np
import torch

import rwkv_reference as ref

N_LAYER, N_EMBD, HEAD_SIZE, VOCAB = 2, 32, 8, 64
B, T = 2, 9  # T deliberately not a multiple of a chunk length
SEED = 20260
STEP_TOL = 1e-12  # max |logits_step - logits| / max |logits|
# Central differences in float64: truncation ~ eps^2, rounding ~ 1e-16 / eps, both ~1e-10.
GRAD_EPS, GRAD_ATOL, GRAD_RTOL = 1e-5, 1e-8, 1e-6


def rel_err(a, b):
    """max |a - b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


# ---------------------------------------------------------------------------------------
# Closed forms of the WKV recurrences, to check rwkv_reference.wkv{4,5,7}
# ---------------------------------------------------------------------------------------

def wkv4_closed(w, u, k, v):
    """wkv_t = (sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t)
             / (sum_{i<t} e^{-(t-1-i)w + k_i} + e^{u+k_t})."""
    T_ = k.shape[1]
    t = torch.arange(T_, dtype=torch.float64)
    dist = (t[:, None] - 1 - t[None, :])[None, :, :, None]  # [1, T(t), T(i), 1]
    logit = -dist * w + k[:, None, :, :]  # [B, T, T, C]
    past = (t[:, None] > t[None, :])[None, :, :, None]
    logit = torch.where(past, logit, torch.full_like(logit, -math.inf))
    now = torch.eye(T_, dtype=torch.bool)[None, :, :, None]
    logit = torch.where(now, (u + k)[:, :, None, :].expand_as(logit), logit)
    weight = torch.exp(logit)
    return (weight * v[:, None, :, :]).sum(2) / weight.sum(2)


def wkv5_closed(r, k, v, w, u):
    """y_t = sum_{i<t} (r_t . (prod_{j=i+1}^{t-1} w_j) k_i) v_i + (r_t . u k_t) v_t."""
    L = torch.cumsum(torch.log(w), dim=1)  # [B, T, H, N]: log prod_{j<=t} w_j
    L_prev = torch.cat([torch.zeros_like(L[:, :1]), L[:, :-1]], dim=1)  # log prod_{j<t}
    # A[b, h, t, i] = sum_n r_t k_i exp(L_{t-1} - L_i), only i < t
    A = torch.einsum("bthn,bihn->bhti", r * torch.exp(L_prev), k * torch.exp(-L))
    T_ = r.shape[1]
    A = A * torch.tril(torch.ones(T_, T_, dtype=torch.float64), diagonal=-1)
    A = A + torch.diag_embed(torch.einsum("bthn,hn,bthn->bht", r, u, k))
    return torch.einsum("bhti,bihn->bthn", A, v)


def wkv7_closed(r, w, k, v, a, b):
    """S_t = sum_{i<=t} v_i k_i^T M_{i+1} ... M_t with M_j = diag(w_j) + a_j b_j^T, so
    y_t = S_t r_t = sum_{i<=t} v_i (k_i^T M_{i+1} ... M_t r_t)."""
    Bn, T_, H, N = r.shape
    M = torch.diag_embed(w) + a[..., :, None] * b[..., None, :]  # [B, T, H, N, N]
    ys = []
    for t in range(T_):
        Pr = r[:, t, :, :, None]  # M_{i+1} ... M_t r_t, starting at i = t
        y = torch.zeros(Bn, H, N, dtype=torch.float64)
        for i in range(t, -1, -1):
            y = y + v[:, i] * (k[:, i, :, None, :] @ Pr)[..., 0]
            Pr = M[:, i] @ Pr
        ys.append(y)
    return torch.stack(ys, dim=1)


def check_wkv(gen):
    """Each recurrence (from a zero state) against its closed form on random inputs."""
    H, N = N_EMBD // HEAD_SIZE, HEAD_SIZE

    def rnd(*shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    def unif(lo, hi, *shape):
        return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    w, u, k, v = torch.exp(unif(-6, 1, N_EMBD)), unif(-1, 1, N_EMBD), rnd(B, T, N_EMBD), rnd(B, T, N_EMBD)
    zero = (torch.zeros(B, N_EMBD, dtype=torch.float64),) * 2
    err = rel_err(ref.wkv4(w, u, k, v, zero)[0], wkv4_closed(w, u, k, v))
    assert err < 1e-13, f"wkv4 recurrence vs closed form: relative error {err:.3e}"

    r, k, v = rnd(B, T, H, N), rnd(B, T, H, N), rnd(B, T, H, N)
    w, u = unif(0.05, 0.999, B, T, H, N), unif(-1, 1, H, N)
    S0 = torch.zeros(B, H, N, N, dtype=torch.float64)
    err = rel_err(ref.wkv5(r, k, v, w, u, S0)[0], wkv5_closed(r, k, v, w, u))
    assert err < 1e-12, f"wkv5 recurrence vs closed form: relative error {err:.3e}"

    kk = torch.nn.functional.normalize(rnd(B, T, H, N), dim=-1)
    iclr = unif(0, 1, B, T, H, N)
    w = unif(0.55, 0.999, B, T, H, N)
    args = (r, w, k, v, -kk, kk * iclr)
    err = rel_err(ref.wkv7(*args, S0)[0], wkv7_closed(*args))
    assert err < 1e-12, f"wkv7 recurrence vs closed form: relative error {err:.3e}"
    print(f"WKV recurrences match their closed forms (B={B}, T={T}, C={N_EMBD}, N={N})")


def check_gradients(cfg, params, grads, idx, targets, gen):
    """For every parameter P and a random unit direction U of its shape, autograd's
    <dL/dP, U> against the central difference (L(P + eps U) - L(P - eps U)) / (2 eps).
    Returns the largest |difference| / (GRAD_ATOL + GRAD_RTOL |<dL/dP, U>|) (must be <= 1)."""
    worst = 0.0
    for name, value in params.items():
        u = torch.randn(value.shape, generator=gen, dtype=torch.float64)
        u /= u.norm()

        def loss_at(step):
            p = dict(params)
            p[name] = value + step * u
            return ref.loss_fn(ref.forward(cfg, p, idx)[0], targets).item()

        numeric = (loss_at(GRAD_EPS) - loss_at(-GRAD_EPS)) / (2 * GRAD_EPS)
        analytic = (grads[name] * u).sum().item()
        ratio = abs(numeric - analytic) / (GRAD_ATOL + GRAD_RTOL * abs(analytic))
        assert ratio <= 1, (f"rwkv{cfg.version}: gradient of {name}: autograd {analytic:.12e} vs "
                            f"central difference {numeric:.12e} along a random direction")
        worst = max(worst, ratio)
    return worst


# ---------------------------------------------------------------------------------------
# HDF5 writing: byte-for-byte reproducible (no object timestamps, fixed file format
# version 1.10), larger datasets stored as one gzip+shuffle chunk.
# ---------------------------------------------------------------------------------------

def create_h5(path):
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def create_group(parent, name):
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    return parent[name]


def put(group, name, data):
    compress = {}
    if data.size >= 1024:  # below that the chunk index costs more than gzip saves
        compress = {"compression": "gzip", "compression_opts": 9, "shuffle": True, "chunks": data.shape}
    group.create_dataset(name, data=data, track_times=False, **compress)


def make_fixture(version, path):
    cfg = ref.Config(version, N_LAYER, N_EMBD, HEAD_SIZE, VOCAB, ref.default_dim_ffn(version, N_EMBD))
    gen = torch.Generator().manual_seed(SEED + version)
    # Rounded to float32 values: a float32 implementation then loads exactly these weights.
    params = {n: t.float().double() for n, t in ref.init_params(cfg, gen).items()}
    idx = torch.randint(0, VOCAB, (B, T), generator=gen, dtype=torch.int64)
    targets = torch.randint(0, VOCAB, (B, T), generator=gen, dtype=torch.int64)

    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    logits, _ = ref.forward(cfg, leaves, idx)
    loss = ref.loss_fn(logits, targets)
    loss.backward()
    # v7's layer-0 v0/v1/v2 are unused (only layers > 0 mix in v_first): zero gradient.
    grads = {n: t.grad if t.grad is not None else torch.zeros_like(t) for n, t in leaves.items()}

    with torch.no_grad():
        logits_step = ref.forward_step_by_step(cfg, params, idx)
    err = rel_err(logits_step, logits.detach())
    assert err < STEP_TOL, f"rwkv{version}: logits_step vs logits relative error {err:.3e}"
    direction_gen = torch.Generator().manual_seed(SEED + 100 + version)
    grad_ratio = check_gradients(cfg, params, grads, idx, targets, direction_gen)

    with create_h5(path) as f:
        for key, value in (("version", version), ("n_layer", N_LAYER), ("n_embd", N_EMBD),
                           ("head_size", HEAD_SIZE), ("vocab_size", VOCAB),
                           ("dim_ffn", cfg.dim_ffn), ("B", B), ("T", T)):
            f.attrs[key] = np.int64(value)
        put(f, "idx", idx.numpy().astype(np.int32))
        put(f, "targets", targets.numpy().astype(np.int32))
        gp, gg = create_group(f, "params"), create_group(f, "grads")
        for name in params:
            put(gp, name, params[name].numpy())
            put(gg, name, grads[name].numpy())
        put(f, "logits", logits.detach().numpy())
        put(f, "logits_step", logits_step.numpy())
        put(f, "loss", np.float64(loss.item()))
    n_params = sum(t.numel() for t in params.values())
    print(f"{path}: rwkv{version}, {n_params} parameters, loss {loss.item():.12f}, "
          f"logits_step rel. error {err:.1e}, gradient check ok (worst {grad_ratio:.2f} of "
          f"tolerance), {os.path.getsize(path)} bytes")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(here, "fixtures"),
                        help="output folder (default: tests/reference/fixtures)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    check_wkv(torch.Generator().manual_seed(SEED))
    for version in (4, 5, 6, 7):
        make_fixture(version, os.path.join(args.out, f"rwkv{version}_tiny.h5"))


if __name__ == "__main__":
    main()
