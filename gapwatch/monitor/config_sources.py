"""Where the monitor's configuration comes from, and which source wins.

Precedence, highest first (the one place it is decided):

1. command-line flags (``--grace-period 10``);
2. environment variables, ``GAPWATCH_`` + the key in upper case (``GAPWATCH_GRACE_PERIOD``);
3. the YAML file named by ``--config`` or ``GAPWATCH_CONFIG`` (keys as in
   ``deploy/gapwatch.example.yaml``);
4. the defaults of :mod:`gapwatch.monitor.config`.

A key set in a higher source replaces the whole value of a lower one (lists are not
concatenated). Every key has one name used everywhere: the YAML key, the flag
(``--`` + key with dashes) and the variable. Unknown YAML keys are errors (a typo must not
silently fall back to a default); unknown ``GAPWATCH_*`` variables are ignored because
other gapwatch commands read their own.

A secret that may come from a file (``http_token``) has a second key with ``_file``
appended (``--http-token-file``, ``GAPWATCH_HTTP_TOKEN_FILE``) naming a file that holds
it, so the secret itself never appears in the process list or the environment. The two
keys are one setting for precedence; one source may not set both.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from gapwatch.errors import ConfigError
from gapwatch.kafka.secret import Secret
from gapwatch.kafka.settings import SecuritySettings
from gapwatch.monitor.config import MirrorSource, MonitorConfig

Kind = Literal["str", "int", "float", "bool", "list", "path", "secret", "pairs"]
ENV_PREFIX = "GAPWATCH_"
CONFIG_ENV = "GAPWATCH_CONFIG"
FILE_SUFFIX = "_file"

_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One configuration key: its type, where it lands in :class:`MonitorConfig`, its help."""

    key: str
    kind: Kind
    path: tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()
    secret: bool = False
    can_come_from_file: bool = False

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--grace-period``."""
        return "--" + self.key.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``GAPWATCH_GRACE_PERIOD``."""
        return ENV_PREFIX + self.key.upper()

    @property
    def file_key(self) -> str:
        """The key naming a file that holds this value, e.g. ``http_token_file``."""
        return self.key + FILE_SUFFIX


def _spec(key: str, kind: Kind, path: str, help: str, **extra: Any) -> FieldSpec:
    return FieldSpec(key, kind, tuple(path.split(".")), help, **extra)


