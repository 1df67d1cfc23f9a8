"""The parts of benchmarks/gpu.py: its synthetic data, the methods as the shipped configs build them, the measured
variants, the timing of training steps and of the data loader, the time budget and the report."""
