"""Item and sequence encoders: shapes, unseen items, missing attributes, causality, cold start."""
import pandas as pd
import pytest
import torch

from seller.data.schema import ITEM_COLUMNS
from seller.encoders.gru import GRUUserEncoder
from seller.encoders.item import (ATTRIBUTE_FIELDS, ItemEncoderConfig, ItemFeaturizer,
                                  ItemSemanticEncoder, item_text)
from seller.encoders.sequence import HistoryBatch, SequenceEncoderConfig, SequentialUserEncoder


def catalog():
    rows = [dict(item_id="I1", name="Sac Lune", maison="Maison Aurel", category="handbags",
                 color="noir", material="calfskin", price=3200.0,
                 description="A structured day bag in black calfskin."),
            dict(item_id="I2", name="Carré Soie", maison="Maison Aurel", category="silks",
                 color="rouge", material="silk", price=450.0, description="A printed silk square."),
            dict(item_id="I3", name="Montre Nuit", maison="Vesper", category="watches",
                 color="noir", material="steel", price=9800.0, description=None)]
    df = pd.DataFrame({c.name: [None] * len(rows) for c in ITEM_COLUMNS})
    for i, r in enumerate(rows):
        for k, v in r.items():
            df.loc[i, k] = v
    return df


def test_featurizer_unknown_buckets():
    items = catalog()
    f = ItemFeaturizer.fit(items, warm_item_ids=["I1"], n_price_bands=2)
    new = items.iloc[[0]].copy()
    new[["item_id", "maison", "color"]] = ["NEW", "Unheard Of", None]
    feats = f.transform(new)
    j = ATTRIBUTE_FIELDS.index
    assert feats["attributes"][0, j("maison")] == 0 and feats["attributes"][0, j("color")] == 0
    assert feats["attributes"][0, j("category")] > 0  # known value still used
    assert feats["id"].tolist() == [0]  # not warm -> cold id row
    assert f.transform(items)["id"].tolist() == [1, 0, 0]
    assert ItemFeaturizer.from_json(f.to_json()) == f


def test_item_encoder_shapes_unseen_and_missing_attributes():
    items = catalog()
    enc = ItemSemanticEncoder(ItemEncoderConfig(d_item=16), ItemFeaturizer.fit(items, ["I1"]))
    enc.set_catalog(items)  # real MiniLM (offline package)
    v = enc.catalog_vectors()
    assert v.shape == (3, 16) and torch.isfinite(v).all()
    assert enc.catalog_text.shape == (3, 384)
    # an unseen item with every optional attribute missing is still encoded, from its name
    bare = pd.DataFrame({c.name: [None] for c in ITEM_COLUMNS})
    bare[["item_id", "name"]] = ["I99", "Foulard en cachemire"]
    out = enc.encode(bare)
    assert out.shape == (1, 16) and torch.isfinite(out).all()
    # encode() of a catalog item gives its catalog vector (same features, cached text)
    assert torch.allclose(enc.encode(items.iloc[[1]]), v[1:2], atol=1e-5)
    assert item_text(items.iloc[2]) == "Montre Nuit"


def test_id_dropout_leaves_out_id_vectors_in_training_only():
    items = catalog()
    warm = ItemFeaturizer.fit(items, ["I1", "I2", "I3"])
    enc = ItemSemanticEncoder(ItemEncoderConfig(d_item=8, use_text=False, id_dropout=0.5), warm)
    feats = warm.transform(pd.concat([items] * 200, ignore_index=True))  # 600 rows
    args = (torch.from_numpy(feats["attributes"]), torch.from_numpy(feats["price_band"]),
            torch.from_numpy(feats["id"]), None)
    enc.eval()
    enc.ids.weight.data.zero_()
    no_id = enc(*args)  # what an item is without its ID vector
    enc.ids.weight.data.normal_()
    enc.train()
    torch.manual_seed(0)
    out = enc(*args)
    dropped = torch.isclose(out, no_id, atol=1e-6).all(dim=1)
    assert 0.4 < dropped.float().mean() < 0.6  # about half the rows lost their ID vector
    enc.eval()
    assert not torch.isclose(enc(*args), no_id, atol=1e-6).all(dim=1).any()  # serving keeps all
    with pytest.raises(ValueError, match="id_dropout"):
        ItemEncoderConfig(id_dropout=1.0)


def test_text_similarity_is_semantic():
    from seller.encoders.text import embed_texts
    a, b, c = embed_texts(["black leather handbag", "dark calfskin tote bag", "steel diving watch"])
    assert a @ b > a @ c


def history(B=3, T=5, d=16, lengths=(5, 2, 0), segments=(1, 0, 2)):
    g = torch.Generator().manual_seed(0)
    return HistoryBatch(torch.randn(B, T, d, generator=g), torch.randint(0, 6, (B, T), generator=g),
                        torch.randint(0, 3, (B, T), generator=g), torch.randint(0, 24, (B, T), generator=g),
                        torch.tensor(lengths), torch.tensor(segments))


@pytest.mark.parametrize("cls", [SequentialUserEncoder, GRUUserEncoder])
def test_sequence_encoders_interface(cls):
    torch.manual_seed(0)
    enc = cls(SequenceEncoderConfig(d_model=16, n_heads=2, max_len=8, n_segments=3)).eval()
    h = history()
    out = enc(h, need_attention=True)
    assert out.states.shape == (3, 6, 16) and out.summary.shape == (3, 16)
    assert torch.allclose(out.summary[1], out.states[1, 2])  # last real position
    if cls is SequentialUserEncoder:
        assert out.attention.shape == (3, 6)
        assert torch.allclose(out.attention.sum(1), torch.ones(3), atol=1e-5)
        assert out.attention[1, 3:].abs().max() == 0  # nothing after the last event
    else:
        assert out.attention is None
    # causal + right padding: a row's summary does not depend on its pads or on other rows
    alone = enc(HistoryBatch(h.event_vectors[1:2, :2], h.event_types[1:2, :2], h.channels[1:2, :2],
                             h.gap_buckets[1:2, :2], h.lengths[1:2], h.segments[1:2])).summary
    assert torch.allclose(alone[0], out.summary[1], atol=1e-5)
    # changing a later event leaves earlier states unchanged
    h2 = history()
    h2.event_vectors[0, 4] += torch.linspace(-3, 3, 16)  # (a constant shift would vanish in LayerNorm)
    later = enc(h2).states
    assert torch.allclose(later[0, :5], out.states[0, :5], atol=1e-5)
    assert not torch.allclose(later[0, 5], out.states[0, 5])


def test_cold_start_is_segment_prior():
    torch.manual_seed(0)
    enc = SequentialUserEncoder(SequenceEncoderConfig(d_model=16, max_len=8, n_segments=3)).eval()
    h = history(lengths=(0, 0, 0), segments=(1, 1, 2))
    s = enc(h).summary
    assert torch.allclose(s[0], s[1], atol=1e-6)  # empty history: only the segment matters
    assert not torch.allclose(s[0], s[2])
    one = enc(history(lengths=(1, 0, 0), segments=(1, 1, 2))).summary
    assert not torch.allclose(one[0], s[0])  # one event moves the client off the prior


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="'lstm'"):
        SequenceEncoderConfig(kind="lstm")
    with pytest.raises(ValueError, match="at least one"):
        ItemEncoderConfig(use_attributes=False, use_text=False, use_id=False)
