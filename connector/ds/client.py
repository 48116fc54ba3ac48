"""The DS GraphQL client: one aiohttp session, every request validated, budgeted, classified.

- Every document is validated against the vendored schema before it is first sent: once per
  operation and process, and, with ``verdicts``, once per document text across runs
  (``connector.ds.verdicts``).
- Explicit connect and read timeouts; redirects are refused (a 3xx is a configuration error).
- Each HTTP request waits for the shared ``RequestBudget``; a 429 holds the budget until DS's
  ``RateLimit-Reset``.
- Reads are retried (``connector.ds.retry``); mutations never are, and their failures say whether
  the mutation certainly did not run (``MutationNotSent``) or may have (``MutationOutcomeUnknown``).
- Status codes and headers are read per request through aiohttp tracing (``_Exchange``), so
  concurrent requests never see each other's answers. The token is only in the session headers:
  never in a log line, an exception message or ``request_info``.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportError, TransportQueryError
from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    NonNullTypeNode,
    OperationDefinitionNode,
    ValueNode,
    print_ast,
    validate,
    value_from_ast_untyped,
)
from tenacity import RetryCallState

from connector import __version__, schema
from connector.ds import operations
from connector.ds.budget import RequestBudget
from connector.ds.retry import UNREACHABLE_SECONDS, rate_limit_delay, read_retrying
from connector.ds.verdicts import Verdicts
from connector.errors import (
    ApiError,
    ApiUnavailable,
    BadToken,
    ConnectorError,
    DemarcheNotFound,
    DemarcheUnauthorized,
    DsUnreachable,
    InvalidQuery,
    MutationNotSent,
    MutationOutcomeUnknown,
    PageFailed,
    RateLimited,
    RedirectRefused,
    Stopped,
    TokenExpired,
)
from connector.logs import get_logger

if TYPE_CHECKING:
    from connector.credentials import ApiToken

log = get_logger(__name__)

# GraphQL codes meaning "DS could not serve this request": the page fails, nothing is committed.
PAGE_FAILURE_CODES = frozenset({"timeout", "invalid_null", "internal_server_error"})


@dataclass(frozen=True)
class Result:
    """A GraphQL answer. ``errors`` that did not raise are kept beside the (possibly partial) data."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def error_codes(self) -> list[str]:
        return _codes(self.errors)


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    budget_wait_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    bytes_received: int = 0
    server_date: datetime | None = None  # DS's clock: the Date header of its latest answer


@dataclass
class _Exchange:
    """What aiohttp tracing saw of one HTTP request."""

    sent: bool = False  # request headers written: from here on, DS may act on the request
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Operation:
    stem: str  # file stem in queries/
    name: str  # GraphQL operation name
    kind: str  # "query" or "mutation"
    document: DocumentNode
    demarche_number: ValueNode | None  # the `number:` argument of a root `demarche` field
    text: str  # the document as sent, printed once
    variables: frozenset[str] = frozenset()  # the variables the operation declares
    required: frozenset[str] = frozenset()  # declared non-null without a default

    def check(self, variables: dict[str, Any]) -> None:
        """Variables the operation does not declare, or required ones missing, are a bug of the
        caller: a misspelt ``updatedSince`` would otherwise be dropped and the filter lost."""
        unknown = sorted(set(variables) - self.variables)
        missing = sorted(n for n in self.required if variables.get(n) is None)
        if unknown or missing:
            problems = [f"unknown variable ${n} (declared: {', '.join('$' + v for v in sorted(self.variables))})"
                        for n in unknown] + [f"required variable ${n} missing" for n in missing]
            raise InvalidQuery(f"queries/{self.stem}.graphql ({self.name}) cannot be sent with these variables",
                               problems)

    def demarche(self, variables: dict[str, Any]) -> Any:
        if self.demarche_number is None:
            return None
        return value_from_ast_untyped(self.demarche_number, variables)

    def context(self, variables: dict[str, Any]) -> str:
        number = self.demarche(variables)
        return self.name if number is None else f"{self.name} on démarche {number}"


