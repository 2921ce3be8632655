"""Each infra check fails on a deliberately broken copy of the real files, and passes on
the real ones. Run with `python -m unittest infra/test_checks.py` (infra/check does)."""

import copy
import hashlib
import json
import os
import pathlib
import subprocess
import sys
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

    def test_a_pod_monitor_missing_a_service_or_its_label_fails(self):
        monitoring = copy.deepcopy(checks.monitoring_docs())
        monitor = next(d for d in monitoring if d["kind"] == "PodMonitor")
        monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] = "orders"
        monitor["spec"]["podMetricsEndpoints"][0]["relabelings"] = []
        errors = checks.check_monitoring(self.docs, monitoring)
        self.assertTrue(any("scrapes none of" in e and "tickets" in e for e in errors), errors)
        self.assertTrue(any("`service` label" in e for e in errors), errors)
        self.assertEqual(checks.check_monitoring(self.docs, checks.monitoring_docs()), [])

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
        errors = checks.check_service_table(checks.service_names(), checks.service_binaries() | {"newcomer"})
        self.assertTrue(any("services/newcomer" in e for e in errors))

    def test_a_table_service_without_a_binary_fails(self):
        errors = checks.check_service_table([*checks.service_names(), "newsletter"], checks.service_binaries())
        self.assertTrue(any("service newsletter" in e for e in errors))

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


class WorkflowCopies(unittest.TestCase):
    """check_workflows on the committed workflows with one thing broken."""

    def setUp(self):
        self.workflows = copy.deepcopy(checks.load_workflows())
        self.release = self.workflows["release.yml"]
        self.jobs = self.release["jobs"]
        self.services = checks.service_names()

    def errors(self):
        return checks.check_workflows(self.workflows, self.services)

    def assertFails(self, fragment):
        errors = self.errors()
        self.assertTrue(any(fragment in e for e in errors), f"no error mentioning {fragment!r} in {errors}")

    def step(self, job, predicate):
        return next(s for s in self.jobs[job]["steps"] if predicate(s))

    def test_the_release_runs_only_after_a_successful_ci_on_main(self):
        self.assertEqual(
            checks._triggers(self.release),
            {"workflow_run": {"workflows": ["ci"], "types": ["completed"], "branches": ["main"]}},
        )
        self.assertIn("github.event.workflow_run.conclusion == 'success'", self.jobs["builder"]["if"])
        self.assertEqual(self.errors(), [])

    def test_a_release_on_every_push_fails(self):
        self.release["on"] = {"push": {"branches": ["main"]}}
        self.assertFails("only a completed `ci` run (workflow_run) may start a deploy")

    def test_a_release_after_a_failed_ci_fails(self):
        del self.jobs["builder"]["if"]
        self.assertFails("conclusion == 'success'")

    def test_a_release_of_a_pull_request_from_a_forks_main_fails(self):
        self.jobs["builder"]["if"] = "github.event.workflow_run.conclusion == 'success'"
        self.assertFails("github.event.workflow_run.event == 'push'")

    def test_a_job_that_runs_even_when_the_gate_is_skipped_fails(self):
        self.jobs["rollout"]["if"] = "always()"
        self.assertFails("runs it even when the gate is skipped")

    def test_a_renamed_ci_workflow_fails(self):
        self.workflows["ci.yml"]["name"] = "tests"
        self.assertFails("workflow_run must be workflows: [tests]")

    def test_a_ci_that_does_not_run_on_main_fails(self):
        self.workflows["ci.yml"]["on"] = {"pull_request": None}
        self.assertFails("must run on pushes to main")

    def test_a_checkout_of_another_commit_fails(self):
        del self.step("rollout", lambda s: checks._uses(s, "actions/checkout"))["with"]
        self.assertFails("job rollout: checkout without ref")

    def test_github_sha_in_the_release_fails(self):
        cut = self.step("images", lambda s: s.get("id") == "build")
        cut["with"]["tags"] = cut["with"]["tags"].replace("github.event.workflow_run.head_sha", "github.sha")
        self.assertFails("github.sha is main's tip")

    def test_a_build_from_the_git_context_fails(self):
        del self.step("images", lambda s: s.get("id") == "build")["with"]["context"]
        self.assertFails("needs context: . (the checkout)")

    def test_a_latest_tag_fails(self):
        cut = self.step("images", lambda s: s.get("id") == "build")
        cut["with"]["tags"] = "ghcr.io/acme/ticketing-${{ matrix.service }}:latest"
        self.assertFails("names a moving tag")

    def test_a_service_missing_from_the_matrix_fails(self):
        self.jobs["images"]["strategy"]["matrix"]["service"].remove("query")
        self.assertFails("service query is missing from the matrix")

    def test_images_not_cut_from_the_builders_cache_fail(self):
        self.jobs["images"]["needs"] = []
        self.assertFails("job images: must need builder")

    def test_a_builder_that_does_not_fill_the_registry_cache_fails(self):
        del self.step("builder", lambda s: checks._uses(s, "docker/build-push-action"))["with"]["cache-to"]
        self.assertFails("cache-to: type=registry")

    def test_a_digest_not_handed_to_the_rollout_fails(self):
        self.jobs["images"]["steps"] = [
            s for s in self.jobs["images"]["steps"] if s.get("name") != "hand the digest on"
        ]
        self.assertFails("digest (steps.<id>.outputs.digest) must be handed to the rollout")

    def test_a_rollout_that_applies_by_itself_fails(self):
        self.step("rollout", lambda s: "infra/rollout" in str(s.get("run")))["run"] = (
            "kubectl apply -k infra/k8s/overlays/prod"
        )
        self.assertFails("applies manifests itself")
        self.assertFails("must deploy through infra/rollout")

    def test_a_rollout_outside_the_production_environment_fails(self):
        del self.jobs["rollout"]["environment"]
        self.assertFails("outside the production environment")

    def test_a_rollout_that_does_not_wait_for_the_images_fails(self):
        self.jobs["rollout"]["needs"] = ["builder"]
        self.assertFails("job rollout: must need images")

    def test_another_workflow_deploying_on_push_fails(self):
        # The shape of the former infra.yml: manifests applied on every push to main.
        self.workflows["infra.yml"] = {
            "name": "infra",
            "on": {"push": {"branches": ["main"]}},
            "jobs": {
                "apply": {"environment": "production", "steps": [{"run": "kubectl apply -k infra/k8s/overlays/prod"}]}
            },
        }
        errors = self.errors()
        self.assertTrue(any(e.startswith("infra.yml:") and "only a completed" in e for e in errors), errors)


