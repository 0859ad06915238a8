FROM python:3.11-slim
RUN useradd --system --home /var/lib/pacs pacs && mkdir -p /var/lib/pacs && chown pacs /var/lib/pacs
WORKDIR /opt/pacs
COPY pyproject.toml README.md ./
COPY pacs ./pacs
COPY storage ./storage
RUN pip install --no-cache-dir .
USER pacs
EXPOSE 8080
VOLUME /var/lib/pacs
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz')"
# Listening on every interface needs authentication: mount a JSON file of bearer tokens to
# identities at /etc/pacs/tokens.json (and name an --admin), or pass --allow-unauthenticated.
CMD ["pacs", "serve", "--host", "0.0.0.0", "--port", "8080", "--data", "/var/lib/pacs", \
     "--auth-tokens", "/etc/pacs/tokens.json"]
