"""Experiments that measure what the lecture claims: long-range memory of the cells
(`memory`) and LSTM against GRU on real text (`compare`). `tasks` holds the synthetic task."""