class ProdOverlayCopies(unittest.TestCase):
    def setUp(self):
        path = checks.K8S / "overlays" / "prod" / "kustomization.yaml"
        self.kustomization = checks.yaml.safe_load(path.read_text())
        self.images = {entry["name"]: entry for entry in self.kustomization["images"]}
        self.services = checks.service_names()

    def test_the_committed_overlay_pins_nothing_and_names_no_moving_tag(self):
        self.assertEqual(checks.check_prod_overlay(self.kustomization, self.services), [])
        self.assertEqual({e["newTag"] for e in self.images.values()}, {"unpinned"})

    def test_an_image_at_latest_fails(self):
        self.images["ticketing/auth"]["newTag"] = "latest"
        self.assertTrue(checks.check_prod_overlay(self.kustomization, self.services))

    def test_an_image_naming_a_registry_fails(self):
        self.images["ticketing/auth"]["newName"] = "ghcr.io/example/ticketing-auth"
        self.assertTrue(any("names a registry" in e for e in checks.check_prod_overlay(self.kustomization, self.services)))

    def test_an_image_without_tag_or_digest_fails(self):
        del self.images["ticketing/auth"]["newTag"]
        self.assertTrue(checks.check_prod_overlay(self.kustomization, self.services))

    def test_a_service_missing_from_the_overlay_fails(self):
        self.kustomization["images"] = [e for e in self.kustomization["images"] if e["name"] != "ticketing/query"]
        self.assertIn(
            "prod overlay: no images entry for ticketing/query, so the release cannot pin it",
            checks.check_prod_overlay(self.kustomization, self.services),
        )


