# Shared bash helpers of streamscore's scripts: paths, stack ports, logging.
# Source it (". scripts/lib.sh"); it sets no shell options of its own.
# shellcheck shell=bash disable=SC2034  # the paths are used by the scripts sourcing this

SS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SS_DEPS=$SS_ROOT/.deps
SS_VENV=$SS_DEPS/venv
SS_XGBOOST=$SS_DEPS/xgboost
SS_KAFKA=$SS_DEPS/kafka
SS_REGISTRY=$SS_DEPS/apicurio-registry # Apicurio Registry server (scripts/setup)

# Local stack (scripts/dev-stack); every value can be overridden from the environment.
: "${STACK_DIR:=.stack}"
: "${KAFKA_PORT:=19092}"
: "${KAFKA_CONTROLLER_PORT:=19093}"
: "${KAFKA_BROKERS:=1}" # 1, or 3 for a three-node cluster (see scripts/dev-stack)
: "${REDIS_PORT:=16379}"
: "${REGISTRY:=0}" # 1: also a Confluent-compatible schema registry (see scripts/dev-stack)
: "${REGISTRY_PORT:=18081}"
: "${KAFKA_SASL_PORT:=19094}" # TLS=1: Kafka's SASL_SSL listener (see scripts/dev-stack)
: "${REDIS_TLS_PORT:=16380}"  # TLS=1: Redis's TLS port
: "${TOPICS:=customer-events:6,predictions:6,predictions.shadow:6,customer-events.dlq:1,predictions.shadow.dlq:1}"
case $STACK_DIR in /*) ;; *) STACK_DIR=$SS_ROOT/$STACK_DIR ;; esac
export STACK_DIR KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_BROKERS REDIS_PORT REGISTRY REGISTRY_PORT TOPICS \
	KAFKA_SASL_PORT REDIS_TLS_PORT

SS_PROG=${SS_PROG:-$(basename "$0")}

log() { printf '%s: %s\n' "$SS_PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$SS_PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$SS_PROG" "$*" >&2
	exit 1
}

# sha256 of a file, hex only.
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when something listens on TCP port $1 (any local address). Asked of the kernel's
# socket table (ss, from iproute2) rather than by connecting: a connection's own source port
# can be the very port probed (in the ephemeral range), connect to itself and hold it, so
# that the service to come fails to bind. Without ss: a connection to 127.0.0.1:$1.
port_open() {
	if command -v ss >/dev/null; then
		[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# What listens on TCP port $1, as ss names it ("name" pid=N), or "another process".
port_holder() {
	local who=
	command -v ss >/dev/null &&
		who=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:((.*))' | head -n 1 |
			sed -e 's/^users:((//' -e 's/))$//' -e 's/,fd=[0-9]*//g')
	echo "${who:-another process}"
}
