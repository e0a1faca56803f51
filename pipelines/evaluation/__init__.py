"""Retrieval evaluation: datasets.py (SQuAD-, DPR- and BEIR-style sets), metrics.py (MRR, nDCG, recall),
run.py (ingest a set's corpus through the real path, run its queries per mode, write a report)."""