class _PrintedRequest(GraphQLRequest):
    """A request whose query text was printed once per operation (gql prints it at every call)."""

    def __init__(self, op: _Operation, variables: dict[str, Any]):
        super().__init__(op.document, variable_values=variables, operation_name=op.name)
        self._text = op.text

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": self._text, "operationName": self.operation_name}
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


class DsClient:
    def __init__(
        self,
        url: str,
        token: ApiToken,
        *,
        budget: RequestBudget | None = None,
        connect_timeout: float = 10,
        read_timeout: float = 65,
        max_retry_seconds: float = 300,
        unreachable_seconds: float = UNREACHABLE_SECONDS,
        user_agent: str = f"ds-connector/{__version__}",
        verdicts: Path | None = None,
    ):
        """``verdicts``: where the documents already validated are remembered across runs
        (``connector.ds.verdicts``; None: every document is validated). ``unreachable_seconds``:
        how long a read is retried when DS cannot be reached at all (refused, DNS, TLS); timeouts,
        429 and 5xx are retried up to ``max_retry_seconds``."""
        self.url = url
        self.unreachable_seconds = unreachable_seconds
        self.verdicts = Verdicts(verdicts)
        self.budget = budget or RequestBudget()
        self.max_retry_seconds = max_retry_seconds
        self.stats = ClientStats()
        self._operations: dict[str, _Operation] = {}
        self._session: AsyncClientSession | None = None
        self.token_source = token.source  # named when DS refuses the token; the token itself never
        transport = AIOHTTPTransport(
            url,
            json_deserialize=_loads,
            headers={"Authorization": f"Bearer {token.reveal()}", "User-Agent": user_agent},
            client_session_args={
                "timeout": aiohttp.ClientTimeout(
                    total=None, sock_connect=connect_timeout, sock_read=read_timeout
                ),
                "trace_configs": [self._tracing()],
            },
        )
        # No `schema=` here: gql would validate every request again (15-50 ms each); `_load`
        # validates each operation once against the vendored schema before its first use.
        self._gql = Client(transport=transport, execute_timeout=connect_timeout + read_timeout)

    async def __aenter__(self) -> DsClient:
        self._session = await self._gql.connect_async(reconnecting=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._gql.close_async()
        self._session = None

    async def query(self, operation: str, variables: dict, *, retry: bool = True,
                    go_on: Callable[[], bool] | None = None) -> Result:
        """Run a read; retried on transient failures unless ``retry=False``. ``go_on`` is asked
        right before each attempt goes out (after the wait for the budget or a retry): false, the
        read is not sent and ``Stopped`` is raised.

        Raises AuthError subclasses, RedirectRefused, PageFailed (5xx, GraphQL ``timeout`` once
        retries are spent, ``invalid_null``), RateLimited, ApiUnavailable (DsUnreachable after
        ``unreachable_seconds`` when no connection could be made at all), ApiError, InvalidQuery.
        """
        op = self._operation(operation, "query")
        op.check(variables)
        if not retry:
            return await self._read(op, variables, go_on)
        return await read_retrying(self.max_retry_seconds, self._before_sleep(op), self.unreachable_seconds)(
            self._read, op, variables, go_on
        )

    async def mutate(self, operation: str, variables: dict) -> Result:
        """Send a mutation exactly once. Payload ``errors`` come back as data.

        Raises MutationNotSent (certainly not run; ``delay`` after a 429), MutationOutcomeUnknown
        (may have run: read back before any resend), AuthError subclasses and RedirectRefused (not
        run), ApiError (other 4xx: rejected), InvalidQuery (nothing sent).
        """
        op = self._operation(operation, "mutation")
        op.check(variables)
        exchange, outcome = await self._send(op, variables)
        error = self._http_failure(op, variables, exchange, outcome)
        if isinstance(error, RateLimited):
            error = MutationNotSent(
                f"{op.name} not sent: DS rate limit reached, retry in {error.delay:.0f} s",
                delay=error.delay,
            )
        elif error is None:
            error = self._write_failure(op, exchange, outcome)
        if error is not None:
            self._log_failure(op, exchange, outcome, error)
            raise error from None
        assert isinstance(outcome, ExecutionResult)
        return Result(outcome.data, list(outcome.errors or []))

    # -- one HTTP request --------------------------------------------------------------------

    def _operation(self, stem: str, kind: str) -> _Operation:
        op = self._operations.get(stem) or self._load(stem)
        if op.kind != kind:
            raise InvalidQuery(f"queries/{stem}.graphql is a {op.kind}, not a {kind}")
        return op

    def _load(self, stem: str) -> _Operation:
        try:
            document = operations.document(stem)
        except (KeyError, GraphQLError) as e:
            raise InvalidQuery(f"cannot load queries/{stem}.graphql: {e}") from None
        text = print_ast(document)
        if not self.verdicts.known(text):  # validated by an earlier run: the schema is not even built
            problems = validate(schema.schema(), document)
            if problems:
                raise InvalidQuery(
                    f"queries/{stem}.graphql does not validate against the DS schema",
                    [p.message for p in problems],
                )
            self.verdicts.remember(text)
        (definition,) = (d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        demarche_number = next(
            (
                arg.value
                for sel in definition.selection_set.selections
                if isinstance(sel, FieldNode) and sel.name.value == "demarche"
                for arg in sel.arguments
                if arg.name.value == "number"
            ),
            None,
        )
        op = _Operation(
            stem=stem,
            name=definition.name.value if definition.name else stem,
            kind=definition.operation.value,
            document=document,
            demarche_number=demarche_number,
            text=text,
            variables=frozenset(v.variable.name.value for v in definition.variable_definitions or ()),
            required=frozenset(
                v.variable.name.value for v in definition.variable_definitions or ()
                if isinstance(v.type, NonNullTypeNode) and v.default_value is None
            ),
        )
        self._operations[stem] = op
        return op

    async def _send(
        self, op: _Operation, variables: dict, go_on: Callable[[], bool] | None = None
    ) -> tuple[_Exchange, ExecutionResult | Exception]:
        if self._session is None:
            raise RuntimeError("DsClient is not open: use `async with DsClient(...) as client`")
        self.stats.budget_wait_seconds += await self.budget.acquire()
        if go_on is not None and not go_on():
            raise Stopped()  # its turn came after the stop: not sent
        self.stats.requests += 1
        log.debug("api.request", operation=op.name, variables=_loggable(op, variables))
        exchange = _Exchange()
        request = _PrintedRequest(op, variables)
        try:
            result = await self._session.execute(
                request,
                get_execution_result=True,
                extra_args={"allow_redirects": False, "trace_request_ctx": exchange},
            )
        except TransportQueryError as e:  # a GraphQL answer with errors, whatever the status
            return exchange, ExecutionResult(data=e.data, errors=e.errors)
        except (TransportError, TimeoutError) as e:
            return exchange, e
        return exchange, result

    def _tracing(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def headers_sent(_session: Any, ctx: Any, _params: Any) -> None:
            ctx.trace_request_ctx.sent = True

        async def request_end(_session: Any, ctx: Any, params: Any) -> None:
            ctx.trace_request_ctx.status = params.response.status
            ctx.trace_request_ctx.headers = params.response.headers
            if (date_header := params.response.headers.get("Date")) is not None:
                try:
                    self.stats.server_date = parsedate_to_datetime(date_header)
                except (TypeError, ValueError):
                    pass

        async def chunk_received(_session: Any, _ctx: Any, params: Any) -> None:
            self.stats.bytes_received += len(params.chunk)

        trace.on_request_headers_sent.append(headers_sent)
        trace.on_request_end.append(request_end)
        trace.on_response_chunk_received.append(chunk_received)
        return trace

    # -- classification ----------------------------------------------------------------------

    async def _read(self, op: _Operation, variables: dict, go_on: Callable[[], bool] | None = None) -> Result:
        exchange, outcome = await self._send(op, variables, go_on)
        error = self._http_failure(op, variables, exchange, outcome) or self._read_failure(
            op, variables, exchange, outcome
        )
        if error is not None:
            self._log_failure(op, exchange, outcome, error)
            raise error from None
        assert isinstance(outcome, ExecutionResult)
        return Result(outcome.data, list(outcome.errors or []))

    def _http_failure(
        self,
        op: _Operation,
        variables: dict,
        exchange: _Exchange,
        outcome: ExecutionResult | Exception,
    ) -> ConnectorError | None:
        """Answers that mean the same for reads and writes: redirects, auth refusals, 429."""
        status, where = exchange.status or 0, op.context(variables)
        if 300 <= status < 400:
            return RedirectRefused(
                f"{self.url} answered HTTP {status} redirecting to "
                f"{exchange.headers.get('Location', '(no Location)')}: configure the final URL "
                "(a redirected POST becomes an unrouted GET)"
            )
        if status == 401:
            return TokenExpired(
                f"the DS API token has expired (HTTP 401, {where}; token read from {self.token_source}): "
                "create a new one in DS"
            )
        if status == 403:
            message = _first_message(outcome)
            if "forbidden network" in message:
                return BadToken(f"DS refused this machine's network ({where}): {message}")
            return BadToken(
                f"DS refused the API token (HTTP 403, {where}; token read from {self.token_source}): "
                "it is missing, malformed, unknown or revoked"
            )
        if status == 429:
            delay = rate_limit_delay(exchange.headers)
            self.budget.hold(delay)
            self.stats.rate_limited += 1
            return RateLimited(f"DS rate limit reached ({where}), waiting {delay:.1f} s", delay)
        return None

    def _read_failure(
        self,
        op: _Operation,
        variables: dict,
        exchange: _Exchange,
        outcome: ExecutionResult | Exception,
    ) -> ConnectorError | None:
        status, where = exchange.status or 0, op.context(variables)
        if isinstance(outcome, Exception) and status < 400:
            if (why := _no_connection(outcome)) is not None:
                return DsUnreachable(f"DS did not answer at {self.url}: {why}")
            return ApiUnavailable(f"no usable answer from DS ({where}): {_reason(outcome)}")
        errors = list(outcome.errors or []) if isinstance(outcome, ExecutionResult) else []
        data = outcome.data if isinstance(outcome, ExecutionResult) else None
        codes = _codes(errors)
        if status >= 500:
            exception_id = _exception_id(errors)
            suffix = f", exception_id {exception_id}" if exception_id else ""
            return PageFailed(
                f"DS failed on {where} (HTTP {status}{suffix})",
                codes=codes, errors=errors, data=data, status=status, exception_id=exception_id,
            )
        if status >= 400:
            return ApiError(f"DS rejected {where} (HTTP {status}): {_first_message(outcome)}")
        for error in errors:
            if (error.get("path") or [None])[0] != "demarche":
                continue
            code, number = _code(error), op.demarche(variables)
            if code == "unauthorized":
                return DemarcheUnauthorized(
                    f"the DS API token does not give access to démarche {number}"
                )
            if code == "not_found":
                return DemarcheNotFound(f"démarche {number} does not exist on DS")
        if PAGE_FAILURE_CODES.intersection(codes):
            return PageFailed(
                f"DS could not serve {where}: {_first_message(outcome)}",
                codes=codes, errors=errors, data=data, status=status,
            )
        return None

    def _write_failure(
        self, op: _Operation, exchange: _Exchange, outcome: ExecutionResult | Exception
    ) -> ConnectorError | None:
        status = exchange.status or 0
        if isinstance(outcome, Exception) and status < 400:
            if exchange.sent:
                return MutationOutcomeUnknown(
                    f"{op.name} may or may not have run: {_reason(outcome)}"
                )
            return MutationNotSent(f"{op.name} not sent: {_reason(outcome)}")
        errors = list(outcome.errors or []) if isinstance(outcome, ExecutionResult) else []
        if status >= 500 or PAGE_FAILURE_CODES.intersection(_codes(errors)):
            return MutationOutcomeUnknown(
                f"{op.name} may or may not have run: DS answered HTTP {status} "
                f"{_first_message(outcome)}".rstrip()
            )
        if status >= 400:
            return ApiError(f"DS rejected {op.name} (HTTP {status}): {_first_message(outcome)}")
        return None

    def _log_failure(
        self,
        op: _Operation,
        exchange: _Exchange,
        outcome: ExecutionResult | Exception,
        error: ConnectorError,
    ) -> None:
        if isinstance(error, RateLimited) or (isinstance(error, MutationNotSent) and error.delay):
            log.warning(
                "api.rate_limited",
                operation=op.name,
                delay=round(error.delay or 0, 2),
                rate_limit_reset=exchange.headers.get("RateLimit-Reset"),
            )
            return
        errors = list(outcome.errors or []) if isinstance(outcome, ExecutionResult) else []
        if isinstance(error, DsUnreachable):  # retried a few seconds, then said once by the caller
            log.info("api.unreachable", operation=op.name, error=error.message)
            return
        log.warning(
            "api.error",
            operation=op.name,
            error_class=type(error).__name__,
            status=exchange.status,
            codes=_codes(errors),
            exception_id=_exception_id(errors),
            error=error.message,
        )

    def _before_sleep(self, op: _Operation) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.stats.retries += 1
            if isinstance(exc, RateLimited):
                self.stats.rate_limit_wait_seconds += state.upcoming_sleep
            log.info(
                "api.retry",
                operation=op.name,
                attempt=state.attempt_number,
                reason=type(exc).__name__,
                wait=round(state.upcoming_sleep, 2),
            )

        return before_sleep


def _loads(text: str) -> Any:
    """Answers decoded by orjson (pages of 100 dossiers are megabytes: about 3× faster than the
    stdlib); the stdlib takes what orjson refuses (lone surrogate escapes) and judges the rest."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _code(error: dict[str, Any]) -> str | None:
    return (error.get("extensions") or {}).get("code")


def _codes(errors: list[dict[str, Any]]) -> list[str]:
    return [code for error in errors if (code := _code(error))]


def _exception_id(errors: list[dict[str, Any]]) -> str | None:
    return next(
        (e["extensions"]["exception_id"] for e in errors if "exception_id" in (e.get("extensions") or {})),
        None,
    )


def _first_message(outcome: ExecutionResult | Exception) -> str:
    if isinstance(outcome, ExecutionResult) and outcome.errors:
        return str(outcome.errors[0].get("message", ""))
    return ""


def _reason(exc: BaseException) -> str:
    """The innermost cause, e.g. ``ClientPayloadError: Response payload is not completed``.

    Exception texts from aiohttp and gql carry the URL and status, never the request headers.
    """
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _no_connection(exc: BaseException) -> str | None:
    """Why no connection could be made at all (refused, a name that does not resolve, TLS), or None
    for anything else (a timeout, a cut answer: those are worth the long retry)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ssl.SSLError, aiohttp.ClientSSLError)):
            detail = getattr(current, "reason", None) or getattr(current, "strerror", None) or str(current)
            return (f"TLS failed ({detail}); is [ds] url right, and this machine's CA certificates "
                    "(ca-certificates) current?")
        if isinstance(current, (socket.gaierror, aiohttp.ClientConnectorDNSError)):
            host = getattr(current, "host", None)
            name = f"the name {host}" if host else "the host name"
            return f"{name} does not resolve; is [ds] url right, and DNS reachable from this machine?"
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and "[Errno 111]" in str(current)  # every address refused
        ):
            return "connection refused; is [ds] url right?"
        current = current.__cause__ or current.__context__
    return None


def _loggable(op: _Operation, variables: dict[str, Any]) -> dict[str, Any]:
    """Variables for the debug log, without message bodies (usager-facing free text)."""
    payload = variables.get("input")
    if op.kind != "mutation" or not isinstance(payload, dict) or "body" not in payload:
        return variables
    return {**variables, "input": {**payload, "body": f"<{len(str(payload['body']))} chars>"}}
