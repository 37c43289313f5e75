#!/bin/sh
# Starts Redis for the assistant (docker-compose.yml mounts this file; k8s/redis.yaml carries
# the same text in a ConfigMap): durable, never evicting, and with one user per component,
# the rules of bot/redis.py ACL_USERS (tests/unit/test_deploy_files.py holds them equal).
#
# The passwords come from the environment and go into a config file readable by this user
# alone, as SHA-256 digests only: never on a command line, where `ps` would show them.
# Arguments are passed on to redis-server (settings that are no secret: --dir, --port).
set -eu
: "${REDIS_PASSWORD:?the admin user's password}"
: "${REDIS_RASA_PASSWORD:?the rasa user's password}"
: "${REDIS_CARD_SERVICE_PASSWORD:?the card-service user's password}"
: "${REDIS_CONSOLE_PASSWORD:?the console user's password}"
umask 077
conf="$(mktemp)"
digest() { printf '%s' "$1" | sha256sum | cut -d ' ' -f 1; }
cat > "$conf" <<EOF
appendonly yes
appendfsync always
save ""
maxmemory ${REDIS_MAXMEMORY:-512mb}
maxmemory-policy noeviction
user default off resetpass resetkeys resetchannels -@all
user admin on #$(digest "$REDIS_PASSWORD") ~* &* +@all
user rasa on #$(digest "$REDIS_RASA_PASSWORD") resetkeys ~cardbot:* ~wechat:* ~whatsapp:* resetchannels &cardbot:socketio -@all +@string +@list +@set +@sortedset +@keyspace +@transaction -@dangerous -scan -randomkey +ping +echo +time +evalsha +eval +script|load +script|exists +publish +subscribe +unsubscribe
user card-service on #$(digest "$REDIS_CARD_SERVICE_PASSWORD") resetkeys ~cardsvc:* resetchannels -@all +@string +@hash +@list +@sortedset +@keyspace +@transaction -@dangerous -scan -randomkey +ping +echo +evalsha +eval +script|load +script|exists
user console on #$(digest "$REDIS_CONSOLE_PASSWORD") resetkeys ~cardstaff:* resetchannels -@all +@string +@hash +@list +@set +@keyspace +@transaction -@dangerous -scan -randomkey +ping +echo
EOF
exec redis-server "$conf" "$@"
