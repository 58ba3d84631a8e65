"""The PSD2 SCA advisor: the decision in process (p99 ≤ 50 µs) and over HTTP at 500 requests/s (p99 ≤ 10 ms).

`sca_decide_inprocess` times `gardien.psd2.rules.decide(request, policy, ruleset)` call by call
(time.perf_counter_ns around each call, after an untimed pass over the same requests) on a mixed
workload: the requests of benchmarks.workload.sca_request_pool (remote card and credit-transfer
payments from €1 to €1,000, contactless payments, unattended terminals, trusted beneficiaries,
recurring series, foreign currencies, the acquirer's TRA, account-information accesses, merchant-
initiated payments, beneficiary changes), converted by the API's own DecideIn.to_request with the
policy's fraud rates and random counters since the last SCA. Baseline, timed the same way on the
same requests: the "seed" approach, a five-row (max risk score, max amount) → SCA level table
scanned in order.

`sca_decide_http` sends `POST /api/v1/sca/decide` to a real `gardien serve` (deployed like figure 2:
migrate, create-org, a `service` key, one uvicorn process) in OPEN LOOP: a request is due every
1/500 s whatever the answers, and its latency runs from the time it was due (benchmarks.loadgen
--rate). The bodies come from the same pool, over 2,000 payers, with record=true: every decision is
stored, exempted payments add to the payer's counters, and each SCA-required decision appends an
audit event to the ledger. The policy holds fraud rates so that transaction risk analysis applies.
Baseline, in the same run on the same server: the same open-loop rate on `GET /healthz` (uvicorn,
the middlewares, a threadpool hop and `SELECT 1`), the floor under any endpoint of this stack.
"""

from __future__ import annotations

import http.client
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from benchmarks import http_append, workload
from benchmarks.common import (
    Baseline,
    Config,
    EngineEnv,
    Reporter,
    Target,
    gardien_command,
    guarded,
    log,
    percentile,
    rounded,
)

INPROCESS_TARGET = Target("<=", 50)
HTTP_TARGET = Target("<=", 10)
SEED_BASELINE = "seed: naive five-row (max risk score, max amount) → SCA level table scanned in order"
HEALTHZ_BASELINE = (
    "GET /healthz on the same server at the same open-loop rate "
    "(uvicorn, middlewares, threadpool hop, SELECT 1: the framework floor)"
)
# What the advisor replaces: a risk-score and amount table, first matching row wins.
SEED_TABLE: tuple[tuple[float, Decimal, str], ...] = (
    (10.0, Decimal(30), "none"),
    (25.0, Decimal(250), "otp_sms"),
    (50.0, Decimal(1_000), "biometric"),
    (75.0, Decimal(5_000), "push_notification"),
    (float("inf"), Decimal("Infinity"), "hardware_token"),
)
ZERO = Decimal(0)


