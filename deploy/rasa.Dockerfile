# The Rasa server: Rasa's official image plus our channels (bot/), the chat page and the
# trained model. Build from the repository root after `make train`:
#   docker build -f deploy/rasa.Dockerfile -t cardbot/rasa:3.6.21 .

# The chat widget comes from npm (web/package-lock.json), as `make run` installs it.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM rasa/rasa:3.6.21
USER root
# jieba (the Chinese tokenizer) is not in the base image; python-socketio must stay at 5.9.0
# (5.10+ breaks Rasa 3.6's socket.io rooms, see docs/rasa-notes.md). Versions from our lock.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock \
        jieba python-socketio python-engineio python-stdnum phonenumbers cryptography \
        python-dotenv PyYAML redis requests aiohttp ujson prometheus-client \
    && rm /tmp/requirements.lock
WORKDIR /app
COPY --chown=1001:0 bot /app/bot
COPY --chown=1001:0 web/index.html web/chat.js web/chat.css /app/web/
COPY --from=web --chown=1001:0 /web/node_modules/rasa-webchat/lib/index.js \
     /app/web/node_modules/rasa-webchat/lib/index.js
COPY --chown=1001:0 credentials.yml endpoints.yml /app/
COPY --chown=1001:0 models/bot.tar.gz /app/models/bot.tar.gz
ENV PYTHONPATH=/app \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    RASA_PORT=5005
USER 1001
EXPOSE 5005
# endpoints.yml reads ACTIONS_URL, REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME,
# REDIS_PASSWORD (Redis's `rasa` user) and TRACKER_EXPIRY_SECONDS; the channels read
# REDIS_URL; the HTTP API needs RASA_TOKEN.
# All come from the environment (compose file, Kubernetes Secret), never from the image.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m bot.rasa run --model /app/models/bot.tar.gz --port \"$RASA_PORT\" --interface 0.0.0.0 --enable-api --credentials /app/credentials.yml --endpoints /app/endpoints.yml \"$@\"", "rasa"]
