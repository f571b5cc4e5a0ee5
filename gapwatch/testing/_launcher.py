"""Preparing node directories and building the JVM command lines of one cluster.

Separate from :mod:`.kafka` so the cluster class only sequences the steps: write files,
format storage, launch, wait.
"""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gapwatch.testing._client import TlsFiles
from gapwatch.testing._config import (
    HOST,
    JVM_OPTS_ENV,
    LOG4J2_PROPERTIES,
    ConfigValue,
    NodeSpec,
    jvm_command,
    render_properties,
    server_properties,
)
from gapwatch.testing._errors import NodeStartError, ToolMissingError
from gapwatch.testing._node import run_tool
from gapwatch.testing._security import BROKER_CN, KEYSTORE_PASSWORD, SecurityPlan

KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"


@dataclass(frozen=True, slots=True)
class Launcher:
    """Which ``java``, jars, state dir, heap and security the nodes of one cluster run with."""

    java: str
    jars_dir: Path
    state_dir: Path
    heap: str
    security: SecurityPlan = field(default_factory=SecurityPlan)

    @property
    def tls_files(self) -> TlsFiles:
        """Where the cluster's certificates are written (only secured with TLS)."""
        return TlsFiles(self.state_dir / "tls")

    def command(self, spec: NodeSpec, main_class: str, args: Sequence[str]) -> list[str]:
        """The full ``java`` command for ``main_class`` on behalf of node ``spec``."""
        return jvm_command(
            java=self.java,
            jars_dir=self.jars_dir,
            node=spec,
            state_dir=self.state_dir,
            heap=self.heap,
            main_class=main_class,
            args=args,
            is_tool=main_class != KAFKA_MAIN,
            extra_jvm_args=shlex.split(os.environ.get(JVM_OPTS_ENV, "")),
        )

    def broker_command(self, spec: NodeSpec) -> list[str]:
        """The command starting node ``spec``'s broker+controller."""
        return self.command(spec, KAFKA_MAIN, [str(spec.config_path)])

    def write_node_files(
        self,
        specs: Sequence[NodeSpec],
        broker_overrides: Mapping[str, ConfigValue],
        node_overrides: Mapping[int, Mapping[str, ConfigValue]],
    ) -> None:
        """Fresh directories with ``server.properties`` and log4j2 config for every node,
        and, with TLS, a fresh CA with every node's keystore and every user's certificate."""
        tls = self.tls_files
        if self.security.uses_tls:
            self.write_certificates(specs)
        for spec in specs:
            if spec.node_dir.exists():
                shutil.rmtree(spec.node_dir)  # every start is a brand-new cluster
            spec.logs_dir.mkdir(parents=True)
            props = server_properties(
                spec,
                specs,
                broker_overrides=broker_overrides,
                node_overrides=node_overrides.get(spec.node_id),
                security=self.security.broker_properties(
                    keystore=tls.keystore(spec.node_id), truststore=tls.ca_certificate
                ),
                listener=self.security.listener_name,
            )
            spec.config_path.write_text(render_properties(props))
            spec.log4j_path.write_text(LOG4J2_PROPERTIES)

    def write_certificates(self, specs: Sequence[NodeSpec]) -> None:
        """A new CA, a keystore per node (``IP:127.0.0.1`` SAN) and, with client
        certificates, a certificate per user (CN = user name)."""
        # Imported here: only TLS clusters need the ``cryptography`` package (a dev
        # dependency), and ``gapwatch demo`` runs the plaintext test bed from a plain install.
        try:
            from gapwatch.testing._certs import CertificateAuthority
        except ImportError as exc:
            raise ToolMissingError(
                f"TLS clusters need the 'cryptography' package ({exc}); "
                "pip install 'gapwatch[dev]' or cryptography"
            ) from None
        tls = self.tls_files
        if tls.root.exists():
            shutil.rmtree(tls.root)
        tls.root.mkdir(parents=True, mode=0o700)
        ca = CertificateAuthority.create()
        ca.write_certificate(tls.ca_certificate)
        for spec in specs:
            leaf = ca.issue(BROKER_CN, ip_addresses=[HOST])
            leaf.write_pkcs12(tls.keystore(spec.node_id), ca=ca, password=KEYSTORE_PASSWORD)
        if self.security.uses_client_certificates:
            for user in self.security.identities:
                ca.issue(user.name).write_pem(tls.certificate(user.name), tls.key(user.name))

    def format_storage(self, specs: Sequence[NodeSpec], cluster_id: str, timeout: float) -> None:
        """Run ``StorageTool format -t <id>`` for every node, concurrently (each is a JVM)."""

        def format_one(spec: NodeSpec) -> tuple[NodeSpec, int, str]:
            args = ["format", "-t", cluster_id, "-c", str(spec.config_path)]
            args += self.security.format_arguments()
            return (spec, *run_tool(self.command(spec, STORAGE_TOOL_MAIN, args), timeout=timeout))

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(specs)) as pool:
            for spec, code, output in pool.map(format_one, specs):
                if code != 0:
                    raise NodeStartError(
                        f"formatting storage of node {spec.node_id} failed (exit {code}):\n"
                        f"{output[-3000:]}"
                    )
