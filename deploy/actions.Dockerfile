# The action server: Rasa's rasa-sdk image plus our actions/ and the bot package they use
# (the card-service client, ID-number and phone rules, region facts).
#   docker build -f deploy/actions.Dockerfile -t cardbot/actions:3.6.2 .
FROM rasa/rasa-sdk:3.6.2
USER root
COPY requirements.lock /tmp/requirements.lock
# tzdata: actions use ZoneInfo("Asia/Shanghai") and slim images may lack the system zones.
RUN pip install --no-cache-dir -c /tmp/requirements.lock \
        requests python-stdnum phonenumbers cryptography python-dotenv PyYAML redis tzdata \
        prometheus-client \
    && rm /tmp/requirements.lock
WORKDIR /app
COPY --chown=1001:0 bot /app/bot
COPY --chown=1001:0 actions /app/actions
# rasa_sdk's plugin package: GET /metrics on the action server (bot/metrics.py).
COPY --chown=1001:0 rasa_sdk_plugins /app/rasa_sdk_plugins
ENV PYTHONPATH=/app \
    SANIC_HOST=0.0.0.0 \
    ACTIONS_PORT=5055
USER 1001
EXPOSE 5055
# CARD_SERVICE_URL and CARD_SERVICE_TOKEN come from the environment.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m rasa_sdk --actions actions --port \"$ACTIONS_PORT\" \"$@\"", "actions"]
