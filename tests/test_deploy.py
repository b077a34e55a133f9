"""The path to production, checked where it cannot run: the Dockerfiles (hadolint), the Kubernetes manifests of both
environments (rendered by kustomize, validated against the Kubernetes schemas, wired to real settings, routes and
commands), the GitHub Actions workflows (the workflow schema) and the deploy scripts (dry runs)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(DEPLOY.glob("*.Dockerfile"))
K8S_VERSIONS = ["1.30.0", "1.37.0"]  # the oldest Kubernetes still common in managed clusters, and the newest schema


def tool(name: str) -> str:
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not path:
        pytest.fail(f"{name} is not installed: `make install` installs the dev tools (kubectl: see .ci/run)")
    return path


# ---- images ----


def test_three_images():
    assert [p.name for p in DOCKERFILES] == ["dashboard.Dockerfile", "serve.Dockerfile", "train.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    p = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copies_exist_and_pass_dockerignore(dockerfile):
    "Every COPY source exists and is not excluded by .dockerignore (its allow-list)."
    allowed = [l[1:].rstrip("/") for l in (REPO / ".dockerignore").read_text().splitlines() if l.startswith("!")]
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"{dockerfile.name} copies {src}, which does not exist"
                assert src.rstrip("/") in allowed, f"{dockerfile.name} copies {src}, which .dockerignore leaves out"


def _install_line(dockerfile) -> str:
    return next(l for l in dockerfile.read_text().splitlines() if "pip install" in l)


def test_images_install_their_extras():
    "The serving image is the inference install (no extras); the dashboard adds `dashboard`; training adds `train`."
    assert re.search(r"pip install [^\[]*\s\.$", _install_line(DEPLOY / "serve.Dockerfile"))
    assert '".[dashboard]"' in _install_line(DEPLOY / "dashboard.Dockerfile")
    assert '".[train]"' in _install_line(DEPLOY / "train.Dockerfile")
    for f in ("serve", "dashboard", "train"):
        text = (DEPLOY / f"{f}.Dockerfile").read_text()
        assert re.search(r"^USER 10001$", text, re.M), f"{f} image must not run as root"
    serve = (DEPLOY / "serve.Dockerfile").read_text()
    assert "HEALTHCHECK" in serve and "/health" in serve and "HF_HUB_OFFLINE=1" in serve
    # started by `emailrouter serve`, whose HTTP protocol times out slow clients' headers as well as their bodies
    assert re.search(r'^CMD \["emailrouter", "serve", "--host", "0.0.0.0", "--port", "8000"\]$', serve, re.M)


# ---- Kubernetes ----


def render(env: str) -> list[dict]:
    p = subprocess.run(
        [tool("kubectl"), "kustomize", str(DEPLOY / "k8s" / "overlays" / env)], capture_output=True, text=True
    )
    if p.returncode != 0:
        v = subprocess.run([tool("kubectl"), "version", "--client"], capture_output=True, text=True).stdout
        pytest.fail(
            "kubectl kustomize failed (the overlays need kustomize v5, in kubectl 1.27 or later; here: "
            f"{v.strip()}):\n{p.stderr}"
        )
    return [d for d in yaml.safe_load_all(p.stdout) if d]


@pytest.fixture(scope="module")
def envs():
    return {env: render(env) for env in ("test", "prod")}


def obj(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(docs):
    for d in docs:
        spec = d.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            yield d, c


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(envs, version):
    import kubernetes_validate

    for env, docs in envs.items():
        for d in docs:
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(
                    f"{env}: {d['kind']}/{d['metadata']['name']} is not valid Kubernetes {version}: {e.message}"
                )


def test_objects_and_namespaces(envs):
    kinds = lambda docs: sorted(
        f"{d['kind']}/{d['metadata']['name'].rsplit('-', 1)[0] if d['kind'] == 'ConfigMap' else d['metadata']['name']}"
        for d in docs
    )
    common = [
        "ConfigMap/emailrouter-config",
        "CronJob/emailrouter-prune",
        "Deployment/emailrouter-dashboard",
        "Deployment/emailrouter-serve",
        "HorizontalPodAutoscaler/emailrouter-serve",
        "Job/emailrouter-train",
        "Job/emailrouter-tune",
        "Service/emailrouter-dashboard",
        "Service/emailrouter-serve",
    ]
    assert kinds(envs["test"]) == common
    assert kinds(envs["prod"]) == sorted(common + ["PodDisruptionBudget/emailrouter-serve"])
    for env, docs in envs.items():
        assert {d["metadata"].get("namespace") for d in docs} == {f"emailrouter-{env}"}


def test_config_is_real_settings(envs, monkeypatch):
    "Every EMAILROUTER_* key of each environment's ConfigMap is a setting with a valid value."
    from emailrouter.core import ENV_PREFIX, Settings, load_settings

    for env, docs in envs.items():
        data = obj(docs, "ConfigMap", "emailrouter-config")["data"]
        fields = {f"{ENV_PREFIX}{k}".upper() for k in Settings.model_fields}
        assert set(data) <= fields, f"{env}: not settings: {sorted(set(data) - fields)}"
        for k, v in data.items():
            monkeypatch.setenv(k, v)
        s = load_settings()  # raises SettingsError naming any bad value
        assert s.serve_backend == "onnx" and s.inference_threads == 2


def test_pods_wired_to_config_and_secret(envs):
    for env, docs in envs.items():
        config = obj(docs, "ConfigMap", "emailrouter-config")["metadata"]["name"]
        for d, c in containers(docs):
            refs = c.get("envFrom", [])
            assert {"configMapRef": {"name": config}} in refs, f"{env}: {d['metadata']['name']} misses the ConfigMap"
            assert {"secretRef": {"name": "emailrouter-secrets"}} in refs, (
                f"{env}: {d['metadata']['name']} misses the Secret"
            )
            assert not any(e.get("value") for e in c.get("env", [])), "no literal values in env: config or Secret only"


def test_probes_hit_real_routes_and_ports(envs):
    from emailrouter.serve import ops

    routes = {r.path for r in ops.routes}
    expose = re.search(r"^EXPOSE (\d+)", (DEPLOY / "serve.Dockerfile").read_text(), re.M).group(1)
    for _env, docs in envs.items():
        c = obj(docs, "Deployment", "emailrouter-serve")["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
        assert {"/ready", "/health"} <= routes
        assert str(c["ports"][0]["containerPort"]) == expose
        assert c["resources"]["requests"]["cpu"] == c["resources"]["limits"]["cpu"] == "2"
        assert obj(docs, "Service", "emailrouter-serve")["spec"]["ports"][0]["targetPort"] == "http"


def test_dashboard_image_runs_the_production_server(envs):
    "The dashboard image runs a real `emailrouter dashboard` (gunicorn) on the port it exposes and its pods probe."
    import json

    from emailrouter.cli import build_parser, cmd_dashboard

    text = (DEPLOY / "dashboard.Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    args = build_parser().parse_args(entry[1:])
    expose = re.search(r"^EXPOSE (\d+)$", text, re.M).group(1)
    assert entry[0] == "emailrouter" and args.func is cmd_dashboard and args.threads >= 1 and str(args.port) == expose
    assert f"('127.0.0.1', {expose})" in text  # the HEALTHCHECK connects to that port
    for _env, docs in envs.items():
        c = obj(docs, "Deployment", "emailrouter-dashboard")["spec"]["template"]["spec"]["containers"][0]
        assert str(c["ports"][0]["containerPort"]) == expose and c["readinessProbe"]["tcpSocket"]["port"] == "http"


def test_job_arguments_are_real_commands(envs):
    "The Jobs' arguments parse as `emailrouter` commands; training Jobs want a GPU and start suspended."
    from emailrouter.cli import build_parser

    for _env, docs in envs.items():
        for name, command in (("emailrouter-train", "train"), ("emailrouter-tune", "tune")):
            job = obj(docs, "Job", name)
            c = job["spec"]["template"]["spec"]["containers"][0]
            assert build_parser().parse_args(c["args"]).command == command
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and job["spec"]["suspend"] is True
    for env, n in (("test", 2), ("prod", 4)):
        tune = obj(envs[env], "Job", "emailrouter-tune")["spec"]
        assert tune["completionMode"] == "Indexed" and tune["completions"] == tune["parallelism"] == n


def test_test_and_prod_differ_as_documented(envs):
    """test serves the challenger on one pod (up to two) with debug logs; prod the champion on 3 to 12 pods, spread,
    with a disruption budget."""
    cfg = {e: obj(d, "ConfigMap", "emailrouter-config")["data"] for e, d in envs.items()}
    assert cfg["test"]["EMAILROUTER_MODEL_URI"].endswith("@challenger") and cfg["prod"][
        "EMAILROUTER_MODEL_URI"
    ].endswith("@champion")
    assert cfg["test"]["EMAILROUTER_LOG_LEVEL"] == "DEBUG" and cfg["prod"]["EMAILROUTER_LOG_LEVEL"] == "INFO"
    hpa = {e: obj(d, "HorizontalPodAutoscaler", "emailrouter-serve")["spec"] for e, d in envs.items()}
    assert (hpa["test"]["minReplicas"], hpa["test"]["maxReplicas"]) == (1, 2)
    assert (hpa["prod"]["minReplicas"], hpa["prod"]["maxReplicas"]) == (3, 12)
    assert (
        "topologySpreadConstraints" in obj(envs["prod"], "Deployment", "emailrouter-serve")["spec"]["template"]["spec"]
    )
    assert obj(envs["prod"], "PodDisruptionBudget", "emailrouter-serve")["spec"]["minAvailable"] == 2


# ---- delivery ----


def test_workflows_match_the_schema():
    p = subprocess.run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, sorted((REPO / ".github" / "workflows").glob("*.yml"))),
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_workflows_use_what_the_repository_has():
    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    assert any(s.get("run") == "bash .ci/run" for s in ci["jobs"]["test"]["steps"])  # one CI script, not a copy of it
    assert "make test" in (REPO / ".ci/run").read_text()
    release = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    images = release["jobs"]["images"]["strategy"]["matrix"]["image"]
    assert all((DEPLOY / f"{i}.Dockerfile").exists() for i in images) and set(images) == {"serve", "train", "dashboard"}
    assert (
        release["jobs"]["deploy-prod"]["needs"] == "deploy-test"
        and release["jobs"]["deploy-prod"]["environment"] == "production"
    )
    for job in release["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").split()
            if script and script[0].startswith("deploy/"):
                assert (REPO / script[0]).exists(), script[0]


def test_deploy_dry_run(tmp_path):
    env = {
        **os.environ,
        "DRY_RUN": "1",
        "REGISTRY": "registry.example/team",
        "SECRETS_ENV": "EMAILROUTER_API_KEY=s3cret",
    }
    p = subprocess.run(
        [str(DEPLOY / "deploy.sh"), "test", "v1.2.3"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert p.returncode == 0, p.stderr
    assert "image: registry.example/team/emailrouter-serve:v1.2.3" in p.stdout
    assert "s3cret" not in p.stdout + p.stderr  # the Secret's values stay in the file kubectl reads
    assert "-l app.kubernetes.io/component notin (training,tuning)" in p.stdout
    assert "rollout status deployment/emailrouter-serve" in p.stdout
    assert "kubectl create namespace emailrouter-test --dry-run=client -o yaml | kubectl apply -f -" in p.stdout
    p = subprocess.run(
        [str(DEPLOY / "deploy.sh"), "staging", "v1"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert p.returncode == 2 and "unknown environment 'staging'" in p.stderr


def test_run_job_dry_run(tmp_path):
    p = subprocess.run(
        [str(DEPLOY / "run-job.sh"), "prod", "tune"],
        capture_output=True,
        text=True,
        env={**os.environ, "DRY_RUN": "1"},
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "kubectl -n emailrouter-prod delete job emailrouter-tune --ignore-not-found"
    assert 'patch job emailrouter-tune --type=merge -p {"spec":{"suspend":false}}' in p.stdout
    p = subprocess.run([str(DEPLOY / "run-job.sh"), "prod", "predict"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and "unknown job 'predict'" in p.stderr