FIELDS: tuple[FieldSpec, ...] = (
    _spec("bootstrap_servers", "list", "kafka.bootstrap_servers", "HOST:PORT[,HOST:PORT...]"),
    _spec("topic", "list", "watch.topics", "topic to watch (repeat the flag for more)"),
    _spec("topic_pattern", "str", "watch.topic_pattern", "regex of topics to watch"),
    _spec("group_id", "str", "watch.group_id", "the monitor's own consumer group"),
    _spec(
        "start_from",
        "str",
        "watch.start_from",
        "where a partition with no checkpoint starts",
        choices=("earliest", "latest"),
    ),
    _spec("allow_compacted", "bool", "watch.allow_compacted", "watch compacted topics anyway"),
    _spec("grace_period", "float", "tracker.grace_period", "seconds before a gap is confirmed"),
    _spec("stream_idle_timeout", "float", "tracker.stream_idle_timeout", "evict idle streams"),
    _spec("max_streams", "int", "tracker.max_streams", "cap on tracked streams per partition"),
    _spec("http_host", "str", "http.host", "address of the HTTP API"),
    _spec("http_port", "int", "http.port", "port of the HTTP API (0: any free port)"),
    _spec(
        "http_token",
        "str",
        "http.token",
        "bearer token for /gaps, /skipped, /streams and /events",
        secret=True,
        can_come_from_file=True,
    ),
    _spec("http_tls_certfile", "path", "http.tls_certfile", "serve HTTPS: certificate (PEM)"),
    _spec("http_tls_keyfile", "path", "http.tls_keyfile", "serve HTTPS: private key (PEM)"),
    _spec(
        "metrics_granularity",
        "str",
        "http.metrics_granularity",
        "/metrics series per partition, or summed per topic",
        choices=("partition", "topic"),
    ),
    _spec("checkpoint_topic", "str", "checkpoints.topic", "compacted topic of checkpoints"),
    _spec("checkpoint_interval", "float", "checkpoints.interval", "seconds between checkpoints"),
    _spec("report_topic", "str", "reports.topic", "topic of producer reports"),
    _spec("read_reports", "bool", "reports.enabled", "read producer reports (tail loss)"),
    _spec("closed_gap_retention", "float", "gap_store.closed_retention", "keep closed gaps (s)"),
    _spec("closed_gap_limit", "int", "gap_store.closed_limit", "keep at most N closed gaps"),
    _spec("gap_log_topic", "str", "gap_log.topic", "compacted topic of every gap change"),
    _spec("gap_history_retention", "float", "gap_log.history_retention", "fleet history (s)"),
    _spec("gap_history_limit", "int", "gap_log.history_limit", "fleet history: gaps kept (50000)"),
    _spec("gap_log_max_pending", "int", "gap_log.max_pending", "gap changes queued at most"),
    _spec("gap_log_flush_timeout", "float", "gap_log.flush_timeout", "checkpoint waits (s)"),
    _spec("events_buffer", "int", "events.buffer", "/events replay buffer (events)"),
    _spec("events_keepalive", "float", "events.keepalive", "/events keep-alive interval (s)"),
    _spec("external_url", "str", "alerting.external_url", "this monitor's URL for links"),
    _spec(
        "alertmanager_url",
        "list",
        "alerting.alertmanager_urls",
        "Alertmanager base URL (comma-separate several)",
    ),
    _spec("alert_repost_interval", "float", "alerting.repost_interval", "re-post alerts (s)"),
    _spec("alert_loss_hold", "float", "alerting.loss_hold", "keep a loss alert firing (s)"),
    _spec("alert_max_per_partition", "int", "alerting.max_per_partition", "storm control"),
    _spec(
        "alert_duplicate_threshold",
        "int",
        "alerting.duplicate_threshold",
        "duplicates that make a burst",
    ),
    _spec("alert_duplicate_window", "float", "alerting.duplicate_window", "burst window (s)"),
    _spec("alert_duplicate_hold", "float", "alerting.duplicate_hold", "burst alert hold (s)"),
    _spec("webhook_url", "str", "alerting.webhook_url", "POST gap changes here as JSON"),
    _spec("webhook_secret", "str", "alerting.webhook_secret", "HMAC-SHA256 key", secret=True),
    _spec("webhook_events", "list", "alerting.webhook_events", "kinds of changes to post"),
    _spec("sink_timeout", "float", "alerting.sink_timeout", "seconds per delivery attempt"),
    _spec("sink_queue_size", "int", "alerting.sink_queue_size", "events queued per sink"),
    _spec("sink_max_retries", "int", "alerting.sink_max_retries", "retries per delivery"),
    _spec("sink_backoff_initial", "float", "alerting.sink_backoff_initial", "first retry (s)"),
    _spec("sink_backoff_max", "float", "alerting.sink_backoff_max", "longest retry delay (s)"),
    _spec(
        "durability_refresh",
        "float",
        "durability.refresh",
        "seconds between durability audits of the watched topics (0: off)",
    ),
    _spec(
        "mirror_source",
        "pairs",
        "mirror.sources",
        "ALIAS=HOST:PORT[,HOST:PORT]: topics named ALIAS.* are MirrorMaker 2 copies from "
        "this cluster (repeat the flag for more)",
    ),
    _spec(
        "mirror_source_config",
        "pairs",
        "mirror.sources",
        "ALIAS=FILE: the source's security settings (keys as in client.json)",
    ),
    _spec(
        "replication_policy",
        "str",
        "mirror.replication_policy",
        "MM2's topic naming: default (ALIAS.topic) or identity (same name)",
        choices=("default", "identity"),
    ),
    _spec(
        "mirror_lookup_max_records",
        "int",
        "mirror.lookup_max_records",
        "records read from a source partition per gap at most",
    ),
    _spec("mirror_lookup_retries", "int", "mirror.lookup_retries", "source lookup retries"),
    _spec(
        "mirror_lookup_concurrency",
        "int",
        "mirror.lookup_concurrency",
        "source lookups running at once",
    ),
    _spec("mirror_lag_interval", "float", "mirror.lag_interval", "seconds between lag reads"),
    _spec("client_id", "str", "kafka.client_id", "Kafka client id"),
    _spec(
        "isolation_level",
        "str",
        "kafka.isolation_level",
        "read_uncommitted (default) or read_committed",
        choices=("read_uncommitted", "read_committed"),
    ),
    _spec("max_poll_records", "int", "kafka.max_poll_records", "records per getmany call"),
    _spec("fetch_max_wait_ms", "int", "kafka.fetch_max_wait_ms", "broker long-poll wait"),
    _spec("fetch_min_bytes", "int", "kafka.fetch_min_bytes", "bytes a fetch waits for"),
    _spec("max_partition_fetch_bytes", "int", "kafka.max_partition_fetch_bytes", "fetch size"),
    _spec(
        "read_batches_directly",
        "bool",
        "kafka.read_batches_directly",
        "read fetched record batches without aiokafka ConsumerRecords (aiokafka 0.14)",
    ),
    _spec(
        "fetch_sessions",
        "bool",
        "kafka.fetch_sessions",
        "fetch in incremental fetch sessions, KIP-227 (aiokafka 0.14, Fetch v7+ brokers)",
    ),
    _spec(
        "security_protocol",
        "str",
        "kafka.security.security_protocol",
        "Kafka security protocol",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    ),
    _spec(
        "sasl_mechanism",
        "str",
        "kafka.security.sasl_mechanism",
        "SASL mechanism",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"),
    ),
    _spec("sasl_username", "str", "kafka.security.sasl_username", "SASL user"),
    _spec(
        "sasl_password",
        "secret",
        "kafka.security.sasl_password",
        "SASL password (prefer --sasl-password-file: flags show in ps)",
        secret=True,
    ),
    _spec(
        "sasl_password_file",
        "path",
        "kafka.security.sasl_password_file",
        "file holding the SASL password",
    ),
    _spec(
        "sasl_oauth_token_command",
        "str",
        "kafka.security.sasl_oauth_token_command",
        "OAUTHBEARER: command printing a token",
    ),
    _spec(
        "sasl_oauth_token_file",
        "path",
        "kafka.security.sasl_oauth_token_file",
        "OAUTHBEARER: file holding the token, re-read on refresh",
    ),
    _spec(
        "sasl_oauth_token_lifetime",
        "float",
        "kafka.security.sasl_oauth_token_lifetime",
        "OAUTHBEARER: seconds a token without exp is used",
    ),
    _spec(
        "sasl_oauth_extensions",
        "list",
        "kafka.security.sasl_oauth_extensions",
        "OAUTHBEARER: SASL extensions KEY=VALUE (comma-separate several)",
    ),
    _spec("ssl_cafile", "path", "kafka.security.ssl_cafile", "CA bundle (PEM)"),
    _spec("ssl_certfile", "path", "kafka.security.ssl_certfile", "client certificate (PEM)"),
    _spec("ssl_keyfile", "path", "kafka.security.ssl_keyfile", "client key (PEM)"),
    _spec(
        "ssl_key_password",
        "secret",
        "kafka.security.ssl_key_password",
        "client key password",
        secret=True,
    ),
    _spec(
        "ssl_key_password_file",
        "path",
        "kafka.security.ssl_key_password_file",
        "file holding the client key password",
    ),
    _spec("ssl_check_hostname", "bool", "kafka.security.ssl_check_hostname", "verify hostname"),
    _spec("canary", "bool", "canary.enabled", "write and watch the canary topic (per broker)"),
    _spec("canary_topic", "str", "canary.topic", "the canary topic"),
    _spec("canary_rate", "float", "canary.rate", "canary records/s per partition (per broker)"),
    _spec("canary_request_timeout", "float", "canary.request_timeout", "canary write timeout"),
    _spec("canary_window", "float", "canary.window", "seconds a canary write keeps a broker up"),
    _spec("canary_check_interval", "float", "canary.check_interval", "canary metadata checks"),
    _spec("canary_departure", "float", "canary.departure", "move a broker's partition after (s)"),
    _spec(
        "log_level",
        "str",
        "log_level",
        "logging level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
)
FIELDS_BY_KEY: Mapping[str, FieldSpec] = {spec.key: spec for spec in FIELDS}
# ``http_token_file`` -> the spec of ``http_token``.
FILE_FIELDS_BY_KEY: Mapping[str, FieldSpec] = {
    spec.file_key: spec for spec in FIELDS if spec.can_come_from_file
}


_SECURITY_PATH = ("kafka", "security")
SECURITY_FIELDS: tuple[FieldSpec, ...] = tuple(
    spec for spec in FIELDS if spec.path[:2] == _SECURITY_PATH
)
# The two keys that together make the mirror's source clusters (merged by
# :func:`_mirror_sources`, not field by field).
_MIRROR_SOURCE_KEYS = ("mirror_source", "mirror_source_config")
_PLAIN_FIELDS: tuple[FieldSpec, ...] = tuple(
    spec for spec in FIELDS if spec.key not in _MIRROR_SOURCE_KEYS
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per key, plus ``--config``; absent flags leave no attribute behind."""
    parser.add_argument("--config", metavar="FILE", help=f"YAML config file (or {CONFIG_ENV})")
    for spec in FIELDS:
        _add_flag(parser, spec)


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the Kafka security flags alone, for the commands other than the monitor.

    The flags, variables and their meaning are the monitor's (``--sasl-password-file``,
    ``GAPWATCH_SASL_PASSWORD``...), so one set of settings serves every command.
    """
    group = parser.add_argument_group("Kafka security (or GAPWATCH_* variables)")
    for spec in SECURITY_FIELDS:
        _add_flag(group, spec)


def _add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, spec: FieldSpec) -> None:
    # SUPPRESS keeps unset flags out of the namespace, so the merge below can tell
    # "not given" from "given as the default".
    common: dict[str, Any] = {"dest": spec.key, "default": argparse.SUPPRESS}
    help_text = f"{spec.help} [{spec.env}]"
    if spec.kind == "bool":
        parser.add_argument(
            spec.flag, action=argparse.BooleanOptionalAction, help=help_text, **common
        )
    elif spec.key == "topic":
        parser.add_argument(spec.flag, action="append", metavar="NAME", help=help_text, **common)
    elif spec.kind == "pairs":
        metavar = "ALIAS=" + ("FILE" if spec.key.endswith("_config") else "BOOTSTRAP")
        parser.add_argument(spec.flag, action="append", metavar=metavar, help=help_text, **common)
    else:
        metavar = "|".join(spec.choices) if spec.choices else spec.key.split("_")[-1].upper()
        parser.add_argument(spec.flag, metavar=metavar, help=help_text, **common)
    if spec.can_come_from_file:
        parser.add_argument(
            f"{spec.flag}-file",
            dest=spec.file_key,
            default=argparse.SUPPRESS,
            metavar="FILE",
            help=f"file holding the {spec.key} (keeps it out of the process list) "
            f"[{ENV_PREFIX}{spec.file_key.upper()}]",
        )


def _convert(spec: FieldSpec, raw: object, source: str) -> object:
    """Turn a raw value (a string from flags/env, or a YAML scalar/list) into its type."""
    problem = f"expected {spec.kind}, got {'<hidden>' if spec.secret else repr(raw)}"
    if raw is None:
        return None
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(spec.key, problem + " (true/false)", source=source)
    if spec.kind in ("int", "float"):
        if isinstance(raw, bool):
            raise ConfigError(spec.key, problem, source=source)
        try:
            return int(str(raw)) if spec.kind == "int" else float(str(raw))
        except ValueError:
            raise ConfigError(spec.key, problem, source=source) from None
    if spec.kind == "pairs":
        return _pairs(spec, raw, source)
    if spec.kind == "list":
        items = raw if isinstance(raw, list) else [raw]
        parts = [p.strip() for item in items for p in str(item).split(",")]
        return tuple(p for p in parts if p)
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise ConfigError(spec.key, problem, source=source)
    text = str(raw)
    if spec.choices and text not in spec.choices:
        raise ConfigError(spec.key, f"must be one of {', '.join(spec.choices)}", source=source)
    if spec.kind == "secret":
        return Secret(text)
    return Path(text) if spec.kind == "path" else text


def _pairs(spec: FieldSpec, raw: object, source: str) -> tuple[tuple[str, str], ...]:
    """``ALIAS=VALUE`` items (a list, or one string, comma-separated) as pairs.

    A comma-separated item without ``=`` continues the value before it, so
    ``east=h1:9092,h2:9092`` is one pair with two servers.
    """
    items = raw if isinstance(raw, list | tuple) else [raw]
    pairs: list[tuple[str, str]] = []
    for item in items:
        for part in (p.strip() for p in str(item).split(",")):
            if not part:
                continue
            alias, sep, value = part.partition("=")
            if sep:
                if not alias.strip() or not value.strip():
                    raise ConfigError(spec.key, f"{part!r} is not ALIAS=VALUE", source=source)
                pairs.append((alias.strip(), value.strip()))
            elif pairs:
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]},{part}")
            else:
                raise ConfigError(spec.key, f"{part!r} is not ALIAS=VALUE", source=source)
    return tuple(pairs)


