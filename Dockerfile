FROM python:3.11-slim
WORKDIR /l8
COPY pyproject.toml README.md ./
COPY app app
COPY routers routers
COPY services services
COPY components components
COPY mesh mesh
COPY wasm wasm
COPY observability observability
RUN pip install --no-cache-dir .
EXPOSE 3500 50001
ENTRYPOINT ["l8", "run", "--host", "0.0.0.0"]
