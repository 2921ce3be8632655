"""Offline checks of the deployment files: what a cluster would refuse or silently
misroute, caught without a cluster. Each check returns a list of errors (empty = fine);
`infra/check` runs them all and fails on any. test_checks.py shows each one failing on a
deliberately broken copy.
"""

import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "infra" / "k8s"
OVERLAYS = [K8S / "overlays" / "dev", K8S / "overlays" / "prod"]

KNOWN_KINDS = {
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
}
# cert-manager's kinds: custom resources, which kubernetes-validate has no schema for;
# check_crds holds their required fields instead.
CRD_KINDS = {
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "ClusterIssuer"),
}
KNOWN_KINDS |= CRD_KINDS
WORKLOADS = {"Deployment", "StatefulSet"}
PATH_TYPES = {"Exact", "Prefix", "ImplementationSpecific"}
# Images not built here must name a version.
THIRD_PARTY = re.compile(r"^(mongo|nats|gcr\.io/distroless/[a-z0-9-]+):[A-Za-z0-9._-]+$")


def load_docs(text):
    return [doc for doc in yaml.safe_load_all(text) if doc]


def base_docs():
    docs = []
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_docs(path.read_text())
    return docs


def render(overlay):
    """`kubectl kustomize` of an overlay (works offline)."""
    out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kustomize {overlay}: {out.stderr.strip()}")
    return out.stdout


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_known_kinds(docs):
    return [
        f"{name_of(d)}: unknown apiVersion/kind {d.get('apiVersion')}/{d.get('kind')}"
        for d in docs
        if (d.get("apiVersion"), d.get("kind")) not in KNOWN_KINDS
    ]


def _matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# Pods that other controllers create in the namespace, which a NetworkPolicy may select:
# cert-manager's HTTP-01 solvers.
EXTERNAL_POD_LABELS = [{"acme.cert-manager.io/http01-solver": "true"}]


def _template_labels(docs):
    return {
        name_of(d): d["spec"]["template"]["metadata"].get("labels", {}) for d in docs if d.get("kind") in WORKLOADS
    }


def check_selectors(docs):
    errors = []
    templates = _template_labels(docs)
    for d in docs:
        kind, spec = d.get("kind"), d.get("spec", {})
        if kind in WORKLOADS:
            selector = spec.get("selector", {}).get("matchLabels", {})
            if not _matches(selector, templates[name_of(d)]):
                errors.append(f"{name_of(d)}: selector {selector} does not match its pod template labels")
        selectors = []
        if kind == "Service":
            selectors.append(("selector", spec.get("selector", {})))
        if kind == "PodDisruptionBudget":
            selectors.append(("selector", spec.get("selector", {}).get("matchLabels", {})))
        if kind == "NetworkPolicy":
            selectors.append(("podSelector", spec.get("podSelector", {}).get("matchLabels", {})))
            for rule in spec.get("ingress", []):
                for peer in rule.get("from", []):
                    if "podSelector" in peer:
                        selectors.append(("from.podSelector", peer["podSelector"].get("matchLabels", {})))
        if kind == "NetworkPolicy" and spec.get("podSelector") == {}:
            selectors = selectors[1:]  # {}: every pod of the namespace (the default deny)
        for where, selector in selectors:
            if selector in EXTERNAL_POD_LABELS:
                continue
            if not any(_matches(selector, labels) for labels in templates.values()):
                errors.append(f"{name_of(d)}: {where} {selector} selects no pod")
    return errors


def check_ingress(docs):
    errors = []
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    for d in docs:
        if d.get("kind") != "Ingress":
            continue
        regex = d.get("metadata", {}).get("annotations", {}).get("nginx.ingress.kubernetes.io/use-regex") == "true"
        if d["spec"].get("ingressClassName") != "nginx":
            errors.append(f"{name_of(d)}: ingressClassName must be nginx")
        for rule in d["spec"].get("rules", []):
            for p in rule.get("http", {}).get("paths", []):
                path, path_type = p.get("path", ""), p.get("pathType")
                if path_type not in PATH_TYPES:
                    errors.append(f"{name_of(d)}: path {path}: invalid pathType {path_type!r}")
                if re.search(r"[?*()\[\]|+]", path) and (path_type != "ImplementationSpecific" or not regex):
                    errors.append(f"{name_of(d)}: regex path {path} needs ImplementationSpecific and use-regex")
                backend = p.get("backend", {}).get("service", {})
                service = services.get(backend.get("name"))
                if service is None:
                    errors.append(f"{name_of(d)}: path {path}: backend service {backend.get('name')!r} does not exist")
                    continue
                port = backend.get("port", {})
                ports = service["spec"].get("ports", [])
                if not any(port.get("number") == sp.get("port") or port.get("name") == sp.get("name") for sp in ports):
                    errors.append(f"{name_of(d)}: path {path}: service {backend['name']} has no port {port}")
    return errors


def secrets_created_by(text):
    """The secrets a shell text creates: `kubectl create secret generic NAME`, also inside
    `for VAR in A B; do ... generic "name-$VAR" ...; done` (one name per value)."""
    names = set(re.findall(r"kubectl create secret generic ([a-z0-9-]+)(?![a-z0-9$-])", text))
    for var, values, body in re.findall(r"for (\w+) in ([a-z0-9 -]+); do(.*?)done", text, re.DOTALL):
        for prefix, suffix in re.findall(
            r'kubectl create secret generic "?([a-z0-9-]*)\$\{?' + var + r'\}?([a-z0-9-]*)"?', body
        ):
            names |= {f"{prefix}{value}{suffix}" for value in values.split()}
    return names


def documented_secrets():
    """The secrets the README tells operators to create."""
    return secrets_created_by((ROOT / "README.md").read_text())


