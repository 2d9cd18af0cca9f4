r"""``data_digest.txt``'s digests pinned to their documented recipe (flowaccent.data.fingerprint's docstring):
a run's stored digests must read the same after an upgrade, or ``train --resume`` says its data changed."""

from __future__ import annotations

import hashlib

from flowaccent.data.fingerprint import dir_fingerprint, fingerprint_text


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_digests_follow_the_documented_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative archive paths are read from the current folder
    data = tmp_path / "data"
    (data / "arks").mkdir(parents=True)
    (data / "arks" / "raw.1.ark").write_bytes(b"x" * 10)
    (data / "arks" / "raw.2.ark").write_bytes(b"y" * 7)
    (data / "cmvn.ark").write_bytes(b"z" * 3)
    feats = ("a data/arks/raw.1.ark:5\n"
             "b data/arks/raw.2.ark:9[0:3]\n"
             "c copy-feats ark:x.ark ark:- |\n"
             "d data/arks/raw.1.ark:77\n"
             "e gone/raw.9.ark:1\n")
    (data / "feats.scp").write_text(feats)
    (data / "cmvn.scp").write_text("s1 data/cmvn.ark:4\ns2 data/arks/raw.2.ark:1\n")
    (data / "utt2spk").write_text("a s1\nb s1\nc s2\nd s2\ne s2\n")
    (data / "utt2accent").write_text("a us\nb us\nc zh\nd zh\ne zh\n")
    where = {"feats.scp": "a raw.1.ark:5\nb raw.2.ark:9[0:3]\nc copy-feats ark:x.ark ark:- |\nd raw.1.ark:77\n"
                          "e raw.9.ark:1\n",
             "cmvn.scp": "s1 cmvn.ark:4\ns2 raw.2.ark:1\n"}
    sizes = "raw.1.ark 10\nraw.2.ark 7\nraw.9.ark -1\ncmvn.ark 3\n"  # first seen order, over both scps
    utt2spk = (data / "utt2spk").read_text()
    assert dir_fingerprint(data, with_cmvn=True, labelled=True) == {
        "feats.scp": _h(where["feats.scp"]), "cmvn.scp": _h(where["cmvn.scp"]), "utt2spk": _h(utt2spk),
        "arks": _h(sizes), "utt2accent": _h((data / "utt2accent").read_text())}
    assert dir_fingerprint(data, with_cmvn=False) == {
        "feats.scp": _h(where["feats.scp"]), "utt2spk": _h(utt2spk), "arks": _h(sizes.replace("cmvn.ark 3\n", ""))}
    assert fingerprint_text([data], with_cmvn=False) == (
        f"{data.absolute()}\tfeats.scp={_h(where['feats.scp'])} utt2spk={_h(utt2spk)} "
        f"arks={_h(sizes.replace('cmvn.ark 3' + chr(10), ''))}\n")


def test_a_data_dir_read_already_gives_the_same_digests(tmp_path, monkeypatch):
    r"""``train`` digests the :class:`DataDir` it loaded (its scps not read again) and hashes the lines a block at
    a time: the digests are those of the folder, whatever the block."""
    from flowaccent.data import fingerprint, load_data_dir

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.ark").write_bytes(b"x" * 10)
    utts = [f"u{i:02d}" for i in range(7)]
    (data / "feats.scp").write_text("".join(f"{u} data/a.ark:{i}\n" for i, u in enumerate(utts)))
    (data / "cmvn.scp").write_text("s data/a.ark:1\n")
    (data / "utt2spk").write_text("".join(f"{u} s\n" for u in utts))
    (data / "spk2utt").write_text(f"s {' '.join(utts)}\n")
    (data / "utt2accent").write_text("".join(f"{u} us\n" for u in utts))
    expected = dir_fingerprint(data, with_cmvn=True, labelled=True)
    assert expected["feats.scp"] == _h("".join(f"{u} a.ark:{i}\n" for i, u in enumerate(utts)))
    loaded = load_data_dir(data)
    for block in (1, 3, 7, 4096):
        monkeypatch.setattr(fingerprint, "_BLOCK", block)
        assert dir_fingerprint(loaded, with_cmvn=True, labelled=True) == expected
        assert fingerprint_text([loaded], with_cmvn=False, labelled=[data]) == fingerprint_text(
            [data], with_cmvn=False, labelled=[data])
