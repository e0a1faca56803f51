"""The HTTP service (`german-rag serve`): app.py builds the FastAPI app over one ServiceRuntime
(runtime.py); routes.py, models.py (request and response shapes), http.py (error table, keys, metrics),
gate.py (keys and body limits before any byte is read), jobs.py (uploads as ingest jobs), core.py
(query batching and admission)."""