def _containers(doc):
    if doc.get("kind") not in WORKLOADS:
        return []
    return doc["spec"]["template"]["spec"].get("containers", [])


def check_secret_refs(docs, documented):
    errors = []
    generated = {d["metadata"]["name"] for d in docs if d.get("kind") == "Secret"}
    for d in docs:
        for container in _containers(d):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in documented | generated:
                    errors.append(f"{name_of(d)}: env {env['name']} names undocumented secret {ref['name']!r}")
        if d.get("kind") in WORKLOADS:
            for volume in d["spec"]["template"]["spec"].get("volumes", []):
                name = volume.get("secret", {}).get("secretName")
                if name and name not in documented | generated:
                    errors.append(f"{name_of(d)}: volume {volume['name']} names undocumented secret {name!r}")
    return errors


def skaffold_config():
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def check_images(docs, skaffold):
    built = {a["image"] for a in skaffold["build"]["artifacts"]}
    errors = []
    for d in docs:
        for container in _containers(d):
            image = container.get("image", "")
            if image not in built and not THIRD_PARTY.match(image):
                errors.append(f"{name_of(d)}: image {image!r} is built by no skaffold artifact")
    return errors


def service_names():
    """The services, from the one table of them (infra/k8s/generate.py): every list of
    services elsewhere (Dockerfile stages, skaffold artifacts, the release matrix, the prod
    overlay's images) is checked against it."""
    sys.path.insert(0, str(K8S))
    import generate  # noqa: PLC0415

    return list(generate.SERVICES)


def service_binaries():
    """Service crates with a binary: services/<name>/src/main.rs."""
    return {p.parent.parent.name for p in (ROOT / "services").glob("*/src/main.rs")}


def check_service_table(services, binaries):
    errors = [
        f"service {s} (infra/k8s/generate.py) has no binary services/{s}/src/main.rs"
        for s in services
        if s not in binaries
    ]
    errors += [
        f"services/{b} has a binary but is not in the service table of infra/k8s/generate.py"
        for b in sorted(binaries - set(services))
    ]
    return errors


def check_skaffold(skaffold, services):
    errors = []
    artifacts = skaffold.get("build", {}).get("artifacts", [])
    targets = {}
    for artifact in artifacts:
        image, docker = artifact.get("image"), artifact.get("docker", {})
        if docker.get("dockerfile") != "Dockerfile.base":
            errors.append(f"artifact {image}: must build from Dockerfile.base")
        target = docker.get("target")
        if target not in services:
            errors.append(f"artifact {image}: target {target!r} is not a service")
        elif image != f"ticketing/{target}":
            errors.append(f"artifact {image}: the image of target {target} is ticketing/{target}")
        # A build argument that differs per artifact is part of every cache key after its
        # ARG: it would split the shared builder stage into one build per image again.
        if docker.get("buildArgs"):
            errors.append(
                f"artifact {image}: buildArgs split the shared builder's cache; select the service with target"
            )
        # Every source file is compiled into the binary: a synced file changes nothing.
        if "sync" in artifact:
            errors.append(f"artifact {image}: file sync copies sources a running binary never reads; rebuild instead")
        targets[target] = artifact
    for service in services:
        if service not in targets:
            errors.append(f"service {service} has no skaffold artifact")
    for path in skaffold.get("manifests", {}).get("kustomize", {}).get("paths", []):
        if not (ROOT / path / "kustomization.yaml").exists():
            errors.append(f"manifests: kustomize path {path} does not exist")
    if skaffold.get("build", {}).get("local", {}).get("push") is not False:
        errors.append("build.local.push must be false for local builds")
    return errors


def without_crds(text):
    """The documents of a manifest that are not custom resources, as YAML."""
    docs = [d for d in load_docs(text) if (d.get("apiVersion"), d.get("kind")) not in CRD_KINDS]
    return yaml.safe_dump_all(docs, sort_keys=False)


