#!/usr/bin/env python3
"""Who may do what on NATS: one table of the event topology (SPEC section 4) and the
nats-server configuration rendered from it, with one user per service and least privilege.

The same function renders every server configuration of the project:

- `nats_config("cluster")`: the production JetStream cluster in Kubernetes (three nodes,
  routes to each peer through the headless service, route authentication);
- `nats_config("single")`: the single node of the base and dev manifests;
- `nats_config("local", port=...)`: the servers of dev/up and the tests, on loopback. With
  `namespaced=True` the users may also work under any `EVENT_NAMESPACE` (what the tests
  use), at the price described in `namespaced_permissions`. Local configurations add the
  `harness` user, unrestricted, for test helpers and tools; production has no such user.

Passwords are never in the rendered file: each is a `$NATS_PASSWORD_<USER>` reference that
nats-server resolves from its environment (in Kubernetes: the Secret `nats-credentials`,
one key per user). A password must not read as a number (`openssl rand -hex 32` is fine).

Each service connects as its own name with `NATS_URL=nats://<service>:<password>@nats:4222`
and must use the inbox prefix `_INBOX_<service>` (the only subjects it may subscribe to),
so no service can read the replies, pulled messages included, meant for another.

usage: infra/nats_auth.py cluster|single|local [--namespaced] [--port N]
           [--server-name NAME --cluster-port N --routes N,N]  (prints it)
       infra/nats_auth.py passwords  (prints `export NATS_PASSWORD_<USER>=...` lines)
"""

import dataclasses
import json
import sys


@dataclasses.dataclass(frozen=True)
class Stream:
    subjects: tuple  # the subject filters it captures
    owner: str | None  # the service that publishes into it (None: every listener, DEADLETTER)


STREAMS = {
    "TICKETS": Stream(("ticket.>",), "tickets"),
    "ORDERS": Stream(("order.>",), "orders"),
    "PAYMENTS": Stream(("payment.>",), "payments"),
    "EXPIRATION": Stream(("expiration.>",), "expiration"),
    "USERS": Stream(("user.>",), "auth"),
    # The blog. The comment subjects have two publishers (comments, moderation), so each
    # of their streams lists its subjects exactly.
    "POSTS": Stream(("post.>",), "posts"),
    "COMMENTS": Stream(("comment.created", "comment.updated"), "comments"),
    "MODERATION": Stream(("comment.moderated",), "moderation"),
    "DEADLETTER": Stream(("deadletter.>",), None),
    # query's live ticket feed (services/query/src/feed.rs): changed ticket views for the
    # Server-Sent Events of every query replica; recent changes only.
    "TICKETFEED": Stream(("feed.>",), "query"),
}
REVOCATIONS = "USERS"  # the stream of the revocation feed (ordered, ephemeral consumers)


@dataclasses.dataclass(frozen=True)
class User:
    publishes: tuple = ()  # subjects it publishes (all in its own stream)
    listens: tuple = ()  # subjects it has a durable pull consumer on
    follows: tuple = ()  # streams it reads through ordered (ephemeral) consumers
    resets_consumers: bool = False  # deletes its own durables (query's rebuild)


