"""Prometheus metrics for one asyncws instance (optional: ``pip install 'asyncws[metrics]'``).

    from asyncws.metrics import metrics_route
    app.router.routes.append(metrics_route(ws.manager))     # GET /metrics

or ``app.include_router(asyncws.ops.ops_router(ws.manager))`` for ``/metrics`` and ``/health``
together, or mount `metrics_app` anywhere.

Everything is read at scrape time from what the manager keeps anyway: its `stats` counters,
``frames_in``/``frames_out``, the latency histogram, the connection table, the topic index and
the broker's ``state``/``reconnects``. Nothing is instrumented per message beyond the integer
increments the manager already does, and ``prometheus_client`` is imported only when metrics
are used, so asyncws works without it. docs/operations.md lists every metric and its labels.

A scrape reads the manager's tables, so it must run on the manager's event loop: the
endpoints here are ``async`` for that reason. Registering `AsyncWSCollector` in a registry
that is served from another thread (``prometheus_client.start_http_server``) works too (each
table is copied with a bounded retry), but the numbers of one scrape may then be a few
microseconds apart.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .brokers import BrokerState
from .connection import Connection, ConnectionState
from .manager import LATENCY_BUCKETS, WebSocketManager

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "METRIC_NAMES",
    "AsyncWSCollector",
    "metrics_app",
    "metrics_endpoint",
    "metrics_route",
    "new_registry",
    "render",
]

#: Every metric `AsyncWSCollector` exposes (counters without their ``_total`` suffix).
METRIC_NAMES: tuple[str, ...] = (
    "asyncws_instance_info",
    "asyncws_accepting",
    "asyncws_connections",
    "asyncws_users",
    "asyncws_subscription_patterns",
    "asyncws_topic_index_nodes",
    "asyncws_outgoing_queued_messages",
    "asyncws_outgoing_queue_max_messages",
    "asyncws_frames_received",
    "asyncws_frames_sent",
    "asyncws_published",
    "asyncws_publish_errors",
    "asyncws_broker_messages",
    "asyncws_broker_duplicates",
    "asyncws_broker_malformed",
    "asyncws_deliveries",
    "asyncws_slow_consumer_drops",
    "asyncws_slow_consumer_closes",
    "asyncws_broker_up",
    "asyncws_broker_state",
    "asyncws_broker_reconnects",
    "asyncws_delivery_latency_seconds",
)

_INSTALL_HINT = "Prometheus metrics need prometheus_client: pip install 'asyncws[metrics]'"


def _require() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc


def _copy(values: Callable[[], Any]) -> tuple[Any, ...]:
    """A snapshot of a live table (bounded retry if another thread changes it meanwhile)."""
    for _ in range(5):
        try:
            return tuple(values())
        except RuntimeError:  # "changed size during iteration": only off the event loop
            continue
    return ()


class AsyncWSCollector:
    """A Prometheus collector reading one `WebSocketManager` at scrape time.

    Register it in a ``CollectorRegistry`` (`new_registry` does it); the metrics it yields are
    listed in `METRIC_NAMES` and described in docs/operations.md.
    """

    def __init__(self, manager: WebSocketManager) -> None:
        self.manager = manager

    def describe(self) -> list[Metric]:
        """No description ahead of time: the label values exist only at scrape time."""
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
            InfoMetricFamily,
        )

        m = self.manager
        stats = dict(_copy(m.stats.items))
        broker = m.broker
        conns: tuple[Connection, ...] = _copy(m.connections.values)

        yield InfoMetricFamily(
            "asyncws_instance",
            "This instance: its id in broker headers, process id, channel namespace, broker.",
            value={
                "instance": m.instance_id,
                "pid": str(os.getpid()),
                "channel": m.broker_channel,
                "broker": type(broker).__name__,
            },
        )
        yield GaugeMetricFamily(
            "asyncws_accepting",
            "1 while the instance accepts new connections, 0 once shutdown has begun.",
            value=1.0 if m.accepting and m.started else 0.0,
        )

        # -- connections, subscriptions, queues ---------------------------------------------
        by_state = dict.fromkeys(ConnectionState, 0)
        queued = 0
        queue_max = 0
        for conn in conns:
            by_state[conn.state] += 1
            size = conn.queued
            queued += size
            if size > queue_max:
                queue_max = size
        connections = GaugeMetricFamily(
            "asyncws_connections", "Connections of this instance, by state.", labels=["state"]
        )
        for conn_state, count in by_state.items():
            connections.add_metric([conn_state.value], count)
        yield connections
        yield GaugeMetricFamily(
            "asyncws_users",
            "Distinct user ids with at least one connection on this instance.",
            value=len(m.users),
        )
        yield GaugeMetricFamily(
            "asyncws_subscription_patterns",
            "Distinct topic patterns subscribed on this instance (one broker subscription each).",
            value=len(m.index),
        )
        yield GaugeMetricFamily(
            "asyncws_topic_index_nodes",
            "Nodes of the topic index (returns to its baseline when subscriptions go away).",
            value=m.index.node_count(),
        )
        yield GaugeMetricFamily(
            "asyncws_outgoing_queued_messages",
            "Messages waiting in the outgoing queues of all connections.",
            value=queued,
        )
        yield GaugeMetricFamily(
            "asyncws_outgoing_queue_max_messages",
            "The longest outgoing queue of one connection (max_queue is the limit).",
            value=queue_max,
        )

        # -- frames ---------------------------------------------------------------------------
        received = CounterMetricFamily(
            "asyncws_frames_received",
            "Client frames handled, by type ('invalid': not understood or failed validation).",
            labels=["type"],
        )
        for kind, count in sorted(_copy(m.frames_in.items)):
            received.add_metric([kind], count)
        yield received
        sent = CounterMetricFamily(
            "asyncws_frames_sent",
            "Frames queued for one connection by the server itself (ack, reply, error, "
            "set_conn_id, other), by type; broker deliveries are asyncws_deliveries_total.",
            labels=["type"],
        )
        for kind, count in sorted(_copy(m.frames_out.items)):
            sent.add_metric([kind], count)
        yield sent

        # -- publish / deliver ----------------------------------------------------------------
        for name, key, doc in (
            ("asyncws_published", "published", "Messages this instance published to the broker."),
            (
                "asyncws_publish_errors",
                "publish_errors",
                "Publishes the broker refused or could not take (each one lost, reported to "
                "the caller as broker_unavailable).",
            ),
            (
                "asyncws_broker_messages",
                "broker_messages",
                "Messages received from the broker (including duplicates and malformed ones).",
            ),
            (
                "asyncws_broker_duplicates",
                "broker_duplicates",
                "Broker messages dropped as a second copy of the same publish.",
            ),
            (
                "asyncws_broker_malformed",
                "broker_malformed",
                "Broker messages skipped: no asyncws header, or undecodable.",
            ),
            (
                "asyncws_deliveries",
                "deliveries",
                "Messages queued to local connections (one per recipient).",
            ),
            (
                "asyncws_slow_consumer_drops",
                "slow_consumer_drops",
                "Messages dropped from a full outgoing queue (slow_consumer='drop_oldest').",
            ),
            (
                "asyncws_slow_consumer_closes",
                "slow_consumer_closes",
                "Connections closed with 1013 because their outgoing queue was full.",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=stats.get(key, 0))

        # -- broker ---------------------------------------------------------------------------
        state = broker.state
        yield GaugeMetricFamily(
            "asyncws_broker_up",
            "1 when the broker is connected, else 0.",
            value=1.0 if state is BrokerState.CONNECTED else 0.0,
        )
        states = GaugeMetricFamily(
            "asyncws_broker_state", "The broker's state (1 for the current one).", labels=["state"]
        )
        for each in BrokerState:
            states.add_metric([each.value], 1.0 if each is state else 0.0)
        yield states
        yield CounterMetricFamily(
            "asyncws_broker_reconnects",
            "Times the broker connection was lost and restored (subscriptions replayed).",
            value=int(getattr(broker, "reconnects", 0)),
        )
        topology = getattr(broker, "topology", None)
        if callable(topology):  # Redis Cluster: per node, and the partitions waiting for one
            yield from _topology_metrics(topology())

        counts = list(m.latency_counts)
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, counts, strict=False):
            running += count
            buckets.append((_bound(bound), running))
        running += counts[-1]
        buckets.append(("+Inf", running))
        yield HistogramMetricFamily(
            "asyncws_delivery_latency_seconds",
            "Time from publish (on any instance) to dispatch on this one, per broker message; "
            "across hosts it includes their clock difference.",
            buckets=buckets,
            sum_value=m.latency_sum,
        )


def _topology_metrics(topology: dict[str, Any]) -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    nodes: dict[str, dict[str, Any]] = topology.get("nodes", {})
    up = GaugeMetricFamily(
        "asyncws_broker_node_up",
        "0 while channels of this instance on that node wait for a connection to it, else 1.",
        labels=["node"],
    )
    parts = GaugeMetricFamily(
        "asyncws_broker_node_partitions", "Channel partitions served by this node.", labels=["node"]
    )
    channels = GaugeMetricFamily(
        "asyncws_broker_node_channels", "Channels subscribed on this node.", labels=["node"]
    )
    messages = CounterMetricFamily(
        "asyncws_broker_node_messages",
        "Messages received from this node (since its connection opened).",
        labels=["node"],
    )
    for name, node in nodes.items():
        up.add_metric([name], 1.0 if node.get("up") else 0.0)
        parts.add_metric([name], float(node.get("partitions", 0)))
        channels.add_metric([name], float(node.get("channels", 0)))
        messages.add_metric([name], float(node.get("messages", 0)))
    yield from (up, parts, channels, messages)
    yield GaugeMetricFamily(
        "asyncws_broker_pending_partitions",
        "Partitions with subscriptions waiting for a reachable primary (failover, slot move).",
        value=float(len(topology.get("pending_partitions", ()))),
    )
    yield CounterMetricFamily(
        "asyncws_broker_node_losses",
        "Node connections lost (a node died, froze or dropped us).",
        value=float(topology.get("node_losses", 0)),
    )


def _bound(value: float) -> str:
    return repr(float(value))


def new_registry(manager: WebSocketManager, *, process: bool = True) -> CollectorRegistry:
    """A new ``CollectorRegistry`` with an `AsyncWSCollector` for ``manager`` and, with
    ``process`` (the default), the process, platform and GC collectors of prometheus_client
    (``process_resident_memory_bytes``, ``python_gc_*``, ...)."""
    _require()
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
    from prometheus_client.registry import Collector, CollectorRegistry

    registry = CollectorRegistry()
    collector: Collector = AsyncWSCollector(manager)
    registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition of ``registry`` for an ``Accept`` header: (body, content type)."""
    _require()
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_endpoint(
    manager: WebSocketManager, registry: CollectorRegistry | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """An ``async`` Starlette/FastAPI endpoint serving the metrics of ``manager``.

    ``registry`` defaults to `new_registry` (``manager`` plus process metrics). Pass your own
    (with an `AsyncWSCollector` registered in it) to expose your metrics on the same page.
    """
    reg = registry if registry is not None else new_registry(manager)

    async def metrics(request: Request) -> Response:
        body, content_type = render(reg, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return metrics


def metrics_route(
    manager: WebSocketManager,
    path: str = "/metrics",
    registry: CollectorRegistry | None = None,
) -> Route:
    """A route for ``path`` (GET and HEAD): ``app.router.routes.append(metrics_route(m))``."""
    return Route(
        path,
        metrics_endpoint(manager, registry),
        methods=["GET"],
        name="asyncws-metrics",
        include_in_schema=False,
    )


def metrics_app(manager: WebSocketManager, registry: CollectorRegistry | None = None) -> ASGIApp:
    """An ASGI app answering every HTTP GET with the metrics (to ``app.mount`` somewhere)."""
    endpoint = metrics_endpoint(manager, registry)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - lifespan/websocket are not served
            return
        if scope["method"] not in ("GET", "HEAD"):
            response = Response("method not allowed", status_code=405, headers={"Allow": "GET"})
        else:
            response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return asgi