def load_source_security(path: Path, *, alias: str) -> SecuritySettings:
    """The security settings in a source cluster's file (``client.json`` keys; JSON or
    YAML), validated; every other key in it is ignored (its servers come from
    ``mirror_source``). Raises :class:`ConfigError` naming the file."""
    source = f"mirror_source_config {alias}={path}"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            "mirror_source_config", f"cannot read {str(path)!r}: {exc.strerror}"
        ) from None
    except yaml.YAMLError as exc:
        problem = f"{str(path)!r} is neither JSON nor YAML: {exc}"
        raise ConfigError("mirror_source_config", problem) from None
    if not isinstance(loaded, dict):
        raise ConfigError("mirror_source_config", f"{str(path)!r} must hold a mapping")
    names = {spec.key for spec in SECURITY_FIELDS}
    values = {str(k).replace("-", "_"): v for k, v in loaded.items()}
    security, sources = _merged(
        SecuritySettings(),
        SECURITY_FIELDS,
        [(source, {k: v for k, v in values.items() if k in names})],
        {},
        {},
        strip=len(_SECURITY_PATH),
    )
    return _validated(security, sources, security.validate)


def _mirror_sources(
    layers: list[tuple[str, Mapping[str, object]]],
    given: Mapping[str, object],
    environ: Mapping[str, str],
) -> tuple[MirrorSource, ...]:
    """The source clusters from ``mirror_source`` and ``mirror_source_config``, each key
    taken from the highest layer that sets it (flags > environment > file)."""
    chosen: dict[str, tuple[tuple[str, str], ...]] = {}
    for key in _MIRROR_SOURCE_KEYS:
        spec = FIELDS_BY_KEY[key]
        for layer_name, values in [*layers, ("environment", None), ("flags", given)]:
            if layer_name == "environment":
                raw: object = environ.get(spec.env)
                where = spec.env
            else:
                assert values is not None
                raw = values.get(key)
                where = spec.flag if layer_name == "flags" else layer_name
            if raw is not None:
                chosen[key] = _pairs(spec, raw, where)
    for key, pairs in chosen.items():
        aliases = [alias for alias, _ in pairs]
        for alias in aliases:
            if aliases.count(alias) > 1:
                raise ConfigError(key, f"alias {alias!r} is given twice")
    servers = dict(chosen.get("mirror_source", ()))
    files = dict(chosen.get("mirror_source_config", ()))
    for alias in files:
        if alias not in servers:
            raise ConfigError(
                "mirror_source_config", f"{alias!r} is not an alias given in mirror_source"
            )
    return tuple(
        MirrorSource(
            alias=alias,
            bootstrap_servers=tuple(s.strip() for s in bootstrap.split(",") if s.strip()),
            security=(
                load_source_security(Path(files[alias]), alias=alias)
                if alias in files
                else SecuritySettings()
            ),
        )
        for alias, bootstrap in servers.items()
    )


