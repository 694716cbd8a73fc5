"""The pipelines compile; the committed compiled YAML is up to date; components stay thin."""

import ast
from pathlib import Path

import pytest
import yaml

from mmrlaif.config import load_config
from mmrlaif.pipelines import compile_pipeline

ROOT = Path(__file__).resolve().parents[3]
COMPILED = ROOT / "pipelines" / "compiled"
PRESET = ROOT / "configs" / "tiny_cpu.yaml"


@pytest.mark.parametrize(
    ("method", "name", "iterations"), [("rlaifv", "rlaifv", 3), ("povid", "povid", 1)]
)
def test_compiled_yaml_is_up_to_date(tmp_path, method, name, iterations):
    overrides = {"pipeline.method": method, "pipeline.iterations": iterations}
    cfg = load_config(PRESET, overrides)
    out = compile_pipeline(cfg, tmp_path / f"{name}.yaml")
    committed = COMPILED / f"{name}_tiny_cpu.yaml"
    assert committed.read_text() == out.read_text(), (
        f"{committed} is stale: regenerate with "
        f"`mmrlaif compile --config configs/tiny_cpu.yaml --set pipeline.method={method} "
        f"--set pipeline.iterations={iterations} --out {committed.relative_to(ROOT)}`"
    )


def test_iterations_are_unrolled_and_parameters_are_config_and_run_date(tmp_path):
    cfg = load_config(PRESET, {"pipeline.iterations": 2})
    # the whole file parses as YAML (a multi-line default would break KFP's header comment)
    docs = list(yaml.safe_load_all(compile_pipeline(cfg, tmp_path / "p.yaml").read_text()))
    spec = docs[0]
    tasks = spec["root"]["dag"]["tasks"]
    refs = [t["componentRef"]["name"] for t in tasks.values()]
    assert sum(r.startswith("comp-train-dpo") for r in refs) == 2
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"config", "run_date"}
    # run_date keys the cache of a scheduled run; a hand-submitted run leaves it empty
    assert params["run_date"]["defaultValue"] == ""
    default = spec["root"]["inputDefinitions"]["parameters"]["config"]["defaultValue"]
    assert yaml.safe_load(default)["pipeline"]["iterations"] == 2


def test_components_are_thin():
    # which packages may import kfp is an import contract (pyproject.toml, `make lint`)
    for path in sorted((ROOT / "components").glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            body = [s for s in fn.body if not isinstance(s, ast.Expr | ast.Import | ast.ImportFrom)]
            assert len(body) <= 6, f"{path.name}:{fn.name} holds logic ({len(body)} statements)"


@pytest.mark.parametrize("method", ["rlaifv", "povid"])
def test_a_local_run_caches_every_task_but_tracking_under_its_key(tmp_path, method):
    from kfp import compiler

    from mmrlaif.pipelines.build import build_pipeline
    from mmrlaif.pipelines.skeleton import LocalRun
    from mmrlaif.pipelines.tasks import TASKS

    cfg = load_config(PRESET, {"pipeline.method": method, "pipeline.iterations": 2})
    pipeline = build_pipeline(cfg, on_kubernetes=False, local_run=LocalRun("k1", "/ckpt"))
    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    spec = next(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    executors = spec["deploymentSpec"]["executors"]
    cached, always = set(), set()
    for task in spec["root"]["dag"]["tasks"].values():
        component = task["componentRef"]["name"]
        name = component.removeprefix("comp-").rstrip("-0123456789")
        executor = spec["components"][component]["executorLabel"]
        env = {e["name"]: e["value"] for e in executors[executor]["container"].get("env", [])}
        if TASKS[name].tracking:
            always.add(name)
            assert not task.get("cachingOptions", {}).get("enableCache"), name
            assert "MMRLAIF_RUN_KEY" not in env, name
        else:
            cached.add(name)
            assert task["cachingOptions"]["enableCache"] is True, name
            assert env["MMRLAIF_RUN_KEY"] == "k1"
            assert env["MMRLAIF_CHECKPOINT_DIR"] == "/ckpt"
    assert {"prepare-world", "base-policy", "evaluate", "train-dpo", "select-policy"} <= cached
    assert {"start-tracking", "register", "finish-tracking"} <= always


@pytest.mark.parametrize("local", [False, True])
def test_an_undeclared_component_is_an_error_when_the_pipeline_is_built(
    tmp_path, monkeypatch, local
):
    from mmrlaif.pipelines import tasks
    from mmrlaif.pipelines.build import build_pipeline
    from mmrlaif.pipelines.skeleton import LocalRun

    monkeypatch.delitem(tasks.TASKS, "select-policy")
    cfg = load_config(PRESET)
    with pytest.raises(ValueError, match="component 'select-policy' is not declared"):
        if local:
            build_pipeline(cfg, on_kubernetes=False, local_run=LocalRun("k", "/c"))
        else:
            compile_pipeline(cfg, tmp_path / "p.yaml")
