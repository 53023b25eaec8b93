"""Settings read from the environment: one cache root, one MiniLM folder for every caller."""
from pathlib import Path

import pytest

from seller import paths


def test_one_cache_root_for_every_derived_file(monkeypatch, tmp_path):
    from seller.encoders.text import cache_dir as minilm_cache
    from seller.llm import default_cache_dir
    monkeypatch.delenv("SELLER_CACHE", raising=False)
    monkeypatch.delenv("SELLER_CACHE_DIR", raising=False)
    assert paths.cache_dir() == Path("~/.cache/seller").expanduser()
    monkeypatch.setenv("SELLER_CACHE_DIR", str(tmp_path / "old"))  # the name the MiniLM cache once read
    assert default_cache_dir() == tmp_path / "old" and minilm_cache() == tmp_path / "old" / "minilm"
    monkeypatch.setenv("SELLER_CACHE", str(tmp_path / "new"))
    assert default_cache_dir() == tmp_path / "new" and minilm_cache() == tmp_path / "new" / "minilm"


def test_evaluation_encoder_honours_seller_minilm(monkeypatch, tmp_path):
    from seller.evaluate.text import SentenceEncoder
    monkeypatch.setenv("SELLER_MINILM", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=rf"no sentence-transformers model in {tmp_path}"):
        SentenceEncoder()
