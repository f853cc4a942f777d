"""Text encoder: the tiny DistilBERT builds offline, tokenizes, saves, reloads and freezes."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: no network, ever

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from text2sign.errors import ConfigError  # noqa: E402
from text2sign.models.text_encoder import TextEncoder, build_text_encoder, freeze  # noqa: E402

CAPTIONS = [
    "hello my friend",
    "thank you very much",
    "the left hand waves",
    "the right hand points up",
    "good morning teacher",
]
MAX_TOKENS = 12


def build(save_dir: Path | None, captions: list[str] | None = CAPTIONS, **kw) -> TextEncoder:
    return build_text_encoder(
        "tiny", max_tokens=MAX_TOKENS, captions=captions, save_dir=save_dir, **kw
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[TextEncoder, Path]:
    save_dir = tmp_path_factory.mktemp("enc") / "text_encoder"
    return build(save_dir), save_dir


def test_tiny_builds_offline_and_encodes(saved: tuple[TextEncoder, Path]) -> None:
    enc, save_dir = saved
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert (save_dir / "config.json").is_file() and (save_dir / "tokenizer.json").is_file()
    assert enc.dim == 64
    ids, mask = enc.tokenize(CAPTIONS[:2], "cpu")
    states, out_mask = enc(ids, mask)
    assert states.shape == (2, ids.shape[1], 64) and out_mask.dtype == torch.bool
    assert torch.equal(out_mask, mask) and mask.sum(1).tolist() == [5, 6]  # words + CLS/SEP


def test_tokenizer_round_trips_caption_words(saved: tuple[TextEncoder, Path]) -> None:
    tok = saved[0].tokenizer
    for caption in CAPTIONS + ["Hello TEACHER"]:
        ids = tok(caption)["input_ids"]
        tokens = tok.convert_ids_to_tokens(ids)
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "[UNK]" not in tokens
        assert tokens[1:-1] == caption.lower().split()  # every word is in the vocabulary
        assert tok.decode(ids, skip_special_tokens=True) == caption.lower()
    assert tok.convert_ids_to_tokens(tok("")["input_ids"]) == ["[CLS]", "[SEP]"]


def test_padding_and_truncation(saved: tuple[TextEncoder, Path]) -> None:
    enc = saved[0]
    ids, mask = enc.tokenize(["hello", " ".join(CAPTIONS)], "cpu")
    assert ids.shape == (2, MAX_TOKENS) and mask[1].all() and mask[0].sum() == 3
    assert (ids[0, 3:] == enc.tokenizer.pad_token_id).all()
    # A valid token's state does not depend on the padding added by a longer neighbour.
    with torch.no_grad():
        alone, _ = enc.encode(["hello"], "cpu")
        batched, _ = enc.encode(["hello", " ".join(CAPTIONS)], "cpu")
    torch.testing.assert_close(batched[0, :3], alone[0], atol=1e-5, rtol=1e-5)


def test_save_dir_is_reloaded_identically(saved: tuple[TextEncoder, Path]) -> None:
    enc, save_dir = saved
    again = build(save_dir, captions=None)  # loads: no captions needed
    ids, mask = enc.tokenize(CAPTIONS, "cpu")
    assert torch.equal(again.tokenize(CAPTIONS, "cpu")[0], ids)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, mask)[0], enc(ids, mask)[0], atol=0, rtol=0)


def test_tiny_init_ignores_and_keeps_global_rng() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build(None)
    assert torch.equal(torch.get_rng_state(), state)  # not disturbed
    torch.manual_seed(456)
    b = build(None)  # not dependent
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    c = build(None, tiny_config={"seed": 1})
    assert not torch.equal(
        a.model.embeddings.word_embeddings.weight, c.model.embeddings.word_embeddings.weight
    )


def test_freeze_keeps_eval_mode_under_parent_train() -> None:
    enc = build(None)
    assert all(p.requires_grad for p in enc.parameters())
    parent = nn.ModuleDict({"text": freeze(enc), "head": nn.Linear(2, 2)})
    parent.train()
    assert parent["head"].training
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())


def test_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-model-xyz.*HF cache"):
        build_text_encoder("no-such-model-xyz", max_tokens=8, captions=None, save_dir=None)
    with pytest.raises(ConfigError, match="not found locally"):
        build_text_encoder(str(tmp_path / "missing"), max_tokens=8, captions=None, save_dir=None)
    with pytest.raises(ConfigError, match="captions"):
        build(tmp_path / "enc", captions=None)
    with pytest.raises(ConfigError, match="n_layers"):
        build(None, tiny_config={"layers": 3})


def test_tokenizer_vocabulary_is_identical_across_processes():
    """Regression: WordPieceTrainer's tie-breaking made each run's vocabulary different."""
    import os
    import subprocess
    import sys

    code = (
        "from text2sign.models.text_encoder import train_tokenizer;"
        "from text2sign.data.synth import all_captions;"
        "t = train_tokenizer(all_captions(), vocab_size=128, max_tokens=16);"
        "print(sorted(t.get_vocab().items()))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout  # fmt: skip
        for seed in (1, 2, 3)
    }
    assert len(outs) == 1 and "'hello'" in outs.pop()