class PaymentsProviderCopies(unittest.TestCase):
    def setUp(self):
        prod = next(overlay for overlay in checks.OVERLAYS if overlay.name == "prod")
        self.docs = checks.load_docs(checks.render(prod))
        self.payments = next(d for d in self.docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == "payments")
        self.env = self.payments["spec"]["template"]["spec"]["containers"][0]["env"]

    def test_the_prod_overlay_charges_through_stripe(self):
        self.assertEqual(checks.check_payments_provider(self.docs), [])

    def test_the_test_provider_in_prod_fails(self):
        next(e for e in self.env if e["name"] == "PAYMENTS_PROVIDER")["value"] = "test"
        self.assertTrue(any("PAYMENTS_PROVIDER='test'" in e for e in checks.check_payments_provider(self.docs)))

    def test_an_optional_stripe_key_in_prod_fails(self):
        next(e for e in self.env if e["name"] == "STRIPE_KEY")["valueFrom"]["secretKeyRef"]["optional"] = True
        self.assertTrue(checks.check_payments_provider(self.docs))


def rendered(overlay):
    return checks.load_docs(checks.render(checks.K8S / "overlays" / overlay))


def container(doc, index=0):
    return doc["spec"]["template"]["spec"]["containers"][index]


def env_of(doc):
    return container(doc)["env"]


def env_entry(doc, name):
    return next(e for e in env_of(doc) if e["name"] == name)


