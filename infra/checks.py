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
}
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
        for where, selector in selectors:
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


def documented_secrets():
    """The secrets the README tells operators to create (`kubectl create secret generic NAME`)."""
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"kubectl create secret generic ([a-z0-9-]+)", readme))


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


def check_schema(texts):
    """kubernetes-validate, strict (unknown fields, unknown kinds/versions fail)."""
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, text in enumerate(texts):
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


def check_generated():
    sys.path.insert(0, str(K8S))
    import generate  # noqa: PLC0415

    stale = []
    for name, text in generate.files().items():
        path = K8S / "base" / name
        if not path.exists() or path.read_text() != text:
            stale.append(f"infra/k8s/base/{name} differs from infra/k8s/generate.py (run it)")
    return stale


def run_all():
    """Every check on the committed files; returns all errors."""
    errors = []
    errors += check_generated()
    errors += check_yamllint([ROOT / "infra", ROOT / "skaffold.yaml", ROOT / ".github"])
    errors += check_hadolint(ROOT / "Dockerfile.base")
    services = service_names()
    errors += check_service_table(services, service_binaries())
    skaffold = skaffold_config()
    errors += check_skaffold(skaffold, services)
    documented = documented_secrets()
    base = base_docs()
    raw_texts = [p.read_text() for p in sorted((K8S / "base").glob("*.yaml")) if p.name != "kustomization.yaml"]
    rendered = {overlay.name: render(overlay) for overlay in OVERLAYS}
    errors += check_schema(raw_texts + list(rendered.values()))
    for label, docs in [("base", base)] + [(name, load_docs(text)) for name, text in rendered.items()]:
        found = []
        found += check_known_kinds(docs)
        found += check_selectors(docs)
        found += check_ingress(docs)
        found += check_secret_refs(docs, documented)
        if label != "prod":  # prod renames images to the registry's names
            found += check_images(docs, skaffold)
        errors += [f"[{label}] {e}" for e in found]
    return errors


if __name__ == "__main__":
    problems = run_all()
    for problem in problems:
        print(f"error: {problem}")
    print(f"infra checks: {'FAILED' if problems else 'ok'} ({len(problems)} problems)")
    sys.exit(1 if problems else 0)
