"""The NATS users of infra/nats_auth.py against the real nats-server (.dev/venv, the
version the tests and dev/up run): every rendered configuration is valid, and the
permissions do what the table says. Run with `python -m unittest test_nats_permissions.py`
from infra/ (infra/check does)."""

import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import nats
from nats.js.api import ConsumerConfig

import nats_auth
from ports import free_port

SERVER = pathlib.Path(sys.executable).parent / "nats-server"
USERS = [*nats_auth.USERS, nats_auth.HARNESS, "client"]
# Test passwords, one per user; a digit-only one would be read as a number by the server.
PASSWORDS = {user: f"test-{user}-{n:02d}" for n, user in enumerate(USERS)}
ENV = {nats_auth.password_variable(user): password for user, password in PASSWORDS.items()}
CLUSTER_ENV = {
    "POD_NAME": "nats-0",
    "NATS_ROUTE_PASSWORD": "test-route",
    **{v: nats_auth.route_url(n, "test-route") for n, v in enumerate(nats_auth.route_variables(3))},
}
TIMEOUT = 1.0  # a refused request gets no reply: it times out


def validate(config, env):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "nats.conf"
        path.write_text(config)
        return subprocess.run(
            [str(SERVER), "-c", str(path), "-t"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )


class RenderedConfigs(unittest.TestCase):
    def test_every_mode_is_a_valid_server_configuration(self):
        for mode, kwargs, env in [
            ("cluster", {}, {**ENV, **CLUSTER_ENV}),
            ("single", {}, {**ENV, "POD_NAME": "nats-0"}),
            ("local", {"port": 4222}, ENV),
            ("local", {"namespaced": True}, ENV),
            ("local", {"port": 4222, "local_cluster": ("n0", 6222, [6223, 6224])}, ENV),
        ]:
            with self.subTest(mode=mode, **kwargs):
                out = validate(nats_auth.nats_config(mode, **kwargs), env)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_a_missing_password_stops_the_server(self):
        env = {k: v for k, v in ENV.items() if k != nats_auth.password_variable("tickets")}
        out = validate(nats_auth.nats_config("local"), env)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("NATS_PASSWORD_TICKETS", out.stdout + out.stderr)

    def test_only_the_cluster_has_routes_and_only_local_runs_have_the_harness(self):
        cluster, single, local = (nats_auth.nats_config(m) for m in ("cluster", "single", "local"))
        self.assertIn("cluster {", cluster)
        self.assertIn("routes: [$NATS_ROUTE_0, $NATS_ROUTE_1, $NATS_ROUTE_2]", cluster)
        self.assertNotIn("cluster {", single + local)
        self.assertNotIn(nats_auth.HARNESS, cluster + single)
        self.assertIn(nats_auth.HARNESS, local)

    def test_every_publish_lies_in_the_publishers_own_stream(self):
        for service, user in nats_auth.USERS.items():
            for subject in user.publishes:
                self.assertEqual(nats_auth.STREAMS[nats_auth.stream_of(subject)].owner, service, subject)


class Server:
    """A nats-server on a free loopback port with a rendered local configuration."""

    def __init__(self, namespaced):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        config = pathlib.Path(self.tmp.name) / "nats.conf"
        config.write_text(nats_auth.nats_config("local", namespaced=namespaced, port=self.port))
        self.log = open(pathlib.Path(self.tmp.name) / "server.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(SERVER), "-c", str(config), "--jetstream", "--store_dir", self.tmp.name],
            env={**os.environ, **ENV},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"nats-server did not start: {self.log_text()}") from None
                time.sleep(0.05)

    def log_text(self):
        return (pathlib.Path(self.tmp.name) / "server.log").read_text()

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()
        self.tmp.cleanup()


class Client:
    """One user's connection, with the permission errors the server sent it."""

    def __init__(self, server, user, password=None):
        self.server, self.user, self.password = server, user, password
        self.errors = []

    async def __aenter__(self):
        async def on_error(error):
            self.errors.append(str(error).lower())

        self.nc = await nats.connect(
            f"nats://127.0.0.1:{self.server.port}",
            user=self.user,
            password=self.password or PASSWORDS[self.user],
            inbox_prefix=nats_auth.inbox(self.user).encode(),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )
        self.js = self.nc.jetstream(timeout=TIMEOUT)
        return self

    async def __aexit__(self, *exc):
        await self.nc.close()

    async def refused(self, subject):
        """Whether the server refused this user a publish to `subject`."""
        await self.nc.publish(subject, b"{}")
        await self.nc.flush()
        for _ in range(50):
            if any(f'violation for publish to "{subject.lower()}"' in e for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False

    async def api(self, subject, body):
        """A JetStream API request; None when it got no answer (refused)."""
        try:
            reply = await self.nc.request(subject, json.dumps(body).encode(), timeout=TIMEOUT)
        except nats.errors.TimeoutError:
            return None
        return json.loads(reply.data)


def run(coroutine):
    return asyncio.run(coroutine)


class ExactNames(unittest.TestCase):
    """Production names (no namespace): what the cluster and dev/up run with."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(namespaced=False)
        run(cls.declare_streams())

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    @classmethod
    async def declare_streams(cls):
        for name, stream in nats_auth.STREAMS.items():
            async with Client(cls.server, stream.owner or "tickets") as owner:
                await owner.js.add_stream(name=name, subjects=list(stream.subjects))

    def test_tickets_publishes_its_own_subjects_and_the_stream_acknowledges(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                ack = await tickets.js.publish("ticket.created", b"{}")
                self.assertEqual(ack.stream, "TICKETS")
                self.assertFalse(await tickets.refused("ticket.updated"))
                self.assertFalse(await tickets.refused("deadletter.tickets.order.created"))

        run(scenario())

    def test_a_service_is_refused_another_services_subjects(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                self.assertTrue(await tickets.refused("payment.created"))
                self.assertTrue(await tickets.refused("order.created"))
                self.assertTrue(await tickets.refused("deadletter.orders.ticket.created"))
            async with Client(self.server, "orders") as orders:
                self.assertTrue(await orders.refused("ticket.updated"))
                self.assertTrue(await orders.refused("user.banned"))
                self.assertFalse(await orders.refused("order.cancelled"))

        run(scenario())

    def test_orders_creates_and_pulls_its_own_durable_and_acks(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                await tickets.js.publish("ticket.updated", b'{"n":1}')
            async with Client(self.server, "orders") as orders:
                subscription = await orders.js.pull_subscribe(
                    "ticket.updated", durable="orders-ticket-updated", stream="TICKETS"
                )
                messages = await subscription.fetch(1, timeout=2)
                self.assertEqual(messages[0].data, b'{"n":1}')
                await messages[0].ack_sync(timeout=2)
                self.assertEqual(orders.errors, [])

        run(scenario())

    def test_a_service_is_refused_another_services_durable(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                await tickets.js.pull_subscribe("order.created", durable="tickets-order-created", stream="ORDERS")
            async with Client(self.server, "orders") as orders:
                pull = {"batch": 1, "expires": 200_000_000}
                self.assertIsNone(await orders.api("$JS.API.CONSUMER.MSG.NEXT.ORDERS.tickets-order-created", pull))
                create = {"stream_name": "ORDERS", "config": {"durable_name": "tickets-order-created"}}
                self.assertIsNone(await orders.api("$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.tickets-order-created", create))
                self.assertTrue(await orders.refused("$JS.ACK.ORDERS.tickets-order-created.1.1.1.1.0"))

        run(scenario())

    def test_every_service_follows_the_revocation_feed_but_only_orders_touches_its_durable(self):
        async def scenario():
            async with Client(self.server, "orders") as orders:
                await orders.js.pull_subscribe("user.banned", durable="orders-user-banned", stream="USERS")
            async with Client(self.server, "auth") as auth:
                await auth.js.publish("user.banned", b"{}")
            async with Client(self.server, "tickets") as tickets:
                config = {"name": "tickets-feed-1", "ack_policy": "none", "deliver_policy": "all"}
                created = await tickets.api(
                    "$JS.API.CONSUMER.CREATE.USERS.tickets-feed-1", {"stream_name": "USERS", "config": config}
                )
                self.assertEqual(created["name"], "tickets-feed-1")
                feed = await tickets.js.pull_subscribe_bind(
                    "tickets-feed-1", stream="USERS", inbox_prefix=nats_auth.inbox("tickets").encode() + b"."
                )
                self.assertEqual(len(await feed.fetch(1, timeout=2)), 1)
                # The durable of orders: no pull, no ack, no rewrite, no delete.
                self.assertIsNone(
                    await tickets.api("$JS.API.CONSUMER.MSG.NEXT.USERS.orders-user-banned", {"batch": 1})
                )
                self.assertTrue(await tickets.refused("$JS.ACK.USERS.orders-user-banned.1.1.1.1.0"))
                self.assertIsNone(await tickets.api("$JS.API.CONSUMER.DELETE.USERS.orders-user-banned", {}))
                rewrite = {"stream_name": "USERS", "config": {"name": "orders-user-banned", "filter_subject": "user.>"}}
                self.assertIsNone(await tickets.api("$JS.API.CONSUMER.CREATE.USERS.orders-user-banned", rewrite))
                # The unnamed create takes the name from the body, so it is refused too.
                self.assertIsNone(await tickets.api("$JS.API.CONSUMER.CREATE.USERS", rewrite))
            async with Client(self.server, nats_auth.HARNESS) as harness:
                info = await harness.js.consumer_info("USERS", "orders-user-banned")
                self.assertEqual(info.config.filter_subject, "user.banned")

        run(scenario())

    def test_streams_are_created_and_updated_by_their_owner_only(self):
        async def scenario():
            async with Client(self.server, "orders") as orders:
                self.assertIsNotNone(await orders.api("$JS.API.STREAM.INFO.TICKETS", {}))
                config = {"name": "TICKETS", "subjects": ["ticket.>"], "max_msgs": 1}
                self.assertIsNone(await orders.api("$JS.API.STREAM.UPDATE.TICKETS", config))
                self.assertIsNone(await orders.api("$JS.API.STREAM.CREATE.TICKETS", config))
                self.assertIsNone(await orders.api("$JS.API.STREAM.DELETE.ORDERS", {}))
                self.assertIsNone(await orders.api("$JS.API.STREAM.PURGE.ORDERS", {}))
                self.assertIsNone(await orders.api("$JS.API.STREAM.UPDATE.USERS", {"name": "USERS"}))
            async with Client(self.server, "query") as query:
                # query owns only its live feed: no event stream, no event subject.
                self.assertIsNone(await query.api("$JS.API.STREAM.UPDATE.TICKETS", {"name": "TICKETS"}))
                self.assertTrue(await query.refused("ticket.created"))

        run(scenario())

    def test_query_feeds_its_replicas_and_nobody_else_writes_or_reads_the_feed(self):
        async def scenario():
            async with Client(self.server, "query") as query:
                ack = await query.js.publish("feed.ticket", b'{"id":"t1"}')
                self.assertEqual(ack.stream, "TICKETFEED")
                config = {"name": "query-feed-1", "ack_policy": "none", "deliver_policy": "all"}
                created = await query.api(
                    "$JS.API.CONSUMER.CREATE.TICKETFEED.query-feed-1.feed.ticket",
                    {"stream_name": "TICKETFEED", "config": {**config, "filter_subject": "feed.ticket"}},
                )
                self.assertEqual(created["name"], "query-feed-1")
                self.assertEqual(query.errors, [])
            async with Client(self.server, "tickets") as tickets:
                self.assertTrue(await tickets.refused("feed.ticket"))
                body = {"stream_name": "TICKETFEED", "config": {"name": "tickets-feed-1", "ack_policy": "none"}}
                self.assertIsNone(await tickets.api("$JS.API.CONSUMER.CREATE.TICKETFEED.tickets-feed-1", body))

        run(scenario())

    def test_query_may_delete_its_own_durables_for_a_rebuild_and_nobody_elses(self):
        async def scenario():
            async with Client(self.server, "query") as query:
                await query.js.pull_subscribe("ticket.created", durable="query-ticket-created", stream="TICKETS")
                self.assertTrue(await query.js.delete_consumer("TICKETS", "query-ticket-created"))
                self.assertIsNone(await query.api("$JS.API.CONSUMER.DELETE.ORDERS.tickets-order-created", {}))
            async with Client(self.server, "orders") as orders:
                self.assertIsNone(await orders.api("$JS.API.CONSUMER.DELETE.TICKETS.orders-ticket-created", {}))

        run(scenario())

    def test_a_service_cannot_read_another_services_inbox(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                await tickets.nc.subscribe("_INBOX_orders.>")
                await tickets.nc.subscribe("_INBOX.>")
                await tickets.nc.flush()
                await asyncio.sleep(0.2)
                self.assertTrue(any('violation for subscription to "_inbox_orders.>"' in e for e in tickets.errors))

        run(scenario())

    def test_the_web_client_and_strangers_cannot_connect(self):
        async def quiet(_error):
            pass

        async def connect(**credentials):
            url = f"nats://127.0.0.1:{self.server.port}"
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=quiet, **credentials)
            await nc.close()

        for credentials in [
            {"user": "client", "password": PASSWORDS["client"]},  # the client has no user at all
            {"user": "tickets", "password": "wrong"},
            {},  # anonymous
        ]:
            with self.subTest(**credentials), self.assertRaisesRegex(nats.errors.Error, "Authorization Violation"):
                run(connect(**credentials))


class NamespacedNames(unittest.TestCase):
    """The local configuration with namespaces (tests run each under its own)."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(namespaced=True)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_under_any_namespace_a_service_publishes_its_own_subjects_only(self):
        async def scenario():
            async with Client(self.server, "tickets") as tickets:
                await tickets.js.add_stream(name="T_AB12_TICKETS", subjects=["t_ab12.ticket.>"])
                ack = await tickets.js.publish("t_ab12.ticket.created", b"{}")
                self.assertEqual(ack.stream, "T_AB12_TICKETS")
                self.assertTrue(await tickets.refused("t_ab12.payment.created"))
                self.assertTrue(await tickets.refused("payment.created"))
                self.assertFalse(await tickets.refused("t_cd34.deadletter.tickets.order.created"))
                self.assertTrue(await tickets.refused("t_ab12.deadletter.orders.ticket.created"))
            async with Client(self.server, "orders") as orders:
                subscription = await orders.js.pull_subscribe(
                    "t_ab12.ticket.created", durable="t_ab12-orders-ticket-created", stream="T_AB12_TICKETS"
                )
                self.assertEqual(len(await subscription.fetch(1, timeout=2)), 1)
                self.assertTrue(await orders.refused("t_ab12.ticket.created"))

        run(scenario())

    def test_the_exact_names_of_dev_up_still_work(self):
        async def scenario():
            async with Client(self.server, "payments") as payments:
                await payments.js.add_stream(name="PAYMENTS", subjects=["payment.>"])
                self.assertEqual((await payments.js.publish("payment.created", b"{}")).stream, "PAYMENTS")

        run(scenario())


if __name__ == "__main__":
    unittest.main()
