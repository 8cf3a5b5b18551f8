"""The BiRefNet network (inference path), written in plain PyTorch from the project's spec.

Source of truth: ``shared/reference/birefnet-architecture.md`` (upstream BiRefNet with its
default config: Swin-v1 backbone run at full and half scale, context squeeze, a decoder
with image-patch injection, deformable ASPP and gradient attention). Two variants:

- ``large``: backbone ``swin_v1_l`` (the official ``ZhengPeng7/BiRefNet`` checkpoint),
- ``lite``: backbone ``swin_v1_t``.

Module names, registration order and shapes reproduce upstream exactly, so
``state_dict()`` has upstream's keys in upstream's order (checked against
``tests/data/birefnet/birefnet_state_dict_shapes.json``) and official checkpoints load with
``strict=True``. Modules that exist only for training (multi-scale supervision heads,
gradient-prediction heads, ``regular_conv``'s unused forward) are kept for that reason and
never run. ``BiRefNet.forward`` returns what upstream returns in eval mode: a one-element
list holding the logits ``[B, 1, H, W]`` (no sigmoid). H and W must be multiples of 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d


@dataclass(frozen=True)
class SwinSpec:
    """Hyper-parameters of one Swin-v1 backbone."""

    key_set: str  # the name upstream's config uses (and the fact sheet's top-level key)
    embed_dim: int
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    window_size: int


VARIANTS: dict[str, SwinSpec] = {
    "large": SwinSpec("swin_v1_l", 192, (2, 2, 18, 2), (6, 12, 24, 48), 12),
    "lite": SwinSpec("swin_v1_t", 96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
}

# Every resize in this network uses bilinear with align_corners=True; a different choice moves
# the logits by ~1e-2, so it is spelled out once here.
_RESIZE = {"mode": "bilinear", "align_corners": True}


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, **_RESIZE)


def _spatial(x: torch.Tensor) -> tuple[int, int]:
    return int(x.shape[2]), int(x.shape[3])


# ---------------------------------------------------------------------------------------------
# Swin-v1 backbone
# ---------------------------------------------------------------------------------------------


def _window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[B, Hp, Wp, C]`` -> ``[B*nW, ws*ws, C]``, windows batch-major then row-major."""
    b, hp, wp, c = x.shape
    x = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _window_reverse(windows: torch.Tensor, ws: int, hp: int, wp: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`: ``[B*nW, ws*ws, C]`` -> ``[B, Hp, Wp, C]``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((hp // ws) * (wp // ws))
    x = windows.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, c)


def _shift_mask(hp: int, wp: int, ws: int, shift: int, device: torch.device) -> torch.Tensor:
    """Additive mask ``[nW, ws², ws²]``: 0 within a shifted region, -inf across regions.

    Built on the padded grid; upstream's three bands per axis give the region labels.
    """
    labels = torch.zeros((1, hp, wp, 1), device=device)
    bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            labels[:, rows, cols, :] = label
            label += 1
    windows = _window_partition(labels, ws).squeeze(-1)  # [nW, ws²]
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, float("-inf"))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative-position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
        )
        coords = coords.flatten(1)  # [2, ws²]
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
        index = rel[:, :, 0] * (2 * window_size - 1) + rel[:, :, 1]
        # persistent (unlike timm's), because upstream checkpoints carry it and strict loading needs it
        self.register_buffer("relative_position_index", index, persistent=True)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``[B_, N, C]``; ``mask``: ``[B_, N, N]`` additive, or None for unshifted blocks."""
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        index = self.relative_position_index.view(-1)
        bias = self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        attn_mask = bias.to(q.dtype)
        if mask is not None:
            attn_mask = attn_mask + mask.to(q.dtype).unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=0.0, is_causal=False)
        return self.proj(out.transpose(1, 2).reshape(b_, n, c))


class Mlp(nn.Module):
    """Two-layer feed-forward with exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """One (shifted-)window transformer block; ``shift`` 0 for even blocks, ws//2 for odd ones."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int, mask: torch.Tensor) -> torch.Tensor:
        b, length, c = x.shape
        ws, s = self.window_size, self.shift
        u = self.norm1(x).view(b, h, w, c)
        # pad after the norm and before the roll, as upstream does: padded tokens are zeros that
        # take part in attention (unmasked), and rolling the padded map mixes them in differently
        # from roll-then-pad
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        u = F.pad(u, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        attn_mask: torch.Tensor | None = None
        if s > 0:
            u = torch.roll(u, shifts=(-s, -s), dims=(1, 2))
            n_windows, n = mask.shape[0], mask.shape[1]
            attn_mask = mask.unsqueeze(0).expand(b, n_windows, n, n).reshape(b * n_windows, n, n)
        out = self.attn(_window_partition(u, ws), attn_mask)
        u = _window_reverse(out, ws, hp, wp)
        if s > 0:
            u = torch.roll(u, shifts=(s, s), dims=(1, 2))
        u = u[:, :h, :w, :].reshape(b, length, c)
        x = x + u
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2×2 token merge: concat a(0,0), b(1,0), c(0,1), d(1,1) -> LayerNorm(4C) -> Linear(4C, 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """A stage: its blocks, then (stages 0–2) a patch merge to the next stage's grid."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, downsample: bool) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if j % 2 == 0 else window_size // 2)
            for j in range(depth)
        )
        self.downsample: PatchMerging | None = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Returns (stage output tokens, next stage's tokens, next grid h, next grid w)."""
        ws = self.window_size
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        # one mask per stage, in float32 then cast to the activations' dtype, as upstream does
        mask = _shift_mask(hp, wp, ws, ws // 2, x.device).to(x.dtype)
        for blk in self.blocks:
            x = blk(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """4×4 stride-4 conv to tokens, then LayerNorm over channels."""

    def __init__(self, embed_dim: int, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """``[B, 3, H, W]`` -> (tokens ``[B, Hs·Ws, E]``, Hs, Ws)."""
        p = self.patch_size
        h, w = _spatial(x)
        if w % p or h % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = self.proj(x)
        hs, ws = _spatial(x)
        return self.norm(x.flatten(2).transpose(1, 2)), hs, ws


class SwinTransformer(nn.Module):
    """Swin-v1 backbone returning four NCHW feature maps (strides 4, 8, 16, 32; shallow first)."""

    def __init__(self, spec: SwinSpec) -> None:
        super().__init__()
        self.spec = spec
        self.patch_embed = PatchEmbed(spec.embed_dim)
        dims = [spec.embed_dim * 2**i for i in range(4)]
        self.layers = nn.ModuleList(
            SwinStage(dims[i], spec.depths[i], spec.num_heads[i], spec.window_size, downsample=i < 3)
            for i in range(4)
        )
        # per-output norms are attributes of the backbone itself (keys bb.norm0..bb.norm3)
        for i, d in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(d))
        self.dims = dims

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        tokens, h, w = self.patch_embed(x)
        b = tokens.shape[0]
        outs: list[torch.Tensor] = []
        for i, stage in enumerate(self.layers):
            y, tokens, h_next, w_next = stage(tokens, h, w)
            norm: nn.LayerNorm = getattr(self, f"norm{i}")
            outs.append(norm(y).view(b, h, w, self.dims[i]).permute(0, 3, 1, 2).contiguous())
            h, w = h_next, w_next
        return outs


# ---------------------------------------------------------------------------------------------
# Decoder building blocks
# ---------------------------------------------------------------------------------------------


class DeformableConv2d(nn.Module):
    """Modulated deformable conv (DCNv2): offsets and a 2·sigmoid modulation predicted from the input."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        k = kernel_size
        self.padding = padding
        self.offset_conv = nn.Conv2d(in_ch, 2 * k * k, k, stride=1, padding=padding, bias=True)
        self.modulator_conv = nn.Conv2d(in_ch, k * k, k, stride=1, padding=padding, bias=True)
        # only the weight is used (by deform_conv2d); the module is kept for checkpoint keys
        self.regular_conv = nn.Conv2d(in_ch, out_ch, k, stride=1, padding=padding, bias=False)
        for conv in (self.offset_conv, self.modulator_conv):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.offset_conv(x)
        mask = 2.0 * torch.sigmoid(self.modulator_conv(x))
        return deform_conv2d(
            x, offset, self.regular_conv.weight, bias=None, stride=1, padding=self.padding, mask=mask
        )


class ASPPBranchDeformable(nn.Module):
    """Deformable conv -> BN -> ReLU (upstream ``_ASPPModuleDeformable``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int) -> None:
        super().__init__()
        self.atrous_conv = DeformableConv2d(in_ch, out_ch, kernel_size, padding)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.atrous_conv(x)))


class ASPPDeformable(nn.Module):
    """Five 256-wide branches (1×1, 1×1, 3×3, 7×7 deformable, global pool) fused back to 64."""

    def __init__(self, in_ch: int = 64, branch_ch: int = 256, sizes: tuple[int, ...] = (1, 3, 7)) -> None:
        super().__init__()
        self.aspp1 = ASPPBranchDeformable(in_ch, branch_ch, 1, 0)
        self.aspp_deforms = nn.ModuleList(ASPPBranchDeformable(in_ch, branch_ch, k, k // 2) for k in sizes)
        self.global_avg_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_ch, branch_ch, 1, stride=1, bias=False),
            nn.BatchNorm2d(branch_ch),
            nn.ReLU(inplace=True),
        )
        self.conv1 = nn.Conv2d(branch_ch * (2 + len(sizes)), in_ch, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.aspp1(x)] + [branch(x) for branch in self.aspp_deforms]
        branches.append(_resize(self.global_avg_pool(x), _spatial(x)))
        return self.dropout(self.relu(self.bn1(self.conv1(torch.cat(branches, dim=1)))))


class BasicDecBlk(nn.Module):
    """conv3×3 -> BN -> ReLU -> ASPPDeformable -> conv3×3 -> BN; inner width fixed at 64."""

    def __init__(self, in_ch: int, out_ch: int, inter_ch: int = 64) -> None:
        super().__init__()
        # registration order (conv_in, relu_in, dec_att, conv_out, bn_in, bn_out) fixes the key order
        self.conv_in = nn.Conv2d(in_ch, inter_ch, 3, 1, padding=1)
        self.relu_in = nn.ReLU(inplace=True)
        self.dec_att = ASPPDeformable(inter_ch)
        self.conv_out = nn.Conv2d(inter_ch, out_ch, 3, 1, padding=1)
        self.bn_in = nn.BatchNorm2d(inter_ch)
        self.bn_out = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_in(self.bn_in(self.conv_in(x)))
        # no activation after bn_out: the block's output may be negative
        return self.bn_out(self.conv_out(self.dec_att(x)))


class BasicLatBlk(nn.Module):
    """1×1 lateral conv on a skip connection."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class SimpleConvs(nn.Module):
    """Two 3×3 convs with no norm or activation between them (image-patch encoders)."""

    def __init__(self, in_ch: int, out_ch: int, inter_ch: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, inter_ch, 3, 1, 1)
        self.conv_out = nn.Conv2d(inter_ch, out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv1(x))


def image_to_patches(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Tile ``x`` into a contiguous grid of ``ref``-sized patches stacked on channels.

    Channel ``ch·g² + gy·g + gx`` holds tile (gy, gx) of colour ``ch`` — not pixel_unshuffle,
    which interleaves pixels and gives a different function.
    """
    b, c, big_h, big_w = x.shape
    h, w = _spatial(ref)
    gh, gw = big_h // h, big_w // w
    if gh * h != big_h or gw * w != big_w:
        raise ValueError(
            f"image {big_h}x{big_w} does not tile into {h}x{w} patches; use sides that are multiples of 32"
        )
    patches = x.view(b, c, gh, h, gw, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c * gh * gw, h, w)
    return _resize(patches, (h, w))


class Decoder(nn.Module):
    """Four decoder levels with lateral skips, image-patch injection and gradient attention."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        c0, c1, c2, c3 = channels  # deepest first
        o = [c // 8 for c in channels]
        # registration order below is the checkpoint's key order; do not reorder
        self.ipt_blk5 = SimpleConvs(3 * 32 * 32, o[0])
        self.ipt_blk4 = SimpleConvs(3 * 16 * 16, o[0])
        self.ipt_blk3 = SimpleConvs(3 * 8 * 8, o[1])
        self.ipt_blk2 = SimpleConvs(3 * 4 * 4, o[2])
        self.ipt_blk1 = SimpleConvs(3, o[3])
        self.decoder_block4 = BasicDecBlk(c0 + o[0], c1)
        self.decoder_block3 = BasicDecBlk(c1 + o[0], c2)
        self.decoder_block2 = BasicDecBlk(c2 + o[1], c3)
        self.decoder_block1 = BasicDecBlk(c3 + o[2], c3 // 2)
        self.conv_out1 = nn.Sequential(nn.Conv2d(c3 // 2 + o[3], 1, 1, 1, 0))
        self.lateral_block4 = BasicLatBlk(c1, c1)
        self.lateral_block3 = BasicLatBlk(c2, c2)
        self.lateral_block2 = BasicLatBlk(c3, c3)
        # training-only heads: present for strict checkpoint loading, never evaluated
        self.conv_ms_spvn_4 = nn.Conv2d(c1, 1, 1, 1, 0)
        self.conv_ms_spvn_3 = nn.Conv2d(c2, 1, 1, 1, 0)
        self.conv_ms_spvn_2 = nn.Conv2d(c3, 1, 1, 1, 0)
        self.gdt_convs_4 = _gdt_convs(c1)
        self.gdt_convs_3 = _gdt_convs(c2)
        self.gdt_convs_2 = _gdt_convs(c3)
        self.gdt_convs_pred_4 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_pred_3 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_pred_2 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_attn_4 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_attn_3 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))
        self.gdt_convs_attn_2 = nn.Sequential(nn.Conv2d(16, 1, 1, 1, 0))

    @staticmethod
    def _inject(feat: torch.Tensor, x: torch.Tensor, ipt_blk: SimpleConvs) -> torch.Tensor:
        return torch.cat([feat, ipt_blk(image_to_patches(x, feat))], dim=1)

    @staticmethod
    def _gradient_attention(p: torch.Tensor, gdt_convs: nn.Module, gdt_attn: nn.Module) -> torch.Tensor:
        return p * torch.sigmoid(gdt_attn(gdt_convs(p)))

    def forward(self, x: torch.Tensor, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """``x``: the normalised image; ``features``: [x1, x2, x3, squeezed x4]."""
        x1, x2, x3, x4 = features
        p4 = self.decoder_block4(self._inject(x4, x, self.ipt_blk5))
        p4 = self._gradient_attention(p4, self.gdt_convs_4, self.gdt_convs_attn_4)

        q3 = _resize(p4, _spatial(x3)) + self.lateral_block4(x3)
        p3 = self.decoder_block3(self._inject(q3, x, self.ipt_blk4))
        p3 = self._gradient_attention(p3, self.gdt_convs_3, self.gdt_convs_attn_3)

        q2 = _resize(p3, _spatial(x2)) + self.lateral_block3(x2)
        p2 = self.decoder_block2(self._inject(q2, x, self.ipt_blk3))
        p2 = self._gradient_attention(p2, self.gdt_convs_2, self.gdt_convs_attn_2)

        q1 = _resize(p2, _spatial(x1)) + self.lateral_block2(x1)
        r = self.decoder_block1(self._inject(q1, x, self.ipt_blk2))  # no gradient attention here
        r = _resize(r, _spatial(x))
        return [self.conv_out1(self._inject(r, x, self.ipt_blk1))]


def _gdt_convs(in_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU(inplace=True))


# ---------------------------------------------------------------------------------------------
# The whole network
# ---------------------------------------------------------------------------------------------


class BiRefNet(nn.Module):
    """BiRefNet with the default upstream config; ``forward(x)`` returns ``[logits]`` in eval."""

    def __init__(self, variant: str = "large") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown BiRefNet variant {variant!r}; choose one of {sorted(VARIANTS)}")
        self.variant = variant
        self.spec = VARIANTS[variant]
        e = self.spec.embed_dim
        # lateral channels, deepest first, doubled by the full+half-scale concatenation
        channels = [16 * e, 8 * e, 4 * e, 2 * e]
        context = sum(channels[1:])  # x1, x2, x3 resized and stacked in front of x4
        self.bb = SwinTransformer(self.spec)
        self.squeeze_module = nn.Sequential(BasicDecBlk(channels[0] + context, channels[0]))
        self.decoder = Decoder(channels)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone at full and half scale, concatenated, plus the squeezed context at stride 32."""
        h, w = _spatial(x)
        full = self.bb(x)
        half = self.bb(_resize(x, (h // 2, w // 2)))
        feats = [torch.cat([f, _resize(g, _spatial(f))], dim=1) for f, g in zip(full, half, strict=True)]
        x1, x2, x3, x4 = feats
        size4 = _spatial(x4)
        x4 = torch.cat([_resize(x1, size4), _resize(x2, size4), _resize(x3, size4), x4], dim=1)
        return [x1, x2, x3, self.squeeze_module(x4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = _spatial(x)
        if h % 32 or w % 32:
            raise ValueError(f"BiRefNet input sides must each be a multiple of 32, got {h}x{w}")
        return self.decoder(x, self.encode(x))
