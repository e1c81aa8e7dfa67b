"""The NumPy backend: a printer (`printer.py`), the emitters of the recurrent and the
feed-forward module (`emit.py`, `feedforward.py`) and their templates (`templates/`)."""
