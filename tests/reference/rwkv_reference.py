"""Independent float64 PyTorch reference of the RWKV-4, -5, -6 and -7 language models.

Written from the formulas of the official BlinkDL/RWKV-LM training code, not from this
project's C++:
  v4: RWKV-v4neo/src/model.py (RWKV_TimeMix, RWKV_ChannelMix) and RWKV-v4neo/cuda/wkv_cuda.cu
  v5: RWKV-v5/src/model.py (RWKV_Tmix_x052, RWKV_CMix_x052) and RWKV-v5/cuda/wkv5_cuda.cu
  v6: RWKV-v5/src/model.py (RWKV_Tmix_x060, RWKV_CMix_x060) and RWKV-v5/cuda/wkv6_cuda.cu
  v7: RWKV-v7/train_temp/src/model.py (RWKV_Tmix_x070, RWKV_CMix_x070) and
      RWKV-v7/train_temp/cuda/rwkv7_clampw.cu
Parameter names and shapes are the official checkpoint keys (nn.Module names).

Every WKV is the plain sequential recurrence over time; autograd gives the gradients.
forward() takes and returns the recurrent state, so the same code runs a whole sequence
(T tokens from a zero state) or one token at a time (T = 1, threading the state).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LN_EPS = 1e-5  # nn.LayerNorm default
# GroupNorm eps of ln_x. v6/v7 use eps = 1e-5 * head_size_divisor**2 = 64e-5; v5 divides
# its input by head_size_divisor = 8 and uses eps = 1e-5, which is the same function.
LN_X_EPS = 64e-5


@dataclass(frozen=True)
class Config:
    version: int  # 4, 5, 6 or 7
    n_layer: int
    n_embd: int  # C
    head_size: int  # N (v5, v6, v7); v4 has no heads
    vocab_size: int  # V
    dim_ffn: int

    @property
    def n_head(self):  # H
        return self.n_embd // self.head_size


def default_dim_ffn(version, n_embd):
    """v4: 4C (RWKV-v4neo/train.py); v5, v6: int(3.5C) // 32 * 32 (RWKV-v5/train.py);
    v7: 4C, hard-coded in RWKV_CMix_x070."""
    if version in (4, 7):
        return 4 * n_embd
    return int((n_embd * 3.5) // 32 * 32)


# RWKV-v5/src/model.py RWKV_Tmix_x060: D_MIX_LORA = 32, D_DECAY_LORA = 64.
V6_MIX_LORA = 32
V6_DECAY_LORA = 64


def v7_lora_ranks(C):
    """RWKV-v7/train_temp/src/model.py: max(32, int(round(f * sqrt(C) / 32) * 32)) with
    f = 2.5 (decay w, in-context rate a), 1.7 (value residual v), 5 (gate g)."""
    def rank(f):
        return max(32, int(round((f * (C ** 0.5)) / 32) * 32))
    return {"w": rank(2.5), "a": rank(2.5), "v": rank(1.7), "g": rank(5)}


def param_shapes(cfg):
    """Official checkpoint key -> shape, in module registration order."""
    C, V, H, N, F_ = cfg.n_embd, cfg.vocab_size, cfg.n_head, cfg.head_size, cfg.dim_ffn
    vec = (1, 1, C)
    s = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,)}
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            s[b + ln + ".weight"] = (C,)
            s[b + ln + ".bias"] = (C,)
        a = b + "att."
        if cfg.version == 4:
            s.update({a + "time_decay": (C,), a + "time_first": (C,),
                      a + "time_mix_k": vec, a + "time_mix_v": vec, a + "time_mix_r": vec})
            lin = ("key", "value", "receptance", "output")
        elif cfg.version == 5:
            s.update({a + "time_mix_k": vec, a + "time_mix_v": vec, a + "time_mix_r": vec,
                      a + "time_mix_g": vec, a + "time_decay": (H, N), a + "time_faaaa": (H, N)})
            lin = ("receptance", "key", "value", "output", "gate")
        elif cfg.version == 6:
            for m in "xwkvrg":
                s[a + "time_maa_" + m] = vec
            s.update({a + "time_maa_w1": (C, V6_MIX_LORA * 5),
                      a + "time_maa_w2": (5, V6_MIX_LORA, C),
                      a + "time_decay": vec,
                      a + "time_decay_w1": (C, V6_DECAY_LORA),
                      a + "time_decay_w2": (V6_DECAY_LORA, C),
                      a + "time_faaaa": (H, N)})
            lin = ("receptance", "key", "value", "output", "gate")
        else:
            for m in "rwkvag":
                s[a + "x_" + m] = vec
            # v0/v1/v2 exist in every layer (RWKV_Tmix_x070.__init__) but only layers > 0
            # use them, so their gradients are zero in layer 0.
            r = v7_lora_ranks(C)
            for m in "wavg":
                s[a + m + "1"] = (C, r[m])
                s[a + m + "2"] = (r[m], C)
                if m != "g":
                    s[a + m + "0"] = vec
            s.update({a + "k_k": vec, a + "k_a": vec, a + "r_k": (H, N)})
            lin = ("receptance", "key", "value", "output")
        for name in lin:
            s[a + name + ".weight"] = (C, C)
        if cfg.version in (5, 6, 7):
            s[a + "ln_x.weight"] = (C,)
            s[a + "ln_x.bias"] = (C,)
        f = b + "ffn."
        if cfg.version in (4, 5):
            s[f + "time_mix_k"] = vec
            s[f + "time_mix_r"] = vec
        elif cfg.version == 6:
            s[f + "time_maa_k"] = vec
            s[f + "time_maa_r"] = vec
        else:
            s[f + "x_k"] = vec
        s[f + "key.weight"] = (F_, C)
        if cfg.version != 7:
            s[f + "receptance.weight"] = (C, C)
        s[f + "value.weight"] = (C, F_)
    s["ln_out.weight"] = (C,)
    s["ln_out.bias"] = (C,)
    s["head.weight"] = (V, C)
    return s


def init_params(cfg, gen):
    """Random weights (NOT the official init: its zero projections would hide gradient
    errors). Matrices ~ normal(0, 0.5 / sqrt(fan_in)), fan_in being the contracted
    dimension; the embedding ~ normal(0, 1); norm weights ~ U(0.5, 1.5), biases
    ~ U(-0.2, 0.2); token-shift mixes ~ U(0, 1); time_decay ~ U(-6, 1), so the per-step
    decay exp(-exp(time_decay)) spans about (0.066, 0.9975); v7's w0 ~ U(-6, 2), so its decay
    spans about (0.57, 0.999) (it cannot go below exp(-exp(-0.5)) = 0.545); bonus and gate
    offsets ~ U(-1, 1)."""
    def uniform(shape, lo, hi):
        return torch.rand(shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    def normal(shape, std):
        return torch.randn(shape, generator=gen, dtype=torch.float64) * std

    p = {}
    for name, shape in param_shapes(cfg).items():
        leaf = name.rsplit(".", 1)[-1]
        if name == "emb.weight":
            p[name] = normal(shape, 1.0)
        elif leaf == "weight" and len(shape) == 1:  # LayerNorm / GroupNorm
            p[name] = uniform(shape, 0.5, 1.5)
        elif leaf == "bias":
            p[name] = uniform(shape, -0.2, 0.2)
        elif leaf == "weight":  # nn.Linear [out, in]
            p[name] = normal(shape, 0.5 / math.sqrt(shape[1]))
        elif leaf in ("time_maa_w1", "time_decay_w1", "w1", "a1", "v1", "g1"):  # x @ W [in, out]
            p[name] = normal(shape, 0.5 / math.sqrt(shape[0]))
        elif leaf in ("time_maa_w2", "time_decay_w2", "w2", "a2", "v2", "g2"):  # [.., in, out]
            p[name] = normal(shape, 0.5 / math.sqrt(shape[-2]))
        elif leaf.startswith("time_mix_") or leaf.startswith("time_maa_") or leaf.startswith("x_"):
            p[name] = uniform(shape, 0.0, 1.0)
        elif leaf == "time_decay":  # v4: exp(-exp(.)) per step; v5/v6 likewise
            p[name] = uniform(shape, -6.0, 1.0)
        elif leaf == "w0":  # v7: exp(-exp(-0.5) * sigmoid(.))
            p[name] = uniform(shape, -6.0, 2.0)
        elif leaf in ("time_first", "time_faaaa", "a0", "v0"):
            p[name] = uniform(shape, -1.0, 1.0)
        elif leaf in ("k_k", "k_a"):
            p[name] = uniform(shape, 0.5, 1.5)
        elif leaf == "r_k":
            p[name] = uniform(shape, -0.5, 0.5)
        else:
            raise ValueError(f"init_params: no init rule for parameter {name}")
    return p


def zero_state(cfg, B):
    """Per layer: the last token's ln1 output (att token shift), the WKV state, the last
    token's ln2 output (ffn token shift). WKV state: v4 (a, b) running numerator and
    denominator [B, C] each; v5/v6 S [B, H, N(key), N(value)]; v7 S [B, H, N(value), N(key)]."""
    C, H, N = cfg.n_embd, cfg.n_head, cfg.head_size

    def zeros(*shape):
        return torch.zeros(shape, dtype=torch.float64)
    state = []
    for _ in range(cfg.n_layer):
        wkv = (zeros(B, C), zeros(B, C)) if cfg.version == 4 else zeros(B, H, N, N)
        state.append({"att_x": zeros(B, C), "wkv": wkv, "ffn_x": zeros(B, C)})
    return state


def layer_norm(x, p, name):
    C = x.shape[-1]
    return F.layer_norm(x, (C,), p[name + ".weight"], p[name + ".bias"], LN_EPS)


def group_norm(y, p, name, H):
    """GroupNorm with H groups over the C channels of every token; y [B, T, C]."""
    B, T, C = y.shape
    out = F.group_norm(y.reshape(B * T, C), H, p[name + ".weight"], p[name + ".bias"], LN_X_EPS)
    return out.reshape(B, T, C)


def token_shift(x, x_prev):
    """x [B, T, C], x_prev [B, C] (the token before x[:, 0]) -> x shifted by one [B, T, C]."""
    return torch.cat([x_prev[:, None, :], x[:, :-1, :]], dim=1)


def lerp_shift(x, xx, mu):
    """v4/v5 token-shift mix: x * mu + x_prev * (1 - mu)."""
    return x * mu + xx * (1 - mu)


def linear(x, p, name):
    return x @ p[name + ".weight"].T


def heads(x, H):
    """[B, T, C] -> [B, T, H, N]."""
    B, T, C = x.shape
    return x.reshape(B, T, H, C // H)


# ---------------------------------------------------------------------------------------
# WKV recurrences
# ---------------------------------------------------------------------------------------

def wkv4(w, u, k, v, state):
    """RWKV-4 (RWKV-v4neo/cuda/wkv_cuda.cu, without its overflow guard: float64 and
    moderate k). w = exp(time_decay) > 0 [C], u = time_first [C], k, v [B, T, C].
      wkv_t = (a_{t-1} + e^{u+k_t} v_t) / (b_{t-1} + e^{u+k_t})
      a_t = e^{-w} a_{t-1} + e^{k_t} v_t,  b_t = e^{-w} b_{t-1} + e^{k_t}"""
    a, b = state
    decay = torch.exp(-w)
    ys = []
    for t in range(k.shape[1]):
        kt, vt = k[:, t], v[:, t]
        bonus = torch.exp(u + kt)
        ys.append((a + bonus * vt) / (b + bonus))
        a = decay * a + torch.exp(kt) * vt
        b = decay * b + torch.exp(kt)
    return torch.stack(ys, dim=1), (a, b)


def wkv5(r, k, v, w, u, S):
    """RWKV-5/6 (RWKV-v5/cuda/wkv5_cuda.cu, wkv6_cuda.cu). r, k, v, w [B, T, H, N] (w the
    per-step decay in (0, 1)), u = time_faaaa [H, N], S [B, H, N(key), N(value)].
      y_t = r_t^T (diag(u) k_t v_t^T + S_{t-1}),  S_t = diag(w_t) S_{t-1} + k_t v_t^T"""
    ys = []
    for t in range(r.shape[1]):
        kv = k[:, t, :, :, None] * v[:, t, :, None, :]  # [B, H, N, N]
        ys.append(torch.einsum("bhj,bhji->bhi", r[:, t], u[:, :, None] * kv + S))
        S = w[:, t, :, :, None] * S + kv
    return torch.stack(ys, dim=1), S


def wkv7(r, w, k, v, a, b, S):
    """RWKV-7 (RWKV-v7/train_temp/cuda/rwkv7_clampw.cu). All inputs [B, T, H, N]; w the
    per-step decay; a = -kk, b = kk * iclr (the in-context rate "a" of the model code);
    S [B, H, N(value), N(key)].
      S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,  y_t = S_t r_t"""
    ys = []
    for t in range(r.shape[1]):
        sa = S @ a[:, t, :, :, None]  # [B, H, N, 1]
        S = S * w[:, t, :, None, :] + sa @ b[:, t, :, None, :] + v[:, t, :, :, None] @ k[:, t, :, None, :]
        ys.append((S @ r[:, t, :, :, None])[..., 0])
    return torch.stack(ys, dim=1), S


# ---------------------------------------------------------------------------------------
# Time mixing (att) per version; x [B, T, C] is ln1's output
# ---------------------------------------------------------------------------------------

def time_mix_v4(cfg, p, a, x, x_prev, wkv_state):
    """RWKV-v4neo RWKV_TimeMix: x* = x mu + x_prev (1 - mu); out = Wo(sigmoid(r) * wkv)."""
    xx = token_shift(x, x_prev)
    k = linear(lerp_shift(x, xx, p[a + "time_mix_k"]), p, a + "key")
    v = linear(lerp_shift(x, xx, p[a + "time_mix_v"]), p, a + "value")
    r = linear(lerp_shift(x, xx, p[a + "time_mix_r"]), p, a + "receptance")
    y, wkv_state = wkv4(torch.exp(p[a + "time_decay"]), p[a + "time_first"], k, v, wkv_state)
    return linear(torch.sigmoid(r) * y, p, a + "output"), wkv_state


def time_mix_v5(cfg, p, a, x, x_prev, wkv_state):
    """RWKV_Tmix_x052: decay w = exp(-exp(time_decay)) per head channel [H, N];
    out = Wo(GroupNorm_H(wkv) * silu(Wg xg))."""
    H = cfg.n_head
    xx = token_shift(x, x_prev)
    r = heads(linear(lerp_shift(x, xx, p[a + "time_mix_r"]), p, a + "receptance"), H)
    k = heads(linear(lerp_shift(x, xx, p[a + "time_mix_k"]), p, a + "key"), H)
    v = heads(linear(lerp_shift(x, xx, p[a + "time_mix_v"]), p, a + "value"), H)
    g = F.silu(linear(lerp_shift(x, xx, p[a + "time_mix_g"]), p, a + "gate"))
    w = torch.exp(-torch.exp(p[a + "time_decay"])).expand_as(r)  # [H, N] -> [B, T, H, N]
    y, wkv_state = wkv5(r, k, v, w, p[a + "time_faaaa"], wkv_state)
    y = group_norm(y.flatten(2), p, a + "ln_x", H)
    return linear(y * g, p, a + "output"), wkv_state


def time_mix_v6(cfg, p, a, x, x_prev, wkv_state):
    """RWKV_Tmix_x060: data-dependent token shift through a rank-32 LoRA per target
    (w, k, v, r, g) and data-dependent decay w_t = exp(-exp(time_decay + LoRA_64(xw)))."""
    B, T, C = x.shape
    H = cfg.n_head
    xx = token_shift(x, x_prev) - x
    xxx = x + xx * p[a + "time_maa_x"]
    lora = torch.tanh(xxx @ p[a + "time_maa_w1"]).reshape(B, T, 5, V6_MIX_LORA)
    mw, mk, mv, mr, mg = torch.einsum("btfr,frc->fbtc", lora, p[a + "time_maa_w2"]).unbind(0)
    xw = x + xx * (p[a + "time_maa_w"] + mw)
    xk = x + xx * (p[a + "time_maa_k"] + mk)
    xv = x + xx * (p[a + "time_maa_v"] + mv)
    xr = x + xx * (p[a + "time_maa_r"] + mr)
    xg = x + xx * (p[a + "time_maa_g"] + mg)
    r = heads(linear(xr, p, a + "receptance"), H)
    k = heads(linear(xk, p, a + "key"), H)
    v = heads(linear(xv, p, a + "value"), H)
    g = F.silu(linear(xg, p, a + "gate"))
    w_log = p[a + "time_decay"] + torch.tanh(xw @ p[a + "time_decay_w1"]) @ p[a + "time_decay_w2"]
    w = heads(torch.exp(-torch.exp(w_log)), H)
    y, wkv_state = wkv5(r, k, v, w, p[a + "time_faaaa"], wkv_state)
    y = group_norm(y.flatten(2), p, a + "ln_x", H)
    return linear(y * g, p, a + "output"), wkv_state


def time_mix_v7(cfg, p, a, x, x_prev, wkv_state, layer_id, v_first):
    """RWKV_Tmix_x070 (its "slow pytorch version" comments spell out the math):
    decay = exp(-exp(-0.5) sigmoid(w0 + tanh(xw w1) w2)) (the clampw kernel's soft clamp),
    value residual to layer 0's v, in-context rate a, L2-normalised removal key kk,
    out = Wo((GroupNorm_H(wkv) + (sum_head r k r_k) v) * g). Returns v_first too."""
    H = cfg.n_head
    xx = token_shift(x, x_prev) - x
    xr, xw, xk, xv, xa, xg = (x + xx * p[a + "x_" + m] for m in "rwkvag")
    r = linear(xr, p, a + "receptance")
    w_raw = p[a + "w0"] + torch.tanh(xw @ p[a + "w1"]) @ p[a + "w2"]
    k = linear(xk, p, a + "key")
    v = linear(xv, p, a + "value")
    if layer_id == 0:
        v_first = v
    else:
        v = v + (v_first - v) * torch.sigmoid(p[a + "v0"] + (xv @ p[a + "v1"]) @ p[a + "v2"])
    iclr = torch.sigmoid(p[a + "a0"] + (xa @ p[a + "a1"]) @ p[a + "a2"])  # "a"
    g = torch.sigmoid(xg @ p[a + "g1"]) @ p[a + "g2"]
    kk = F.normalize(heads(k * p[a + "k_k"], H), dim=-1, p=2.0, eps=1e-12)  # [B, T, H, N]
    k = k * (1 + (iclr - 1) * p[a + "k_a"])
    decay = torch.exp(-math.exp(-0.5) * torch.sigmoid(w_raw))
    rh, kh, vh = heads(r, H), heads(k, H), heads(v, H)
    y, wkv_state = wkv7(rh, heads(decay, H), kh, vh, -kk, kk * heads(iclr, H), wkv_state)
    y = group_norm(y.flatten(2), p, a + "ln_x", H)
    bonus = (rh * kh * p[a + "r_k"]).sum(dim=-1, keepdim=True) * vh  # [B, T, H, N]
    y = y + bonus.flatten(2)
    return linear(y * g, p, a + "output"), wkv_state, v_first


# ---------------------------------------------------------------------------------------
# Channel mixing (ffn); x [B, T, C] is ln2's output
# ---------------------------------------------------------------------------------------

def channel_mix(cfg, p, f, x, x_prev):
    """v4/v5 (RWKV_ChannelMix, RWKV_CMix_x052): x* = x mu + x_prev (1 - mu);
    v6 (RWKV_CMix_x060): x* = x + (x_prev - x) maa;
    out = sigmoid(Wr xr) * Wv relu(Wk xk)^2.
    v7 (RWKV_CMix_x070): out = Wv relu(Wk (x + (x_prev - x) x_k))^2, no receptance."""
    xx = token_shift(x, x_prev)
    if cfg.version in (4, 5):
        xk = lerp_shift(x, xx, p[f + "time_mix_k"])
        xr = lerp_shift(x, xx, p[f + "time_mix_r"])
    elif cfg.version == 6:
        xk = x + (xx - x) * p[f + "time_maa_k"]
        xr = x + (xx - x) * p[f + "time_maa_r"]
    else:
        xk = x + (xx - x) * p[f + "x_k"]
    kv = linear(torch.relu(linear(xk, p, f + "key")) ** 2, p, f + "value")
    if cfg.version == 7:
        return kv
    return torch.sigmoid(linear(xr, p, f + "receptance")) * kv


TIME_MIX = {4: time_mix_v4, 5: time_mix_v5, 6: time_mix_v6}


def forward(cfg, p, idx, state=None):
    """idx [B, T] token ids -> (logits [B, T, V], state after the last token).
    x = ln0(emb[idx]); per block x += att(ln1(x)); x += ffn(ln2(x)); logits = head(ln_out(x))."""
    B, T = idx.shape
    if state is None:
        state = zero_state(cfg, B)
    x = layer_norm(p["emb.weight"][idx.long()], p, "blocks.0.ln0")
    v_first = None
    new_state = []
    for i in range(cfg.n_layer):
        b = f"blocks.{i}."
        s = state[i]
        h = layer_norm(x, p, b + "ln1")
        if cfg.version == 7:
            att, wkv, v_first = time_mix_v7(cfg, p, b + "att.", h, s["att_x"], s["wkv"], i, v_first)
        else:
            att, wkv = TIME_MIX[cfg.version](cfg, p, b + "att.", h, s["att_x"], s["wkv"])
        x = x + att
        h2 = layer_norm(x, p, b + "ln2")
        x = x + channel_mix(cfg, p, b + "ffn.", h2, s["ffn_x"])
        new_state.append({"att_x": h[:, -1], "wkv": wkv, "ffn_x": h2[:, -1]})
    logits = linear(layer_norm(x, p, "ln_out"), p, "head")
    return logits, new_state


def forward_step_by_step(cfg, p, idx):
    """The same model run one token at a time with the recurrent state -> [B, T, V]."""
    state = zero_state(cfg, idx.shape[0])
    out = []
    for t in range(idx.shape[1]):
        logits, state = forward(cfg, p, idx[:, t:t + 1], state)
        out.append(logits)
    return torch.cat(out, dim=1)


def loss_fn(logits, targets):
    """Mean softmax cross-entropy over the B*T positions (no L2Wrap)."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long())
