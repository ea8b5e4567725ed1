"""The parsed-ontology cache: keyed by the OBO file's bytes, rebuilt when they change, never used for
other content, ignored when damaged or turned off, and loads the same Ontology as parsing."""

from __future__ import annotations

import numpy as np
import pytest

from cafa_mlflow.go import obo as obo_module
from cafa_mlflow.go import ontology_cache
from cafa_mlflow.go.ontology import load_obo
from tests.cafa_fixtures import OBO, write

RENAMED = OBO.replace("name: dog\n", "name: wolf\n")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAFA_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def parses(monkeypatch):
    """Count the real parses (cache misses)."""
    calls = []
    real = obo_module.parse_obo

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr("cafa_mlflow.go.ontology.parse_obo", counting)
    return calls


def _same(a, b) -> None:
    assert a.terms == b.terms and a.names == b.names and a.aspect.tolist() == b.aspect.tolist()
    assert a.alt_ids == b.alt_ids and a.obsolete == b.obsolete
    assert (a.parents != b.parents).nnz == 0 and (a.ancestors != b.ancestors).nnz == 0


def test_second_load_comes_from_the_cache_and_equals_parsing(tmp_path, cache, parses):
    path = write(tmp_path / "go.obo", OBO)
    first = load_obo(path)
    assert len(parses) == 1 and len(list(cache.glob("ontology-*.npz"))) == 1
    second = load_obo(path)
    assert len(parses) == 1  # no second parse
    _same(first, second)
    assert second.ancestors_of("GO:0000005") == first.ancestors_of("GO:0000005")
    with np.load(next(cache.glob("*.npz")), allow_pickle=False) as z:  # plain arrays only, no pickle
        assert all(z[k].dtype != object for k in z.files)


def test_changed_file_is_parsed_again(tmp_path, cache, parses):
    path = write(tmp_path / "go.obo", OBO)
    assert load_obo(path).names[-1] == "dog"
    write(path, RENAMED)  # same path, new content
    assert load_obo(path).names[-1] == "wolf"
    assert len(parses) == 2 and len(list(cache.glob("*.npz"))) == 2
    write(path, OBO)  # back to the first content: its entry serves again
    assert load_obo(path).names[-1] == "dog" and len(parses) == 2


def test_entry_is_never_used_for_other_content(tmp_path, cache, parses):
    a, b = write(tmp_path / "a" / "go.obo", OBO), write(tmp_path / "b" / "go.obo", RENAMED)
    assert load_obo(a).names[-1] == "dog"
    assert load_obo(b).names[-1] == "wolf"  # same file name, other bytes: parsed, not taken from a's entry
    # an entry copied under another file's hash is refused (it records the hash it was made from)
    entry_a = ontology_cache.entry_path(ontology_cache.file_digest(a))
    entry_b = ontology_cache.entry_path(ontology_cache.file_digest(b))
    entry_b.write_bytes(entry_a.read_bytes())
    assert load_obo(b).names[-1] == "wolf" and len(parses) == 3


def test_damaged_entry_is_rebuilt_and_off_writes_nothing(tmp_path, cache, parses, monkeypatch):
    path = write(tmp_path / "go.obo", OBO)
    load_obo(path)
    entry = next(cache.glob("*.npz"))
    entry.write_bytes(b"not an npz")
    _same(load_obo(path), load_obo(write(tmp_path / "copy.obo", OBO)))
    assert len(parses) == 2 and entry.stat().st_size > 100  # parsed again and rewritten
    monkeypatch.setenv("CAFA_CACHE_DIR", "off")
    load_obo(write(tmp_path / "other.obo", RENAMED))
    assert len(parses) == 3 and len(list(cache.glob("*.npz"))) == 1


def test_unwritable_cache_folder_only_costs_time(tmp_path, monkeypatch, parses):
    blocker = write(tmp_path / "file", "x")
    monkeypatch.setenv("CAFA_CACHE_DIR", str(blocker / "sub"))  # a folder cannot be made under a file
    assert load_obo(write(tmp_path / "go.obo", OBO)).names[-1] == "dog"
