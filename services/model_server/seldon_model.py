"""The class `seldon-core-microservice` runs: ``ctloop.services.model_server.seldon_model.SeldonModel``.

    seldon-core-microservice ctloop.services.model_server.seldon_model.SeldonModel --service-type MODEL

Parameters (PREDICTIVE_UNIT_PARAMETERS): ``model_uri`` (default /mnt/models, where Seldon's storage initializer
copies the model folder; a path, file:// or s3:// URI locally), ``model_version`` (the registry version, shown in
every response; default: a content hash of the booster), ``explain`` (feature contributions in every response).
Bad requests answer HTTP 400 naming the field or feature; what is not ctloop's error stays a 500 for the wrapper
to log.

The wrapper also serves Seldon's gRPC API (``seldon.protos.Model/Predict`` and ``SendFeedback``, on
PREDICTIVE_UNIT_GRPC_SERVICE_PORT, 5000 by default), which Seldon's executor calls for a SeldonDeployment with
``transport: grpc``. The same messages as protos get the same scores and decisions; a bad request is gRPC's
INVALID_ARGUMENT with the same words, and so are bytes that are no message of the method's type.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import Counter

import flask
import grpc
import numpy as np
import seldon_core.microservice
import seldon_core.wrapper
from flask.json.provider import DefaultJSONProvider
from google.protobuf import json_format
from seldon_core.flask_utils import SeldonMicroserviceException
from seldon_core.proto import prediction_pb2_grpc
from seldon_core.proto.prediction_pb2 import SeldonMessage
from werkzeug.datastructures import ImmutableDict
from werkzeug.exceptions import RequestEntityTooLarge

from ctloop.contracts import seldon_message
from ctloop.contracts.seldon_message import DECISION, MAX_BYTES, MODEL_VERSION_TAG, POLICY_VERSION_TAG, SCORE
from ctloop.errors import CtloopError
from ctloop.services.model_server.scoring import ScoringModel, as_json
from ctloop.services.model_server.seldon_metrics import BufferedSeldonMetrics

log = logging.getLogger(__name__)
SCORE_BUCKETS = [i / 10 for i in range(1, 11)]


class _JSONProvider(DefaultJSONProvider):
    """Seldon's Flask app parses bodies with its app's JSON provider. What the wrapper would answer 500 is raised
    here as a ValueError, which Flask answers as a 400 for bad JSON: a body nested a few thousand deep (Python's
    parser raises RecursionError) and a body that is no JSON object (`false` fails inside the wrapper's feedback
    conversion); every Seldon message and feedback is an object. An integer no float can hold is read as the
    infinity a double makes of it, which validation then refuses naming the feature (the wrapper's protobuf
    conversion of feedback raised OverflowError on it)."""

    def loads(self, s, **kwargs):
        try:
            message = super().loads(s, parse_int=_int, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(message, dict):
            raise ValueError(f"a Seldon message is a JSON object, not {type(message).__name__}")
        return message


def _int(text: str) -> int | float:
    value = int(text)
    try:
        float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")
    return value


# seldon-core-microservice imports this module before it makes its Flask app, which then takes this provider, and
# this limit: Werkzeug (2.2, which Seldon 1.17 pins) drains a body declared larger in chunks, holding none of it,
# and answers 413.
flask.Flask.json_provider_class = _JSONProvider
flask.Flask.default_config = ImmutableDict({**flask.Flask.default_config, "MAX_CONTENT_LENGTH": MAX_BYTES})
# The wrapper's main makes its metrics store after importing this module; see seldon_metrics for why.
seldon_core.microservice.SeldonMetrics = BufferedSeldonMetrics


# Seldon's app answers every exception it has no handler for as a 500, HTTP errors included; a user model may add
# handlers in a blueprint, which take precedence for their own class.
_errors = flask.Blueprint("ctloop_errors", __name__)


@_errors.app_errorhandler(RequestEntityTooLarge)
def _too_large(error):
    info = f"body: larger than {MAX_BYTES} bytes, the model server's limit per message"
    return flask.jsonify({"status": {"code": 413, "info": info, "reason": "PAYLOAD_TOO_LARGE", "status": 1}}), 413


@_errors.before_app_request
def _limit_chunked_body():
    """A chunked body has no Content-Length for MAX_CONTENT_LENGTH to refuse, and Werkzeug 2.2 reads such a body
    (gunicorn marks it ``wsgi.input_terminated``) whole, however large: read here up to the limit and refuse what
    goes past it, so that no worker holds more than the limit."""
    environ = flask.request.environ
    if flask.request.content_length is None and environ.get("wsgi.input_terminated"):
        body = environ["wsgi.input"].read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise RequestEntityTooLarge()
        environ["wsgi.input"] = io.BytesIO(body)


def _bad_request(message: str):
    return SeldonMicroserviceException(message, status_code=400, reason="BAD_REQUEST")


class _GRPCModel(seldon_core.wrapper.SeldonModelGRPC):
    """The wrapper's gRPC servicer, answering a request the model refuses with INVALID_ARGUMENT and its words: the
    wrapper's own lets the exception through, which gRPC answers UNKNOWN with no reason."""

    def Predict(self, request, context):
        with _refusals(context):
            return super().Predict(request, context)

    def SendFeedback(self, request, context):
        with _refusals(context):
            return super().SendFeedback(request, context)