# One user per service that talks to NATS. The web client has none: it cannot connect.
USERS = {
    "auth": User(publishes=("user.banned", "user.unbanned", "user.sessions.revoked"), follows=(REVOCATIONS,)),
    "tickets": User(
        publishes=("ticket.created", "ticket.updated"),
        listens=("order.created", "order.cancelled"),
        follows=(REVOCATIONS,),
    ),
    "orders": User(
        publishes=("order.created", "order.cancelled", "order.completed"),
        listens=("ticket.created", "ticket.updated", "expiration.complete", "payment.created", "user.banned"),
        follows=(REVOCATIONS,),
    ),
    "expiration": User(
        publishes=("expiration.complete",),
        listens=("order.created", "order.cancelled", "order.completed"),
    ),
    "payments": User(
        publishes=("payment.created",),
        listens=("order.created", "order.cancelled", "order.completed"),
        follows=(REVOCATIONS,),
    ),
    "query": User(
        publishes=("feed.ticket",),
        listens=(
            "ticket.created",
            "ticket.updated",
            "order.created",
            "order.cancelled",
            "order.completed",
            "payment.created",
            "post.created",
            "comment.created",
            "comment.updated",
        ),
        follows=(REVOCATIONS, "TICKETFEED"),
        resets_consumers=True,
    ),
    "posts": User(publishes=("post.created",), follows=(REVOCATIONS,)),
    "comments": User(
        publishes=("comment.created", "comment.updated"),
        listens=("post.created", "comment.moderated"),
        follows=(REVOCATIONS,),
    ),
    "moderation": User(publishes=("comment.moderated",), listens=("comment.created",)),
}
HARNESS = "harness"  # local only: test helpers and tools, no restriction
ROUTE_USER = "route"  # cluster routes authenticate as this user
CLUSTER_NAME = "ticketing"
CLIENT_PORT, CLUSTER_PORT, MONITOR_PORT = 4222, 6222, 8222
HEADLESS = "nats-headless"


def captures(pattern, subject):
    """Whether a stream's subject filter captures a subject (`order.>`, `order.created`)."""
    return subject.startswith(pattern[:-1]) if pattern.endswith(">") else pattern == subject


def stream_of(subject):
    """The stream capturing a subject (`order.created` -> `ORDERS`)."""
    return next(name for name, s in STREAMS.items() if any(captures(p, subject) for p in s.subjects))


def durable(service, subject):
    """The durable consumer of `service` on `subject`: `orders-ticket-created`."""
    return f"{service}-{subject.replace('.', '-')}"


def own_stream(service):
    return next((name for name, s in STREAMS.items() if s.owner == service), None)


def streams_used(service):
    user = USERS[service]
    used = {stream_of(s) for s in user.publishes + user.listens}
    if user.listens:
        used.add("DEADLETTER")
    used.update(user.follows)
    return sorted(used)


def password_variable(user):
    return f"NATS_PASSWORD_{user.upper()}"


def inbox(service):
    return f"_INBOX_{service}"


class Names:
    """How names appear in permissions: exactly (production, dev/up), or under any
    EVENT_NAMESPACE (tests). Namespaced streams are `<NS>_TICKETS`, subjects
    `<ns>.ticket.created`, durables `<ns>-orders-ticket-created`; NATS wildcards match
    whole tokens only, so a prefixed stream or durable name can only be matched by `*`."""

    def __init__(self, namespaced):
        self.namespaced = namespaced

    def subject(self, subject):
        return f"*.{subject}" if self.namespaced else subject

    def stream(self, stream):
        return "*" if self.namespaced else stream

    def durable(self, service, subject):
        return "*" if self.namespaced else durable(service, subject)


