"""Finding a user's images: class folders, split folders, CSV manifests, the stratified split and
the manifest, each checked against the files the test writes."""

import os

import numpy as np
import pytest
from PIL import Image

from convnet.data.folders import Manifest, check_classes, read_csv, recognise, scan_folder, stratified_split


def png(path, value=0, size=(4, 4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8)).save(path)
    return path


def test_classes_are_sorted_folders_images_found_at_any_depth_and_other_files_counted(tmp_path):
    names = ["b class", "A", "고양이", "🐱 cats"]
    for name in names:
        png(tmp_path / name / "one.PNG")
        png(tmp_path / name / "deeper" / "two.jpeg")
        (tmp_path / name / "readme.txt").write_text("not an image")
    png(tmp_path / "A" / ".hidden.png")
    png(tmp_path / "A" / ".thumbnails" / "three.png")
    png(tmp_path / ".git" / "four.png")
    listing = scan_folder(tmp_path)
    assert listing.classes == tuple(sorted(names))  # Python's string order, as torchvision's ImageFolder
    assert listing.relative() == [f"{name}/{file}" for name in sorted(names) for file in ("deeper/two.jpeg", "one.PNG")]
    assert listing.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert listing.non_images == 4 and listing.validation is None
    assert recognise(tmp_path) == "image folder" and recognise(tmp_path / "A" / "one.PNG") is None


def test_a_symlink_loop_ends_and_a_symlinked_folder_is_read_once(tmp_path):
    png(tmp_path / "a" / "x.png")
    png(tmp_path / "b" / "y.png")
    os.symlink(tmp_path / "a", tmp_path / "a" / "loop")
    os.symlink(tmp_path / "b", tmp_path / "a" / "other")
    listing = scan_folder(tmp_path)
    assert listing.relative() == ["a/other/y.png", "a/x.png", "b/y.png"]


def test_train_and_val_folders_split_the_data(tmp_path):
    for split, count in (("train", 3), ("valid", 1)):
        for name in ("cat", "dog"):
            for i in range(count):
                png(tmp_path / split / name / f"{i}.png")
    listing = scan_folder(tmp_path)
    assert listing.classes == ("cat", "dog")
    assert listing.validation.tolist() == [False] * 6 + [True] * 2
    assert listing.labels.tolist() == [0, 0, 0, 1, 1, 1, 0, 1]
    assert listing.split == {"kind": "folders", "train": "train", "validation": "valid"}


def test_folder_refusals_name_the_class(tmp_path):
    png(tmp_path / "train" / "cat" / "0.png")
    png(tmp_path / "val" / "cow" / "0.png")
    with pytest.raises(ValueError, match=r"val/cow: validation class 'cow' has no training folder"):
        scan_folder(tmp_path)
    (tmp_path / "other" / "empty one").mkdir(parents=True)
    png(tmp_path / "other" / "full" / "0.png")
    with pytest.raises(ValueError, match=r"empty one: class 'empty one' has no images \(expected files ending in"):
        scan_folder(tmp_path / "other")
    png(tmp_path / "single" / "only" / "0.png")
    with pytest.raises(ValueError, match=r"only one class \('only'\); a classifier needs at least 2"):
        check_classes(scan_folder(tmp_path / "single"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        scan_folder(tmp_path / "nowhere")


def test_the_stratified_split_holds_out_the_fraction_of_each_class_the_same_way_every_time():
    labels = np.array([0] * 50 + [1] * 20 + [2] * 3)
    validation = stratified_split(labels, ("a", "b", "c"), 0.1, seed=4)
    assert [int(validation[labels == c].sum()) for c in range(3)] == [5, 2, 1]
    np.testing.assert_array_equal(validation, stratified_split(labels, ("a", "b", "c"), 0.1, seed=4))
    assert not np.array_equal(validation, stratified_split(labels, ("a", "b", "c"), 0.1, seed=5))
    # each class's draw depends on its own members alone: adding a class changes nothing for the others
    more = stratified_split(np.concatenate([labels, [3, 3]]), ("a", "b", "c", "d"), 0.1, seed=4)
    np.testing.assert_array_equal(more[:len(labels)], validation)


def test_a_class_too_small_for_the_split_is_refused_by_name():
    with pytest.raises(ValueError, match=r"class 'lonely' has 1 image, too few for a validation split of 0.2"):
        stratified_split(np.array([0, 0, 0, 1]), ("many", "lonely"), 0.2, seed=0)
    with pytest.raises(ValueError, match="expected a fraction between 0 and 1, got 1.5"):
        stratified_split(np.array([0, 1]), ("a", "b"), 1.5, seed=0)


def test_a_csv_manifest_reads_paths_relative_to_it_and_sorts_numeric_labels_as_numbers(tmp_path):
    for i in range(4):
        png(tmp_path / "pictures" / f"{i}.png")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\npictures/0.png,10\npictures/1.png,2\n\npictures/2.png,2\npictures/3.png,10\n")
    listing = read_csv(csv_path)
    assert listing.classes == ("2", "10") and listing.labels.tolist() == [1, 0, 0, 1]
    assert listing.relative() == [f"pictures/{i}.png" for i in range(4)] and listing.validation is None
    assert recognise(csv_path) == "csv"


def test_a_csv_split_column_and_its_refusals_name_the_row(tmp_path):
    for i in range(3):
        png(tmp_path / f"{i}.png")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("label,path,split\nowl,0.png,train\nbat,1.png,train\nowl,2.png,val\n")
    listing = read_csv(csv_path)
    assert listing.classes == ("bat", "owl") and listing.validation.tolist() == [False, False, True]
    cases = {"path,label\n0.png,owl\nmissing.png,bat\n": r"m.csv, row 3: .*missing.png does not exist",
             "path,label\n0.png,owl\n1.png,\n": r"m.csv, row 3: no label",
             "path,label,split\n0.png,owl,train\n1.png,bat,test\n": r"row 3: label 'bat' is in no training row",
             "path,label,split\n0.png,owl,later\n": r"row 2: expected split train or val/valid/validation/test",
             "file,class\n0.png,owl\n": "expected a header row naming the columns path and label"}
    for text, message in cases.items():
        csv_path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_csv(csv_path)
    csv_path.write_bytes("path,label\n0.png,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="m.csv: expected a CSV file in UTF-8, got UnicodeDecodeError"):
        read_csv(csv_path)


def test_the_manifest_names_what_was_added_removed_and_edited(tmp_path):
    for i in range(5):
        png(tmp_path / "a" / f"{i}.png", value=i)
    before = Manifest.of(scan_folder(tmp_path))
    assert Manifest.parse(before.text()).sha256 == before.sha256
    assert Manifest.of(scan_folder(tmp_path)).changes(before) == ""
    png(tmp_path / "a" / "new.png")
    (tmp_path / "a" / "0.png").unlink()
    png(tmp_path / "a" / "3.png", value=200, size=(5, 5))
    after = Manifest.of(scan_folder(tmp_path))
    assert after.sha256 != before.sha256
    assert after.changes(before) == "1 added (a/new.png); 1 removed (a/0.png); 1 edited (a/3.png)"
    os.utime(tmp_path / "a" / "1.png", ns=(0, 12345))  # same bytes, new modification time: edited
    assert "1 edited (a/1.png)" in Manifest.of(scan_folder(tmp_path)).changes(after)