class ProductionCopies(unittest.TestCase):
    """The prod overlay, rendered, with one production rule broken."""

    @classmethod
    def setUpClass(cls):
        cls.pristine = rendered("prod")

    def setUp(self):
        self.docs = copy.deepcopy(self.pristine)

    def assertFails(self, errors, fragment):
        self.assertTrue(any(fragment in e for e in errors), f"no error mentioning {fragment!r} in {errors}")

    def test_the_prod_overlay_passes_every_production_check(self):
        for check in [
            checks.check_production,
            checks.check_nats_auth,
            checks.check_topology_spread,
            checks.check_network_policies,
            checks.check_crds,
            checks.check_env_expansion,
        ]:
            self.assertEqual(check(self.docs), [], check.__name__)
        self.assertEqual(checks.check_tls(self.docs, production=True), [])

    def test_a_single_nats_node_fails(self):
        find(self.docs, "StatefulSet", "nats")["spec"]["replicas"] = 1
        self.assertFails(checks.check_production(self.docs), "production runs a JetStream cluster of 3")

    def test_nats_without_a_cluster_block_fails(self):
        config = find(self.docs, "ConfigMap", "nats-config")["data"]
        config["nats.conf"] = config["nats.conf"].replace("cluster {", "clustr {")
        self.assertFails(checks.check_production(self.docs), "no cluster block")

    def test_streams_on_one_node_fail(self):
        env_entry(find(self.docs, "Deployment", "orders"), "NATS_STREAM_REPLICAS")["value"] = "1"
        self.assertFails(checks.check_production(self.docs), "Deployment/orders: NATS_STREAM_REPLICAS")

    def test_a_two_member_replica_set_fails(self):
        find(self.docs, "StatefulSet", "mongo-payments")["spec"]["replicas"] = 2
        self.assertFails(checks.check_production(self.docs), "StatefulSet/mongo-payments: 2 member(s)")

    def test_members_allowed_on_one_node_fail(self):
        del find(self.docs, "StatefulSet", "mongo-orders")["spec"]["template"]["spec"]["affinity"]
        self.assertFails(checks.check_production(self.docs), "StatefulSet/mongo-orders: members may share a node")

    def test_mongodb_without_authentication_fails(self):
        command = container(find(self.docs, "StatefulSet", "mongo-auth"))["command"]
        del command[command.index("--keyFile") : command.index("--keyFile") + 2]
        self.assertFails(checks.check_production(self.docs), "MongoDB runs without authentication")

    def test_a_mongo_uri_without_credentials_or_majority_fails(self):
        uri = env_entry(find(self.docs, "Deployment", "tickets"), "MONGO_URI")
        uri["value"] = uri["value"].replace("$(MONGO_USER):$(MONGO_PASSWORD)@", "").replace("&w=majority", "")
        errors = checks.check_production(self.docs)
        self.assertFails(errors, "must authenticate with MONGO_PASSWORD")
        self.assertFails(errors, "w=majority")

    def test_a_service_without_autoscaler_fails(self):
        self.docs.remove(find(self.docs, "HorizontalPodAutoscaler", "query"))
        self.assertFails(checks.check_production(self.docs), "Deployment/query: needs an autoscaling/v2")

    def test_replicas_set_beside_an_autoscaler_fail(self):
        find(self.docs, "Deployment", "auth")["spec"]["replicas"] = 2
        self.assertFails(checks.check_production(self.docs), "Deployment/auth: sets replicas")

    def test_a_service_without_disruption_budget_fails(self):
        self.docs.remove(find(self.docs, "PodDisruptionBudget", "client"))
        self.assertFails(checks.check_production(self.docs), "Deployment/client: no PodDisruptionBudget")

    def test_insecure_cookies_fail(self):
        env_entry(find(self.docs, "Deployment", "auth"), "COOKIE_SECURE")["value"] = "false"
        self.assertFails(checks.check_production(self.docs), "COOKIE_SECURE must be true")

    def test_anonymous_nats_fails(self):
        config = find(self.docs, "ConfigMap", "nats-config")["data"]
        config["nats.conf"] += "no_auth_user: auth\n"
        self.assertFails(checks.check_nats_auth(self.docs), "NATS must require authentication")

    def test_a_nats_url_without_credentials_fails(self):
        env_entry(find(self.docs, "Deployment", "payments"), "NATS_URL")["value"] = "nats://nats:4222"
        self.assertFails(checks.check_nats_auth(self.docs), "Deployment/payments: NATS_URL")

    def test_a_nats_password_of_another_user_fails(self):
        env_entry(find(self.docs, "Deployment", "tickets"), "NATS_PASSWORD")["valueFrom"]["secretKeyRef"]["key"] = "orders"
        self.assertFails(checks.check_nats_auth(self.docs), "Deployment/tickets: NATS_PASSWORD")

    def test_a_variable_used_before_it_is_defined_fails(self):
        env = env_of(find(self.docs, "Deployment", "orders"))
        password = next(e for e in env if e["name"] == "MONGO_PASSWORD")
        env.remove(password)
        env.append(password)
        self.assertFails(checks.check_env_expansion(self.docs), "MONGO_URI uses $(MONGO_PASSWORD) before")

    def test_a_deployment_without_topology_spread_fails(self):
        del find(self.docs, "Deployment", "expiration")["spec"]["template"]["spec"]["topologySpreadConstraints"]
        self.assertFails(checks.check_topology_spread(self.docs), "Deployment/expiration: no topology spread")

    def test_a_missing_default_deny_fails(self):
        self.docs.remove(find(self.docs, "NetworkPolicy", "default-deny"))
        self.assertFails(checks.check_network_policies(self.docs), "no default-deny NetworkPolicy")

    def test_a_service_cut_off_from_its_database_fails(self):
        policy = find(self.docs, "NetworkPolicy", "mongo-orders")
        policy["spec"]["ingress"] = [r for r in policy["spec"]["ingress"] if r["from"][0]["podSelector"]["matchLabels"] != {"app.kubernetes.io/name": "orders"}]
        self.assertFails(checks.check_network_policies(self.docs), "no NetworkPolicy lets mongo-orders accept it")

    def test_a_service_that_may_not_open_nats_fails(self):
        policy = find(self.docs, "NetworkPolicy", "tickets")
        policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] != 4222]
        self.assertFails(checks.check_network_policies(self.docs), "Deployment/tickets: no NetworkPolicy lets it open nats:4222")

    def test_a_workload_without_dns_fails(self):
        policy = find(self.docs, "NetworkPolicy", "nats")
        policy["spec"]["egress"] = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] != 53]
        self.assertFails(checks.check_network_policies(self.docs), "nats: no NetworkPolicy lets it resolve names")

    def test_an_ingress_without_tls_fails(self):
        del find(self.docs, "Ingress", "ticketing")["spec"]["tls"]
        self.assertFails(checks.check_tls(self.docs, production=True), "has no TLS")

    def test_an_ingress_without_https_redirect_fails(self):
        del find(self.docs, "Ingress", "ticketing")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"]
        self.assertFails(checks.check_tls(self.docs, production=True), "force-ssl-redirect")

    def test_a_self_signed_certificate_in_production_fails(self):
        issuer = find(self.docs, "ClusterIssuer", "ticketing")
        issuer["spec"] = {"selfSigned": {}}
        self.assertFails(checks.check_tls(self.docs, production=True), "ACME issuer")

    def test_a_certificate_for_another_host_fails(self):
        find(self.docs, "Certificate", "ticketing-tls")["spec"]["dnsNames"] = ["example.org"]
        self.assertFails(checks.check_tls(self.docs, production=True), "no Certificate for")

    def test_cert_manager_resources_missing_required_fields_fail(self):
        del find(self.docs, "Certificate", "ticketing-tls")["spec"]["secretName"]
        del find(self.docs, "ClusterIssuer", "ticketing")["spec"]["acme"]["solvers"]
        errors = checks.check_crds(self.docs)
        self.assertFails(errors, "Certificate/ticketing-tls: needs spec.secretName")
        self.assertFails(errors, "acme needs privateKeySecretRef.name and solvers")

    def test_a_certificate_naming_no_issuer_fails(self):
        find(self.docs, "Certificate", "ticketing-tls")["spec"]["issuerRef"]["name"] = "letsencrypt"
        self.assertFails(checks.check_crds(self.docs), "names no Issuer or ClusterIssuer")

    def test_custom_resources_leave_the_schema_check_and_the_rest_stays_in_it(self):
        # kubernetes-validate has no schema for cert-manager's kinds (it only warns), so
        # they are taken out, and check_crds holds their fields.
        certificate = find(self.docs, "Certificate", "ticketing-tls")
        self.assertNotIn("Certificate", checks.without_crds(checks.yaml.safe_dump(certificate)))
        deployment = copy.deepcopy(find(self.docs, "Deployment", "auth"))
        deployment["spec"]["replica"] = 2
        text = checks.yaml.safe_dump_all([certificate, deployment])
        self.assertTrue(checks.check_schema([text]))

    def test_a_secret_the_prod_overlay_does_not_document_fails(self):
        text = (checks.K8S / "overlays" / "prod" / "kustomization.yaml").read_text()
        self.assertEqual(checks.check_prod_secrets_documented(self.docs, text), [])
        errors = checks.check_prod_secrets_documented(self.docs, text.replace("nats-credentials", "nats-secret"))
        self.assertFails(errors, "do not document the secret nats-credentials")

    def test_a_latest_third_party_image_fails(self):
        container(find(self.docs, "StatefulSet", "nats"))["image"] = "nats:latest"
        self.assertTrue(checks.check_third_party_tags(self.docs))


