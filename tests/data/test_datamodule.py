"""CineDataModule: what each mode serves (index counts against the definitions), batch contents,
phase and vendor options, seeded repeatability and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sspcmr.data import keys as K
from sspcmr.data.datamodule import CineDataModule
from sspcmr.data.splits import labelled_subset, read_split
from sspcmr.data.store import PreparedDataset


def _module(prepared_tiny, **kwargs) -> CineDataModule:
    root, split = prepared_tiny
    options = {"batch_size": 4, "num_workers": 0, "output_size": 64, **kwargs}
    module = CineDataModule(str(root), str(split), **options)
    module.setup("fit")
    return module


def _subject_table(prepared_tiny, part: str, split=None):
    root, split_path = prepared_tiny
    prepared = PreparedDataset(root)
    split = split or read_split(split_path)
    wanted = {(ds, s) for ds, ids in getattr(split, part).items() for s in ids}
    table = prepared.subjects
    return table[[(ds, s) in wanted for ds, s in zip(table["dataset"], table["SubjectID"], strict=True)]]


def test_pretrain_serves_every_frame_of_every_training_slice(prepared_tiny):
    module = _module(prepared_tiny, mode="pretrain")
    for part, name in (("train", "train"), ("valid", "val")):
        table = _subject_table(prepared_tiny, part)
        assert len(table) > 0
        assert len(module.datasets[name]) == int((table["n_slices"] * table["n_frames"]).sum())
    served = set(module.datasets["train"].rows["subject"])
    test_subjects = set(_subject_table(prepared_tiny, "test")["SubjectID"])
    assert not served & test_subjects  # pretraining never touches test subjects


@pytest.mark.parametrize("phases, per_slice", [(None, 2), (["ED"], 1), (["ES"], 1)])
def test_segment_serves_labelled_phases(prepared_tiny, phases, per_slice):
    module = _module(prepared_tiny, mode="segment", train_phases=phases)
    table = _subject_table(prepared_tiny, "train")
    assert len(module.datasets["train"]) == int(table["n_slices"].sum()) * per_slice
    rows = module.datasets["train"].rows
    if phases == ["ED"]:
        assert rows["is_ed"].all() and not rows["is_es"].any()
    if phases == ["ES"]:
        assert rows["is_es"].all() and (rows["frame_from_ed"] > 0).all()


def test_train_on_ed_evaluate_on_es(prepared_tiny):
    module = _module(prepared_tiny, mode="segment", train_phases=["ED"], eval_phases=["ES"])
    assert module.datasets["train"].rows["is_ed"].all()
    assert module.datasets["val"].rows["is_ed"].all()  # validation follows training (reference)
    assert {phase for _, phase in module.datasets["test"].items} == {"ES"}  # test: whole ES volumes
    assert module.slice_rows("test")["is_es"].all()
    volumes = _module(prepared_tiny, mode="volumes", eval_phases=["ES"])
    assert {phase for _, phase in volumes.datasets["test"].items} == {"ES"}


def test_labelled_subset_and_vendor_filter(prepared_tiny):
    root, split_path = prepared_tiny
    subset = labelled_subset(read_split(split_path), 2, seed=1)
    module = _module(prepared_tiny, mode="segment", subset_subjects=2, subset_seed=1)
    table = _subject_table(prepared_tiny, "train", subset)
    assert len(table) == 2
    assert set(module.datasets["train"].rows["subject"]) == set(table["SubjectID"])
    assert len(module.datasets["train"]) == 2 * int(table["n_slices"].sum())
    vendor = _module(prepared_tiny, mode="segment", vendors=["A", "B"])
    assert set(vendor.datasets["train"].rows["vendor"]) <= {"A", "B"}
    assert set(vendor.slice_rows("test")["vendor"]) == set(_subject_table(prepared_tiny, "test")["Vendor"])


def test_slice_items_match_the_prepared_arrays(prepared_tiny):
    module = _module(prepared_tiny, mode="segment")
    dataset = module.datasets["train"]
    prepared = dataset.prepared
    for i in (0, len(dataset) // 2, len(dataset) - 1):
        item, row = dataset[i], dataset.rows.iloc[i]
        s = int(row["subject_index"])
        raw = np.asarray(prepared.image(s)[row["frame"], row["slice"]], dtype=np.float32)
        np.testing.assert_allclose(item[K.IMAGE][0].numpy(), raw - prepared.subjects["min"][s], rtol=1e-6)
        label = prepared.labels(s)[0 if row["is_ed"] else 1, row["slice"]]
        np.testing.assert_array_equal(item[K.LABEL][0].numpy(), label)
        assert item[K.POSITION] == pytest.approx(row["slice"] / row["n_slices"])
        assert isinstance(prepared.image(s), np.memmap)  # read through memory maps, not loaded


def test_batches_are_native_and_volumes_get_the_evaluation_resampling(prepared_tiny):
    # The data module serves native slices (the method augments them: tests/methods/test_base.py).
    segment = _module(prepared_tiny, mode="segment")
    native = next(iter(segment.train_dataloader()))
    assert list(native[K.IMAGE].shape[-2:]) == native[K.PADDED][0].tolist()  # the batch's largest native slice
    assert native[K.LABEL].shape[1] == 1  # stored label values, no one-hot yet
    batch = segment.resample(native)
    assert batch[K.IMAGE].shape == (4, 1, 64, 64) and batch[K.LABEL].shape == (4, 4, 64, 64)
    assert torch.allclose(batch[K.LABEL].sum(1), torch.ones(4, 64, 64))
    volumes = _module(prepared_tiny, mode="volumes")
    item = volumes.datasets["test"][0]
    out = volumes.resample(item)
    assert out[K.IMAGE].shape == (item[K.IMAGE].shape[0], 1, 64, 64) and out[K.THETA].shape[1:] == (2, 3)
    assert torch.equal(out[K.NATIVE_LABEL], item[K.LABEL]) and out[K.VOXEL_SPACING].shape == (3,)
    assert out[K.PHASE] in ("ED", "ES") and out[K.AFFINE].shape == (4, 4)
    assert torch.equal(volumes.resample(item)[K.IMAGE], out[K.IMAGE])  # deterministic


def test_pretraining_validation_is_a_fixed_shuffle(prepared_tiny):
    module = _module(prepared_tiny, mode="pretrain", val_batch_size=8)
    rows = module.datasets["val"].rows
    stored = module.slice_rows("valid")
    assert sorted(map(tuple, rows[["subject_index", "slice", "frame"]].values.tolist())) == \
        sorted(map(tuple, stored[["subject_index", "slice", "frame"]].values.tolist()))
    first = rows[["slice", "frame"]].head(8).values.tolist()
    assert first != stored[["slice", "frame"]].head(8).values.tolist()  # not in stored order
    again = _module(prepared_tiny, mode="pretrain", val_batch_size=8).datasets["val"].rows
    assert again[["slice", "frame"]].head(8).values.tolist() == first  # the same shuffle every time


def test_bad_configurations_name_the_problem(prepared_tiny, tmp_path):
    root, split = prepared_tiny
    with pytest.raises(ValueError, match="mode"):
        CineDataModule(str(root), str(split), mode="bogus")
    with pytest.raises(ValueError, match="train_phases"):
        CineDataModule(str(root), str(split), train_phases=["XX"])
    bad = tmp_path / "split.yaml"
    bad.write_text(split.read_text().replace('"003"', '"999"'))
    with pytest.raises(ValueError, match="mm2 999"):
        CineDataModule(str(root), str(bad)).setup("fit")
    with pytest.raises(ValueError, match="not a prepared data set"):
        CineDataModule(str(tmp_path), str(split)).setup("fit")


def test_pretraining_share_of_training_subjects_is_nested_and_seeded(prepared_tiny):
    def subjects(**kwargs) -> set[int]:
        module = _module(prepared_tiny, mode="pretrain", **kwargs)
        return set(module.datasets["train"].rows["subject_index"])

    everyone = subjects()
    assert len(everyone) >= 4
    half, two, one = subjects(pretrain_subjects=0.5), subjects(pretrain_subjects=2), subjects(pretrain_subjects=1)
    assert len(half) == round(0.5 * len(everyone)) and one <= two <= half <= everyone  # nested
    assert subjects(pretrain_subjects=1.0) == everyone
    other_seed = [subjects(pretrain_subjects=2, pretrain_subjects_seed=s) for s in range(1, 6)]
    assert any(draw != two for draw in other_seed)
    validation = _module(prepared_tiny, mode="pretrain", pretrain_subjects=1).datasets["val"].rows
    assert set(validation["subject_index"]) == set(_module(prepared_tiny, mode="pretrain").datasets["val"].rows[
        "subject_index"])  # validation is not reduced
    for bad in (0, 0.0, 1.5, -2):
        with pytest.raises(ValueError, match="pretrain_subjects"):
            CineDataModule(str(prepared_tiny[0]), str(prepared_tiny[1]), pretrain_subjects=bad)
    with pytest.raises(ValueError, match="more than the"):
        subjects(pretrain_subjects=1000)


def test_long_axis_only_keeps_subjects_with_long_axis_views(prepared_tiny):
    module = _module(prepared_tiny, mode="pretrain", long_axis_only=True)
    kept = set(module.datasets["train"].rows["subject_index"])
    assert kept and all(module.prepared.meta(i)["long_axis"] for i in kept)
    everyone = set(_module(prepared_tiny, mode="pretrain").datasets["train"].rows["subject_index"])
    assert module.skipped_without_long_axis["train"] == len(everyone) - len(kept) > 0
