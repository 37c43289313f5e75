# The card service (card_service): loss reports, status table, region rules, outbox. The
# staff console (console/) runs from this same image with another command
# (`python -m console serve`): the two need the same packages but argon2-cffi (0.13 MB), so
# one image is one build and one pip layer, where a second image would store about 120 MB of
# the same packages again on a host that runs both (deploy/README.md, "Staff console").
#   docker build -f deploy/card-service.Dockerfile -t cardbot/card-service:0.1.0 .
FROM python:3.10-slim-bookworm
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock \
        sanic sanic-routing redis cryptography python-stdnum phonenumbers PyYAML \
        python-dotenv requests aiohttp tzdata prometheus-client argon2-cffi PyJWT \
    && rm /tmp/requirements.lock \
    && useradd --uid 1001 --no-create-home --shell /usr/sbin/nologin cardsvc
WORKDIR /app
# Only the service and the parts of bot/ it shares with the assistant: the rules about people,
# statuses and cities, settings, the Redis factory and the client the staff tool speaks through.
COPY card_service /app/card_service
COPY bot/__init__.py bot/settings.py bot/crypto.py bot/logs.py bot/redis.py bot/card_client.py bot/notices.py bot/metrics.py bot/service.py /app/bot/
COPY bot/rules /app/bot/rules
# The log filter's masking rules (bot/logs.py), without the rest of Rasa's side.
COPY bot/rasa/__init__.py bot/rasa/scrub.py /app/bot/rasa/
# The staff console: its pages, accounts, sessions and audit, over the same parts of bot/.
COPY console /app/console
ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    BIND_HOST=0.0.0.0 \
    CARD_SERVICE_PORT=8080 \
    STAFF_CONSOLE_PORT=8090
USER 1001
EXPOSE 8080 8090
# REDIS_URL, CARD_SERVICE_TOKEN, CARD_SERVICE_STAFF_TOKEN, CARD_SERVICE_CONSOLE_TOKEN,
# DATA_ENCRYPTION_KEY, RASA_URL and RASA_JWT_SECRET come from the environment; the console's
# from its own (its REDIS_URL names the `console` user, CARD_SERVICE_CONSOLE_TOKEN,
# HANDOFF_TOKEN, RASA_URL, PROMETHEUS_URL).
CMD ["python", "-m", "card_service", "serve"]
