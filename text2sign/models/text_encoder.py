"""Text encoder: a DistilBERT model plus its tokenizer, real or tiny, never downloaded.

* ``"tiny"``: a small randomly initialised DistilBERT (fixed seed) with a WordPiece tokenizer
  trained on the dataset captions. Both are saved into the run dir, so a resumed run, or another
  rank, loads the identical frozen encoder instead of rebuilding it.
* anything else: a Hugging Face hub id resolved from the local HF cache, or a local folder.
  Nothing is fetched from the network (``local_files_only=True``); clusters also set
  ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from text2sign.errors import ConfigError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Defaults of the tiny encoder; ``tiny_config`` may override any of these keys.
TINY_DEFAULTS: dict[str, Any] = {
    "dim": 64,
    "n_layers": 2,
    "n_heads": 2,
    "hidden_dim": 128,
    "max_position_embeddings": None,  # None: max(max_tokens, 64)
    "vocab_size": 2000,  # upper bound for the WordPiece trainer; the real size is smaller
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "seed": 0,  # the tiny weights depend on this seed only, never on the global RNG
}


class TextEncoder(nn.Module):
    """A transformers encoder and its tokenizer: captions -> token states and a padding mask."""

    def __init__(self, model: nn.Module, tokenizer: Any, max_tokens: int) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer  # not a module: holds no parameters
        self.max_tokens = max_tokens
        self.frozen = False

    @property
    def dim(self) -> int:
        """Width E of the token states."""
        return int(self.model.config.hidden_size)

    def tokenize(
        self, captions: list[str], device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> (input_ids (B, L) long, attention_mask (B, L) bool), L = longest <= max."""
        enc = self.tokenizer(
            list(captions),
            padding="longest",
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(device), enc["attention_mask"].to(device).bool()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> (states (B, L, E), mask (B, L) bool, True = real token)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask.long())
        return out.last_hidden_state, attention_mask.bool()

    def encode(
        self, captions: list[str], device: torch.device | str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize and run the encoder in one call."""
        return self(*self.tokenize(captions, device))

    def train(self, mode: bool = True) -> TextEncoder:
        # A frozen encoder stays in eval mode (no dropout) even when a parent calls .train().
        return super().train(mode and not self.frozen)


def freeze(encoder: TextEncoder) -> TextEncoder:
    """Stop gradients into the encoder and pin it to eval mode; returns the encoder."""
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.frozen = True
    encoder.eval()
    return encoder


def _is_saved(save_dir: Path | None) -> bool:
    return (
        save_dir is not None
        and (save_dir / "config.json").is_file()
        and (save_dir / "tokenizer.json").is_file()
    )


def _load(path: str | Path) -> tuple[nn.Module, Any]:
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def train_tokenizer(captions: list[str], *, vocab_size: int, max_tokens: int) -> Any:
    """Learn a lowercase WordPiece tokenizer from the captions, wrapped for ``transformers``.

    The vocabulary is every caption word (most frequent first, ties alphabetical, up to
    ``vocab_size``) plus single-character pieces, so unseen words still tokenize. We do not use
    ``WordPieceTrainer``: it breaks merge ties in a per-process random order (Rust hash maps),
    which gave different vocabularies, hence different runs, for the same captions.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.Whitespace()  # splits words and punctuation
    words: Counter[str] = Counter()
    for caption in captions:
        words.update(
            w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(caption))
        )
    chars = sorted({c for w in words for c in w})
    pieces = chars + [f"##{c}" for c in chars]
    budget = max(0, vocab_size - len(SPECIAL_TOKENS) - len(pieces))
    ranked = sorted(words, key=lambda w: (-words[w], w))
    whole = [w for w in ranked if w not in pieces][:budget]
    vocab = SPECIAL_TOKENS + pieces + sorted(whole)
    tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(  # BERT-style [CLS] ... [SEP]
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_tokens,
    )


def _build_tiny(
    captions: list[str], max_tokens: int, tiny_config: dict[str, Any] | None
) -> tuple[nn.Module, Any]:
    from transformers import DistilBertConfig, DistilBertModel

    unknown = sorted(set(tiny_config or {}) - set(TINY_DEFAULTS))
    if unknown:
        valid = ", ".join(TINY_DEFAULTS)
        raise ConfigError(f"unknown tiny text encoder key(s) {unknown}; valid keys: {valid}")
    cfg = {**TINY_DEFAULTS, **(tiny_config or {})}
    tokenizer = train_tokenizer(captions, vocab_size=cfg["vocab_size"], max_tokens=max_tokens)
    max_pos = cfg["max_position_embeddings"] or max(max_tokens, 64)
    if max_pos < max_tokens:
        raise ConfigError(f"tiny max_position_embeddings {max_pos} < max_tokens {max_tokens}")
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=cfg["dim"],
        n_layers=cfg["n_layers"],
        n_heads=cfg["n_heads"],
        hidden_dim=cfg["hidden_dim"],
        max_position_embeddings=max_pos,
        dropout=cfg["dropout"],
        attention_dropout=cfg["attention_dropout"],
        pad_token_id=tokenizer.pad_token_id,
    )
    # fork_rng restores the global CPU RNG afterwards: the init neither reads nor disturbs it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"])
        model = DistilBertModel(config)
    return model, tokenizer


def _save(model: nn.Module, tokenizer: Any, save_dir: Path) -> None:
    # Write into a sibling temp folder, then rename: a killed writer leaves no half-saved encoder.
    save_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{save_dir.name}.", dir=save_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if save_dir.is_dir() and not any(save_dir.iterdir()):
            save_dir.rmdir()
        os.replace(tmp, save_dir)
    except OSError:
        if not _is_saved(save_dir):  # else another process saved first: the caller loads that
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_text_encoder(
    name_or_path: str,
    *,
    max_tokens: int,
    captions: list[str] | None,
    save_dir: Path | None,
    tiny_config: dict[str, Any] | None = None,
) -> TextEncoder:
    """Build the text encoder named by the config (trainable; call ``freeze`` to freeze it).

    ``"tiny"``: load it from ``save_dir`` if saved there, else build it from ``captions`` and save
    it there (only one process should build: other ranks wait, then load). Anything else: a hub
    id from the local HF cache or a local path, never downloaded.
    """
    if name_or_path == "tiny":
        save_dir = Path(save_dir) if save_dir is not None else None
        if _is_saved(save_dir):
            model, tokenizer = _load(save_dir)
        else:
            if not captions:
                raise ConfigError("the tiny text encoder needs captions to train its tokenizer")
            model, tokenizer = _build_tiny(captions, max_tokens, tiny_config)
            if save_dir is not None:
                _save(model, tokenizer, save_dir)
                model, tokenizer = _load(save_dir)  # what is on disk, even if a racer wrote it
    else:
        try:
            model, tokenizer = _load(name_or_path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"text encoder {name_or_path!r} not found locally: pre-fill the HF cache "
                "(huggingface-cli download NAME on a node with network) or give a local path"
            ) from exc
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos is not None and max_pos < max_tokens:
        raise ConfigError(f"max_tokens {max_tokens} exceeds {name_or_path!r}'s limit {max_pos}")
    return TextEncoder(model, tokenizer, max_tokens)
