"""deploy/install-ops-tools.sh, which installs the tools the other test_ops_* files run."""

from __future__ import annotations

from ops_files_support import INSTALLER, require_tool, run


class TestInstallScript:
    """deploy/install-ops-tools.sh."""

    def test_is_valid_bash(self) -> None:
        """`bash -n` parses the script."""
        result = run("bash", "-n", str(INSTALLER))
        assert result.returncode == 0, result.stderr

    def test_does_nothing_when_the_tools_are_installed(self) -> None:
        """With every tool present it exits 0 at once, without touching apt."""
        for tool in ("promtool", "prometheus", "amtool", "prometheus-alertmanager"):
            require_tool(tool)
        result = run("bash", str(INSTALLER))
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert result.stderr == ""
