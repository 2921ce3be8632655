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


if __name__ == "__main__":
    unittest.main()