def _read_secret_file(spec: FieldSpec, raw: object, source: str) -> str:
    """The secret held in the file ``raw`` names, without surrounding whitespace (a
    trailing newline is what ``echo`` leaves)."""
    path = Path(str(raw))
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problem = f"cannot read {str(path)!r}: {exc.strerror}"
        raise ConfigError(spec.file_key, problem, source=source) from None
    except UnicodeDecodeError:
        raise ConfigError(
            spec.file_key, f"{str(path)!r} is not UTF-8 text", source=source
        ) from None
    if not text:
        raise ConfigError(spec.file_key, f"{str(path)!r} is empty", source=source)
    return text


def _known_key(key: str) -> bool:
    return key in FIELDS_BY_KEY or key in FILE_FIELDS_BY_KEY


def read_yaml(path: Path) -> dict[str, object]:
    """The key/value mapping of a YAML config file; dashes in keys are read as underscores."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("config", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{str(path)!r} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("config", f"{str(path)!r} must hold a mapping of keys to values")
    result: dict[str, object] = {}
    for raw_key, value in loaded.items():
        key = str(raw_key).replace("-", "_")
        if not _known_key(key):
            raise ConfigError(key, "is not a known key", source=str(path))
        result[key] = value
    return result


def _with_value(obj: Any, path: tuple[str, ...], value: object) -> Any:
    head, *rest = path
    if rest:
        return dataclasses.replace(
            obj, **{head: _with_value(getattr(obj, head), tuple(rest), value)}
        )
    return dataclasses.replace(obj, **{head: value})


def load_config(
    flags: argparse.Namespace | Mapping[str, object],
    environ: Mapping[str, str],
) -> MonitorConfig:
    """Merge flags > environment > YAML file > defaults into a validated :class:`MonitorConfig`.

    ``flags`` holds only the keys the user gave (see :func:`add_arguments`); ``environ`` is
    usually ``os.environ``. Raises :class:`ConfigError` naming the key and its source.
    """
    given = dict(vars(flags)) if isinstance(flags, argparse.Namespace) else dict(flags)
    config_path = given.pop("config", None) or environ.get(CONFIG_ENV)
    layers: list[tuple[str, Mapping[str, object]]] = []
    if config_path:
        layers.append((str(config_path), read_yaml(Path(str(config_path)))))
    config, sources = _merged(MonitorConfig(), _PLAIN_FIELDS, layers, given, environ, strip=0)
    mirror_sources = _mirror_sources(layers, given, environ)
    if mirror_sources:
        config = dataclasses.replace(
            config, mirror=dataclasses.replace(config.mirror, sources=mirror_sources)
        )
    return _validated(config, sources, lambda: config.validate())


def load_security(
    flags: argparse.Namespace | Mapping[str, object],
    environ: Mapping[str, str],
) -> SecuritySettings:
    """Merge security flags > environment > defaults into validated :class:`SecuritySettings`.

    For the commands that take :func:`add_security_arguments`; keys and variables are
    the monitor's. Raises :class:`ConfigError` naming the key and its source.
    """
    given = dict(vars(flags)) if isinstance(flags, argparse.Namespace) else dict(flags)
    security, sources = _merged(
        SecuritySettings(), SECURITY_FIELDS, [], given, environ, strip=len(_SECURITY_PATH)
    )
    _validated(security, sources, security.validate)
    return security


T = TypeVar("T")


def _merged(
    base: T,
    specs: tuple[FieldSpec, ...],
    layers: list[tuple[str, Mapping[str, object]]],
    given: Mapping[str, object],
    environ: Mapping[str, str],
    *,
    strip: int,
) -> tuple[T, dict[str, str]]:
    """``base`` with every layer applied, lowest precedence first, and each key's source.

    A secret's file key (``http_token_file``) sets the secret itself, read from the file;
    one layer giving both keys is refused.
    """
    by_key = {spec.key: spec for spec in specs}
    by_file_key = {spec.file_key: spec for spec in specs if spec.can_come_from_file}
    env_names = {spec.env: spec.key for spec in specs}
    env_names.update({ENV_PREFIX + key.upper(): key for key in by_file_key})
    layers = [
        *layers,
        ("environment", {key: environ[name] for name, key in env_names.items() if name in environ}),
        ("flags", {k: v for k, v in given.items() if k in by_key or k in by_file_key}),
    ]
    result = base
    sources: dict[str, str] = {}
    for layer_name, values in layers:  # lowest precedence first; later layers overwrite
        for key, raw in values.items():
            from_file = by_file_key.get(key)
            spec = from_file or by_key[key]
            if from_file is not None and spec.key in values:
                raise ConfigError(
                    spec.key, f"give {spec.key} or {spec.file_key}, not both", source=layer_name
                )
            if layer_name == "environment":
                source = ENV_PREFIX + key.upper()
            elif layer_name == "flags":
                source = "--" + key.replace("_", "-")
            else:
                source = layer_name
            if from_file is not None:
                raw = _read_secret_file(spec, raw, source)
            result = _with_value(result, spec.path[strip:], _convert(spec, raw, source))
            sources[spec.key] = source
    return result, sources


def _validated(result: T, sources: Mapping[str, str], validate: Callable[[], object]) -> T:
    try:
        validate()
    except ConfigError as exc:
        if exc.source is None and exc.key in sources:
            raise ConfigError(exc.key, exc.problem, source=sources[exc.key]) from None
        raise
    return result