def run(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    with guarded(reporter, "sca_decide_inprocess", env.engine):
        _inprocess(env.engine, cfg, reporter)
    with guarded(reporter, "sca_decide_http", env.engine):
        _http(env, cfg, reporter)


# --- in process --------------------------------------------------------------------------------


def seed_decide(request: Any, table: Sequence[tuple[float, Decimal, str]], _unused: object = None) -> str:
    """The seed approach: the first row whose score and amount limits the request is within."""
    payment = request.payment
    amount = payment.amount if payment is not None else ZERO
    score = request.risk_score if request.risk_score is not None else 0.0
    for max_score, max_amount, level in table:
        if score <= max_score and amount <= max_amount:
            return level
    return table[-1][2]


def _noop(_request: Any, _a: object, _b: object) -> None:
    return None


def _timed(fn: Callable[..., object], requests: Sequence[Any], a: object, b: object) -> list[int]:
    """Nanoseconds of each call fn(request, a, b), in order."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    for request in requests:
        t0 = clock()
        fn(request, a, b)
        append(clock() - t0)
    return samples


def _us(sorted_ns: Sequence[int], fraction: float) -> float:
    return rounded(percentile(sorted_ns, fraction) / 1000)


def build_requests(cfg: Config) -> tuple[list[str], list[Any], Any]:
    """(kinds, rules.ScaRequest list, rules.Policy) of the in-process figure."""
    from gardien.psd2 import rules
    from gardien.psd2.schemas import DecideIn, FraudRatesIn, PolicyIn

    document = PolicyIn(fraud_rates=FraudRatesIn.model_validate(workload.SCA_FRAUD_RATES))
    rates = document.fraud_rates.as_mapping()
    rng = random.Random(cfg.seed + 1)
    kinds: list[str] = []
    requests: list[Any] = []
    for kind, body in workload.sca_request_pool(cfg.sca_requests, seed=cfg.seed):
        # What the advisor would have loaded for this payer: payments since the last SCA.
        counters = rules.Counters(
            contactless_count=rng.randrange(0, 6),
            contactless_sum_eur=Decimal(rng.randrange(0, 15_001)) / 100,
            remote_count=rng.randrange(0, 6),
            remote_sum_eur=Decimal(rng.randrange(0, 10_001)) / 100,
        )
        kinds.append(kind)
        requests.append(DecideIn.model_validate(body).to_request(counters, rates, frozenset()))
    return kinds, requests, document.to_policy()


def _inprocess(engine: str, cfg: Config, reporter: Reporter) -> None:
    from gardien.psd2 import rules
    from gardien.psd2.thresholds import load_ruleset

    kinds, requests, policy = build_requests(cfg)
    ruleset = load_ruleset()
    log(f"{engine}: sca: timing {len(requests):,} in-process decisions and the seed table on the same requests")
    outcomes: Counter[str] = Counter()
    for request in requests:  # the warm-up pass, which also tells the outcome mix
        decision = rules.decide(request, policy, ruleset)
        recommended = decision.recommended
        outcomes[f"exempt_art{recommended.article}" if recommended is not None else decision.outcome.value] += 1
        seed_decide(request, SEED_TABLE)
    noop = sorted(_timed(_noop, requests, policy, ruleset))
    seed = sorted(_timed(seed_decide, requests, SEED_TABLE, None))
    samples = _timed(rules.decide, requests, policy, ruleset)
    by_kind: dict[str, list[int]] = {}
    for kind, ns in zip(kinds, samples, strict=True):
        by_kind.setdefault(kind, []).append(ns)
    ordered = sorted(samples)
    p99 = percentile(ordered, 0.99) / 1000
    log(
        f"{engine}: sca: decide p50 {_us(ordered, 0.5)} µs, p99 {rounded(p99)} µs; "
        f"seed table p50 {_us(seed, 0.5)} µs, p99 {_us(seed, 0.99)} µs"
    )
    reporter.emit(
        bench="sca_decide_inprocess",
        engine=engine,
        value=p99,
        unit="µs",
        target=INPROCESS_TARGET,
        baseline=Baseline(SEED_BASELINE + ", p99", percentile(seed, 0.99) / 1000, "µs"),
        n=len(ordered),
        p50_us=_us(ordered, 0.5),
        p90_us=_us(ordered, 0.9),
        p99_us=rounded(p99),
        p999_us=_us(ordered, 0.999),
        max_us=rounded(ordered[-1] / 1000),
        mean_us=rounded(sum(ordered) / len(ordered) / 1000),
        baseline_p50_us=_us(seed, 0.5),
        baseline_max_us=rounded(seed[-1] / 1000),
        timer_overhead_ns_p50=percentile(noop, 0.5),
        p99_us_by_kind={kind: _us(sorted(ns), 0.99) for kind, ns in sorted(by_kind.items())},
        kinds=dict(Counter(kinds).most_common()),
        outcomes=dict(outcomes.most_common()),
        sca_required_percent=rounded(100 * outcomes["sca_required"] / len(requests), 3),
        timed="rules.decide(request, policy, ruleset) alone, one call per perf_counter_ns pair, GC on",
        uses_database=False,
        **cfg.as_context(),
    )


# --- over HTTP ---------------------------------------------------------------------------------


def _call(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _prepare(port: int, admin_token: str, token: str, cfg: Config) -> None:
    """The policy's fraud rates (so that TRA applies), then one simulated decision as a check."""
    status, text = _call(port, "PUT", "/api/v1/sca/policy", admin_token, {"fraud_rates": workload.SCA_FRAUD_RATES})
    if status != 200:
        raise RuntimeError(f"PUT /api/v1/sca/policy answered {status}: {text[:500]!r}")
    _, body = workload.sca_request_pool(1, seed=cfg.seed)[0]
    status, text = _call(port, "POST", "/api/v1/sca/decide", token, {**body, "record": False})
    if status != 200:
        raise RuntimeError(f"POST /api/v1/sca/decide answered {status}: {text[:500]!r}")


def _http(env: EngineEnv, cfg: Config, reporter: Reporter) -> None:
    rate = cfg.sca_rate
    with env.database("sca-http") as scratch:
        child_env, token = http_append.deploy_gardien(scratch)
        admin_token = http_append.gardien_cli(
            ["admin", "create-key", "bench", "--role", "admin", "--name", "sca-policy"], child_env, scratch.directory
        ).split()[-1]
        with http_append.server(scratch, [*gardien_command(), "serve"], child_env, "gardien") as running:
            _prepare(running.port, admin_token, token, cfg)
            open_loop = ("--rate", str(rate))
            base = http_append.load(running, token, cfg, (*open_loop, "--workload", "healthz"), "healthz baseline")
            # One body per request of the run: every decision is a new payment.
            distinct = int(rate * (cfg.http_warmup + cfg.http_duration)) + 1
            sca = http_append.load(
                running,
                token,
                cfg,
                (*open_loop, "--workload", "sca", "--distinct", str(distinct), "--tally", "outcome"),
                "sca decide",
            )
    latency = sca["latency_ms"]
    tally: dict[str, int] = sca.get("tally", {})
    answered = sum(tally.values())
    context: dict[str, Any] = {
        "rate": rate,
        "achieved_rate": sca["throughput"],
        # Answers fall behind the schedule: latency then grows with the length of the run.
        "saturated": sca["throughput"] < 0.98 * rate,
        "sent_rate": sca["sent_rate"],
        "latency_ms": latency,
        "statuses": sca["statuses"],
        "unanswered": sca["unanswered"],
        "errors": sca["errors"][:5],
        "outcomes": tally,
        "sca_required_percent": rounded(100 * tally.get("sca_required", 0) / answered, 3) if answered else None,
        "send_lag_ms": sca["send_lag_ms"],
        "server_cpu_percent": sca["server_cpu_percent"],
        "client_cpu_percent": sca["client_cpu_percent"],
        "baseline_achieved_rate": base["throughput"],
        "baseline_latency_ms": base["latency_ms"],
        "baseline_statuses": base["statuses"],
        "baseline_server_cpu_percent": base["server_cpu_percent"],
        "baseline_send_lag_ms": base["send_lag_ms"],
        "payers": workload.SCA_PAYERS,
        "connections": cfg.http_concurrency,
        "warmup_seconds": cfg.http_warmup,
        "window_seconds": sca["window_seconds"],
        "server": "gardien serve (uvicorn, 1 process)",
        "client": f"raw asyncio HTTP/1.1 keep-alive ({sca['event_loop']}), open loop, separate process",
        "endpoint": "POST /api/v1/sca/decide, record=true",
        **cfg.as_context(),
    }
    failed = [
        f"{name}: {', '.join(problems)}"
        for name, result in (("sca", sca), ("baseline", base))
        if (problems := _problems(result))
    ]
    if failed or latency["p99"] is None or base["latency_ms"]["p99"] is None:
        reporter.error(
            bench="sca_decide_http",
            engine=env.engine,
            error="; ".join(failed) or "no request was answered in the window",
            **context,
        )
        return
    reporter.emit(
        bench="sca_decide_http",
        engine=env.engine,
        value=latency["p99"],
        unit="ms",
        target=HTTP_TARGET,
        baseline=Baseline(HEALTHZ_BASELINE + ", p99", base["latency_ms"]["p99"], "ms"),
        n=latency["samples"],
        **context,
    )


def _problems(result: dict[str, Any]) -> list[str]:
    """Why an open-loop run does not count: answers other than 200, errors, requests never answered."""
    problems = []
    others = {status: n for status, n in result["statuses"].items() if status != "200"}
    if others:
        problems.append(f"answers other than 200 {others}")
    if result["unanswered"]:
        problems.append(f"{result['unanswered']} requests due in the window were not answered")
    if result["errors"]:
        problems.append(f"client errors {result['errors'][:3]}")
    return problems