class SecretDocumentation(unittest.TestCase):
    def test_secrets_created_in_a_loop_count_as_documented(self):
        text = 'for db in auth orders; do\n  kubectl create secret generic "mongo-$db" \\\n    --from-literal=a=b\ndone\n'
        self.assertEqual(checks.secrets_created_by(text), {"mongo-auth", "mongo-orders"})

    def test_a_secret_volume_naming_an_undocumented_secret_fails(self):
        docs = rendered("prod")
        volumes = find(docs, "StatefulSet", "mongo-query")["spec"]["template"]["spec"]["volumes"]
        next(v for v in volumes if "secret" in v)["secret"]["secretName"] = "mongo-query-key"
        errors = checks.check_secret_refs(docs, checks.documented_secrets())
        self.assertTrue(any("mongo-query-key" in e for e in errors), errors)


class DevCopies(unittest.TestCase):
    def test_dev_serves_https_with_its_self_signed_issuer(self):
        docs = rendered("dev")
        self.assertEqual(checks.check_tls(docs, production=False), [])
        self.assertEqual(checks.check_crds(docs), [])
        self.assertIn("selfSigned", find(docs, "Issuer", "ticketing")["spec"])

    def test_dev_generates_a_nats_password_for_every_user(self):
        import nats_auth  # noqa: PLC0415

        secret = next(d for d in rendered("dev") if d["kind"] == "Secret" and d["metadata"]["name"].startswith("nats-credentials"))
        self.assertEqual(set(secret["data"]), set(nats_auth.USERS))


