"""Settings read from the environment: one cache root, one MiniLM folder for every caller."""
import re
from pathlib import Path

import pytest

from seller import paths, settings
from seller.paths import REPO_ROOT


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


SOURCES = [p for d in ("seller", "app") for p in (REPO_ROOT / d).rglob("*.py")]
# seller.llm.buffers reads its variable itself: the project brief keeps that file as it is
READS_ENV_ITSELF = {REPO_ROOT / "seller" / "settings.py", REPO_ROOT / "seller" / "llm" / "buffers.py"}


def test_only_the_settings_module_reads_the_environment():
    readers = [str(p.relative_to(REPO_ROOT)) for p in SOURCES if p not in READS_ENV_ITSELF
               and re.search(r"os\.environ(\.get|\[)|os\.getenv|environ\.get", p.read_text(encoding="utf-8"))]
    assert readers == []


def test_every_variable_named_in_the_code_is_in_the_table_and_the_readme():
    named = {m for p in SOURCES for m in re.findall(r"\bSELLER_[A-Z_]+[A-Z]\b", p.read_text(encoding="utf-8"))}
    assert named - {s.name for s in settings.ALL} == set()
    assert settings.table() in (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_settings_parse_or_name_the_variable(monkeypatch):
    monkeypatch.setenv("SELLER_THREADS", "two")
    with pytest.raises(ValueError, match=r"SELLER_THREADS='two': expected an integer"):
        settings.threads()
    monkeypatch.setenv("SELLER_THREADS", "")  # empty = unset
    assert settings.threads() == 2
    monkeypatch.setenv("SELLER_IDLE_MINUTES", "-5")
    with pytest.raises(ValueError, match=r"SELLER_IDLE_MINUTES must be a positive number of minutes, got '-5'"):
        settings.idle_minutes()
    monkeypatch.delenv("SELLER_EXPERIMENT_WEIGHTS", raising=False)
    assert settings.experiment_weights() == "feature=1,style=1,occasion=1"
    monkeypatch.setenv("SELLER_DB_URL", "postgresql://u@h/seller")
    from seller.feedback.store import resolve_url
    assert resolve_url() == "postgresql://u@h/seller" and resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    monkeypatch.delenv("SELLER_DB_URL")
    monkeypatch.setenv("SELLER_DB_PATH", "~/votes.db")
    assert resolve_url() == f"sqlite:///{Path('~/votes.db').expanduser().resolve()}"