@contextlib.contextmanager
def _refusals(context):
    try:
        yield
    except SeldonMicroserviceException as e:
        if e.status_code != 400:
            raise
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, e.message)  # raises, ending the call


# Read by the wrapper's get_grpc_server when seldon-core-microservice starts its gRPC workers.
seldon_core.wrapper.SeldonModelGRPC = _GRPCModel


class _Unreadable:
    """What the request's bytes became when they are no message of the method's type."""

    def __init__(self, error: Exception):
        self.error = error


class _UnreadableRefused(grpc.GenericRpcHandler):
    """One of the wrapper's services whose methods refuse bytes that are no message with INVALID_ARGUMENT. gRPC
    answers a deserializer's exception INTERNAL, a server error, for what is the client's: here the deserializer
    hands the error over instead, and the method refuses it before the servicer is called."""

    def __init__(self, service: grpc.GenericRpcHandler):
        self.service_handler = service
        # By method, as service() runs on every call; only the service's own, so that no client can grow it.
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details):
        method = handler_call_details.method
        handler = self.handlers.get(method)
        if handler is None:
            handler = self.service_handler.service(handler_call_details)
            if handler is None:
                return None
            if handler.unary_unary is not None and handler.request_deserializer is not None:
                handler = handler._replace(request_deserializer=_reading(handler.request_deserializer),
                                           unary_unary=_refusing_unreadable(handler.unary_unary, method))  # fmt: skip
            self.handlers[method] = handler
        return handler


def _reading(deserialize):
    def read(data: bytes):
        try:
            return deserialize(data)
        except Exception as e:  # protobuf's DecodeError, or whatever a message's parser raises on bytes
            return _Unreadable(e)

    return read


def _refusing_unreadable(behavior, method: str):
    def call(request, context):
        if isinstance(request, _Unreadable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: the request is no message of the method's "
                          f"type ({type(request.error).__name__}: {request.error})")  # fmt: skip
        return behavior(request, context)

    return call


class _Server:
    """The server as the generated ``add_*Servicer_to_server`` functions see it."""

    def __init__(self, server: grpc.Server):
        self.server = server

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.server.add_generic_rpc_handlers(tuple(_UnreadableRefused(h) for h in handlers))


def _adding_unreadable_refused(add_to_server):
    def add(servicer, server):
        add_to_server(servicer, _Server(server))

    return add


# The wrapper's get_grpc_server registers its servicer with these functions, looked up when it runs.
for _add in [name for name in vars(prediction_pb2_grpc) if name.startswith("add_") and name.endswith("_to_server")]:
    setattr(prediction_pb2_grpc, _add, _adding_unreadable_refused(getattr(prediction_pb2_grpc, _add)))