def check_schema(texts):
    """kubernetes-validate, strict (unknown fields fail). It has no schema for custom
    resources (cert-manager's) and only warns about them, so they are left out here and
    checked by check_crds; check_known_kinds refuses any other unknown kind."""
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, text in enumerate(map(without_crds, texts)):
            path = pathlib.Path(tmp) / f"doc{n}.yaml"
            path.write_text(text)
            out = subprocess.run(
                [str(pathlib.Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                errors.append(f"schema: {(out.stdout + out.stderr).strip()}")
    return errors


def check_yamllint(paths):
    out = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "yamllint"), "-s", "-c", str(ROOT / ".yamllint"), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [] if out.returncode == 0 else [f"yamllint: {out.stdout.strip()}"]


def check_hadolint(dockerfile):
    out = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [] if out.returncode == 0 else [f"hadolint: {out.stdout.strip()}"]


# The runtime every service image is built on: glibc and libgcc, uid 65532.
DISTROLESS = re.compile(r"^gcr\.io/distroless/cc-debian12:nonroot(@sha256:[0-9a-f]{64})?$")
NONROOT = "65532:65532"


def parse_dockerfile(text):
    """A Dockerfile as (global ARGs, stages). Continuation lines are joined and comment
    lines dropped, as docker does. A stage is {name, base, instructions}; an instruction is
    {position, keyword, flags, args}, `position` counting instructions from the top so that
    order across stages is kept."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        lines.append((current + line).strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    global_args, stages = [], []
    for position, line in enumerate(lines):
        keyword, _, rest = line.partition(" ")
        words = rest.split()
        flags = []
        while words and words[0].startswith("--"):
            flags.append(words.pop(0))
        instruction = {"position": position, "keyword": keyword.upper(), "flags": flags, "args": " ".join(words)}
        if instruction["keyword"] == "FROM":
            named = len(words) >= 3 and words[1].upper() == "AS"
            stages.append(
                {
                    "name": words[2].lower() if named else str(len(stages)),
                    "base": words[0] if words else "",
                    "position": position,
                    "instructions": [],
                }
            )
        elif stages:
            stages[-1]["instructions"].append(instruction)
        elif instruction["keyword"] == "ARG":
            global_args.append(instruction)
    return global_args, stages


def _mounts(instruction):
    mounts = []
    for flag in instruction["flags"]:
        if flag.startswith("--mount="):
            mounts.append(dict(part.partition("=")[::2] for part in flag[len("--mount=") :].split(",")))
    return mounts


def _copy_from(instruction):
    for flag in instruction["flags"]:
        if flag.startswith("--from="):
            return flag[len("--from=") :].lower()
    return None


def _uses_arg(text, name):
    return re.search(r"\$\{?" + re.escape(name) + r"\b", text) is not None


class Dockerfile:
    """Dockerfile.base's stage graph: which stage an instruction's result depends on
    (FROM, COPY --from, a mount's from=), where the dependency and workspace builds are."""

    def __init__(self, text):
        self.global_args, self.stages = parse_dockerfile(text)
        self.by_name = {stage["name"]: stage for stage in self.stages}

    def runs(self, pattern):
        return [
            (stage, ins)
            for stage in self.stages
            for ins in stage["instructions"]
            if ins["keyword"] == "RUN" and re.search(pattern, ins["args"])
        ]

    def args(self):
        return self.global_args + [
            ins for stage in self.stages for ins in stage["instructions"] if ins["keyword"] == "ARG"
        ]

    def base(self, stage):
        return self.by_name.get(stage["base"].lower())

    def lineage(self, stage):
        """The stage and the stages it is FROM, nearest first."""
        out = []
        while stage and stage not in out:
            out.append(stage)
            stage = self.base(stage)
        return out

    def inputs(self, stage, upto):
        """What `stage`'s instructions up to position `upto` depend on, as the text of
        every FROM line and instruction involved (ARG declarations aside): where an ARG
        can be used."""
        seen = {}

        def visit(st, limit):
            if seen.get(st["name"], -1) >= limit:
                return
            seen[st["name"]] = limit
            if self.base(st):
                visit(self.base(st), float("inf"))
            for ins in st["instructions"]:
                if ins["position"] <= limit:
                    for source in [_copy_from(ins)] + [m.get("from") for m in _mounts(ins)]:
                        if source in self.by_name:
                            visit(self.by_name[source], float("inf"))

        visit(stage, upto)
        texts = []
        for name, limit in seen.items():
            texts.append(self.by_name[name]["base"])
            texts += [
                " ".join(ins["flags"]) + " " + ins["args"]
                for ins in self.by_name[name]["instructions"]
                if ins["position"] <= limit and ins["keyword"] != "ARG"
            ]
        return texts


def check_dockerfile(text, services):
    """The shape that builds the workspace once and cuts one image per service from it:
    one dependency build (cargo chef cook) that no source change and no per-image value
    reaches; one builder stage compiling every service binary with cache mounts; one final
    stage per service, named like it, copying its binary onto distroless as uid 65532."""
    dockerfile = Dockerfile(text)
    cooks, builds = dockerfile.runs(r"\bcargo chef cook\b"), dockerfile.runs(r"\bcargo build\b")
    if len(cooks) != 1:
        return [f"Dockerfile: one dependency build (`cargo chef cook`) expected, found {len(cooks)}"]
    if len(builds) != 1:
        return [f"Dockerfile: one builder stage (one RUN with `cargo build`) expected, found {len(builds)}"]
    errors = _check_shared_steps(dockerfile, cooks[0], builds[0])
    errors += _check_builder(builds[0][1], services)
    errors += _check_service_stages(dockerfile, builds[0], services)
    return [f"Dockerfile: {e}" for e in errors]


def _check_shared_steps(dockerfile, cook, build):
    errors = []
    # An ARG's value is part of the cache key of every later RUN of its stage. One that
    # the shared steps do not use only tells the six image builds apart, and each of them
    # then compiles the dependencies, or the workspace, again.
    for label, (stage, ins) in [
        ("the dependency build (cargo chef cook)", cook),
        ("the workspace build (cargo build)", build),
    ]:
        inputs = dockerfile.inputs(stage, ins["position"])
        for arg in dockerfile.args():
            name = arg["args"].split("=")[0].strip()
            if arg["position"] < ins["position"] and not any(_uses_arg(text, name) for text in inputs):
                errors.append(
                    f"ARG {name} comes before {label} without being used by it: it would split its cache per value"
                )
    # Sources in the dependency layer's lineage would make every code change rebuild it.
    (cook_stage, cook_ins), limit = cook, cook[1]["position"]
    for stage in dockerfile.lineage(cook_stage):
        for ins in stage["instructions"]:
            if ins["position"] < limit and ins["keyword"] in ("COPY", "ADD") and _copy_from(ins) is None:
                errors.append(f"stage {stage['name']} copies from the build context before the dependency build")
        limit = float("inf")
    for label, ins, wanted in [
        ("dependency build", cook_ins, ["registry"]),
        ("workspace build", build[1], ["registry", "target"]),
    ]:
        targets = [m.get("target", "").rstrip("/") for m in _mounts(ins) if m.get("type") == "cache"]
        for kind in wanted:
            if not any(t.endswith("/" + kind) for t in targets):
                errors.append(f"the {label} has no cache mount for cargo's {kind}")
    return errors


def _check_builder(build, services):
    errors = [
        f"the workspace build must use {flag}"
        for flag in ("--release", "--locked")
        if flag not in build["args"].split()
    ]
    bins = set(re.findall(r"--bin[= ]+(\S+)", build["args"]))
    errors += [f"the builder does not build --bin {service}" for service in services if service not in bins]
    errors += [
        f"the builder builds --bin {extra}, which no service image uses" for extra in sorted(bins - set(services))
    ]
    return errors


def _check_service_stages(dockerfile, build, services):
    (builder, build_ins), errors, found = build, [], set()
    cache_targets = [m.get("target", "").rstrip("/") for m in _mounts(build_ins) if m.get("type") == "cache"]
    for stage in dockerfile.stages:
        copies = [
            ins for ins in stage["instructions"] if ins["keyword"] == "COPY" and _copy_from(ins) == builder["name"]
        ]
        if not copies:
            continue
        found.add(stage["name"])
        if len(copies) != 1:
            errors.append(f"stage {stage['name']} must copy exactly one binary from {builder['name']}")
            continue
        source = copies[0]["args"].split()[0]
        directory, _, binary = source.rpartition("/")
        if binary != stage["name"]:
            errors.append(f"stage {stage['name']} copies {source}, not its own binary")
        in_cache = any(directory == t or directory.startswith(t + "/") for t in cache_targets)
        if in_cache or not re.search(r"(^|\s)" + re.escape(directory) + r"(/|\s|$)", build_ins["args"]):
            errors.append(
                f"{directory} is not filled by the build's RUN: a cache mount is not in the image, "
                "so the binaries must be copied out of it in that same RUN"
            )
        lineage = dockerfile.lineage(stage)
        if not DISTROLESS.match(lineage[-1]["base"]):
            errors.append(
                f"stage {stage['name']} runs on {lineage[-1]['base']}, not gcr.io/distroless/cc-debian12:nonroot"
            )
        users = [ins["args"] for st in reversed(lineage) for ins in st["instructions"] if ins["keyword"] == "USER"]
        if not users or users[-1] != NONROOT:
            errors.append(f"stage {stage['name']} must run as USER {NONROOT}")
        if not any(ins["keyword"] == "ENTRYPOINT" for st in lineage for ins in st["instructions"]):
            errors.append(f"stage {stage['name']} has no ENTRYPOINT")
    errors += [
        f"service {service} has no stage (FROM runtime AS {service})" for service in services if service not in found
    ]
    errors += [
        f"stage {extra} copies a binary from the builder but is not a service"
        for extra in sorted(found - set(services))
    ]
    return errors


WORKFLOWS = ROOT / ".github" / "workflows"
HEAD_SHA = "${{ github.event.workflow_run.head_sha }}"


def load_workflows():
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(WORKFLOWS.glob("*.yml"))}


def _triggers(workflow):
    # YAML 1.1 reads an unquoted `on` key as true.
    return workflow.get("on", workflow.get(True)) or {}


def _strings(node):
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def _uses(step, action):
    return str(step.get("uses", "")).split("@")[0] == action


def _needs(job):
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _deploys(job):
    text = "\n".join(_strings(job))
    return (
        "environment" in job
        or "KUBECONFIG" in text
        or "infra/rollout" in text
        or re.search(r"\bkubectl\s+(apply|rollout)", text)
    )


def check_workflows(workflows, services):
    """Deploys run only after a successful `ci` on main; no workflow deploys a moving tag or
    applies manifests around infra/rollout; the release builds and pins what ci tested."""
    errors = []
    ci = workflows.get("ci.yml")
    if ci is None or not any(".ci/run" in s for s in _strings(ci.get("jobs", {}))):
        return ["workflows: ci.yml, the workflow that runs .ci/run, is missing"]
    ci_name = ci.get("name")
    if "main" not in ((_triggers(ci).get("push") or {}).get("branches") or []):
        errors.append("ci.yml: must run on pushes to main, or nothing on main is ever tested and released")
    for file, workflow in workflows.items():
        jobs = workflow.get("jobs", {})
        for string in _strings(workflow):
            if re.search(r":latest\b", string):
                errors.append(f"{file}: {string.strip()!r} names a moving tag; deploy by digest")
        for name, job in jobs.items():
            for step in job.get("steps", []):
                if re.search(r"\bkubectl\s+apply\b", str(step.get("run", ""))):
                    errors.append(
                        f"{file}: job {name} applies manifests itself; only infra/rollout pins, waits and undoes"
                    )
        if any(_deploys(job) for job in jobs.values()):
            errors += [f"{file}: {e}" for e in _gated_on_ci(workflow, ci_name)]
    if "release.yml" not in workflows:
        errors.append("workflows: release.yml is missing")
    else:
        errors += [f"release.yml: {e}" for e in check_release(workflows["release.yml"], services)]
    return errors


def _gated_on_ci(workflow, ci_name):
    errors = []
    triggers = _triggers(workflow)
    if set(triggers) != {"workflow_run"}:
        errors.append(
            f"deploys on {sorted(triggers)}: only a completed `{ci_name}` run (workflow_run) may start a deploy"
        )
    run = triggers.get("workflow_run") or {}
    if run.get("workflows") != [ci_name] or run.get("types") != ["completed"] or run.get("branches") != ["main"]:
        errors.append(f"workflow_run must be workflows: [{ci_name}], types: [completed], branches: [main]")
    for name, job in workflow.get("jobs", {}).items():
        condition = " ".join(str(job.get("if", "")).split())
        if re.search(r"\b(always|failure|cancelled)\(", condition):
            errors.append(f"job {name}: a status function in `if` runs it even when the gate is skipped")
        if not _needs(job):
            for clause in (
                "github.event.workflow_run.conclusion == 'success'",
                "github.event.workflow_run.event == 'push'",
                "github.event.workflow_run.head_repository.full_name == github.repository",
            ):
                if clause not in condition:
                    errors.append(f"job {name}: `if` must require {clause}")
    return errors


def check_release(release, services):
    """release.yml builds the commit ci tested, compiles it once (builder), cuts one image
    per service from that cache and hands each digest to a production job that deploys
    through infra/rollout."""
    errors = []
    jobs = release.get("jobs", {})
    if any(re.search(r"\bgithub\.sha\b", s) for s in _strings(release)):
        errors.append("github.sha is main's tip when the release starts, not the commit ci tested; use " + HEAD_SHA)
    builds = {}
    for name, job in jobs.items():
        for step in job.get("steps", []):
            with_ = step.get("with", {}) or {}
            if _uses(step, "actions/checkout") and with_.get("ref") != HEAD_SHA:
                errors.append(f"job {name}: checkout without ref: {HEAD_SHA} builds another commit")
            if _uses(step, "docker/build-push-action"):
                builds.setdefault(name, []).append(step)
                if with_.get("context") != "." or with_.get("file") != "Dockerfile.base":
                    errors.append(
                        f"job {name}: build-push-action needs context: . (the checkout) and file: Dockerfile.base"
                    )
    builder = [
        n for n, steps in builds.items() if any((s.get("with") or {}).get("target") == "builder" for s in steps)
    ]
    if len(builder) != 1:
        errors.append("one job must compile the workspace once (build-push-action with target: builder)")
    else:
        step = next(s for s in builds[builder[0]] if s["with"].get("target") == "builder")
        if "type=registry" not in str(step["with"].get("cache-to", "")):
            errors.append(
                f"job {builder[0]}: the builder must export its layers to the registry cache (cache-to: type=registry)"
            )
    images = [n for n, job in jobs.items() if "service" in ((job.get("strategy") or {}).get("matrix") or {})]
    if len(images) != 1:
        errors.append("one job must build the images, over a matrix of services")
        return errors
    name, job = images[0], jobs[images[0]]
    matrix = job["strategy"]["matrix"]["service"]
    for service in services:
        if service not in matrix:
            errors.append(f"job {name}: service {service} is missing from the matrix")
    for extra in sorted(set(matrix) - set(services)):
        errors.append(f"job {name}: matrix entry {extra} is not a service")
    if len(matrix) != len(set(matrix)):
        errors.append(f"job {name}: the matrix lists a service twice")
    if builder and builder[0] not in _needs(job):
        errors.append(f"job {name}: must need {builder[0]}, whose cache it cuts the images from")
    cuts = [s for s in builds.get(name, []) if (s.get("with") or {}).get("target") == "${{ matrix.service }}"]
    if len(cuts) != 1:
        errors.append(f"job {name}: one build-push-action with target: ${{{{ matrix.service }}}} expected")
    else:
        cut = cuts[0]
        if cut["with"].get("push") is not True or not cut["with"].get("cache-from"):
            errors.append(f"job {name}: the image build must push, reading the builder's cache (cache-from)")
        digest = f"steps.{cut.get('id')}.outputs.digest"
        if not cut.get("id") or not any(digest in s for s in _strings(job)):
            errors.append(f"job {name}: the image's digest (steps.<id>.outputs.digest) must be handed to the rollout")
    deploys = [n for n, j in jobs.items() if _deploys(j)]
    if not deploys:
        errors.append("no job deploys")

    def needed(job_name, seen=()):
        return {d for n in _needs(jobs.get(job_name, {})) if n not in seen for d in {n} | needed(n, (*seen, n))}

    for deploy in deploys:
        j = jobs[deploy]
        if j.get("environment") != "production":
            errors.append(
                f"job {deploy}: deploys outside the production environment (its protection rules and secrets)"
            )
        if name not in needed(deploy):
            errors.append(f"job {deploy}: must need {name}, or it deploys images that are not built")
        if not any("infra/rollout" in str(step.get("run", "")) for step in j.get("steps", [])):
            errors.append(
                f"job {deploy}: must deploy through infra/rollout (pins by digest, waits, undoes on failure)"
            )
    return errors


def check_prod_overlay(kustomization, services):
    """The release pins exactly the images listed here, so every service needs an entry;
    none may name a moving tag (no tag at all means `latest`)."""
    errors = []
    images = {entry.get("name"): entry for entry in kustomization.get("images", [])}
    for service in services:
        if f"ticketing/{service}" not in images:
            errors.append(f"prod overlay: no images entry for ticketing/{service}, so the release cannot pin it")
    for name, entry in images.items():
        if name.removeprefix("ticketing/") not in services:
            errors.append(f"prod overlay: images entry {name} is not a service")
        if not entry.get("digest") and entry.get("newTag", "latest") == "latest":
            errors.append(f"prod overlay: {name} would deploy the moving tag latest")
        if entry.get("newName"):
            errors.append(
                f"prod overlay: {name} names a registry; the release's REGISTRY (infra/rollout) is the one place for it"
            )
    return errors


def check_prod_secrets_documented(docs, kustomization_text):
    """The prod overlay's comments name every Secret production reads."""
    referenced = set()
    for d in docs:
        for container in _containers(d):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
    comments = "\n".join(line for line in kustomization_text.splitlines() if line.lstrip().startswith("#"))
    return [
        f"prod overlay: its comments do not document the secret {name}"
        for name in sorted(referenced)
        if not re.search(r"\b" + re.escape(name) + r"\b", comments)
    ]


def check_payments_provider(docs):
    """Production charges real cards: its payments must run on Stripe, with the key, never
    on the built-in test provider (which charges nothing and accepts test tokens)."""
    errors = []
    for doc in docs:
        if doc.get("kind") != "Deployment" or doc["metadata"]["name"] != "payments":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            provider = env.get("PAYMENTS_PROVIDER", {}).get("value")
            if provider != "stripe":
                errors.append(f"payments runs with PAYMENTS_PROVIDER={provider!r}: production must charge through stripe")
            key = env.get("STRIPE_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
            if not key or key.get("optional"):
                errors.append("payments must read STRIPE_KEY from a Secret, not optionally")
    return errors


def _env(container):
    return {e["name"]: e for e in container.get("env", [])}


def _find(docs, kind, name):
    return next((d for d in docs if d.get("kind") == kind and d["metadata"]["name"] == name), None)


def _pod_labels(doc):
    return doc["spec"]["template"]["metadata"].get("labels", {})


def _budget_for(docs, doc):
    return any(
        d.get("kind") == "PodDisruptionBudget"
        and _matches(d["spec"].get("selector", {}).get("matchLabels", {}), _pod_labels(doc))
        for d in docs
    )


def _required_anti_affinity(doc):
    terms = (
        doc["spec"]["template"]["spec"]
        .get("affinity", {})
        .get("podAntiAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", [])
    )
    return any(
        t.get("topologyKey") == "kubernetes.io/hostname"
        and _matches(t.get("labelSelector", {}).get("matchLabels", {}), _pod_labels(doc))
        for t in terms
    )


def check_env_expansion(docs):
    """Kubernetes expands `$(VAR)` only with variables listed before it: a URI built
    from a password listed after it would carry the literal `$(MONGO_PASSWORD)`."""
    errors = []
    for d in docs:
        for container in _containers(d):
            seen = set()
            for env in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                    if ref not in seen:
                        errors.append(f"{name_of(d)}: env {env['name']} uses $({ref}) before {ref} is defined")
                seen.add(env["name"])
    return errors


def check_nats_auth(docs):
    """NATS requires a user: its configuration has users and no anonymous access, and each
    service connects as itself with a password from a Secret."""
    errors = []
    config = _find(docs, "ConfigMap", "nats-config")
    text = (config or {}).get("data", {}).get("nats.conf", "")
    if "authorization {" not in text or "no_auth_user" in text:
        errors.append("ConfigMap/nats-config: NATS must require authentication (users, no no_auth_user)")
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        for container in _containers(d):
            env = _env(container)
            if "NATS_URL" not in env:
                continue
            if not env["NATS_URL"].get("value", "").startswith("nats://$(NATS_USER):$(NATS_PASSWORD)@"):
                errors.append(f"{name_of(d)}: NATS_URL must carry $(NATS_USER):$(NATS_PASSWORD)")
            ref = env.get("NATS_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
            if not ref or ref.get("optional") or env.get("NATS_USER", {}).get("value") != ref.get("key"):
                errors.append(f"{name_of(d)}: NATS_PASSWORD must come from a Secret, under the key of NATS_USER")
    return errors


def check_topology_spread(docs):
    """Every Deployment spreads its pods over nodes (a hard constraint on the hostname)."""
    errors = []
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        constraints = d["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
        if not any(
            c.get("topologyKey") == "kubernetes.io/hostname"
            and c.get("whenUnsatisfiable") == "DoNotSchedule"
            and _matches(c.get("labelSelector", {}).get("matchLabels", {}), _pod_labels(d))
            for c in constraints
        ):
            errors.append(f"{name_of(d)}: no topology spread over nodes (kubernetes.io/hostname, DoNotSchedule)")
    return errors


def _policies(docs, labels, direction):
    return [
        d
        for d in docs
        if d.get("kind") == "NetworkPolicy"
        and direction in d["spec"].get("policyTypes", [])
        and (d["spec"].get("podSelector") == {} or _matches(d["spec"]["podSelector"].get("matchLabels", {}), labels))
    ]


def _allows(docs, labels, direction, peer_labels, port):
    key = "from" if direction == "Ingress" else "to"
    for policy in _policies(docs, labels, direction):
        for rule in policy["spec"].get(direction.lower(), []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(key)
            if not peers or any(
                "podSelector" in p
                and "namespaceSelector" not in p
                and _matches(p["podSelector"].get("matchLabels", {}), peer_labels)
                for p in peers
            ):
                return True
    return False


def check_network_policies(docs):
    """A default deny of ingress and egress, and the paths the platform needs open: each
    service to its MongoDB and to NATS (both ends), DNS for every workload."""
    errors = []
    if not any(
        d.get("kind") == "NetworkPolicy"
        and d["spec"].get("podSelector") == {}
        and set(d["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not d["spec"].get("ingress")
        and not d["spec"].get("egress")
        for d in docs
    ):
        errors.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    pods = {d["metadata"]["name"]: _pod_labels(d) for d in docs if d.get("kind") in WORKLOADS}
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        name, labels = d["metadata"]["name"], _pod_labels(d)
        env = {k for c in _containers(d) for k in _env(c)}
        targets = []
        if "MONGO_URI" in env:
            targets.append((f"mongo-{name}", 27017))
        if "NATS_URL" in env:
            targets.append(("nats", 4222))
        for target, port in targets:
            if target not in pods:
                errors.append(f"{name_of(d)}: {target} does not exist")
                continue
            if not _allows(docs, labels, "Egress", pods[target], port):
                errors.append(f"{name_of(d)}: no NetworkPolicy lets it open {target}:{port}")
            if not _allows(docs, pods[target], "Ingress", labels, port):
                errors.append(f"{name_of(d)}: no NetworkPolicy lets {target} accept it on {port}")
    for name, labels in pods.items():
        dns = any(
            any(p.get("port") == 53 for p in rule.get("ports", []))
            for policy in _policies(docs, labels, "Egress")
            for rule in policy["spec"].get("egress", [])
        )
        if not dns:
            errors.append(f"{name}: no NetworkPolicy lets it resolve names (egress to port 53)")
    return errors


def check_crds(docs):
    """The required fields of cert-manager's resources, which kubernetes-validate cannot
    check (no schema for custom resources)."""
    errors = []
    issuers = {(d["kind"], d["metadata"]["name"]) for d in docs if d.get("kind") in ("Issuer", "ClusterIssuer")}
    for d in docs:
        kind, spec = d.get("kind"), d.get("spec", {})
        if kind == "Certificate":
            if not spec.get("secretName") or not spec.get("dnsNames"):
                errors.append(f"{name_of(d)}: needs spec.secretName and spec.dnsNames")
            ref = spec.get("issuerRef", {})
            if (ref.get("kind", "Issuer"), ref.get("name")) not in issuers:
                errors.append(f"{name_of(d)}: issuerRef {ref} names no Issuer or ClusterIssuer here")
        if kind in ("Issuer", "ClusterIssuer"):
            types = [t for t in ("selfSigned", "acme", "ca", "vault", "venafi") if t in spec]
            if len(types) != 1:
                errors.append(f"{name_of(d)}: needs exactly one issuer type, has {types}")
            acme = spec.get("acme")
            if acme is not None:
                for field in ("server", "email"):
                    if not acme.get(field):
                        errors.append(f"{name_of(d)}: acme.{field} is required")
                if "@" not in str(acme.get("email", "")):
                    errors.append(f"{name_of(d)}: acme.email is not an e-mail address")
                if not acme.get("privateKeySecretRef", {}).get("name") or not acme.get("solvers"):
                    errors.append(f"{name_of(d)}: acme needs privateKeySecretRef.name and solvers")
    return errors


def check_tls(docs, production):
    """Every Ingress host is served over HTTPS with a certificate cert-manager issues, plain
    HTTP redirects; production's certificate comes from an ACME (public) issuer."""
    errors = []
    certificates = {d["spec"].get("secretName"): d for d in docs if d.get("kind") == "Certificate"}
    for d in docs:
        if d.get("kind") != "Ingress":
            continue
        annotations = d["metadata"].get("annotations", {})
        if annotations.get("nginx.ingress.kubernetes.io/force-ssl-redirect") != "true":
            errors.append(f"{name_of(d)}: plain HTTP must redirect (force-ssl-redirect: \"true\")")
        hosts = {r.get("host") for r in d["spec"].get("rules", [])}
        for host in sorted(hosts):
            tls = [t for t in d["spec"].get("tls", []) if host in t.get("hosts", [])]
            if not tls:
                errors.append(f"{name_of(d)}: host {host} has no TLS")
                continue
            certificate = certificates.get(tls[0].get("secretName"))
            if certificate is None or host not in certificate["spec"].get("dnsNames", []):
                errors.append(f"{name_of(d)}: no Certificate for {host} in secret {tls[0].get('secretName')!r}")
            elif production:
                ref = certificate["spec"].get("issuerRef", {})
                issuer = _find(docs, ref.get("kind", "Issuer"), ref.get("name"))
                if issuer is None or "acme" not in issuer.get("spec", {}):
                    errors.append(f"{name_of(certificate)}: production certificates come from an ACME issuer")
    return errors


def check_production(docs):
    """No single point of failure: NATS and every MongoDB with 3 members on different
    nodes, authentication on both, every stream on 3 NATS nodes, an HPA (which owns the
    replica count) and a PodDisruptionBudget per service, Secure cookies."""
    errors = []
    nats = _find(docs, "StatefulSet", "nats")
    config = (_find(docs, "ConfigMap", "nats-config") or {}).get("data", {}).get("nats.conf", "")
    replicas = nats["spec"].get("replicas", 1) if nats else 0
    if replicas < 3:
        errors.append(f"StatefulSet/nats: {replicas} node(s); production runs a JetStream cluster of 3")
    if nats and "cluster {" not in config:
        errors.append("ConfigMap/nats-config: no cluster block: the nodes would not form a cluster")
    stateful = [d for d in docs if d.get("kind") == "StatefulSet"]
    for d in stateful:
        if d.get("spec", {}).get("replicas", 1) < 3 and d is not nats:
            errors.append(f"{name_of(d)}: {d['spec'].get('replicas', 1)} member(s); production needs 3")
        if not _required_anti_affinity(d):
            errors.append(f"{name_of(d)}: members may share a node (required pod anti-affinity on the hostname)")
        if not d["spec"].get("volumeClaimTemplates"):
            errors.append(f"{name_of(d)}: no volume per member")
        if not _budget_for(docs, d):
            errors.append(f"{name_of(d)}: no PodDisruptionBudget")
        if d["metadata"]["name"].startswith("mongo-"):
            command = " ".join(arg for c in _containers(d) for arg in c.get("command", []))
            if "--keyFile" not in command and "--auth" not in command:
                errors.append(f"{name_of(d)}: MongoDB runs without authentication (--keyFile)")
    autoscalers = {
        d["spec"]["scaleTargetRef"]["name"]: d
        for d in docs
        if d.get("kind") == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"].get("kind") == "Deployment"
    }
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        name = d["metadata"]["name"]
        hpa = autoscalers.get(name)
        if hpa is None or hpa["apiVersion"] != "autoscaling/v2" or hpa["spec"].get("minReplicas", 1) < 2:
            errors.append(f"{name_of(d)}: needs an autoscaling/v2 HorizontalPodAutoscaler with minReplicas >= 2")
        if "replicas" in d["spec"]:
            errors.append(f"{name_of(d)}: sets replicas, which every apply would force over its HPA's choice")
        if not _budget_for(docs, d):
            errors.append(f"{name_of(d)}: no PodDisruptionBudget")
        for container in _containers(d):
            env = _env(container)
            if env.get("COOKIE_SECURE", {}).get("value") != "true":
                errors.append(f"{name_of(d)}: COOKIE_SECURE must be true")
            if "NATS_URL" in env and int(env.get("NATS_STREAM_REPLICAS", {}).get("value", "1")) < 3:
                errors.append(f"{name_of(d)}: NATS_STREAM_REPLICAS must be 3: every stream on three nodes")
            if "MONGO_URI" in env:
                uri = env["MONGO_URI"].get("value", "")
                ref = env.get("MONGO_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef")
                if "$(MONGO_PASSWORD)@" not in uri or not ref:
                    errors.append(f"{name_of(d)}: MONGO_URI must authenticate with MONGO_PASSWORD from a Secret")
                if "w=majority" not in uri:
                    errors.append(f"{name_of(d)}: MONGO_URI must ask for w=majority")
    return errors


def check_third_party_tags(docs):
    return [
        f"{name_of(d)}: image {c['image']} names the moving tag latest"
        for d in docs
        for c in _containers(d) + d.get("spec", {}).get("template", {}).get("spec", {}).get("initContainers", [])
        if c.get("image", "").endswith(":latest")
    ]


def check_generated():
    sys.path.insert(0, str(K8S))
    import generate  # noqa: PLC0415

    stale = []
    for name, text in generate.files().items():
        path = K8S / name
        if not path.exists() or path.read_text() != text:
            stale.append(f"infra/k8s/{name} differs from infra/k8s/generate.py (run it)")
    return stale


def monitoring_docs():
    path = K8S / "components" / "monitoring"
    return [d for f in ("podmonitor.yaml", "prometheusrule.yaml") for d in load_docs((path / f).read_text())]


def check_monitoring(base, monitoring):
    """The optional monitoring component (Prometheus Operator): its PodMonitor selects
    every service's pods on a port they name, and labels each target with its service
    (what the alerting rules and the dashboard group by); its PrometheusRule has rules."""
    errors = []
    templates = {
        name_of(d): (d["spec"]["template"]["metadata"].get("labels", {}), d["spec"]["template"]["spec"]["containers"])
        for d in base
        if d.get("kind") == "Deployment"
    }
    services = {d["metadata"]["name"] for d in base if d.get("kind") == "Deployment"} - {"client"}
    for monitor in (d for d in monitoring if d.get("kind") == "PodMonitor"):
        selector = monitor["spec"].get("selector", {}).get("matchLabels", {})
        selected = {name for name, (labels, _) in templates.items() if _matches(selector, labels)}
        missing = sorted(s for s in services if f"Deployment/{s}" not in selected)
        if missing:
            errors.append(f"{name_of(monitor)}: scrapes none of {missing}")
        for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
            for name in selected:
                ports = {p.get("name") for c in templates[name][1] for p in c.get("ports", [])}
                if endpoint.get("port") not in ports:
                    errors.append(f"{name_of(monitor)}: {name} has no port named {endpoint.get('port')!r}")
            if not any(r.get("targetLabel") == "service" for r in endpoint.get("relabelings", [])):
                errors.append(f"{name_of(monitor)}: targets need a `service` label (the rules group by it)")
    rules = [d for d in monitoring if d.get("kind") == "PrometheusRule"]
    if not rules or not all(g.get("rules") for r in rules for g in r["spec"].get("groups", [])):
        errors.append("the monitoring component needs a PrometheusRule with rules")
    return errors


def run_all():
    """Every check on the committed files; returns all errors."""
    errors = []
    errors += check_generated()
    errors += check_yamllint([ROOT / "infra", ROOT / "skaffold.yaml", ROOT / ".github"])
    errors += check_hadolint(ROOT / "Dockerfile.base")
    services = service_names()
    errors += check_service_table(services, service_binaries())
    errors += check_dockerfile((ROOT / "Dockerfile.base").read_text(), services)
    skaffold = skaffold_config()
    errors += check_skaffold(skaffold, services)
    errors += check_workflows(load_workflows(), services)
    errors += check_prod_overlay(
        yaml.safe_load((K8S / "overlays" / "prod" / "kustomization.yaml").read_text()), services
    )
    documented = documented_secrets()
    base = base_docs()
    raw_texts = [p.read_text() for p in sorted((K8S / "base").glob("*.yaml")) if p.name != "kustomization.yaml"]
    rendered = {overlay.name: render(overlay) for overlay in OVERLAYS}
    errors += check_schema(raw_texts + list(rendered.values()))
    errors += [f"[monitoring] {e}" for e in check_monitoring(base, monitoring_docs())]
    for label, docs in [("base", base)] + [(name, load_docs(text)) for name, text in rendered.items()]:
        found = []
        found += check_known_kinds(docs)
        found += check_selectors(docs)
        found += check_ingress(docs)
        found += check_secret_refs(docs, documented)
        found += check_env_expansion(docs)
        found += check_nats_auth(docs)
        found += check_topology_spread(docs)
        found += check_network_policies(docs)
        found += check_crds(docs)
        found += check_third_party_tags(docs)
        if label != "base":
            found += check_tls(docs, production=label == "prod")
        if label != "prod":  # prod renames images to the registry's names
            found += check_images(docs, skaffold)
        else:
            found += check_payments_provider(docs)
            found += check_production(docs)
            found += check_prod_secrets_documented(docs, (K8S / "overlays" / "prod" / "kustomization.yaml").read_text())
        errors += [f"[{label}] {e}" for e in found]
    return errors


if __name__ == "__main__":
    problems = run_all()
    for problem in problems:
        print(f"error: {problem}")
    print(f"infra checks: {'FAILED' if problems else 'ok'} ({len(problems)} problems)")
    sys.exit(1 if problems else 0)