def _permissions(service, names):
    """(publish allow, publish deny) for one service under one naming."""
    user = USERS[service]
    allow, deny = [], []
    allow += [names.subject(s) for s in user.publishes]
    if user.listens:
        allow.append(names.subject(f"deadletter.{service}.>"))
    allow.append("$JS.API.INFO")
    allow += [f"$JS.API.STREAM.INFO.{names.stream(s)}" for s in streams_used(service)]
    # Create and update: the service's own stream, and DEADLETTER, which every listener
    # writes to and nobody owns. USERS may be created by any service that reads it (its
    # revocation feed must load before the service is ready, whether or not auth ever
    # started), but only auth may update it: create never changes an existing stream,
    # update would let any service shorten the revocation history.
    writable = [own_stream(service)] + (["DEADLETTER"] if user.listens else [])
    for stream in filter(None, writable):
        allow += [f"$JS.API.STREAM.CREATE.{names.stream(stream)}", f"$JS.API.STREAM.UPDATE.{names.stream(stream)}"]
    if REVOCATIONS in user.follows and own_stream(service) != REVOCATIONS:
        allow.append(f"$JS.API.STREAM.CREATE.{names.stream(REVOCATIONS)}")
    for subject in user.listens:
        stream, name = names.stream(stream_of(subject)), names.durable(service, subject)
        allow += [
            f"$JS.API.CONSUMER.CREATE.{stream}.{name}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{name}.{names.subject(subject)}",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}",
            f"$JS.API.CONSUMER.INFO.{stream}.{name}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
        ]
        if user.resets_consumers:
            allow.append(f"$JS.API.CONSUMER.DELETE.{stream}.{name}")
    for followed in user.follows:
        # Ordered consumers: created, pulled, and deleted by the client when it recreates
        # one. Their names are made up at run time (`<service>-<purpose>-<unique>`), so any
        # consumer name of the stream matches; the durables others own on it are denied
        # below (a deny wins over an allow). They must be created under their name
        # (`CONSUMER.CREATE.USERS.<name>`): the unnamed `$JS.API.CONSUMER.CREATE.USERS`
        # takes the name from the request body, which permissions cannot see, and would
        # let any service rewrite the durable orders-user-banned (tested in
        # infra/test_nats_permissions.py).
        stream = names.stream(followed)
        allow += [
            f"$JS.API.CONSUMER.CREATE.{stream}.*",
            f"$JS.API.CONSUMER.CREATE.{stream}.*.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
            f"$JS.API.CONSUMER.DELETE.{stream}.*",
        ]
        for other, other_user in USERS.items():
            for subject in other_user.listens:
                if other == service or stream_of(subject) != followed:
                    continue
                name = durable(other, subject)  # exact only: see namespaced_permissions
                deny += [
                    f"$JS.API.CONSUMER.CREATE.{followed}.{name}",
                    f"$JS.API.CONSUMER.CREATE.{followed}.{name}.>",
                    f"$JS.API.CONSUMER.DURABLE.CREATE.{followed}.{name}",
                    f"$JS.API.CONSUMER.MSG.NEXT.{followed}.{name}",
                    f"$JS.API.CONSUMER.DELETE.{followed}.{name}",
                    f"$JS.ACK.{followed}.{name}.>",
                ]
    return allow, deny


def permissions(service, namespaced=False):
    """The nats-server permissions of one service's user. Namespaced: the exact names
    (dev/up, no namespace) and the namespaced forms (tests) together."""
    allow, deny = _permissions(service, Names(False))
    if namespaced:
        more, _ = _permissions(service, Names(True))
        allow += [p for p in more if p not in allow]
    return {
        "publish": {"allow": allow, "deny": deny} if deny else {"allow": allow},
        "subscribe": {"allow": [f"{inbox(service)}.>"]},
    }


def namespaced_permissions():
    """What `namespaced=True` loosens, for the docs and the reader of a test failure."""
    return (
        "Under a namespace every stream-name and durable-name token is `*`: a service may "
        "then create, read, pull from and ack any consumer of any stream for the operations "
        "it has at all (the durable isolation between services, and the deny on "
        "orders-user-banned, hold only for exact names), may create or update any stream "
        "whose operations it has, and read the info of any stream. Still enforced: the "
        "subjects it may publish (`*.ticket.created`: any namespace, only its own "
        "subjects), its dead-letter subjects, the kinds of JetStream API calls (no stream "
        "delete or purge, no message get or delete), its inbox, and the client's lack of "
        "any user."
    )


def _value(value):
    """A nats-server configuration value: strings quoted, `$NAME` references bare."""
    if isinstance(value, str) and value.startswith("$") and value[1:].replace("_", "").isalnum():
        return value
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)


def _lines(key, value, indent):
    """`key: value`, with maps and lists of strings one entry per line (readable, and
    short enough for a YAML block)."""
    if isinstance(value, dict):
        out = [f"{indent}{key} {{"]
        for k, v in value.items():
            out += _lines(k, v, indent + "  ")
        return out + [f"{indent}}}"]
    if isinstance(value, list) and len(value) > 3:
        return [f"{indent}{key}: ["] + [f"{indent}  {_value(v)}" for v in value] + [f"{indent}]"]
    return [f"{indent}{key}: {_value(value)}"]


def users(mode, namespaced=False):
    out = [
        {"user": service, "password": f"${password_variable(service)}", "permissions": permissions(service, namespaced)}
        for service in USERS
    ]
    if mode == "local":
        out.append({"user": HARNESS, "password": f"${password_variable(HARNESS)}"})
    return out


