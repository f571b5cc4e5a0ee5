#!/usr/bin/env bash
# Installs the Prometheus and Alertmanager binaries the test suite runs (promtool, prometheus,
# amtool, prometheus-alertmanager) from Debian's packages, and only when one is missing.
#
# The packages are installed for their binaries, not as services: a Debian postinst would
# otherwise start (and enable) daemons listening on :9090, :9093 and :9094, which the tests do
# not want and a developer's laptop should not get as a side effect. So the install runs under
# a policy-rc.d that forbids service starts, and afterwards any unit that systemd or sysvinit
# knows of is stopped and disabled.
#
# Usage: deploy/install-ops-tools.sh   (as root, or as a user who may sudo; idempotent)
set -euo pipefail

packages=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  packages+=(prometheus)
fi
if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  packages+=(prometheus-alertmanager)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-ops-tools: promtool/amtool are missing and this is not a Debian-like system;" \
    "install Prometheus 2.x and Alertmanager 0.25+ so that promtool, prometheus, amtool and" \
    "prometheus-alertmanager are on PATH" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-ops-tools: need root or sudo to install ${packages[*]}" >&2
  exit 1
fi

# A policy-rc.d exiting 101 makes invoke-rc.d and deb-systemd-invoke refuse to start services
# (Debian policy 9.3.3). Keep an existing one (Docker base images ship it); otherwise add ours
# for the duration of the install and remove it again, whatever happens.
policy=/usr/sbin/policy-rc.d
added_policy=false
remove_policy() {
  if [ "$added_policy" = true ]; then
    "${as_root[@]}" rm -f "$policy"
  fi
}
trap remove_policy EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Added by gapwatch deploy/install-ops-tools.sh during apt-get install.\nexit 101\n' \
    | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 0755 "$policy"
  added_policy=true
fi

echo "install-ops-tools: installing ${packages[*]} from Debian's packages"
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

# Belt and braces: whatever got started or enabled despite the policy is stopped and disabled.
for service in prometheus prometheus-alertmanager; do
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    "${as_root[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ]; then
    "${as_root[@]}" "/etc/init.d/$service" stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
      "${as_root[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
  fi
done

for tool in promtool prometheus amtool prometheus-alertmanager; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-ops-tools: $tool is still missing after installing ${packages[*]}" >&2
    exit 1
  fi
done
echo "install-ops-tools: $(promtool --version 2>&1 | head -n 1); $(amtool --version 2>&1 | head -n 1)"
