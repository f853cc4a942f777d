"""EMA of model weights on a plain module (ZeRO-3 is covered by the integration tests)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from text2sign.models.ema import EMA, SHARD_FORMAT, assemble_shards, is_shard


def make_module(value: float = 1.0) -> nn.Module:
    module = nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2))
    set_all(module, value)
    return module


def set_all(module: nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def shadow_values(ema: EMA) -> set[float]:
    return {v for t in ema.shadow.values() for v in t.flatten().tolist()}


def test_update_math_with_known_values() -> None:
    module = make_module(1.0)
    ema = EMA(module, decay=0.5)
    assert shadow_values(ema) == {1.0}
    set_all(module, 3.0)
    assert ema.update(module, step=0)
    assert shadow_values(ema) == {2.0}  # 0.5 * 1 + 0.5 * 3
    set_all(module, 0.0)
    ema.update(module, step=1)
    assert shadow_values(ema) == {1.0}  # 0.5 * 2 + 0.5 * 0


def test_shadow_is_an_fp32_copy() -> None:
    module = make_module(2.0).to(torch.bfloat16)
    ema = EMA(module, decay=0.9)
    assert all(t.dtype == torch.float32 for t in ema.shadow.values())
    set_all(module, 5.0)  # changing the module does not touch the shadow
    assert shadow_values(ema) == {2.0}


def test_update_every_is_respected() -> None:
    module = make_module(0.0)
    ema = EMA(module, decay=0.5, update_every=3)
    set_all(module, 4.0)
    assert [ema.update(module, s) for s in (1, 2)] == [False, False]
    assert shadow_values(ema) == {0.0}
    assert ema.update(module, 3)
    assert shadow_values(ema) == {2.0}


def test_small_chunks_give_the_same_result() -> None:
    module = nn.Linear(4, 3)
    big, small = EMA(module, 0.9), EMA(module, 0.9, chunk_numel=1)
    with torch.no_grad():
        module.weight.add_(1.0)
    big.update(module, 0)
    small.update(module, 0)
    for name in big.shadow:
        assert torch.equal(big.shadow[name], small.shadow[name])


def test_state_dict_round_trip() -> None:
    module = make_module(1.0)
    ema = EMA(module, decay=0.5)
    set_all(module, 3.0)
    ema.update(module, 0)
    state = ema.state_dict()
    assert set(state) == {name for name, _ in module.named_parameters()}
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in state.values())
    fresh = EMA(make_module(7.0), decay=0.5)
    fresh.load_state_dict(state)
    assert shadow_values(fresh) == {2.0}
    state["0.weight"].fill_(9.0)  # the state dict is a copy
    assert shadow_values(ema) == {2.0}
    with pytest.raises(KeyError, match="missing"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "1.bias"})
    with pytest.raises(ValueError, match="shape"):
        fresh.load_state_dict({**state, "0.bias": torch.zeros(5)})


def test_copy_to_and_swapped() -> None:
    module = make_module(1.0)
    ema = EMA(module, decay=0.5)
    set_all(module, 3.0)
    ema.update(module, 0)
    target = make_module(0.0).to(torch.bfloat16)
    ema.copy_to(target)
    assert {v for p in target.parameters() for v in p.flatten().tolist()} == {2.0}
    with ema.swapped(module) as swapped:
        assert swapped is module
        assert {v for p in module.parameters() for v in p.flatten().tolist()} == {2.0}
    assert {v for p in module.parameters() for v in p.flatten().tolist()} == {3.0}
    with pytest.raises(KeyError):
        ema.copy_to(nn.Linear(3, 2))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        EMA(make_module(), decay=1.5)
    with pytest.raises(ValueError):
        EMA(make_module(), decay=0.9, update_every=0)


def test_assemble_shards_joins_disjoint_pieces_in_any_rank_order() -> None:
    full = {"w": torch.arange(6.0).view(2, 3), "b": torch.tensor([7.0])}

    def shard(rank: int, starts: dict[str, int], ends: dict[str, int]) -> dict:
        return {
            "format": SHARD_FORMAT, "rank": rank, "world_size": 2,
            "shards": {n: full[n].flatten()[starts[n] : ends[n]].clone() for n in full},
            "starts": starts, "shapes": {n: list(t.shape) for n, t in full.items()},
        }  # fmt: skip

    shards = [
        shard(1, {"w": 4, "b": 1}, {"w": 6, "b": 1}),
        shard(0, {"w": 0, "b": 0}, {"w": 4, "b": 1}),
    ]
    assert is_shard(shards[0]) and not is_shard({"w": full["w"]})
    out = assemble_shards(shards)
    assert all(torch.equal(out[n], full[n]) for n in full)
    with pytest.raises(ValueError, match="ranks"):
        assemble_shards(shards[:1])


def test_plain_ema_state_is_the_full_old_format_and_zero3_modules_are_refused() -> None:
    ema = EMA(make_module(1.0), decay=0.5)
    assert not ema.sharded and not is_shard(ema.state_dict())
    module = make_module(1.0)
    module[0].weight.ds_id = 0  # what a ZeRO-3 parameter carries
    with pytest.raises(ValueError, match="from_engine"):
        EMA(module, decay=0.5)
