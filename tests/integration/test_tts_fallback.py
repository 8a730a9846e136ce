"""Voice warnings where the espeakng-loader wheel's libespeak-ng does not load (its
aarch64 build asks for glibc 2.29; Kylin V10 and UOS 20 have 2.28): the OS's espeak-ng
is used instead, and without one the error says what to install."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import espeakng_loader
import pytest

from linkage.tts import TtsError, open_library


def test_the_wheels_library_when_it_loads() -> None:
    lib, data = open_library(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
    assert data == espeakng_loader.get_data_path().encode() and lib.espeak_Initialize


def test_a_library_that_does_not_load_falls_back_to_the_oss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "libespeak-ng.so.1"
    broken.write_bytes(b"\x7fELF not a library for this machine")
    os_library = espeakng_loader.get_library_path()  # stands in for /usr/lib/.../libespeak-ng
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda name: os_library if name == "espeak-ng" else None)  # fmt: skip
    lib, data = open_library(str(broken), str(tmp_path / "data"))
    assert data is None and lib.espeak_Initialize  # the OS's own data path


def test_without_an_os_espeak_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "libespeak-ng.so.1"
    broken.write_bytes(b"\x7fELF not a library for this machine")
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(TtsError, match="install the OS package espeak-ng"):
        open_library(str(broken), str(tmp_path / "data"))
