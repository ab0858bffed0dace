"""The one writer and JSON reader of output files (no TensorFlow)."""
import json
import os

import pytest

from tftransfer.outputs import files


def test_written_json_keeps_the_format_asked_for(tmp_path):
    path = str(tmp_path / "metrics.json")
    payload = {"b": [1, 2], "a": {"c": None}}
    files.write_json(path, payload, indent=2, sort_keys=True)
    with open(path, encoding="utf-8") as f:
        assert f.read() == json.dumps(payload, indent=2, sort_keys=True)
    assert files.read_json(path) == payload
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_the_file_appears_only_once_complete(tmp_path, monkeypatch):
    path = str(tmp_path / "report.md")
    files.write_text(path, "old")
    seen_at_rename = []
    replace = os.replace

    def checked_replace(source, target):
        with open(target, encoding="utf-8") as old, open(source, encoding="utf-8") as new:
            seen_at_rename.append((old.read(), new.read()))
        replace(source, target)
    monkeypatch.setattr(os, "replace", checked_replace)
    files.write_text(path, "new ✓")
    assert seen_at_rename == [("old", "new ✓")]
    with open(path, encoding="utf-8") as f:
        assert f.read() == "new ✓"


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch,
                                                             interruption):
    path = str(tmp_path / "search.json")
    files.write_json(path, {"trials": [1]})

    def interrupted(source, target):
        raise interruption
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(interruption):
        files.write_json(path, {"trials": [1, 2]})
    assert files.read_json(path) == {"trials": [1]}
    assert os.listdir(tmp_path) == ["search.json"]   # no staging file left behind


def test_a_refused_write_names_the_file_not_its_staging_copy(tmp_path):
    path = str(tmp_path / "missing_folder" / "compression.json")
    with pytest.raises(FileNotFoundError) as info:
        files.write_bytes(path, b"{}")
    assert info.value.filename == path


def test_absent_or_cut_short_json_reads_as_none(tmp_path):
    assert files.read_json(str(tmp_path / "absent.json")) is None
    assert files.read_json(str(tmp_path)) is None   # a folder
    cut = tmp_path / "state.json"
    cut.write_text(json.dumps({"epoch": 3, "best": 0.5})[:-7], encoding="utf-8")
    assert files.read_json(str(cut)) is None
    cut.write_bytes(b"")
    assert files.read_json(str(cut)) is None
    cut.write_bytes('{"name": "é"}'.encode("utf-8")[:-3])  # cut inside a character
    assert files.read_json(str(cut)) is None