# Stand-ins for kubectl and kustomize: they keep a small cluster in a JSON file and log
# every call, so infra/rollout's decisions can be checked without a cluster.
FAKE_KUBECTL = r"""
import json, os, sys
path = os.environ["FAKE_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["kubectl", *args]) + "\n")
deployments = state["deployments"]
def save():
    json.dump(state, open(path, "w"))
if args[0] == "kustomize":
    for service in state["render"]:
        image = state["pins"].get(service, f"ghcr.io/example/ticketing-{service}:unpinned")
        print(f"---\nkind: Deployment\nmetadata:\n  name: {service}\nspec:\n  template:\n    spec:\n"
              f"      containers:\n        - name: {service}\n          image: {image}")
    print("---\nkind: StatefulSet\nspec:\n  template:\n    spec:\n      containers:\n        - image: mongo:7.0")
elif args[0] == "get":
    deployment = deployments.get(args[2])
    if deployment:
        print(deployment["generation"] if "generation" in args[-1] else deployment["revision"], end="")
elif args[0] == "apply":
    for name in state["changed"]:
        deployment = deployments.setdefault(name, {"generation": 0, "revision": 0})
        deployment["generation"] += 1
        deployment["revision"] += 1
    save()
    sys.exit(1 if state.get("apply_fails") else 0)
elif args[:2] == ["rollout", "status"]:
    name = args[2].split("/")[1]
    sys.exit(1 if name in state["failing"] and not deployments[name].get("undone") else 0)
elif args[:2] == ["rollout", "undo"]:
    name = args[2].split("/")[1]
    deployments[name]["undone"] = True
    deployments[name]["generation"] += 1
    save()
"""
FAKE_KUSTOMIZE = r"""
import json, os, sys
path = os.environ["FAKE_STATE"]
state = json.load(open(path))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["kustomize", *sys.argv[1:]]) + "\n")
assert sys.argv[1:4] == ["edit", "set", "image"], sys.argv
for pin in sys.argv[4:]:
    name, new = pin.split("=")
    state["pins"][name.removeprefix("ticketing/")] = new
json.dump(state, open(path, "w"))
"""


