"""The `seller` command line: help stays light, lazy commands load only when run, a missing
module gives a clear exit 2, and `python -m seller import` works end to end."""
import subprocess
import sys
import textwrap

import pytest

from seller import cli

from test_import import write_files


def run_seller(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "seller", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_help_lists_commands_without_heavy_imports():
    code = textwrap.dedent("""
        import sys
        from seller.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
        heavy = [m for m in ("torch", "transformers", "llama_cpp", "pandas", "seller.bench.rec",
                             "seller.train", "seller.explain") if m in sys.modules]
        print("HEAVY", heavy)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    for command in ("import", "train", "explain", "evaluate", "bench"):
        assert command in done.stdout
    assert "HEAVY []" in done.stdout


def test_python_dash_m_seller_import_end_to_end(tmp_path):
    files = write_files(tmp_path / "in")
    out = tmp_path / "store"
    args = ["import", "--items", str(files["items"]), "--clients", str(files["clients"]),
            "--events", str(files["events"]), "--out", str(out)]
    done = run_seller(*args)
    assert done.returncode == 0, done.stderr
    assert "events: 5 read, 5 imported, 0 rejected" in done.stdout
    assert (out / "manifest.json").is_file()
    again = run_seller(*args)  # exists, no --force: refused, store untouched
    assert again.returncode == 2 and "--force" in again.stderr


def test_bench_without_name_shows_bench_help(capsys):
    assert cli.main(["bench"]) == 2
    out = capsys.readouterr().out
    assert all(name in out for name in ("rec", "llm", "train", "app"))
    with pytest.raises(SystemExit) as err:
        cli.main(["bench", "nope"])
    assert err.value.code == 2


def test_missing_lazy_module_is_a_clear_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(cli.LAZY, ("bench", "ghost"), ("seller.bench.ghost_absent", "absent"))
    assert cli.main(["bench", "ghost", "--help"]) == 2
    assert "not available in this build" in capsys.readouterr().err


def test_lazy_module_imported_only_when_run(monkeypatch, tmp_path, capsys):
    (tmp_path / "fake_cmd.py").write_text(textwrap.dedent('''
        """A fake command for the CLI test."""
        def add_arguments(parser):
            parser.add_argument("--k", type=int, default=3)
        def run(args):
            print("ran with k", args.k)
            return 7
    '''))
    (tmp_path / "fake_sub.py").write_text(textwrap.dedent('''
        def add_parser(subparsers):
            p = subparsers.add_parser("fake")
            p.add_argument("--n", type=int)
            return p
        def run(args):
            print("sub ran", args.n)
            return 0
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.LAZY, ("bench", "fake"), ("fake_cmd", "fake"))
    monkeypatch.setitem(cli.LAZY, ("fake",), ("fake_sub", "fake"))
    assert "fake_cmd" not in sys.modules
    assert cli.main(["bench", "fake", "--k", "5"]) == 7
    assert "ran with k 5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        cli.main(["bench", "fake", "--help"])
    assert err.value.code == 0 and "--k" in capsys.readouterr().out
    assert cli.main(["fake", "--n", "4"]) == 0  # the add_parser(subparsers) convention
    assert "sub ran 4" in capsys.readouterr().out
    for name in ("fake_cmd", "fake_sub"):
        sys.modules.pop(name, None)


def test_lazy_command_reports_library_errors_without_traceback(capsys, monkeypatch, tmp_path):
    from seller.cli import main
    monkeypatch.setenv("SELLER_GGUF", str(tmp_path / "missing.gguf"))
    monkeypatch.delenv("SELLER_DEBUG", raising=False)
    assert main(["explain", "--client", "C005", "--k", "1", "--username", "max"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seller explain: GGUF model not found:") and "missing.gguf" in err
    assert "Traceback" not in err


def test_every_command_takes_a_store_and_names_what_is_wrong_with_it(capsys, tmp_path):
    """--data / --dataset PATH on evaluate and bench rec: a missing store, or --data without the
    model it is to evaluate, is a one-line error, never a traceback."""
    missing = tmp_path / "no-such-store"
    assert cli.main(["bench", "rec", "--dataset", str(missing), "--models", "popularity"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"seller bench rec: {missing}: neither a SELLER store") and "Traceback" not in err
    assert cli.main(["evaluate", "--data", str(missing), "--out", str(tmp_path / "r")]) == 2
    assert "--data STORE needs one --model DIR" in capsys.readouterr().err
    assert cli.main(["evaluate", "--data", str(missing), "--model", "models/sample"]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    assert cli.main(["evaluate", "--data", str(missing), "--model", "models/sample", "--out", str(tmp_path / "r")]) == 1
    assert "neither a SELLER store" in capsys.readouterr().err and not (tmp_path / "r").exists()
