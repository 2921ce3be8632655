"""Each infra check fails on a deliberately broken copy of the real files, and passes on
the real ones. Run with `python -m unittest infra/test_checks.py` (infra/check does)."""

import copy
import pathlib
import tempfile
import unittest

import checks


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


class RealFiles(unittest.TestCase):
    def test_the_committed_files_pass_every_check(self):
        self.assertEqual(checks.run_all(), [])


class BrokenCopies(unittest.TestCase):
    def setUp(self):
        self.docs = copy.deepcopy(checks.base_docs())
        self.skaffold = copy.deepcopy(checks.skaffold_config())

    def test_an_unknown_api_version_fails(self):
        find(self.docs, "Ingress", "ticketing")["apiVersion"] = "extensions/v1beta1"
        self.assertTrue(checks.check_known_kinds(self.docs))

    def test_a_deployment_selector_not_matching_its_template_fails(self):
        find(self.docs, "Deployment", "tickets")["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "ticket"}
        self.assertTrue(any("Deployment/tickets" in e for e in checks.check_selectors(self.docs)))

    def test_a_service_selecting_no_pod_fails(self):
        find(self.docs, "Service", "orders")["spec"]["selector"] = {"app.kubernetes.io/name": "order"}
        self.assertTrue(any("Service/orders" in e for e in checks.check_selectors(self.docs)))

    def test_a_network_policy_allowing_a_missing_service_fails(self):
        policy = find(self.docs, "NetworkPolicy", "mongo-auth")
        policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] = {"app.kubernetes.io/name": "authx"}
        self.assertTrue(any("NetworkPolicy/mongo-auth" in e for e in checks.check_selectors(self.docs)))

    def test_an_invalid_path_type_fails(self):
        find(self.docs, "Ingress", "ticketing")["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Regex"
        self.assertTrue(any("invalid pathType" in e for e in checks.check_ingress(self.docs)))

    def test_a_regex_path_with_prefix_type_fails(self):
        find(self.docs, "Ingress", "ticketing")["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Prefix"
        self.assertTrue(any("needs ImplementationSpecific" in e for e in checks.check_ingress(self.docs)))

    def test_an_ingress_backend_naming_no_service_fails(self):
        path = find(self.docs, "Ingress", "ticketing")["spec"]["rules"][0]["http"]["paths"][1]
        path["backend"]["service"]["name"] = "ticket"
        self.assertTrue(any("does not exist" in e for e in checks.check_ingress(self.docs)))

    def test_an_ingress_backend_on_a_missing_port_fails(self):
        path = find(self.docs, "Ingress", "ticketing")["spec"]["rules"][0]["http"]["paths"][1]
        path["backend"]["service"]["port"]["number"] = 8080
        self.assertTrue(any("has no port" in e for e in checks.check_ingress(self.docs)))

    def test_an_undocumented_secret_fails(self):
        env = find(self.docs, "Deployment", "auth")["spec"]["template"]["spec"]["containers"][0]["env"]
        next(e for e in env if e["name"] == "JWT_KEY")["valueFrom"]["secretKeyRef"]["name"] = "jwt-key"
        self.assertTrue(checks.check_secret_refs(self.docs, checks.documented_secrets()))

    def test_an_image_no_artifact_builds_fails(self):
        find(self.docs, "Deployment", "query")["spec"]["template"]["spec"]["containers"][0]["image"] = "ticketing/qry"
        self.assertTrue(checks.check_images(self.docs, self.skaffold))

    def test_an_untagged_third_party_image_fails(self):
        find(self.docs, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"][0]["image"] = "nats"
        self.assertTrue(checks.check_images(self.docs, self.skaffold))

    def test_a_service_without_artifact_fails(self):
        self.skaffold["build"]["artifacts"] = [a for a in self.skaffold["build"]["artifacts"] if a["image"] != "ticketing/orders"]
        self.assertIn("service orders has no skaffold artifact", checks.check_skaffold(self.skaffold, checks.service_names()))

    def test_an_artifact_targeting_no_service_fails(self):
        self.skaffold["build"]["artifacts"][0]["docker"]["target"] = "authentication"
        self.assertTrue(checks.check_skaffold(self.skaffold, checks.service_names()))

    def test_an_artifact_image_named_unlike_its_target_fails(self):
        self.skaffold["build"]["artifacts"][0]["image"] = "ticketing/users"
        self.assertTrue(checks.check_skaffold(self.skaffold, checks.service_names()))

    def test_a_build_argument_on_an_artifact_fails(self):
        self.skaffold["build"]["artifacts"][0]["docker"]["buildArgs"] = {"SERVICE": "auth"}
        errors = checks.check_skaffold(self.skaffold, checks.service_names())
        self.assertTrue(any("buildArgs" in e for e in errors))

    def test_file_sync_on_an_artifact_fails(self):
        sync = {"manual": [{"src": "services/auth/src/**/*.rs", "dest": "."}]}
        self.skaffold["build"]["artifacts"][0]["sync"] = sync
        errors = checks.check_skaffold(self.skaffold, checks.service_names())
        self.assertTrue(any("sync" in e for e in errors))

    def test_a_missing_kustomize_path_fails(self):
        self.skaffold["manifests"]["kustomize"]["paths"] = ["infra/k8s/overlays/staging"]
        self.assertTrue(checks.check_skaffold(self.skaffold, checks.service_names()))

    def test_a_service_binary_missing_from_the_table_fails(self):
        errors = checks.check_service_table(checks.service_names(), checks.service_binaries() | {"client"})
        self.assertTrue(any("services/client" in e for e in errors))

    def test_a_table_service_without_a_binary_fails(self):
        errors = checks.check_service_table([*checks.service_names(), "posts"], checks.service_binaries())
        self.assertTrue(any("service posts" in e for e in errors))

    def test_strict_schema_validation_rejects_unknown_fields(self):
        deployment = copy.deepcopy(find(self.docs, "Deployment", "auth"))
        deployment["spec"]["replica"] = 2
        self.assertTrue(checks.check_schema([checks.yaml.safe_dump(deployment)]))

    def test_yamllint_rejects_broken_yaml(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = pathlib.Path(tmp) / "bad.yaml"
            bad.write_text("---\nkey: value\nkey: again\n")
            self.assertTrue(checks.check_yamllint([bad]))

    def test_hadolint_rejects_a_bad_dockerfile(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = pathlib.Path(tmp) / "Dockerfile"
            bad.write_text("FROM debian\nRUN apt-get install curl\n")
            self.assertTrue(checks.check_hadolint(bad))


def replace_once(text, old, new):
    """`text` with `old` replaced, failing loudly when the real file no longer has `old`
    (the test would otherwise pass on an unbroken copy)."""
    assert text.count(old) == 1, f"expected exactly one {old!r}"
    return text.replace(old, new)


# The layout this repository had before the shared builder: a build argument chose the
# service in the builder stage, ahead of the dependency build.
PER_SERVICE_ARGUMENT_LAYOUT = """
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json
FROM chef AS builder
ARG SERVICE
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN test -n "${SERVICE}" \\
    && cargo build --release --locked --bin "${SERVICE}" \\
    && cp "target/release/${SERVICE}" /app/service
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /app/service /usr/local/bin/service
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/service"]
"""


class DockerfileCopies(unittest.TestCase):
    """check_dockerfile on Dockerfile.base with one thing broken."""

    def setUp(self):
        self.text = (checks.ROOT / "Dockerfile.base").read_text()
        self.services = checks.service_names()

    def errors(self, old, new):
        return checks.check_dockerfile(replace_once(self.text, old, new), self.services)

    def assertFails(self, errors, fragment):
        self.assertTrue(any(fragment in e for e in errors), f"no error mentioning {fragment!r} in {errors}")

    def test_the_builder_stage_builds_exactly_the_service_binaries(self):
        _, stages = checks.parse_dockerfile(self.text)
        builder = next(s for s in stages if s["name"] == "builder")
        build = next(i for i in builder["instructions"] if i["keyword"] == "RUN")
        self.assertEqual(sorted(checks.re.findall(r"--bin (\S+)", build["args"])), sorted(self.services))
        finals = {s["name"] for s in stages if any(i["flags"] == ["--from=builder"] for i in s["instructions"])}
        self.assertEqual(finals, set(self.services))

    def test_the_per_service_build_argument_layout_fails(self):
        errors = checks.check_dockerfile(PER_SERVICE_ARGUMENT_LAYOUT, self.services)
        self.assertFails(errors, "ARG SERVICE comes before the dependency build")
        self.assertFails(errors, "service auth has no stage")

    def test_an_arg_before_the_dependency_build_used_only_by_a_final_stage_fails(self):
        text = replace_once(self.text, "ARG RUST_VERSION=1.95\n", "ARG RUST_VERSION=1.95\nARG SERVICE\n")
        text = replace_once(
            text,
            "FROM runtime AS auth\n",
            "FROM runtime AS auth\nARG SERVICE\nLABEL org.opencontainers.image.title=${SERVICE}\n",
        )
        self.assertFails(checks.check_dockerfile(text, self.services), "ARG SERVICE comes before the dependency build")

    def test_an_arg_in_the_dependency_stage_that_the_cook_does_not_use_fails(self):
        errors = self.errors("FROM chef AS deps\n", "FROM chef AS deps\nARG SERVICE=auth\n")
        self.assertFails(errors, "ARG SERVICE comes before the dependency build")

    def test_an_arg_in_the_builder_used_only_by_a_final_stage_fails(self):
        errors = self.errors("FROM deps AS builder\n", "FROM deps AS builder\nARG SERVICE\n")
        self.assertFails(errors, "ARG SERVICE comes before the workspace build")

    def test_sources_copied_before_the_dependency_build_fail(self):
        errors = self.errors("FROM chef AS deps\n", "FROM chef AS deps\nCOPY . .\n")
        self.assertFails(errors, "copies from the build context before the dependency build")

    def test_a_builder_without_a_target_cache_mount_fails(self):
        line = next(line for line in self.text.splitlines(True) if "target=/app/target" in line)
        self.assertFails(self.errors(line, ""), "no cache mount for cargo's target")

    def test_a_dependency_build_without_a_registry_cache_mount_fails(self):
        cook = "cargo chef cook --release --locked --recipe-path recipe.json"
        start = self.text.index("FROM chef AS deps")
        stage = self.text[start : self.text.index(cook) + len(cook)]
        bare = "FROM chef AS deps\nCOPY --from=planner /app/recipe.json recipe.json\nRUN " + cook
        self.assertFails(self.errors(stage, bare), "dependency build has no cache mount for cargo's registry")

    def test_binaries_copied_from_inside_the_cache_mount_fail(self):
        errors = self.errors("COPY --from=builder /out/auth ", "COPY --from=builder /app/target/release/auth ")
        self.assertFails(errors, "must be copied out of it in that same RUN")

    def test_binaries_not_copied_out_of_the_cache_mount_fail(self):
        copy_out = next(line for line in self.text.splitlines(True) if "/out/" in line and "find" in line)
        text = replace_once(self.text, copy_out, "")
        text = replace_once(text, "    && mkdir -p /out \\\n", "")
        text = text.replace("--bin query \\\n", "--bin query\n")
        self.assertFails(checks.check_dockerfile(text, self.services), "must be copied out of it in that same RUN")

    def test_a_service_the_builder_does_not_build_fails(self):
        self.assertFails(self.errors(" --bin query", ""), "does not build --bin query")

    def test_a_tool_compiled_for_no_image_fails(self):
        self.assertFails(self.errors(" --bin query", " --bin query --bin audit"), "builds --bin audit")

    def test_a_second_cargo_build_fails(self):
        errors = self.errors(
            "FROM runtime AS auth\n",
            "FROM deps AS gateway\nRUN cargo build --release --bin gateway\n\nFROM runtime AS auth\n",
        )
        self.assertFails(errors, "one builder stage")

    def test_a_service_without_a_stage_fails(self):
        stage = "FROM runtime AS query\nCOPY --from=builder /out/query /usr/local/bin/service\n"
        self.assertFails(self.errors(stage, ""), "service query has no stage")

    def test_a_stage_copying_another_services_binary_fails(self):
        errors = self.errors("COPY --from=builder /out/auth ", "COPY --from=builder /out/tickets ")
        self.assertFails(errors, "stage auth copies /out/tickets")

    def test_a_runtime_other_than_distroless_nonroot_fails(self):
        for base in ["debian:bookworm-slim", "gcr.io/distroless/cc-debian12:latest"]:
            with self.subTest(base=base):
                errors = self.errors("gcr.io/distroless/cc-debian12:nonroot AS runtime", f"{base} AS runtime")
                self.assertFails(errors, "not gcr.io/distroless/cc-debian12:nonroot")

    def test_a_runtime_stage_running_as_root_fails(self):
        self.assertFails(self.errors("USER 65532:65532\n", ""), "must run as USER 65532:65532")
        errors = self.errors(
            "COPY --from=builder /out/auth /usr/local/bin/service\n",
            "COPY --from=builder /out/auth /usr/local/bin/service\nUSER root\n",
        )
        self.assertFails(errors, "stage auth must run as USER 65532:65532")


if __name__ == "__main__":
    unittest.main()