class RolloutScript(unittest.TestCase):
    """infra/rollout against a fake cluster."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = pathlib.Path(tmp.name)
        bin_dir = self.tmp / "bin"
        bin_dir.mkdir()
        for name, body in [("kubectl", FAKE_KUBECTL), ("kustomize", FAKE_KUSTOMIZE)]:
            (bin_dir / name).write_text(f"#!{sys.executable}\n{body}")
            (bin_dir / name).chmod(0o755)
        self.digests = self.tmp / "digests"
        self.digests.mkdir()
        self.overlay = self.tmp / "overlay"
        self.overlay.mkdir()
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_STATE": str(self.tmp / "state.json"),
            "FAKE_LOG": str(self.tmp / "calls.log"),
            "ROLLOUT_TIMEOUT": "1s",
        }

    def digest(self, service, value=None):
        """Writes the digest file the image job would hand on: a made-up digest, or `value`."""
        value = value or "sha256:" + hashlib.sha256(service.encode()).hexdigest()
        (self.digests / service).write_text(value + "\n")
        return value

    def run_rollout(self, deployments, changed, failing=(), render=None, apply_fails=False):
        state = {
            "deployments": deployments,
            "changed": list(changed),
            "failing": list(failing),
            "render": list(render if render is not None else deployments),
            "pins": {},
            "apply_fails": apply_fails,
        }
        pathlib.Path(self.env["FAKE_STATE"]).write_text(json.dumps(state))
        out = subprocess.run(
            ["bash", str(checks.ROOT / "infra" / "rollout"), str(self.overlay), str(self.digests), "ghcr.io/acme"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        log = pathlib.Path(self.env["FAKE_LOG"])
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return out, calls

    def test_every_image_is_pinned_by_digest_applied_once_and_waited_for(self):
        auth, tickets = self.digest("auth"), self.digest("tickets")
        deployments = {"auth": {"generation": 3, "revision": 2}, "tickets": {"generation": 1, "revision": 1}}

        out, calls = self.run_rollout(deployments, changed=["auth", "tickets"])

        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(
            [
                "kustomize",
                "edit",
                "set",
                "image",
                f"ticketing/auth=ghcr.io/acme/ticketing-auth@{auth}",
                f"ticketing/tickets=ghcr.io/acme/ticketing-tickets@{tickets}",
            ],
            calls,
        )
        self.assertEqual(len([c for c in calls if c[1] == "apply"]), 1)
        waited = [c[3] for c in calls if c[1:3] == ["rollout", "status"]]
        self.assertEqual(sorted(waited), ["deployment/auth", "deployment/tickets"])
        self.assertFalse([c for c in calls if c[1:3] == ["rollout", "undo"]])

    def test_a_deployment_not_ready_in_time_undoes_every_deployment_the_rollout_changed(self):
        for service in ["auth", "tickets", "query"]:
            self.digest(service)
        deployments = {
            "auth": {"generation": 5, "revision": 4},
            "tickets": {"generation": 2, "revision": 2},
            "query": {"generation": 7, "revision": 3},  # same digest as before: not changed
        }

        out, calls = self.run_rollout(deployments, changed=["auth", "tickets"], failing=["tickets"])

        self.assertNotEqual(out.returncode, 0)
        undone = sorted(c[3:] for c in calls if c[1:3] == ["rollout", "undo"])
        self.assertEqual(undone, [["deployment/auth", "--to-revision=4"], ["deployment/tickets", "--to-revision=2"]])

    def test_a_failed_apply_undoes_what_it_changed_and_fails(self):
        self.digest("auth")
        self.digest("orders")
        deployments = {"auth": {"generation": 5, "revision": 4}, "orders": {"generation": 1, "revision": 1}}

        out, calls = self.run_rollout(deployments, changed=["orders"], apply_fails=True)

        self.assertNotEqual(out.returncode, 0)
        undone = [c[3:] for c in calls if c[1:3] == ["rollout", "undo"]]
        self.assertEqual(undone, [["deployment/orders", "--to-revision=1"]])

    def test_an_image_left_unpinned_stops_before_the_cluster_is_touched(self):
        self.digest("auth")
        deployments = {"auth": {"generation": 1, "revision": 1}, "query": {"generation": 1, "revision": 1}}

        out, calls = self.run_rollout(deployments, changed=["auth"], render=["auth", "query"])

        self.assertNotEqual(out.returncode, 0)
        self.assertIn("ghcr.io/example/ticketing-query:unpinned", out.stderr)
        self.assertEqual([c for c in calls if c[0] == "kubectl" and c[1] != "kustomize"], [])

    def test_a_digest_file_holding_a_tag_stops_everything(self):
        self.digest("auth", "latest")

        out, calls = self.run_rollout({"auth": {"generation": 1, "revision": 1}}, changed=["auth"])

        self.assertNotEqual(out.returncode, 0)
        self.assertIn("is not an image digest", out.stderr)
        self.assertEqual(calls, [])


if __name__ == "__main__":
    unittest.main()