class SeldonModel:
    model_error_handler = _errors

    def __init__(self, model_uri: str = "/mnt/models", model_version: str = "", explain: bool = False):
        self.model_uri = model_uri
        self.model_version = model_version
        self.explain = bool(explain)
        self.model: ScoringModel | None = None
        self._pending_metrics: list[dict] = []

    def load(self) -> None:
        self.model = ScoringModel(self.model_uri)
        self.model_version = self.model_version or self.model.content_version
        log.info("loaded %s (version %s, policy %s)", self.model_uri, self.model_version, self.model.policy_version)

    def health_status(self):
        if self.model is None:
            raise _bad_request("model not loaded")
        return {"model_version": self.model_version, "policy_version": self.model.policy_version}

    def init_metadata(self):
        features = self.model.spec["features"] if self.model else []
        return {
            "name": "ctloop",
            "versions": [self.model_version],
            "platform": "xgboost",
            "inputs": [{"messagetype": "jsonData", "schema": {"names": [f["name"] for f in features]}}],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": ["score", "decision"]}}],
        }

    # -- predictions

    def predict_raw(self, request):
        if isinstance(request, SeldonMessage):  # over gRPC, the wrapper hands over a proto and wants one back
            return json_format.ParseDict(self._predict(json_format.MessageToDict(request)), SeldonMessage())
        return self._predict(request)

    def _predict(self, request: dict) -> dict:
        try:
            names, rows = seldon_message.rows(request)
            explain = self.explain or bool(seldon_message.tags(request).get("explain"))
            scored = self.model.score(names, rows, explain=explain)
        except CtloopError as e:
            raise _bad_request(str(e)) from None
        tags = {MODEL_VERSION_TAG: self.model_version, POLICY_VERSION_TAG: self.model.policy_version}
        if scored.rules is not None and any(scored.rules):
            tags["rules"] = [str(r) for r in scored.rules]
        if scored.contributions is not None:
            tags["contributions"] = scored.contributions
        names_out = [SCORE, DECISION] if scored.decisions is not None else [SCORE]
        return {
            "data": {"names": names_out, "ndarray": as_json(scored)},
            "meta": {"tags": tags, "metrics": self._prediction_metrics(scored)},
        }

    def _prediction_metrics(self, scored) -> list[dict]:
        metrics = []
        if scored.decisions is not None:
            outcomes = Counter(scored.decisions.tolist())
            metrics += [{"type": "COUNTER", "key": "ctloop_decisions_total", "value": n,
                         "tags": {"decision": str(o)}} for o, n in outcomes.items()]  # fmt: skip
        if scored.scores.ndim == 1:
            # A histogram as counters by upper bound: Seldon's custom metrics have no histogram type for values.
            buckets = np.searchsorted(SCORE_BUCKETS, np.clip(scored.scores, 0, 1), side="left")
            for bucket, n in Counter(buckets.tolist()).items():
                upper = f"{SCORE_BUCKETS[min(bucket, 9)]:.1f}"
                metrics.append({"type": "COUNTER", "key": "ctloop_scores_total", "value": n, "tags": {"le": upper}})
        return metrics

    # -- feedback

    def send_feedback_raw(self, feedback):
        """Ground truth for an earlier response: counted as right or wrong per model version, so that live
        accuracy can be computed per version (the response's own tags say which version answered)."""
        from seldon_core.utils import json_to_seldon_message

        try:
            # The wrapper hands feedback over as a Feedback proto and wants a SeldonMessage proto back.
            if not isinstance(feedback, dict):
                feedback = json_format.MessageToDict(feedback)
            truths = seldon_message.truths(feedback)
            response = feedback.get("response") or {}
            answered = (response.get("data") or {}).get("ndarray")
            version = ((response.get("meta") or {}).get("tags") or {}).get(MODEL_VERSION_TAG, self.model_version)
            if answered is None:
                raise ValueError("feedback needs the response it is about")
            if len(truths) != len(answered):
                raise ValueError(f"{len(truths)} truths for {len(answered)} answered rows")
            threshold = self.model.policy["threshold"]
            right = sum(int((float(row[0]) >= threshold) == bool(t)) for row, t in zip(answered, truths))
        except (CtloopError, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise _bad_request(f"feedback: {e}") from None
        counts = {"right": right, "wrong": len(truths) - right}
        # A counter of 0 is left out: the wrapper's proto drops a zero value, and its metrics code then fails on
        # the missing key, answering the feedback with a 500 (every 1-row feedback has one outcome at 0).
        metrics = [{"type": "COUNTER", "key": "ctloop_feedback_total", "value": n,
                    "tags": {"outcome": outcome, "served_version": str(version)}}
                   for outcome, n in counts.items() if n]  # fmt: skip
        answer = {"data": {"names": ["right", "rows"], "ndarray": [[right, len(truths)]]}, "meta": {"metrics": metrics}}
        return json_to_seldon_message(answer)
