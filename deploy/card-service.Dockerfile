# The card service (card_service): loss reports, status table, region rules, outbox.
#   docker build -f deploy/card-service.Dockerfile -t cardbot/card-service:0.1.0 .
FROM python:3.10-slim-bookworm
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -c /tmp/requirements.lock \
        sanic sanic-routing redis cryptography python-stdnum phonenumbers PyYAML \
        python-dotenv requests aiohttp tzdata prometheus-client \
    && rm /tmp/requirements.lock \
    && useradd --uid 1001 --no-create-home --shell /usr/sbin/nologin cardsvc
WORKDIR /app
# Only the service and the parts of bot/ it shares with the assistant: the rules about people,
# statuses and cities, settings, the Redis factory and the client the staff tool speaks through.
COPY card_service /app/card_service
COPY bot/__init__.py bot/settings.py bot/crypto.py bot/logs.py bot/redis.py bot/card_client.py bot/notices.py bot/metrics.py /app/bot/
COPY bot/rules /app/bot/rules
ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    BIND_HOST=0.0.0.0 \
    CARD_SERVICE_PORT=8080
USER 1001
EXPOSE 8080
# REDIS_URL, CARD_SERVICE_TOKEN, CARD_SERVICE_STAFF_TOKEN, DATA_ENCRYPTION_KEY, RASA_URL and
# RASA_TOKEN come from the environment.
CMD ["python", "-m", "card_service", "serve"]
