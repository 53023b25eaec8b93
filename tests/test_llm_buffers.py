"""Where llama.cpp puts weights: the decision for AVX2-only, AVX-512 and AMX machines, the
setting reaching llama.cpp, and the real GGUF decoded in a child process (a SIGILL there fails
this test instead of killing the suite)."""
import os

import pytest

from seller.llm import buffers
from seller.llm.buffers import decide, llama_features, probe_in_child, resolve_setting

# llama_print_system_info() as builds on three kinds of machine print it
AVX2_ONLY = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
AVX512 = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
          "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")
AMX = AVX512.replace("AVX512_BF16 = 1 |", "AVX512_BF16 = 1 | AMX_INT8 = 1 |")
SAPPHIRE_FLAGS = {"avx2", "avx512f", "amx_tile", "amx_int8", "amx_bf16"}


@pytest.mark.parametrize("info, flags, use_extra", [
    (AVX2_ONLY, {"avx2"}, True),
    (AVX512, {"avx2", "avx512f"}, True),
    (AVX512, SAPPHIRE_FLAGS, True),  # an AMX CPU, but this build has no AMX kernels to crash in
    (AMX, SAPPHIRE_FLAGS, False),
    ("", SAPPHIRE_FLAGS, False),  # the build says nothing: the CPU's AMX decides
    ("", {"avx2"}, True),
])
def test_auto_turns_extra_buffers_off_only_where_the_amx_path_is_built(info, flags, use_extra):
    decision = decide("auto", llama_features(info), flags)
    assert decision.use_extra is use_extra and decision.reason


@pytest.mark.parametrize("setting", ["on", "off"])
def test_forcing_wins_over_the_machine(setting):
    for info in (AVX2_ONLY, AMX):
        assert decide(setting, llama_features(info), SAPPHIRE_FLAGS).use_extra is (setting == "on")


def test_features_and_flags_parse():
    assert llama_features(AMX)["AMX_INT8"] and not llama_features(AVX2_ONLY).get("AVX512")
    assert buffers.cpu_flags("processor : 0\nflags\t\t: fpu avx2 amx_tile\nbugs : x\n") == {"fpu", "avx2", "amx_tile"}
    assert buffers.cpu_flags("") == set()


def test_env_overrides_config_and_bad_values_name_their_source(monkeypatch):
    monkeypatch.delenv(buffers.ENV, raising=False)
    assert resolve_setting() == "auto" and resolve_setting("off") == "off"
    monkeypatch.setenv(buffers.ENV, "ON")
    assert resolve_setting("off") == "on"
    monkeypatch.setenv(buffers.ENV, "maybe")
    with pytest.raises(ValueError, match="SELLER_LLAMA_EXTRA_BUFFERS='maybe'"):
        resolve_setting()
    monkeypatch.delenv(buffers.ENV)
    with pytest.raises(ValueError, match=r"\[llm\] extra_buffers = 'sometimes'"):
        resolve_setting("sometimes")


@pytest.mark.parametrize("weights", ["as-is", "f16"])
def test_real_gguf_decodes_in_a_child_process(weights):
    report = probe_in_child(weights=weights)
    assert report["ok"], (f"decoding the shipped GGUF ({weights}) in a child process ended with "
                          f"rc {report['returncode']} ({report['signal']}):\n{report['stderr_tail']}")
    assert report["finite"] and report["n_logits"] == report["n_vocab"] > 0
    assert report["weight_buffers"], "llama.cpp said nothing about where the weights went"
    cpu = buffers.machine_cpu()
    assert report["decision"]["use_extra"] is decide("auto", cpu["features"], cpu["flags"]).use_extra
    if cpu["features"].get("AMX_INT8"):
        assert not any("AMX" in name for name in report["weight_buffers"])


def test_the_setting_reaches_llama_cpp(tmp_path, monkeypatch):
    """A Q4_0 copy is what CPU_REPACK re-lays on x86: on puts some weights there, off none."""
    from seller.llm import resolve_gguf
    from seller.llm.native import Model
    from seller.llm.weights import quantize_copy

    monkeypatch.delenv(buffers.ENV, raising=False)
    q4_0 = quantize_copy(resolve_gguf(), tmp_path / "q4_0.gguf", "Q4_0")
    off = Model(q4_0, extra_buffers="off")
    assert not off.buffer_decision.use_extra and set(off.weight_buffers) == {"CPU_Mapped"}
    off.close()
    on = Model(q4_0, extra_buffers="on")  # loading is safe everywhere; only an AMX decode crashes
    assert on.buffer_decision.use_extra and {"CPU_REPACK", "AMX"} & set(on.weight_buffers)
    on.close()


def test_a_failing_child_is_a_result_not_an_exception(tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(64))
    report = probe_in_child(bad)
    assert not report["ok"] and report["returncode"] == 1 and "could not load" in report["stderr_tail"]
    # rc 132 in a shell is -4 here: the child was killed by SIGILL, as on an unprotected AMX machine
    died = buffers.child_report(-4, "", "Fatal Python error: Illegal instruction")
    assert not died["ok"] and died["signal"] == "SIGILL"
