import pytest

from tftransfer.config.errors import UserError
from tftransfer.export import layout as export_layout


def _version(base, name, complete=True):
    folder = base / name
    folder.mkdir(parents=True)
    if complete:
        (folder / "saved_model.pb").write_bytes(b"")
    return str(folder)


def test_a_base_folder_resolves_to_its_highest_complete_version(tmp_path):
    base = tmp_path / "saved_model"
    _version(base, "2")
    highest = _version(base, "10")  # numeric, not lexical, order
    _version(base, "11", complete=False)  # a folder without saved_model.pb is skipped
    _version(base, ".staging-12-abcd")
    _version(base, "v13")
    _version(base, "²")  # a digit, but not a version number
    assert export_layout.versions(str(base)) == [2, 10, 11]
    assert export_layout.resolve_saved_model(str(base)) == highest
    assert export_layout.resolve_saved_model(highest) == highest
    assert export_layout.next_version(str(base)) == 12  # never reuses a number in use
    assert export_layout.next_version(str(tmp_path / "missing")) == 1


def test_errors_say_what_is_missing_and_hint_at_the_nested_folder(tmp_path):
    (tmp_path / "run" / "saved_model" / "3").mkdir(parents=True)
    with pytest.raises(UserError, match=r"^--model_dir: .* is not a SavedModel folder, nor a"):
        export_layout.resolve_saved_model(str(tmp_path / "run" / "saved_model"), "--model_dir")
    with pytest.raises(UserError, match=r"did you mean .*run/saved_model\?"):
        export_layout.resolve_saved_model(str(tmp_path / "run"))


def test_class_names_are_read_line_by_line(tmp_path):
    assert export_layout.read_class_names(str(tmp_path)) is None
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "labels.txt").write_text("T-shirt/top\n  padded \nÉté\n",
                                                    encoding="utf-8")
    assert export_layout.read_class_names(str(tmp_path)) == ["T-shirt/top", "  padded ", "Été"]