def route_variables(replicas):
    """The environment variables holding each route's URL (with the route password, which
    a configuration string cannot interpolate; Kubernetes builds them with `$(VAR)`)."""
    return [f"NATS_ROUTE_{n}" for n in range(replicas)]


def route_url(n, password="$(NATS_ROUTE_PASSWORD)"):
    return f"nats://{ROUTE_USER}:{password}@nats-{n}.{HEADLESS}:{CLUSTER_PORT}"


def nats_config(mode, *, namespaced=False, port=None, replicas=3, local_cluster=None):
    """A nats-server configuration file.

    mode "cluster": Kubernetes, `replicas` JetStream nodes (server name from `$POD_NAME`,
    store in /data, routes from `$NATS_ROUTE_<n>`, route password `$NATS_ROUTE_PASSWORD`);
    "single": Kubernetes, one node, no cluster; "local": loopback, the port given here or
    on the command line (`-p`), JetStream and its store from the command line
    (`--jetstream --store_dir DIR`), plus the `harness` user. A local node of a loopback
    cluster (`faults/run --nats-cluster`) takes `local_cluster=(server_name, cluster_port,
    [peer cluster ports])`; its routes are unauthenticated (loopback only)."""
    if mode not in ("cluster", "single", "local"):
        raise ValueError(f"unknown mode {mode!r}")
    lines = [f"# Generated by infra/nats_auth.py ({mode}{', namespaced' if namespaced else ''}): edit its table."]
    if mode == "local":
        if port is not None:
            lines.append(f'listen: "127.0.0.1:{port}"')
        if local_cluster is not None:
            server_name, cluster_port, peers = local_cluster
            lines.append(f"server_name: {_value(server_name)}")
            lines += _lines(
                "cluster",
                {
                    "name": f"{CLUSTER_NAME}-local",
                    "listen": f"127.0.0.1:{cluster_port}",
                    "routes": [f"nats://127.0.0.1:{peer}" for peer in peers],
                },
                "",
            )
    else:
        lines += [
            "server_name: $POD_NAME",
            f'listen: "0.0.0.0:{CLIENT_PORT}"',
            f"http_port: {MONITOR_PORT}",
            'pid_file: "/var/run/nats/nats.pid"',
            # Lame duck on shutdown: clients move to another node before this one stops.
            'lame_duck_duration: "30s"',
            'lame_duck_grace_period: "10s"',
        ]
        lines += _lines("jetstream", {"store_dir": "/data"}, "")
    if mode == "cluster":
        lines += _lines(
            "cluster",
            {
                "name": CLUSTER_NAME,
                "listen": f"0.0.0.0:{CLUSTER_PORT}",
                "authorization": {"user": ROUTE_USER, "password": "$NATS_ROUTE_PASSWORD"},
                "routes": [f"${v}" for v in route_variables(replicas)],
            },
            "",
        )
    lines.append("authorization {")
    lines.append("  users: [")
    for user in users(mode, namespaced):
        lines += ["    {"] + [line for k, v in user.items() for line in _lines(k, v, "      ")] + ["    }"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def main(argv):
    def option(name):
        return argv[argv.index(name) + 1] if name in argv else None

    mode = argv[0] if argv else "local"
    if mode == "passwords":
        # Dev-only passwords for a local server, as shell exports (dev/lib.sh evaluates
        # them): fresh on every run, never written to disk by the scripts.
        import secrets

        for user in [*USERS, HARNESS]:
            print(f"export {password_variable(user)}=dev-{secrets.token_hex(16)}")
        return 0
    port = int(option("--port")) if option("--port") else None
    local_cluster = None
    if option("--cluster-port"):
        peers = [int(p) for p in (option("--routes") or "").split(",") if p]
        local_cluster = (option("--server-name") or f"n{port}", int(option("--cluster-port")), peers)
    sys.stdout.write(
        nats_config(mode, namespaced="--namespaced" in argv, port=port, local_cluster=local_cluster)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
